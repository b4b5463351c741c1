// Package stacks renders the per-site stacks (one folder per stack under stacks/:
// a compose template plus the Go code that generates its configuration files) and
// holds the registry the deploy engine reads them from.
package stacks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/template"

	"github.com/sitectl/sitectl/sites"
)

// Input is what a stack renders from: the whole topology and the site being rendered.
type Input struct {
	Topo *sites.Topology
	Site *sites.Site
}

// Env is the environment being rendered (dev, staging, production, lab).
func (in Input) Env() string { return in.Site.Env }

// Rendered is one stack rendered for one site and environment: a compose file
// docker/cli's loader accepts, and the files its configs reference by relative path.
type Rendered struct {
	Stack   string
	Compose []byte
	// Files maps a path relative to the compose file (as its configs' `file:` say)
	// to the generated content.
	Files map[string][]byte
	// Secrets are references a stack brings besides the site's secrets map (e.g.
	// the receivers' tokens of stacks/monitoring): `file: secrets/<name>` looks here
	// first, then in the site's secrets.
	Secrets map[string]sites.SecretRef
	// PassFiles are secrets sitectl composes from several references: libpq
	// passfiles (the subscriber's pgpass of stacks/postgres). `file: secrets/<name>`
	// looks here before Secrets.
	PassFiles map[string][]PassFileLine
}

// PassFileLine is one line of a composed passfile (sites.PassLine).
type PassFileLine = sites.PassLine

// PassFileContent is the passfile's content, the passwords read from their
// references. Never print it.
func PassFileContent(lines []PassFileLine) ([]byte, error) { return sites.PassFile(lines) }

// passFileSource describes a composed passfile by its references (never a value).
func passFileSource(lines []PassFileLine) string {
	refs := make([]string, len(lines))
	for i, l := range lines {
		refs[i] = l.Password.String()
	}
	return "passfile of " + strings.Join(refs, ", ")
}

// SecretRef returns the reference behind `file: secrets/<name>` of r's compose file.
func (r Rendered) SecretRef(site *sites.Site, name string) (sites.SecretRef, bool) {
	if ref, ok := r.Secrets[name]; ok {
		return ref, true
	}
	ref, ok := site.Secrets[name]
	return ref, ok
}

// Stack is one folder under stacks/.
type Stack interface {
	Name() string
	// Render renders the stack for in.Site. Only called for sites that list the stack.
	Render(in Input) (Rendered, error)
}

var registry = map[string]Stack{}

// Register adds a stack; each stack package calls it from init. Registering a name
// twice panics (a programming error).
func Register(s Stack) {
	if _, dup := registry[s.Name()]; dup {
		panic("stacks: " + s.Name() + " registered twice")
	}
	registry[s.Name()] = s
}

// Get returns the registered stack, or an error naming the registered ones.
func Get(name string) (Stack, error) {
	s, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("stack %q is not registered (registered: %s)", name, strings.Join(Names(), ", "))
	}
	return s, nil
}

// Names lists the registered stacks, sorted.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Values returns the stack's settings for in.Site: defaults overridden by the
// site's `values.<stack>` (as merged from every config layer).
func Values(in Input, stack string, defaults map[string]any) map[string]any {
	out := maps.Clone(defaults)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range in.Site.Values[stack] {
		out[k] = v
	}
	return out
}

// CheckValues refuses every key of the site's values.<stack> that names none of the
// stack's settings (the keys of defaults), suggesting the closest: a misspelt key
// would otherwise be ignored and its default used without a word.
func CheckValues(in Input, stack string, defaults map[string]any) error {
	known := slices.Sorted(maps.Keys(defaults))
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(in.Site.Values[stack])) {
		if _, ok := defaults[k]; ok {
			continue
		}
		key := "values." + stack + "." + k
		msg := fmt.Sprintf("site %s: %s names no setting of stack %s", in.Site.Name, key, stack)
		if in.Topo != nil {
			msg += " (set in " + in.Topo.Origin(in.Site.Name, key) + ")"
		}
		if c := sites.Closest(k, known); c != "" {
			msg += "; did you mean values." + stack + "." + c + "?"
		} else {
			msg += "; settings: " + strings.Join(known, ", ")
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// TemplateData is what compose templates see.
type TemplateData struct {
	Site   *sites.Site
	Topo   *sites.Topology
	Env    string
	Stack  string
	Values map[string]any
	// Extra is stack-specific data computed by the stack's Go code.
	Extra any
}

// ExecTemplate renders a compose (or config) template with the shared functions:
//
//	image "kong"        the site's image reference for a logical name (error if none)
//	endpointMode        the site's deploy.endpoint_mode (vip | dnsrr)
//	publishMode         the site's deploy.publish_mode (ingress | host)
//	hub                 the hub site
//	quote               a YAML double-quoted string
func ExecTemplate(name string, text []byte, data TemplateData) ([]byte, error) {
	funcs := template.FuncMap{
		"image": func(logical string) (string, error) {
			ref := data.Site.Images[logical]
			if ref == "" {
				return "", fmt.Errorf("site %s has no image for %q: set images.%s in its config", data.Site.Name, logical, logical)
			}
			return ref, nil
		},
		"endpointMode": func() string { return data.Site.Deploy.EndpointMode },
		"publishMode":  func() string { return data.Site.Deploy.PublishMode },
		"hub":          func() *sites.Site { return data.Topo.HubSite() },
		"quote":        func(s any) string { return fmt.Sprintf("%q", fmt.Sprint(s)) },
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render %s for %s/%s: %w", name, data.Site.Name, data.Env, err)
	}
	return buf.Bytes(), nil
}

// JSONList renders a list of strings (a healthcheck test, a command) as a JSON list,
// which is YAML: every string quoted and escaped, whatever it holds. HTML characters
// are not escaped, so ">=" stays readable in the rendered file.
func JSONList(list []string) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(list); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}
