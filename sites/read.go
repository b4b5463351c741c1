package sites

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"syscall"

	"gopkg.in/yaml.v3"
)

// MaxFileBytes is the largest configuration file (site file, defaults.yaml, an
// environment overlay) the loader reads: a bigger one is refused at once.
const MaxFileBytes = 1 << 20

// maxValues bounds the values one file may expand to (YAML aliases repeat a value
// without repeating its text): beyond it the file is refused.
const maxValues = 200_000

// readFile reads one YAML file of the config dir into a map with lower-case keys.
// It reports (once, naming the file) a file that is a directory, a link that loops,
// a file over MaxFileBytes, a YAML syntax error, a duplicate key, and a document
// that is not a mapping; ok is false then, so no follow-on problem is reported
// about what the file would have set.
func readFile(ctx context.Context, c *collector, fsys fs.FS, name, relName, what string) (map[string]any, bool) {
	info, err := fs.Stat(fsys, name)
	if err != nil {
		c.errf(relName, "", "", "%s", describeOpenError(err, what))
		return nil, false
	}
	if info.IsDir() {
		c.errf(relName, "", "", "is a directory; %s is a YAML file (remove or rename the directory)", what)
		return nil, false
	}
	if info.Size() > MaxFileBytes {
		c.errf(relName, "", "", "is %d bytes; configuration files are limited to %d bytes (1 MiB)", info.Size(), MaxFileBytes)
		return nil, false
	}
	f, err := fsys.Open(name)
	if err != nil {
		c.errf(relName, "", "", "%s", describeOpenError(err, what))
		return nil, false
	}
	defer func() { _ = f.Close() }() // read only: nothing to lose
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		c.errf(relName, "", "", "cannot read: %s", plainError(err))
		return nil, false
	}
	if len(b) > MaxFileBytes {
		c.errf(relName, "", "", "is over %d bytes; configuration files are limited to %d bytes (1 MiB)", MaxFileBytes, MaxFileBytes)
		return nil, false
	}
	if err := ctx.Err(); err != nil {
		c.errf(relName, "", "", "not read: %v", err)
		return nil, false
	}
	m, err := parseCached(ctx, b)
	if err != nil {
		c.errf(relName, "", "", "%s", err)
		return nil, false
	}
	return m, true
}

// parsed caches the maps of recently read files by content: `config validate`
// reads the same site files once per environment. The maps are never changed
// after parsing (every later step copies what it keeps).
var parsed struct {
	sync.Mutex
	m map[[32]byte]map[string]any
}

func parseCached(ctx context.Context, b []byte) (map[string]any, error) {
	sum := sha256.Sum256(b)
	parsed.Lock()
	m, ok := parsed.m[sum]
	parsed.Unlock()
	if ok {
		return m, nil
	}
	m, err := parseYAML(ctx, b)
	if err != nil {
		return nil, err
	}
	parsed.Lock()
	if parsed.m == nil || len(parsed.m) >= 64 {
		parsed.m = map[[32]byte]map[string]any{}
	}
	parsed.m[sum] = m
	parsed.Unlock()
	return m, nil
}

func describeOpenError(err error, what string) string {
	switch {
	case errors.Is(err, syscall.ELOOP):
		return "is a symbolic link that loops (it never reaches a file); point it at " + what + " or remove it"
	case errors.Is(err, fs.ErrNotExist):
		return "is a symbolic link to nothing (or was removed while reading); point it at " + what + " or remove it"
	case errors.Is(err, fs.ErrPermission):
		return "cannot be read: permission denied"
	}
	return "cannot read: " + plainError(err)
}

// plainError drops the Go operation and path prefix ("open /x/y: ") the problem's
// file already names.
func plainError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// parseYAML reads a document whose top is a mapping (or empty). yaml.v3 parses
// into nodes (linear in the input); the nodes are converted here, with a linear
// duplicate-key check (yaml.v3's own one is quadratic in a mapping's size).
func parseYAML(ctx context.Context, b []byte) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("YAML syntax error: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // an empty file sets nothing
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil, nil
	}
	if resolved := resolveAlias(top); resolved.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping of settings (key: value), not %s", top.Line, nodeKind(resolved))
	}
	cv := &converter{ctx: ctx, active: map[*yaml.Node]bool{}}
	v, err := cv.value(top)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "empty"
}

type converter struct {
	ctx    context.Context
	n      int
	active map[*yaml.Node]bool // anchors being expanded: an alias to one loops
}

func (cv *converter) value(n *yaml.Node) (any, error) {
	cv.n++
	if cv.n > maxValues {
		return nil, fmt.Errorf("line %d: the file expands to more than %d values (YAML aliases repeating large values?); write it out plainly", n.Line, maxValues)
	}
	if cv.n%4096 == 0 {
		if err := cv.ctx.Err(); err != nil {
			return nil, fmt.Errorf("not read: %w", err)
		}
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil || cv.active[n.Alias] {
			return nil, fmt.Errorf("line %d: alias *%s refers to a value containing itself", n.Line, n.Value)
		}
		cv.active[n.Alias] = true
		v, err := cv.value(n.Alias)
		delete(cv.active, n.Alias)
		return v, err
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return n.Value, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			// the value itself is not shown: it may be a secret written by mistake
			return nil, fmt.Errorf("line %d: a value tagged %s cannot be read as one", n.Line, n.Tag)
		}
		return v, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := cv.value(e)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		if n.Anchor != "" {
			cv.active[n] = true
			defer delete(cv.active, n)
		}
		out := make(map[string]any, len(n.Content)/2)
		lines := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := resolveAlias(n.Content[i]), n.Content[i+1]
			if kn.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a key must be a plain name, not %s", n.Content[i].Line, nodeKind(kn))
			}
			if kn.Tag == "!!merge" {
				return nil, fmt.Errorf("line %d: YAML merge keys (<<) are not supported; write the settings out, or use the layers (defaults.yaml, env/<env>.yaml)", kn.Line)
			}
			key := strings.ToLower(kn.Value)
			if prev, dup := lines[key]; dup {
				return nil, fmt.Errorf("line %d: key %q is set twice (also at line %d); keep one", kn.Line, kn.Value, prev)
			}
			lines[key] = kn.Line
			v, err := cv.value(vn)
			if err != nil {
				return nil, err
			}
			out[key] = v
		}
		return out, nil
	}
	return nil, nil
}
