// Package ci writes the GitLab CI pipelines that deploy the sites, one per
// environment, from the typed topology (so they never drift from the configuration),
// and checks any .gitlab-ci.yml, the project's own included, against GitLab's schema.
package ci

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/sitectl/sitectl/sites"
)

// Options tune a generated pipeline. The zero value is usable.
type Options struct {
	// ConfigDir is the configuration directory as jobs see it, relative to the
	// repository root (default "sites").
	ConfigDir string
	// Image is the job image; it must have Go to build sitectl, and ssh (default
	// golang:1.26-bookworm).
	Image string
	// StagingBranch is the branch that deploys staging, besides tags (default "staging").
	StagingBranch string
	// ProductionDrills opts production in to scheduled drills.
	ProductionDrills bool
	// RunnerTags are added to every job; "{site}" in a tag is replaced by the site the
	// job plans, deploys or verifies (the hub for the replication check), so runners
	// inside each site can pick up that site's jobs. Jobs reaching no site, and drills
	// (which cut sites off), get only the tags without "{site}".
	RunnerTags []string
	// Version pins sitectl: the validate job installs this module version of it
	// (go install) instead of building it from the repository, which a configuration
	// repository of the operator's own does not hold. "" builds it (sitectl's own
	// repository). The command line in the header leaves it out: the pinned sitectl
	// regenerates the same file with its own version.
	Version string
	// AppsDir is the apps directory as jobs see it, relative to the repository root
	// ("" for the default, apps/ next to the configuration directory).
	AppsDir string
	// Out is the path, relative to the repository root, the pipeline is written to.
	// When set, the validate job also fails if that file no longer matches what the
	// configuration generates (the pipeline drifted from the sites).
	Out string
}

// Command is the sitectl command line that generates the pipeline of env with these
// options; the header and the drift check repeat it.
func (o Options) Command(env string) string {
	args := []string{"sitectl", "ci", "generate", "--env", env}
	if o.ConfigDir != "" && o.ConfigDir != "sites" {
		args = append(args, "--config-dir", o.ConfigDir)
	}
	if o.Image != "" && o.Image != DefaultImage {
		args = append(args, "--image", o.Image)
	}
	if o.StagingBranch != "" && o.StagingBranch != DefaultStagingBranch {
		args = append(args, "--staging-branch", o.StagingBranch)
	}
	if o.ProductionDrills {
		args = append(args, "--production-drills")
	}
	for _, t := range o.RunnerTags {
		args = append(args, "--runner-tag", t)
	}
	if o.AppsDir != "" {
		args = append(args, "--apps-dir", o.AppsDir)
	}
	if o.Out != "" {
		args = append(args, "--out", o.Out)
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for sh when it holds anything but plain word characters.
func shellQuote(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@+,", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Defaults.
const (
	DefaultImage         = "golang:1.26-bookworm"
	DefaultStagingBranch = "staging"
	// Bin is where the validate job builds sitectl; later jobs get it as an artifact.
	Bin = "bin/sitectl"
)

// Stages of every generated pipeline, the same for every environment so the three
// files can also be included into one pipeline.
var Stages = []string{"validate", "plan", "deploy", "verify", "drill"}

// Tiers of GitLab deployments; the environment's name picks one.
const (
	TierProduction  = "production"
	TierStaging     = "staging"
	TierDevelopment = "development"
)

// Tier is the GitLab deployment tier of an environment: production and staging by
// name, development for every other environment (dev, lab, ...).
func Tier(env string) string {
	switch env {
	case "production", "prod":
		return TierProduction
	case "staging":
		return TierStaging
	}
	return TierDevelopment
}

// CheckEnv reports an environment that has no overlay in dir, listing the known ones.
func CheckEnv(dir, env string) error {
	known := sites.Environments(dir)
	if len(known) == 0 {
		return fmt.Errorf("no environment overlays in %s: create %s/%s/<env>.yaml (dev, staging, production) or point --config-dir at the configuration", filepath.Join(dir, sites.EnvDir), dir, sites.EnvDir)
	}
	if env == "" {
		return fmt.Errorf("no environment given: pick one with --env (known: %s)", strings.Join(known, ", "))
	}
	if !contains(known, env) {
		return fmt.Errorf("unknown environment %q (known: %s): pick one with --env, or add %s/%s/%s.yaml to create it",
			env, strings.Join(known, ", "), dir, sites.EnvDir, env)
	}
	return nil
}

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

// workflowRules: merge request pipelines, else branch and tag pipelines, never both
// for one push.
var workflowRules = []Rule{
	{If: `$CI_PIPELINE_SOURCE == "merge_request_event"`},
	{If: `$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS && $CI_PIPELINE_SOURCE == "push"`, When: "never"},
	{If: `$CI_COMMIT_BRANCH`},
	{If: `$CI_COMMIT_TAG`},
}

const (
	ifSchedule  = `$CI_PIPELINE_SOURCE == "schedule"`
	ifProtected = `$CI_COMMIT_REF_PROTECTED == "true"`
)

// refRules are the rules of the plan, deploy and verify jobs: the refs that deploy
// this environment, never in scheduled pipelines (those only run drills). when is
// the "when" of the matching rule.
func (g *generator) refRules(when string) []Rule {
	rules := []Rule{{If: ifSchedule, When: "never"}}
	switch g.tier {
	case TierProduction:
		rules = append(rules, Rule{If: `$CI_COMMIT_TAG && ` + ifProtected, When: when})
	case TierStaging:
		rules = append(rules,
			Rule{If: `$CI_COMMIT_TAG`, When: when},
			Rule{If: fmt.Sprintf(`$CI_COMMIT_BRANCH == %q`, g.opts.StagingBranch), When: when})
	default:
		rules = append(rules, Rule{If: `$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH`, When: when})
	}
	return rules
}

func (g *generator) drillRules() []Rule {
	if g.tier == TierProduction {
		return []Rule{{If: ifSchedule + ` && ` + ifProtected}}
	}
	return []Rule{{If: ifSchedule}}
}

func (g *generator) validateJob() *Job {
	j := &Job{
		Name:    "validate",
		Comment: g.installComment() + " and validates every environment's configuration.",
		Stage:   "validate",
		Tags:    g.tags(""),
		Script: append(g.installScript(),
			g.bin+" version",
			g.bin+" config validate",
		),
		Artifacts: &Artifacts{Paths: []string{g.bin}, ExpireIn: "1 day"},
	}
	return j
}

// driftJob fails when the committed pipeline file no longer matches what the
// configuration generates. A job of its own, so the validate job stays the same in
// every environment's file.
func (g *generator) driftJob() *Job {
	// The job runs with SITECTL_CONFIG_DIR set: the command needs no --config-dir.
	o := g.opts
	o.ConfigDir, o.AppsDir, o.Out = "", "", ""
	cmd := strings.Replace(o.Command(g.env), "sitectl", g.bin, 1)
	return &Job{
		Name:    "validate:" + g.env + ":pipeline",
		Comment: "Fails when " + g.opts.Out + " no longer matches the site configuration: regenerate it.",
		Stage:   "validate",
		Needs:   []string{"validate"},
		Tags:    g.tags(""),
		Script:  []string{cmd + " --check " + shellQuote(g.opts.Out)},
	}
}

// planFile is where a site's plan job saves the plan its deploy job applies.
func (g *generator) planFile(s *sites.Site) string {
	return fmt.Sprintf("plan/%s-%s.json", g.env, s.Name)
}

func (g *generator) planJob(s *sites.Site) *Job {
	out := fmt.Sprintf("plan/%s-%s.txt", g.env, s.Name)
	j := g.siteJob("plan", s.Name, g.withPeers(s))
	j.Comment = fmt.Sprintf("What a deploy would change on %s. Exit code 2 (changes pending) is allowed.", s.Name)
	if g.tier == TierProduction {
		j.Comment = fmt.Sprintf("What a deploy would change on %s, saved: the deploy job applies this plan or nothing. Exit code 2 (changes pending) is allowed.", s.Name)
	}
	j.Needs = []string{"validate"}
	j.Rules = g.refRules("on_success")
	j.Environment = &Environment{Name: g.env + "/" + s.Name, Action: "prepare"}
	j.AllowFailure = &AllowFailure{ExitCodes: []int{2}}
	j.Script = []string{
		"mkdir -p plan",
		fmt.Sprintf(`status=0; %s plan --site %s --env %s --out %s > %s || status=$?; cat %s; exit $status`, g.bin, s.Name, g.env, g.planFile(s), out, out),
	}
	j.Artifacts = &Artifacts{Name: fmt.Sprintf("plan-%s-%s", g.env, s.Name), Paths: []string{out, g.planFile(s)}, When: "always", ExpireIn: "30 days"}
	return j
}

func (g *generator) deployJob(s *sites.Site) *Job {
	j := g.siteJob("deploy", s.Name, g.withPeers(s))
	when := "on_success"
	switch g.tier {
	case TierProduction:
		when = "manual"
		j.Comment = fmt.Sprintf("Deploys %s: started by hand, from protected tags only.", s.Name)
	case TierStaging:
		j.Comment = fmt.Sprintf("Deploys %s from tags and the %s branch.", s.Name, g.opts.StagingBranch)
	default:
		j.Comment = fmt.Sprintf("Deploys %s from the default branch.", s.Name)
	}
	j.Comment += g.appsAt(s.Name)
	j.Needs = []string{"validate", g.jobName("plan", s.Name)}
	j.Rules = g.refRules(when)
	j.Environment = &Environment{Name: g.env + "/" + s.Name, DeploymentTier: g.tier}
	j.ResourceGroup = g.resourceGroup(s.Name)
	j.Interruptible = boolp(false)
	script := fmt.Sprintf("%s deploy --site %s --env %s", g.bin, s.Name, g.env)
	if g.tier == TierProduction {
		// Started by hand, maybe hours after its plan job: it applies the plan that
		// was reviewed, or nothing (retry the plan job when something changed
		// since). Automatic deploys run right after their plan and deploy what the
		// commit says: another site's deploy in the same pipeline can change this
		// site's replication steps, which would fail them for no one to review.
		script += " --plan " + g.planFile(s)
	}
	j.Script = []string{script}
	return j
}

func (g *generator) verifyJob(s *sites.Site) *Job {
	j := g.siteJob("verify", s.Name, g.withPeers(s))
	j.Comment = fmt.Sprintf("Checks %s after its deploy: nodes, services, tunnels; fails when one is not up.", s.Name)
	j.Needs = []string{"validate", g.jobName("deploy", s.Name)}
	j.Rules = g.refRules("on_success")
	j.Environment = &Environment{Name: g.env + "/" + s.Name, Action: "verify"}
	j.Script = []string{fmt.Sprintf("%s status --site %s --env %s", g.bin, s.Name, g.env)}
	if s.Gateway.Vici != "" {
		j.Script = append(j.Script, fmt.Sprintf("%s tunnels status --site %s --env %s", g.bin, s.Name, g.env))
	}
	return j
}

// replicationJob checks replication between all sites once every site is deployed.
// It is bound to the hub's environment, the centre of the replication flows.
func (g *generator) replicationJob() *Job {
	hub := g.topo.Hub
	j := g.siteJob("verify", "replication", g.topo.Sites)
	j.Tags = g.tags(hub)
	j.Comment = "Checks PostgreSQL and MongoDB replication between all sites once each is deployed; fails when a flow or member does not work."
	j.Needs = []string{"validate"}
	for _, s := range g.topo.Sites {
		j.Needs = append(j.Needs, g.jobName("deploy", s.Name))
	}
	j.Rules = g.refRules("on_success")
	j.Environment = &Environment{Name: g.env + "/" + hub, Action: "verify"}
	j.Script = []string{fmt.Sprintf("%s replication status --env %s", g.bin, g.env)}
	for _, s := range g.topo.Sites {
		if s.HasStack("mongo") {
			j.Script = append(j.Script, fmt.Sprintf("%s mongo status --env %s", g.bin, g.env))
			break
		}
	}
	return j
}

// drillJobs cut each site off in turn (spokes first, the hub last), one at a time:
// each drill needs the one before, and holds the site's resource group so it never
// runs during a deploy of that site.
func (g *generator) drillJobs() []*Job {
	var order []*sites.Site
	for _, s := range g.topo.Sites {
		if !s.IsHub() && len(g.topo.LinksOf(s.Name)) > 0 {
			order = append(order, s)
		}
	}
	if hub := g.topo.HubSite(); hub != nil && len(g.topo.LinksOf(hub.Name)) > 0 {
		order = append(order, hub)
	}
	var jobs []*Job
	prev := ""
	for _, s := range order {
		out := fmt.Sprintf("drill/%s-%s.json", g.env, s.Name)
		j := g.siteJob("drill", s.Name, g.topo.Sites)
		// Not on a runner inside a site: the drill cuts that site's tunnels and must
		// still reach every side.
		j.Tags = g.tags("")
		j.Comment = fmt.Sprintf("Scheduled pipelines only: cuts %s off, writes on every side, heals and verifies the resync.", s.Name)
		j.Needs = []string{"validate"}
		if prev != "" {
			j.Needs = append(j.Needs, prev)
		}
		j.Rules = g.drillRules()
		j.Environment = &Environment{Name: g.env + "/" + s.Name, Action: "verify"}
		j.ResourceGroup = g.resourceGroup(s.Name)
		// A cancelled job is killed before the drill can heal the cut.
		j.Interruptible = boolp(false)
		j.Script = []string{
			"mkdir -p drill",
			fmt.Sprintf("%s drill partition --site %s --env %s --output json > %s", g.bin, s.Name, g.env, out),
		}
		j.Artifacts = &Artifacts{Name: fmt.Sprintf("drill-%s-%s", g.env, s.Name), Paths: []string{out}, When: "always", ExpireIn: "90 days"}
		prev = j.Name
		jobs = append(jobs, j)
	}
	return jobs
}

func (g *generator) jobName(kind, site string) string { return JobName(kind, g.env, site) }

// JobName names a generated job: "<kind>:<env>:<site>" (plan:production:douala).
func JobName(kind, env, site string) string { return kind + ":" + env + ":" + site }

func (g *generator) resourceGroup(site string) string { return "sitectl-" + g.env + "-" + site }

// withPeers is the site and the sites it has a tunnel with: what a plan, deploy or
// status of the site talks to (tunnels and replication run per link).
func (g *generator) withPeers(s *sites.Site) []*sites.Site {
	names := map[string]bool{s.Name: true}
	for _, l := range g.topo.LinksOf(s.Name) {
		names[l.Other(s.Name)] = true
	}
	var out []*sites.Site
	for _, x := range g.topo.Sites {
		if names[x.Name] {
			out = append(out, x)
		}
	}
	return out
}

// siteJob is a job reaching the given sites: their endpoint defaults as job
// variables, then a before_script that checks every variable, loads the SSH keys and
// points sitectl at the CI endpoints.
func (g *generator) siteJob(kind, site string, reach []*sites.Site) *Job {
	j := &Job{Name: g.jobName(kind, site), Stage: kind, Tags: g.tags(site), Variables: map[string]string{}}
	check := []string{g.bin, "ci", "check", "--env", g.env}
	var ssh, exports []string
	for _, s := range reach {
		a := g.access[s.Name]
		check = append(check, "--site", s.Name)
		for _, v := range a.Vars {
			if v.Optional() {
				j.Variables[v.Name] = v.Default
			}
		}
		if a.SSH {
			ssh = append(ssh, fmt.Sprintf(`chmod 600 "$%s" && ssh-add -q "$%s" && cat "$%s" >> ~/.ssh/known_hosts`,
				sshKeyVar(s.Name), sshKeyVar(s.Name), sshKnownHostsVar(s.Name)))
		}
		e := fmt.Sprintf(`export %s="$%s"`, siteOverrideVar(s.Name, "ENGINE_HOST"), dockerHostVar(s.Name))
		if a.Transport == TransportTLS {
			e += fmt.Sprintf(` %s="$%s" %s="$%s" %s="$%s"`,
				siteOverrideVar(s.Name, "ENGINE_CA_CERT"), tlsCAVar(s.Name),
				siteOverrideVar(s.Name, "ENGINE_CERT"), tlsCertVar(s.Name),
				siteOverrideVar(s.Name, "ENGINE_KEY"), tlsKeyVar(s.Name))
		}
		exports = append(exports, e)
	}
	j.BeforeScript = append(j.BeforeScript, strings.Join(check, " "))
	if len(ssh) > 0 {
		j.BeforeScript = append(j.BeforeScript, `eval "$(ssh-agent -s)" > /dev/null`, "mkdir -p ~/.ssh && chmod 700 ~/.ssh")
		j.BeforeScript = append(j.BeforeScript, ssh...)
	}
	j.BeforeScript = append(j.BeforeScript, exports...)
	return j
}

// tags are the runner tags for a job reaching site ("" for jobs reaching none).
func (g *generator) tags(site string) []string {
	var out []string
	for _, t := range g.opts.RunnerTags {
		if strings.Contains(t, "{site}") {
			if site == "" {
				continue
			}
			t = strings.ReplaceAll(t, "{site}", site)
		}
		out = append(out, t)
	}
	return out
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
