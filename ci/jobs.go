package ci

import (
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

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
