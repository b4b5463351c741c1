// Package ci writes the GitLab CI pipelines that deploy the sites, one per
// environment, from the typed topology (so they never drift from the configuration),
// and checks any .gitlab-ci.yml, the project's own included, against GitLab's schema.
package ci

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template"

	"github.com/sitectl/sitectl/sites"
)

// generator holds what the jobs of one pipeline share.
type generator struct {
	topo   *sites.Topology
	opts   Options
	env    string
	tier   string
	access map[string]SiteAccess
	secret []Variable
	bin    string
}

// Generate builds the pipeline of the topology's environment. It never reads a
// secret: only variable names go into the pipeline.
func Generate(topo *sites.Topology, opts Options) (*Pipeline, error) {
	if opts.ConfigDir == "" {
		opts.ConfigDir = "sites"
	}
	if opts.Image == "" {
		opts.Image = DefaultImage
	}
	if opts.StagingBranch == "" {
		opts.StagingBranch = DefaultStagingBranch
	}
	if topo.Env == "" {
		return nil, errors.New("the topology has no environment: load it with --env dev|staging|production")
	}
	if len(topo.Sites) == 0 {
		return nil, fmt.Errorf("environment %s has no sites", topo.Env)
	}
	g := &generator{topo: topo, opts: opts, env: topo.Env, tier: Tier(topo.Env), access: map[string]SiteAccess{}, bin: Bin}
	var errs []error
	for _, s := range topo.Sites {
		a, err := Access(topo, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		g.access[s.Name] = a
	}
	sv, err := SecretVars(topo, topo.Sites)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("ci generate %s: %w", topo.Env, errors.Join(errs...))
	}
	g.secret = sv

	p := &Pipeline{
		Stages:    Stages,
		Workflow:  &Workflow{Rules: workflowRules},
		Variables: map[string]string{"SITECTL_CONFIG_DIR": opts.ConfigDir},
		Default:   &Default{Image: opts.Image, Interruptible: boolp(true)},
	}
	if opts.AppsDir != "" {
		p.Variables["SITECTL_APPS_DIR"] = opts.AppsDir
	}
	p.Jobs = append(p.Jobs, g.validateJob())
	if opts.Out != "" {
		p.Jobs = append(p.Jobs, g.driftJob())
	}
	for _, s := range topo.Sites {
		p.Jobs = append(p.Jobs, g.planJob(s))
	}
	for _, s := range topo.Sites {
		p.Jobs = append(p.Jobs, g.deployJob(s))
	}
	for _, s := range topo.Sites {
		p.Jobs = append(p.Jobs, g.verifyJob(s))
	}
	p.Jobs = append(p.Jobs, g.replicationJob())
	if g.tier != TierProduction || opts.ProductionDrills {
		p.Jobs = append(p.Jobs, g.drillJobs()...)
	}
	header, err := g.header()
	if err != nil {
		return nil, err
	}
	p.Header = header
	return p, nil
}

// Render generates the pipeline and writes it as YAML, checked against GitLab's
// schema before it is returned.
func Render(topo *sites.Topology, opts Options) ([]byte, error) {
	p, err := Generate(topo, opts)
	if err != nil {
		return nil, err
	}
	b, err := p.Marshal()
	if err != nil {
		return nil, fmt.Errorf("ci generate %s: %w", topo.Env, err)
	}
	if err := Lint("generated pipeline for "+topo.Env, b); err != nil {
		return nil, fmt.Errorf("ci generate %s: the generated pipeline is not valid (a bug in sitectl, please report it): %w", topo.Env, err)
	}
	return b, nil
}

//go:embed templates/header.tmpl
var headerTemplate string

var headerTmpl = template.Must(template.New("header").Parse(headerTemplate))

func (g *generator) header() (string, error) {
	type row struct{ Name, Kind, Sites string }
	width := 0
	all := []Variable{}
	for _, a := range g.access {
		all = append(all, a.Vars...)
	}
	all = append(all, g.secret...)
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	var rows []row
	for _, v := range all {
		kind := "variable"
		if v.File {
			kind = "file"
		}
		switch {
		case v.Secret:
			kind += ", secret"
		case v.Optional():
			kind += ", optional (default " + v.Default + ")"
		}
		rows = append(rows, row{Name: v.Name, Kind: kind, Sites: strings.Join(v.Sites, ", ")})
		width = max(width, len(v.Name))
	}
	for i := range rows {
		rows[i].Name += strings.Repeat(" ", width-len(rows[i].Name))
	}
	var when string
	switch g.tier {
	case TierProduction:
		when = "Deploys run from protected tags only, each started by hand."
	case TierStaging:
		when = fmt.Sprintf("Deploys run on tags and on the %s branch.", g.opts.StagingBranch)
	default:
		when = "Deploys run on the default branch."
	}
	var buf bytes.Buffer
	err := headerTmpl.Execute(&buf, map[string]any{
		"Env": g.env, "Command": g.opts.Command(g.env), "ConfigDir": g.opts.ConfigDir, "Sites": strings.Join(g.topo.SiteNames(), ", "),
		"Drills": g.tier != TierProduction || g.opts.ProductionDrills, "When": when, "Vars": rows,
	})
	if err != nil {
		return "", fmt.Errorf("render header: %w", err)
	}
	out := strings.TrimRight(buf.String(), "\n") + "\n" + g.appsHeader()
	return strings.TrimRight(out, "\n") + "\n\n", nil
}

func boolp(b bool) *bool { return &b }
