package ci

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/internal/golden"
)

var envs = []string{"dev", "staging", "production"}

func TestGoldenPipelines(t *testing.T) {
	dir := copyConfig(t, nil)
	cases := []struct {
		golden string
		env    string
		opts   Options
	}{
		{"dev.gitlab-ci.yml", "dev", Options{}},
		{"staging.gitlab-ci.yml", "staging", Options{}},
		{"production.gitlab-ci.yml", "production", Options{}},
		{"production-drills-tags.gitlab-ci.yml", "production", Options{ProductionDrills: true, RunnerTags: []string{"sitectl", "site-{site}"}, StagingBranch: "release", Out: "ci/production.yml"}},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			b, err := Render(load(t, dir, c.env, nil), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := Lint(c.golden, b); err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, c.golden, b)
		})
	}
}

// The golden files themselves must stay valid GitLab CI (they are what a reader copies).
func TestGoldenFilesLint(t *testing.T) {
	for _, env := range envs {
		name := "testdata/" + env + ".gitlab-ci.yml"
		b := readFile(t, name)
		if err := Lint(name, b); err != nil {
			t.Error(err)
		}
	}
}

func TestPipelineShape(t *testing.T) {
	dir := copyConfig(t, nil)
	for _, env := range envs {
		t.Run(env, func(t *testing.T) {
			topo := load(t, dir, env, nil)
			p, err := Generate(topo, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Stages, []string{"validate", "plan", "deploy", "verify", "drill"}) {
				t.Errorf("stages = %v", p.Stages)
			}
			v := p.Job("validate")
			if v == nil || !strings.Contains(strings.Join(v.Script, "\n"), "config validate") {
				t.Fatalf("validate job missing or does not run config validate: %+v", v)
			}
			for _, s := range topo.SiteNames() {
				plan, deploy, verify := p.Job("plan:"+env+":"+s), p.Job("deploy:"+env+":"+s), p.Job("verify:"+env+":"+s)
				if plan == nil || deploy == nil || verify == nil {
					t.Fatalf("site %s: missing plan/deploy/verify job", s)
				}
				if plan.AllowFailure == nil || !reflect.DeepEqual(plan.AllowFailure.ExitCodes, []int{2}) {
					t.Errorf("%s: allow_failure = %+v, want exit code 2 only", plan.Name, plan.AllowFailure)
				}
				if plan.Artifacts == nil || plan.Artifacts.When != "always" || !strings.Contains(strings.Join(plan.Script, " "), "> "+plan.Artifacts.Paths[0]) {
					t.Errorf("%s: plan output is not saved as an artifact: %+v", plan.Name, plan.Artifacts)
				}
				if !strings.Contains(strings.Join(plan.Script, " "), fmt.Sprintf("plan --site %s --env %s", s, env)) {
					t.Errorf("%s: script %q", plan.Name, plan.Script)
				}
				if deploy.Environment == nil || deploy.Environment.Name != env+"/"+s || deploy.Environment.Action != "" {
					t.Errorf("%s: environment %+v, want %s/%s", deploy.Name, deploy.Environment, env, s)
				}
				if deploy.ResourceGroup != "sitectl-"+env+"-"+s {
					t.Errorf("%s: resource_group %q", deploy.Name, deploy.ResourceGroup)
				}
				if !reflect.DeepEqual(deploy.Needs, []string{"validate", plan.Name}) {
					t.Errorf("%s: needs %v", deploy.Name, deploy.Needs)
				}
				// A production deploy (by hand) applies the plan its plan job saved (an
				// artifact it needs); the automatic ones deploy the commit.
				saved := fmt.Sprintf("plan/%s-%s.json", env, s)
				want := fmt.Sprintf("bin/sitectl deploy --site %s --env %s", s, env)
				if env == "production" {
					want += " --plan " + saved
				}
				if got := deploy.Script; !reflect.DeepEqual(got, []string{want}) {
					t.Errorf("%s: script %q, want %q", deploy.Name, got, want)
				}
				if !strings.Contains(strings.Join(plan.Script, " "), "--out "+saved) || !slices.Contains(plan.Artifacts.Paths, saved) {
					t.Errorf("%s: the plan is not saved to %s as an artifact: script %q, artifacts %v", plan.Name, saved, plan.Script, plan.Artifacts.Paths)
				}
				last := deploy.Rules[len(deploy.Rules)-1]
				if manual := last.When == "manual"; manual != (env == "production") {
					t.Errorf("%s: last rule %+v; production deploys (only) are manual", deploy.Name, last)
				}
				// plan, deploy and verify share the same refs (a needs on a job that the
				// rules left out would make GitLab refuse the pipeline).
				if ifs(plan.Rules) != ifs(deploy.Rules) || ifs(deploy.Rules) != ifs(verify.Rules) {
					t.Errorf("site %s: plan/deploy/verify rules differ", s)
				}
				if deploy.Rules[0] != (Rule{If: ifSchedule, When: "never"}) {
					t.Errorf("%s: scheduled pipelines must not deploy: %+v", deploy.Name, deploy.Rules[0])
				}
			}
			refs := ifs(p.Job("deploy:" + env + ":douala").Rules)
			switch env {
			case "dev":
				want(t, refs, "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH")
			case "staging":
				want(t, refs, `$CI_COMMIT_TAG`, `$CI_COMMIT_BRANCH == "staging"`)
			case "production":
				want(t, refs, `$CI_COMMIT_TAG && $CI_COMMIT_REF_PROTECTED == "true"`)
				if strings.Contains(refs, "BRANCH") {
					t.Errorf("production deploys from a branch: %s", refs)
				}
			}
			repl := p.Job("verify:" + env + ":replication")
			if repl == nil || !strings.Contains(strings.Join(repl.Script, " "), "replication status") || len(repl.Needs) != 1+len(topo.Sites) {
				t.Errorf("replication verify job wrong: %+v", repl)
			}
			drills := jobsWithPrefix(p, "drill:")
			if env == "production" {
				if len(drills) != 0 {
					t.Errorf("production has drills without opting in: %v", drills)
				}
				return
			}
			if len(drills) != len(topo.Sites) {
				t.Fatalf("drills = %v, want one per site", drills)
			}
			for i, name := range drills {
				d := p.Job(name)
				if !reflect.DeepEqual(d.Rules, []Rule{{If: ifSchedule}}) {
					t.Errorf("%s: rules %+v, want scheduled pipelines only", name, d.Rules)
				}
				if d.Interruptible == nil || *d.Interruptible {
					t.Errorf("%s: a drill must not be interruptible (a killed drill cannot heal)", name)
				}
				if i > 0 && !slices.Contains(d.Needs, drills[i-1]) {
					t.Errorf("%s: needs %v; drills run one at a time", name, d.Needs)
				}
			}
			if last := p.Job(drills[len(drills)-1]); last.Environment.Name != env+"/"+topo.Hub {
				t.Errorf("the hub is drilled last, got %s", last.Name)
			}
		})
	}
}

func TestCommandAndDriftJob(t *testing.T) {
	o := Options{ConfigDir: "deploy/sites", Image: "registry.example.com/ci:1", ProductionDrills: true, RunnerTags: []string{"site-{site}", "it's"}, Out: "ci/prod.yml"}
	want := `sitectl ci generate --env production --config-dir deploy/sites --image registry.example.com/ci:1 --production-drills --runner-tag 'site-{site}' --runner-tag 'it'\''s' --out ci/prod.yml`
	if got := o.Command("production"); got != want {
		t.Errorf("Command:\n got %s\nwant %s", got, want)
	}
	p, err := Generate(load(t, copyConfig(t, nil), "production", nil), o)
	if err != nil {
		t.Fatal(err)
	}
	d := p.Job("validate:production:pipeline")
	if d == nil {
		t.Fatal("no drift job with Out set")
	}
	wantCmd := `bin/sitectl ci generate --env production --image registry.example.com/ci:1 --production-drills --runner-tag 'site-{site}' --runner-tag 'it'\''s' --check ci/prod.yml`
	if !reflect.DeepEqual(d.Script, []string{wantCmd}) {
		t.Errorf("drift job script %q\nwant %q", d.Script, wantCmd)
	}
	if !strings.Contains(p.Header, want) {
		t.Errorf("header does not say how to regenerate:\n%s", p.Header)
	}
	p, _ = Generate(load(t, copyConfig(t, nil), "production", nil), Options{})
	if p.Job("validate:production:pipeline") != nil {
		t.Error("drift job without a file to check")
	}
}

func TestProductionDrillsOptIn(t *testing.T) {
	dir := copyConfig(t, nil)
	p, err := Generate(load(t, dir, "production", nil), Options{ProductionDrills: true})
	if err != nil {
		t.Fatal(err)
	}
	drills := jobsWithPrefix(p, "drill:")
	if len(drills) != 3 {
		t.Fatalf("drills = %v", drills)
	}
	for _, d := range drills {
		if got := ifs(p.Job(d).Rules); got != ifSchedule+` && `+ifProtected {
			t.Errorf("%s: rules %s", d, got)
		}
	}
}

func TestStagingBranchAndRunnerTags(t *testing.T) {
	dir := copyConfig(t, nil)
	p, err := Generate(load(t, dir, "staging", nil), Options{StagingBranch: "release/next", RunnerTags: []string{"deploy", "site-{site}"}})
	if err != nil {
		t.Fatal(err)
	}
	want(t, ifs(p.Job("deploy:staging:douala").Rules), `$CI_COMMIT_BRANCH == "release/next"`)
	if strings.Contains(ifs(p.Job("deploy:staging:douala").Rules), `"staging"`) {
		t.Error("the default staging branch is still used")
	}
	cases := map[string][]string{
		"validate":                   {"deploy"},
		"deploy:staging:douala":      {"deploy", "site-douala"},
		"plan:staging:yaounde":       {"deploy", "site-yaounde"},
		"verify:staging:replication": {"deploy", "site-cloud"},
		"drill:staging:douala":       {"deploy"},
	}
	for job, tags := range cases {
		if got := p.Job(job).Tags; !reflect.DeepEqual(got, tags) {
			t.Errorf("%s: tags %v, want %v", job, got, tags)
		}
	}
}

// Adding a fourth site (a spoke linked to the hub) adds its own four jobs and changes
// exactly the jobs that reach it: the hub's (its tunnel peer), the replication check
// and the drills (which reach every site). The other spokes' jobs stay byte for byte.
func TestAddingASiteChangesExactlyTheExpectedJobs(t *testing.T) {
	const garoua = `role: spoke
description: Garoua branch office
lan: 10.40.0.0/24
engine:
  host: ssh://ops@10.40.0.11
nodes:
  - name: garoua-node1
    role: manager
    address: 10.40.0.11
    labels: {role: app, site: garoua}
swarm:
  default_addr_pool: [10.140.0.0/16]
networks:
  edge: {subnet: 10.141.0.0/24, encrypted: false}
  app: {subnet: 10.141.1.0/24, encrypted: true}
  data: {subnet: 10.141.2.0/24, encrypted: true}
gateway:
  id: gw.garoua.sitectl.example
  wan_address: 198.51.100.40
  lan_address: 10.40.0.1
  vici: ssh://ops@10.40.0.1/var/run/charon.vici
tunnel:
  peers: [cloud]
postgres:
  host: 10.40.0.11
mongo:
  members:
    - host: 10.40.0.11:27017
      votes: 0
      priority: 0
`
	before := jobTexts(t, copyConfig(t, nil), "dev")
	after := jobTexts(t, copyConfig(t, map[string]string{"garoua.yaml": garoua}), "dev")

	var added, removed, changed []string
	for name, text := range after {
		old, ok := before[name]
		switch {
		case !ok:
			added = append(added, name)
		case old != text:
			changed = append(changed, name)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			removed = append(removed, name)
		}
	}
	sort.Strings(added)
	sort.Strings(changed)
	check := func(what string, got, want []string) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s jobs = %v\nwant %v", what, got, want)
		}
	}
	check("added", added, []string{"deploy:dev:garoua", "drill:dev:garoua", "plan:dev:garoua", "verify:dev:garoua"})
	check("removed", removed, nil)
	check("changed", changed, []string{
		"deploy:dev:cloud", "drill:dev:cloud", "drill:dev:douala", "drill:dev:yaounde",
		"plan:dev:cloud", "verify:dev:cloud", "verify:dev:replication",
	})
	if !strings.Contains(after["plan:dev:garoua"], "plan --site garoua --env dev") ||
		!strings.Contains(after["deploy:dev:cloud"], `ssh-add -q "$SSH_KEY_GAROUA"`) {
		t.Error("the new site's jobs do not reach it")
	}
}

// jobTexts renders the pipeline of env and returns each job's YAML by name.
func jobTexts(t *testing.T, dir, env string) map[string]string {
	t.Helper()
	p, err := Generate(load(t, dir, env, nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, j := range p.Jobs {
		b, err := yaml.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		out[j.Name] = j.Comment + "\n" + string(b)
	}
	return out
}

// The three environment files can also be included into one pipeline: their global
// keywords and shared jobs are identical, and no job name is shared otherwise.
func TestEnvironmentFilesIncludeTogether(t *testing.T) {
	dir := copyConfig(t, nil)
	merged := map[string]any{}
	for _, env := range envs {
		b, err := Render(load(t, dir, env, nil), Options{})
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for k, v := range doc {
			if old, ok := merged[k]; ok && !reflect.DeepEqual(old, v) {
				t.Errorf("%s: key %q differs from another environment's file", env, k)
			}
			merged[k] = v
		}
	}
	b, err := yaml.Marshal(merged)
	if err != nil {
		t.Fatal(err)
	}
	if err := Lint("dev+staging+production", b); err != nil {
		t.Fatal(err)
	}
	if n := len(merged); n < 3*11 {
		t.Errorf("merged pipeline has %d keys; jobs were lost", n)
	}
}

func ifs(rules []Rule) string {
	var out []string
	for _, r := range rules {
		out = append(out, r.If)
	}
	return strings.Join(out, " | ")
}

func want(t *testing.T, got string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(got, s) {
			t.Errorf("%q does not contain %q", got, s)
		}
	}
}

func jobsWithPrefix(p *Pipeline, prefix string) []string {
	var out []string
	for _, j := range p.Jobs {
		if strings.HasPrefix(j.Name, prefix) {
			out = append(out, j.Name)
		}
	}
	return out
}
