package sites

import (
	"reflect"
	"strings"
)

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func lastKey(path string) string {
	if i := strings.LastIndex(path, "."); i >= 0 {
		return path[i+1:]
	}
	return path
}

// mergeInto lays src over dst: mappings merge key by key, anything else (a list,
// a value) replaces what dst had. Empty values set nothing.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		switch x := v.(type) {
		case nil:
		case map[string]any:
			if d, ok := dst[k].(map[string]any); ok {
				mergeInto(d, x)
				continue
			}
			dst[k] = deepCopy(x)
		default:
			dst[k] = deepCopyValue(x)
		}
	}
}

// merge lays one site's layers over each other and decodes the result. Every layer
// was checked against the schema already (wrong values left out), so decoding
// fails only on what the schema check cannot see.
func merge(c *collector, name, siteRel string, layers []layer) (*Site, map[string]string) {
	layers = replaceSecretRefs(layers)
	all := map[string]any{}
	origins := map[string]string{}
	for _, l := range layers {
		if l.data == nil {
			continue
		}
		mergeInto(all, l.data)
		for _, k := range flatten("", l.data) {
			origins[k] = l.origin
		}
	}
	var s Site
	if err := decodeInto("", reflect.ValueOf(&s).Elem(), all); err != nil {
		c.errf(siteRel, name, "", "the merged settings cannot be read: %v", err)
		return nil, nil
	}
	if s.Name != "" && s.Name != name {
		c.errf(origin(origins, "name", siteRel), name, "name", "is %q but the file is %s.yaml; the site's name is its file's name (remove the key or rename the file)", s.Name, name)
	}
	s.Name = name
	return &s, origins
}

func flatten(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			out = append(out, flatten(p, sub)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// origin finds which layer set key (or its closest parent; a list item's key is
// covered by its list's); def when none did.
func origin(origins map[string]string, key, def string) string {
	for k := key; k != ""; {
		if o, ok := origins[k]; ok {
			return o
		}
		// a parent set as a whole (a list or map) covers its children
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	// a child set below key: name the first one's origin
	for k, o := range origins {
		if strings.HasPrefix(k, key+".") {
			return o
		}
	}
	return def
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopy(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}

// replaceSecretRefs makes a secret reference set in a later layer replace the whole
// reference of earlier layers: {env: X} then {file: Y} is {file: Y}, not both.
func replaceSecretRefs(layers []layer) []layer {
	out := make([]layer, len(layers))
	later := map[string]bool{}
	for i := len(layers) - 1; i >= 0; i-- {
		data := layers[i].data
		if data != nil && len(later) > 0 {
			data = deepCopy(data)
			for p := range later {
				deletePath(data, p)
			}
		}
		out[i] = layer{origin: layers[i].origin, data: data}
		for _, p := range secretRefPaths(reflect.TypeOf(Site{}), "", layers[i].data) {
			later[p] = true
		}
	}
	return out
}

func secretRefPaths(t reflect.Type, path string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if t == secretRefType {
		return []string{path}
	}
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		for tag, ft := range fieldsOf(t) {
			if sub, ok := m[tag]; ok {
				out = append(out, secretRefPaths(ft, join(path, tag), sub)...)
			}
		}
	case reflect.Map:
		if t.Elem().Kind() != reflect.Struct {
			break
		}
		for k, sub := range m {
			out = append(out, secretRefPaths(t.Elem(), join(path, k), sub)...)
		}
	}
	return out
}

func deletePath(m map[string]any, path string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, parts[len(parts)-1])
}
