package ci

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// Needed lists the variables a job reaching the named sites reads, sorted by name.
func Needed(topo *sites.Topology, siteNames []string) ([]Variable, error) {
	selected, err := topo.Select(siteNames...)
	if err != nil {
		return nil, err
	}
	var out []Variable
	var errs []error
	for _, s := range selected {
		a, err := Access(topo, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, a.Vars...)
	}
	sv, err := SecretVars(topo, selected)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return mergeVars(append(out, sv...)), nil
}

// mergeVars sorts by name and merges duplicates' sites.
func mergeVars(vs []Variable) []Variable {
	byName := map[string]int{}
	var out []Variable
	for _, v := range vs {
		if i, ok := byName[v.Name]; ok {
			for _, s := range v.Sites {
				if !slices.Contains(out[i].Sites, s) {
					out[i].Sites = append(out[i].Sites, s)
				}
			}
			continue
		}
		byName[v.Name] = len(out)
		v.Sites = append([]string(nil), v.Sites...)
		out = append(out, v)
	}
	sortVars(out)
	return out
}

func sortVars(vs []Variable) {
	sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
}

// CheckResult is the outcome of checking one variable; it never holds a value.
type CheckResult struct {
	Variable
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"`
	// Defaulted: an Optional variable that is not set; the job uses Default.
	Defaulted bool `json:"defaulted,omitempty"`
}

// Check looks each variable up in environ (NAME=value entries) and says what is
// wrong with it: unset or empty (unless Optional), a File variable whose value is not
// a path to a file, an endpoint with the wrong scheme. Messages never contain a value.
func Check(vars []Variable, environ []string) []CheckResult {
	env := sites.EnvMap(environ)
	out := make([]CheckResult, 0, len(vars))
	for _, v := range vars {
		r := CheckResult{Variable: v, OK: true}
		val := env[v.Name]
		switch {
		case val == "" && v.Optional():
			r.Defaulted = true // the job's own variables carry the configuration's value
		case val == "":
			r.Problem = "is not set"
		case v.File:
			if st, err := os.Stat(val); err != nil || !st.Mode().IsRegular() {
				r.Problem = "is not a path to a file: make it a variable of type File"
			}
		case v.Prefix != "" && !strings.HasPrefix(val, v.Prefix):
			scheme, _, _ := strings.Cut(val, "://")
			if scheme == val {
				scheme = "no scheme"
			}
			r.Problem = fmt.Sprintf("must start with %s, as the site's engine.host in the config does (it has %s)", v.Prefix, scheme)
		}
		r.OK = r.Problem == ""
		out = append(out, r)
	}
	return out
}

// CheckError turns failed results into one error that lists every problem and the
// fix, or nil when all passed.
func CheckError(env string, results []CheckResult) error {
	var lines []string
	for _, r := range results {
		if r.OK {
			continue
		}
		kind := "variable"
		if r.File {
			kind = "File variable"
		}
		lines = append(lines, fmt.Sprintf("  %s %s (%s; %s): %s", kind, r.Name, r.Purpose, strings.Join(r.Sites, ", "), r.Problem))
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("%d CI/CD variable(s) missing or wrong for environment %s:\n%s\nset them in GitLab under Settings > CI/CD > Variables, environment scope %q (secrets masked and protected; protected variables only reach protected branches and tags)",
		len(lines), env, strings.Join(lines, "\n"), env+"/*")
}
