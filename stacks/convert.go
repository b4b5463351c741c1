package stacks

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/docker/cli/cli/compose/loader"
	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
	"github.com/sitectl/sitectl/internal/composeload"
)

// renderRoot is the working directory the compose loader sees: rendered stacks live
// in memory, and config/secret `file:` paths are looked up relative to it.
const renderRoot = "/sitectl-rendered"

// SecretsDir is the folder a compose file's secrets name their source in:
// `file: secrets/postgres-password` takes the value of the site's
// `secrets.postgres-password` reference (sites.SecretRef), resolved when deploying
// and never written to disk.
const SecretsDir = "secrets/"

// Object is one version of a swarm secret or config.
type Object struct {
	Stack string `json:"stack"`
	// Logical is the object's name without its version ("postgres_postgres-password").
	Logical string `json:"logical"`
	// Name is the swarm name of this version: Logical + "_" + content hash.
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// Source says where the content came from ("env:SITECTL_PG_PASSWORD", "file kong.yml").
	Source     string        `json:"source"`
	Templating *swarm.Driver `json:"templating,omitempty"`
	// Data is the content. Never printed: tagged out of JSON.
	Data []byte `json:"-"`
}

// Service is one desired swarm service.
type Service struct {
	Stack string            `json:"stack"`
	Name  string            `json:"name"`
	Spec  swarm.ServiceSpec `json:"spec"`
	// Hash is the spec hash, also stored in the spec's LabelSpecHash label.
	Hash string `json:"hash"`
	// DependsOn names the services (swarm names, of this site) whose tasks must have
	// started before deploy creates or rolls this one: the compose file's own
	// `depends_on` (which `docker stack deploy` ignores) and `x-sitectl-depends-on`
	// for services of other stacks ("postgres_db"). Not part of the spec.
	DependsOn []string `json:"depends_on,omitempty"`
	// RollsAfter names services (swarm names, of this site) this one rolls after
	// but is created with: when one deploy rolls both, deploy rolls this one once a
	// task of theirs at the new spec started; when one deploy creates both, it
	// creates them together. From `x-sitectl-rolls-after`. For a service that copes
	// with a dependency still starting (its health check retries, within a start
	// period) but whose rolling update would fail during the dependency's restart.
	RollsAfter []string `json:"rolls_after,omitempty"`
}

// After is every service this one is ordered after: DependsOn, then RollsAfter
// (once each).
func (s Service) After() []string {
	all := slices.Clone(s.DependsOn)
	for _, r := range s.RollsAfter {
		if !slices.Contains(all, r) {
			all = append(all, r)
		}
	}
	return all
}

// DependsOnKey is the service-level compose extension naming services of other
// stacks of the site (by swarm name, "<stack>_<service>") this one starts after.
const DependsOnKey = "x-sitectl-depends-on"

// RollsAfterKey is the service-level compose extension naming services of the site
// (by swarm name, "<stack>_<service>") this one rolls after (see Service.RollsAfter).
const RollsAfterKey = "x-sitectl-rolls-after"

// Network is one desired overlay network.
type Network struct {
	Stack  string                      `json:"stack"`
	Name   string                      `json:"name"`
	Create client.NetworkCreateOptions `json:"create"`
	// Note is what an operator should know (why encryption is off).
	Note string `json:"note,omitempty"`
}

// Desired is everything a site's stacks want in its swarm.
type Desired struct {
	Site     string    `json:"site"`
	Stacks   []string  `json:"stacks"`
	Networks []Network `json:"networks"`
	Secrets  []Object  `json:"secrets"`
	Configs  []Object  `json:"configs"`
	Services []Service `json:"services"`
}

// ConvertOptions tune the conversion.
type ConvertOptions struct {
	// Environment interpolates ${VAR} in compose files, as `docker stack deploy`
	// does with the shell's environment.
	Environment map[string]string
	// Key keys the content hash in secret and config names (the swarm's cluster ID).
	Key []byte
	// References converts without reading any secret value: a secret's content is
	// its reference ("env:VAR"). For checking a stack as deploy loads it with no
	// secret at hand (stacks render); what it converts must never be deployed.
	References bool
}

// RenderAll renders every stack the site lists, in the site's order, then every
// app the site runs (RenderApp): what Build
// converts and `sitectl stacks render` writes.
func RenderAll(in Input) ([]Rendered, error) {
	out := make([]Rendered, 0, len(in.Site.Stacks))
	for _, name := range in.Site.Stacks {
		st, err := Get(name)
		if err != nil {
			return nil, fmt.Errorf("site %s: %w; register it in stacks/all or remove it from the site's stacks", in.Site.Name, err)
		}
		r, err := st.Render(in)
		if err != nil {
			return nil, fmt.Errorf("render stack %s for %s: %w", name, in.Site.Name, err)
		}
		out = append(out, r)
	}
	// The operator's apps the site runs, after the built-in stacks they may use.
	for _, a := range in.Topo.AppsAt(in.Site.Name) {
		r, err := RenderApp(in, a)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Build renders and converts every stack the site lists, plus the site networks.
func Build(ctx context.Context, in Input, opts ConvertOptions) (*Desired, error) {
	d := &Desired{Site: in.Site.Name, Networks: SiteNetworks(in.Site)}
	all, err := RenderAll(in)
	if err != nil {
		return nil, err
	}
	for _, r := range all {
		name := r.Stack
		one, err := Convert(ctx, in, r, opts)
		if err != nil {
			return nil, err
		}
		d.Stacks = append(d.Stacks, name)
		d.Networks = append(d.Networks, one.Networks...)
		d.Secrets = append(d.Secrets, one.Secrets...)
		d.Configs = append(d.Configs, one.Configs...)
		d.Services = append(d.Services, one.Services...)
	}
	if err := orderServices(d); err != nil {
		return nil, fmt.Errorf("site %s: %w", in.Site.Name, err)
	}
	return d, nil
}

// orderServices drops dependencies on services the site's stacks do not define (a
// database outside the site's swarm: nothing to wait for), then sorts the services
// so each comes after those it depends on or rolls after (otherwise keeping their
// order). A cycle is an error naming it.
func orderServices(d *Desired) error {
	idx := map[string]int{}
	for i, svc := range d.Services {
		idx[svc.Name] = i
	}
	known := func(deps []string) []string {
		var keep []string
		for _, dep := range deps {
			if _, ok := idx[dep]; ok {
				keep = append(keep, dep)
			}
		}
		return keep
	}
	for i := range d.Services {
		d.Services[i].DependsOn = known(d.Services[i].DependsOn)
		d.Services[i].RollsAfter = known(d.Services[i].RollsAfter)
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := make([]int, len(d.Services))
	var out []Service
	var visit func(i int, path []string) error
	visit = func(i int, path []string) error {
		svc := d.Services[i]
		switch state[i] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("services are ordered after each other: %s → %s; remove one of these from its depends_on, %s or %s", strings.Join(path, " → "), svc.Name, DependsOnKey, RollsAfterKey)
		}
		state[i] = visiting
		for _, dep := range svc.After() {
			if err := visit(idx[dep], append(path, svc.Name)); err != nil {
				return err
			}
		}
		state[i] = done
		out = append(out, svc)
		return nil
	}
	for i := range d.Services {
		if err := visit(i, nil); err != nil {
			return err
		}
	}
	d.Services = out
	return nil
}

// dependsOn reads a service's `depends_on` (services of the same stack) and
// DependsOnKey (swarm names of other stacks' services).
func dependsOn(ns convert.Namespace, sc composetypes.ServiceConfig, services map[string]bool) ([]string, error) {
	var out []string
	for _, dep := range sc.DependsOn {
		if !services[dep] {
			return nil, fmt.Errorf("service %s: depends_on names %q, which is not a service of this stack (a service of another stack goes in %s as <stack>_<service>)", sc.Name, dep, DependsOnKey)
		}
		out = append(out, ns.Scope(dep))
	}
	more, err := serviceNames(sc, DependsOnKey)
	if err != nil {
		return nil, err
	}
	out = append(out, more...)
	sort.Strings(out)
	return slices.Compact(out), nil
}

// serviceNames reads a service-level extension that lists swarm service names
// ("<stack>_<service>"), sorted.
func serviceNames(sc composetypes.ServiceConfig, key string) ([]string, error) {
	v, ok := sc.Extras[key]
	if !ok {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("service %s: %s must be a list of service names (<stack>_<service>), not %T", sc.Name, key, v)
	}
	var out []string
	for _, x := range list {
		name, ok := x.(string)
		if !ok || !strings.Contains(name, "_") {
			return nil, fmt.Errorf("service %s: %s: %v is not a service name of the form <stack>_<service>", sc.Name, key, x)
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// Convert loads one rendered stack with docker/cli's compose loader (schema
// validation and ${VAR} interpolation, as `docker stack deploy`) and converts it
// to swarm specs with docker/cli's converters. Secrets and configs get versioned
// names; every object gets sitectl's labels; services carry their spec hash.
func Convert(ctx context.Context, in Input, r Rendered, opts ConvertOptions) (*Desired, error) {
	site, stack := in.Site.Name, r.Stack
	fail := func(format string, args ...any) error {
		return fmt.Errorf("stack %s for %s: "+format, append([]any{stack, site}, args...)...)
	}
	dict, err := loader.ParseYAML(r.Compose)
	if err != nil {
		return nil, fail("parse compose file: %w", err)
	}
	cfg, err := composeload.Load(composetypes.ConfigDetails{
		WorkingDir:  path.Join(renderRoot, stack),
		ConfigFiles: []composetypes.ConfigFile{{Filename: stack + "/compose.yaml", Config: dict}},
		Environment: opts.Environment,
	})
	if err != nil {
		return nil, fail("load compose file: %w", err)
	}
	ns := convert.NewNamespace(stack)
	d := &Desired{Site: site, Stacks: []string{stack}}
	if d.Networks, err = convertNetworks(in, stack, ns, cfg, fail); err != nil {
		return nil, err
	}
	if err := convertFileObjects(in, r, ns, cfg, opts, d, fail); err != nil {
		return nil, err
	}

	// Services: docker/cli's converter, with secret/config IDs filled in at apply time.
	specs, err := convert.Services(ctx, ns, cfg, nameEcho{})
	if err != nil {
		return nil, fail("convert services: %w", err)
	}
	inStack := map[string]bool{}
	for _, sc := range cfg.Services {
		inStack[sc.Name] = true
	}
	deps, rollsAfter := map[string][]string{}, map[string][]string{}
	for _, sc := range cfg.Services {
		if deps[ns.Scope(sc.Name)], err = dependsOn(ns, sc, inStack); err != nil {
			return nil, fail("%w", err)
		}
		if rollsAfter[ns.Scope(sc.Name)], err = serviceNames(sc, RollsAfterKey); err != nil {
			return nil, fail("%w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		spec := specs[name]
		spec.Labels = merge(spec.Labels, ManagedLabels(site, stack))
		h := SpecHash(spec)
		spec.Labels[LabelSpecHash] = h
		spec.Labels[LabelTaskHash] = TaskHash(spec)
		d.Services = append(d.Services, Service{Stack: stack, Name: spec.Name, Spec: spec, Hash: h, DependsOn: deps[spec.Name],
			RollsAfter: rollsAfter[spec.Name]})
	}
	return d, nil
}

// failFunc makes Convert's errors, which name the stack and the site.
type failFunc func(format string, args ...any) error

// convertNetworks converts the networks the stack declares itself (edge/app/data are
// external: the site's, and must be among them).
func convertNetworks(in Input, stack string, ns convert.Namespace, cfg *composetypes.Config, fail failFunc) ([]Network, error) {
	site := in.Site.Name
	var out []Network
	used := map[string]struct{}{}
	for _, s := range cfg.Services {
		if len(s.Networks) == 0 {
			used["default"] = struct{}{}
		}
		for n := range s.Networks {
			used[n] = struct{}{}
		}
	}
	nets, external := convert.Networks(ns, cfg.Networks, used)
	siteNets := map[string]bool{}
	for _, n := range SiteNetworks(in.Site) {
		siteNets[n.Name] = true
	}
	for _, n := range external {
		if !siteNets[n] {
			return nil, fail("external network %q is not one of the site's networks (%s)", n, strings.Join(slices.Sorted(maps.Keys(siteNets)), ", "))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(nets)) {
		o := nets[name]
		if o.Driver == "" {
			o.Driver = "overlay"
		}
		o.Labels = merge(o.Labels, ManagedLabels(site, stack))
		out = append(out, Network{Stack: stack, Name: name, Create: o})
	}
	return out, nil
}

// convertFileObjects adds the stack's secrets and configs to d, versioned by content,
// and points cfg's entries at their versioned names.
func convertFileObjects(in Input, r Rendered, ns convert.Namespace, cfg *composetypes.Config, opts ConvertOptions, d *Desired, fail failFunc) error {
	for _, key := range slices.Sorted(maps.Keys(cfg.Secrets)) {
		sc := cfg.Secrets[key]
		if sc.External.External {
			continue
		}
		if sc.Driver != "" {
			return fail("secret %s: secret drivers are not supported; use file: %s<site secret name>", key, SecretsDir)
		}
		obj, err := fileObject(in, r, ns, key, composetypes.FileObjectConfig(sc), opts, true)
		if err != nil {
			return fail("secret %s: %w", key, err)
		}
		sc.Name = obj.Name
		cfg.Secrets[key] = sc
		d.Secrets = append(d.Secrets, obj)
	}
	for _, key := range slices.Sorted(maps.Keys(cfg.Configs)) {
		cc := cfg.Configs[key]
		if cc.External.External {
			continue
		}
		obj, err := fileObject(in, r, ns, key, composetypes.FileObjectConfig(cc), opts, false)
		if err != nil {
			return fail("config %s: %w", key, err)
		}
		cc.Name = obj.Name
		cfg.Configs[key] = cc
		d.Configs = append(d.Configs, obj)
	}
	return nil
}

// fileObject reads a secret's or config's content: secrets/<name> from the site's
// secret reference, anything else from the rendered files.
func fileObject(in Input, r Rendered, ns convert.Namespace, key string, obj composetypes.FileObjectConfig, opts ConvertOptions, secret bool) (Object, error) {
	rel := strings.TrimPrefix(obj.File, path.Join(renderRoot, r.Stack)+"/")
	var (
		data   []byte
		source string
	)
	if name, ok := strings.CutPrefix(rel, SecretsDir); ok {
		if !secret {
			return Object{}, fmt.Errorf("file %s: configs cannot take secret values (declare it under secrets)", rel)
		}
		ref, ok := r.SecretRef(in.Site, name)
		lines, composed := r.PassFiles[name]
		if !ok && !composed {
			return Object{}, fmt.Errorf("the site has no secret %q: add secrets.%s ({env: VAR} or {file: path}) to its config", name, name)
		}
		data, source = []byte(ref.String()), ref.String()
		switch {
		case composed:
			data, source = []byte(passFileSource(lines)), passFileSource(lines)
			if !opts.References {
				v, err := PassFileContent(lines)
				if err != nil {
					return Object{}, err
				}
				data = v
			}
		case !opts.References:
			v, err := ref.Resolve()
			if err != nil {
				return Object{}, err
			}
			data = v
		}
	} else {
		b, ok := r.Files[rel]
		if !ok {
			return Object{}, fmt.Errorf("file %q is not among the stack's rendered files (%s)", rel, strings.Join(slices.Sorted(maps.Keys(r.Files)), ", "))
		}
		if secret {
			// A rendered file is part of the repo's output, not a secret source.
			return Object{}, fmt.Errorf("file %q: secret values come from the site config; use file: %s<name>", rel, SecretsDir)
		}
		data, source = b, "file "+rel
	}
	logical := ns.Scope(key)
	if obj.Name != "" {
		logical = obj.Name
	}
	labels := convert.AddStackLabel(ns, merge(obj.Labels, ManagedLabels(in.Site.Name, r.Stack)))
	labels[LabelObject] = logical
	o := Object{Stack: r.Stack, Logical: logical, Name: ContentName(logical, data, opts.Key), Labels: labels, Source: source, Data: data}
	if obj.TemplateDriver != "" {
		o.Templating = &swarm.Driver{Name: obj.TemplateDriver}
	}
	return o, nil
}

// nameEcho answers the secret and config look-ups of convert.Services without an
// engine: every name resolves, with an empty ID that deploy fills in after creating
// the objects. Nothing else of the client is used by the converter.
type nameEcho struct{ client.APIClient }

func (nameEcho) SecretList(_ context.Context, o client.SecretListOptions) (client.SecretListResult, error) {
	var res client.SecretListResult
	for _, n := range slices.Sorted(maps.Keys(o.Filters["name"])) {
		res.Items = append(res.Items, swarm.Secret{Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: n}}})
	}
	return res, nil
}

func (nameEcho) ConfigList(_ context.Context, o client.ConfigListOptions) (client.ConfigListResult, error) {
	var res client.ConfigListResult
	for _, n := range slices.Sorted(maps.Keys(o.Filters["name"])) {
		res.Items = append(res.Items, swarm.Config{Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: n}}})
	}
	return res, nil
}

func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
