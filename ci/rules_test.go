package ci

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

// evalIf evaluates the `rules:if` expressions the generator writes, with GitLab's
// meaning: terms joined by &&; a term is `$VAR` (set and not empty), `$A == "text"`
// or `$A == $B`.
func evalIf(t *testing.T, expr string, vars map[string]string) bool {
	t.Helper()
	for _, term := range strings.Split(expr, " && ") {
		lhs, rhs, cmp := strings.Cut(term, " == ")
		val := func(s string) string {
			s = strings.TrimSpace(s)
			switch {
			case strings.HasPrefix(s, "$"):
				return vars[s[1:]]
			case strings.HasPrefix(s, `"`) && strings.HasSuffix(s, `"`):
				return s[1 : len(s)-1]
			}
			t.Fatalf("cannot evaluate %q in %q", s, expr)
			return ""
		}
		if !cmp {
			if val(lhs) == "" {
				return false
			}
			continue
		}
		if val(lhs) != val(rhs) {
			return false
		}
	}
	return true
}

// evalRules returns whether the job is in the pipeline and its `when`.
func evalRules(t *testing.T, rules []Rule, vars map[string]string) (bool, string) {
	t.Helper()
	if len(rules) == 0 {
		return true, "on_success"
	}
	for _, r := range rules {
		if r.If == "" || evalIf(t, r.If, vars) {
			when := r.When
			if when == "" {
				when = "on_success"
			}
			return when != "never", when
		}
	}
	return false, ""
}

// What GitLab would put in each kind of pipeline, per environment: the rules decide,
// and every `needs` of an included job must be included too (else GitLab refuses to
// create the pipeline).
func TestRulesPerPipelineKind(t *testing.T) {
	base := map[string]string{"CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "push"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	scenarios := map[string]map[string]string{
		"push main":          with("CI_COMMIT_BRANCH", "main", "CI_COMMIT_REF_PROTECTED", "true"),
		"push staging":       with("CI_COMMIT_BRANCH", "staging", "CI_COMMIT_REF_PROTECTED", "true"),
		"push feature":       with("CI_COMMIT_BRANCH", "feature"),
		"push feature w/ MR": with("CI_COMMIT_BRANCH", "feature", "CI_OPEN_MERGE_REQUESTS", "group/p!1"),
		"merge request":      with("CI_PIPELINE_SOURCE", "merge_request_event"),
		"protected tag":      with("CI_COMMIT_TAG", "v1.2.0", "CI_COMMIT_REF_PROTECTED", "true"),
		"unprotected tag":    with("CI_COMMIT_TAG", "v1.2.0-rc1", "CI_COMMIT_REF_PROTECTED", "false"),
		"schedule main":      with("CI_PIPELINE_SOURCE", "schedule", "CI_COMMIT_BRANCH", "main", "CI_COMMIT_REF_PROTECTED", "true"),
	}
	// want[env][scenario]: the kinds of job in the pipeline ("deploy(manual)" for a
	// manual one); "-" for no pipeline at all.
	want := map[string]map[string][]string{
		"dev": {
			"push main":     {"deploy", "plan", "validate", "verify"},
			"schedule main": {"drill", "validate"},
		},
		"staging": {
			"push staging":    {"deploy", "plan", "validate", "verify"},
			"protected tag":   {"deploy", "plan", "validate", "verify"},
			"unprotected tag": {"deploy", "plan", "validate", "verify"},
			"schedule main":   {"drill", "validate"},
		},
		"production": {
			"protected tag": {"deploy(manual)", "plan", "validate", "verify"},
		},
		"production+drills": {
			"protected tag": {"deploy(manual)", "plan", "validate", "verify"},
			"schedule main": {"drill", "validate"},
		},
	}
	dir := copyConfig(t, nil)
	for name, byScenario := range want {
		env, drills := strings.CutSuffix(name, "+drills")
		p, err := Generate(load(t, dir, env, nil), Options{ProductionDrills: drills})
		if err != nil {
			t.Fatal(err)
		}
		for scenario, vars := range scenarios {
			var got []string
			in, _ := evalRules(t, p.Workflow.Rules, vars)
			jobs := map[string]bool{}
			if in {
				kinds := map[string]bool{}
				for _, j := range p.Jobs {
					ok, when := evalRules(t, j.Rules, vars)
					if !ok {
						continue
					}
					jobs[j.Name] = true
					kind, _, _ := strings.Cut(j.Name, ":")
					if when == "manual" {
						kind += "(manual)"
					}
					kinds[kind] = true
				}
				for k := range kinds {
					got = append(got, k)
				}
				sort.Strings(got)
			} else {
				got = []string{"-"}
			}
			exp := byScenario[scenario]
			if exp == nil {
				exp = []string{"validate"}
			}
			if scenario == "push feature w/ MR" {
				exp = []string{"-"} // the merge request pipeline runs instead
			}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("%s, %s: jobs %v, want %v", name, scenario, got, exp)
			}
			for _, j := range p.Jobs {
				if !jobs[j.Name] {
					continue
				}
				for _, n := range j.Needs {
					if !jobs[n] {
						t.Errorf("%s, %s: %s needs %s, which is not in the pipeline", name, scenario, j.Name, n)
					}
				}
			}
		}
	}
}
