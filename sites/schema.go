package sites

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	secretRefType = reflect.TypeOf(SecretRef{})
	durationType  = reflect.TypeOf(Duration(0))
	siteType      = reflect.TypeOf(Site{})
)

// walker checks one layer's settings against Site's schema: unknown keys (with the
// closest known key), wrong types (said plainly), lists given as one value, and
// secrets written inline. Bad values are reported and left out of the copy it
// returns, so the layers can still be merged and checked against each other.
type walker struct {
	c      *collector
	file   string // the layer: a file, "environment variable X", "flag --set k"
	site   string // "" for a layer every site shares: its problems are reported once
	prefix string // key prefix inside the file ("all.", "sites.douala.")
	// text is true for layers whose values are text (SITECTL_* variables, --set):
	// "a,b" is a list there and "5432" a number.
	text bool
}

// checkSiteMap checks one file's (or variable's, or flag's) site-level map.
func checkSiteMap(c *collector, file, site, prefix string, m map[string]any) map[string]any {
	return (&walker{c: c, file: file, site: site, prefix: prefix}).siteMap(m)
}

func (w *walker) siteMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out, _ := w.walk("", siteType, m).(map[string]any)
	return out
}

func (w *walker) errf(path, format string, args ...any) {
	w.c.errf(w.file, w.site, w.prefix+path, format, args...)
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf maps a struct's setting names to their types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	defer func() { fieldCache.Store(t, fields) }()
	for i := 0; i < t.NumField(); i++ {
		if tag := fieldTag(t.Field(i)); tag != "" {
			fields[tag] = t.Field(i).Type
		}
	}
	return fields
}

// fieldTag is a struct field's setting name ("" for fields that are not settings).
func fieldTag(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	if tag == "-" {
		return ""
	}
	return tag
}

// describe shows a value in a message; values under secret-like keys are never shown.
func describe(path string, v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		if isSensitive(path) {
			return "a text value"
		}
		return strconv.Quote(x)
	case nil:
		return "empty"
	}
	if isSensitive(path) {
		return "a value"
	}
	return fmt.Sprint(v)
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// walk checks value v found at path against type t and returns what to keep.
func (w *walker) walk(path string, t reflect.Type, v any) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return nil
	}
	if t == secretRefType {
		if _, ok := v.(map[string]any); !ok {
			w.errf(path, "a secret written inline is refused; name where it comes from instead: {env: VAR} or {file: /path} or {docker_secret: name}")
			return nil
		}
	}
	if t == durationType {
		return w.walkDuration(path, v)
	}
	switch t.Kind() {
	case reflect.Struct:
		return w.walkStruct(path, t, v)
	case reflect.Map:
		return w.walkMap(path, t, v)
	case reflect.Slice:
		return w.walkSlice(path, t, v)
	case reflect.Interface:
		return w.walkFree(path, t, v)
	case reflect.String:
		return w.walkString(path, v)
	case reflect.Int, reflect.Int64:
		return w.walkInt(path, v)
	case reflect.Float64, reflect.Float32:
		return w.walkFloat(path, v)
	case reflect.Bool:
		return w.walkBool(path, v)
	}
	return v
}

func (w *walker) walkDuration(path string, v any) any {
	s, ok := v.(string)
	if !ok {
		if isScalar(v) {
			w.errf(path, "is %s, not a duration; write the unit (e.g. 30s, 5m, 24h)", describe(path, v))
		} else {
			w.errf(path, "is %s, not a duration (e.g. 30s, 5m, 24h)", describe(path, v))
		}
		return nil
	}
	if _, err := time.ParseDuration(strings.TrimSpace(s)); err != nil {
		w.errf(path, "is %q, not a duration (e.g. 30s, 5m, 24h)", s)
		return nil
	}
	return strings.TrimSpace(s)
}

func (w *walker) walkStruct(path string, t reflect.Type, v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		w.errf(path, "is %s; it must be a mapping of settings (%s)", describe(path, v), strings.Join(slices.Sorted(maps.Keys(fieldsOf(t))), ", "))
		return nil
	}
	fields := fieldsOf(t)
	out := make(map[string]any, len(m))
	for k, sub := range m {
		ft, known := fields[k]
		if !known {
			w.unknown(join(path, k), k, slices.Sorted(maps.Keys(fields)))
			continue
		}
		if r := w.walk(join(path, k), ft, sub); r != nil {
			out[k] = r
		}
	}
	return out
}

func (w *walker) walkMap(path string, t reflect.Type, v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		w.errf(path, "is %s; it must be a mapping (name: value)", describe(path, v))
		return nil
	}
	out := make(map[string]any, len(m))
	for k, sub := range m {
		if r := w.walk(join(path, k), t.Elem(), sub); r != nil {
			out[k] = r
		}
	}
	return out
}

func (w *walker) walkSlice(path string, t reflect.Type, v any) any {
	l, ok := v.([]any)
	if !ok {
		s, isStr := v.(string)
		if !w.text || !isStr {
			w.errf(path, "is %s, a single value; it must be a list, e.g. [a, b] (one item: [a])", describe(path, v))
			return nil
		}
		// SITECTL_* and --set values: "a, b" is the list [a, b].
		l = []any{}
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				l = append(l, e)
			}
		}
	}
	out := make([]any, 0, len(l))
	for i, e := range l {
		if s, ok := e.(string); ok && t.Elem().Kind() == reflect.String {
			e = strings.TrimSpace(s)
		}
		if r := w.walk(fmt.Sprintf("%s[%d]", path, i), t.Elem(), e); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// walkFree checks a free-form value (per-stack settings, checked by each stack):
// it refuses inline secrets by key name.
func (w *walker) walkFree(path string, t reflect.Type, v any) any {
	if isSensitive(lastKey(path)) {
		if _, isStr := v.(string); isStr {
			w.errf(path, "a secret written inline is refused; put it in a secret (secrets.<name>: {env: VAR}) and reference the secret's name")
			return nil
		}
	}
	if m, ok := v.(map[string]any); ok {
		out := make(map[string]any, len(m))
		for k, sub := range m {
			if r := w.walk(join(path, k), t, sub); r != nil {
				out[k] = r
			}
		}
		return out
	}
	if w.text {
		if s, ok := v.(string); ok {
			return textValue(s)
		}
	}
	return v
}

func (w *walker) walkString(path string, v any) any {
	if !isScalar(v) {
		w.errf(path, "is %s; it must be a single text value", describe(path, v))
		return nil
	}
	if k := lastKey(path); !strings.HasPrefix(path, "images.") && k != "docker_secret" && isSensitive(k) {
		if _, isStr := v.(string); isStr {
			w.errf(path, "a secret written inline is refused; name where it comes from instead: {env: VAR} or {file: /path}")
			return nil
		}
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func (w *walker) walkInt(path string, v any) any {
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case uint64:
		if x <= math.MaxInt32 {
			return int(x)
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<31 {
			return int(x)
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n
		}
	}
	w.errf(path, "is %s, not a whole number", describe(path, v))
	return nil
}

func (w *walker) walkFloat(path string, v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	}
	w.errf(path, "is %s, not a number", describe(path, v))
	return nil
}

func (w *walker) walkBool(path string, v any) any {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b
		}
	}
	w.errf(path, "is %s; allowed: true, false", describe(path, v))
	return nil
}

// textValue reads a SITECTL_* or --set value bound for a free-form setting the way
// YAML would: 3 is a number, true a boolean, anything else text.
func textValue(s string) any {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return f
	}
	if b, err := strconv.ParseBool(s); err == nil && (s == "true" || s == "false") {
		return b
	}
	return s
}

// unknown reports a key that names no setting, with the closest one when near.
func (w *walker) unknown(path, key string, siblings []string) {
	msg := "unknown key (misspelt, or not a setting sitectl has; `sitectl config show` lists every key)"
	if s := closest(key, siblings); s != "" {
		parent := strings.TrimSuffix(path, key)
		msg = fmt.Sprintf("unknown key; did you mean %s%s? (`sitectl config show` lists every key)", w.prefix+parent, s)
	}
	w.c.errf(w.file, w.site, w.prefix+path, "%s", msg)
}

// closest returns the candidate nearest to s (edit distance), or "" when none is
// near enough to be a likely misspelling.
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(s, c)
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := max(2, len(s)/3)
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// leafKeys lists the dotted key paths of a struct's settings (SecretRef fields as
// their env/file/docker_secret leaves).
func leafKeys(t reflect.Type, prefix string, out map[string]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		p := join(prefix, tag)
		ft := f.Type
		if ft.Kind() == reflect.Struct && ft != durationType {
			leafKeys(ft, p, out)
			continue
		}
		out[envName(p)] = p
	}
}

var siteLeafKeys = func() map[string]string {
	m := map[string]string{}
	leafKeys(siteType, "", m)
	return m
}()

// Closest returns the candidate nearest to s, or "" when none is near enough to be a
// likely misspelling. Stacks use it to suggest the value a misspelt key meant.
func Closest(s string, candidates []string) string { return closest(s, candidates) }
