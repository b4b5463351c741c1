package sites

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ProductionEnv is the environment never chosen by CurrentEnvFile alone.
const ProductionEnv = "production"

var envNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,30}$`)

// EnvChoice is the environment a run acts on and where it was chosen.
type EnvChoice struct {
	Env string
	// Source is "--env", "SITECTL_ENV", the path of CurrentEnvFile, or "default".
	Source string
}

func (c EnvChoice) String() string { return fmt.Sprintf("%s (from %s)", c.Env, c.Source) }

// ChooseEnv picks the environment: the flag value, else SITECTL_ENV, else the
// config dir's .sitectl-env, else "dev". A name that is not an environment name is
// refused naming its source; .sitectl-env must name an existing overlay and never
// selects production (that takes --env or SITECTL_ENV).
func ChooseEnv(flagValue, dir string, environ []string) (EnvChoice, error) {
	check := func(c EnvChoice) (EnvChoice, error) {
		if !envNameRE.MatchString(c.Env) {
			return c, fmt.Errorf("%s: %q is not an environment name (lower case letters, digits, - and _; known: %s)", c.Source, c.Env, strings.Join(Environments(dir), ", "))
		}
		return c, nil
	}
	if flagValue != "" {
		return check(EnvChoice{flagValue, "--env"})
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "SITECTL_ENV="); ok && v != "" {
			return check(EnvChoice{v, "SITECTL_ENV"})
		}
	}
	path := filepath.Join(dir, CurrentEnvFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
	case os.IsNotExist(err):
		return EnvChoice{"dev", "default"}, nil
	default:
		return EnvChoice{}, fmt.Errorf("%s: cannot read: %s; write one environment name in it (e.g. lab), or remove it", path, plainError(err))
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return EnvChoice{"dev", "default"}, nil
	}
	known := Environments(dir)
	if !envNameRE.MatchString(v) || len(b) > 64 {
		return EnvChoice{}, fmt.Errorf("%s: holds %s, not an environment name; write one of %s in it (as `sitectl lab up` does), or remove it", path, quoteShort(v), strings.Join(known, ", "))
	}
	if v == ProductionEnv {
		return EnvChoice{}, fmt.Errorf("%s: names %s, which is never selected from this file; pass --env %s or set SITECTL_ENV=%s", path, ProductionEnv, ProductionEnv, ProductionEnv)
	}
	if !contains(known, v) {
		return EnvChoice{}, fmt.Errorf("%s: names environment %q, which has no overlay %s (known: %s); fix or remove the file", path, v, filepath.Join(dir, EnvDir, v+".yaml"), strings.Join(known, ", "))
	}
	return EnvChoice{v, path}, nil
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// ResolveEnv picks the environment like ChooseEnv, and "dev" when the choice is
// refused (callers that must report the refusal use ChooseEnv).
func ResolveEnv(flagValue, dir string, environ []string) string {
	c, err := ChooseEnv(flagValue, dir, environ)
	if err != nil {
		if flagValue != "" {
			return flagValue
		}
		return "dev"
	}
	return c.Env
}

// Environments lists the environment overlays in dir/env (every <env>.yaml entry,
// files or not: Load says what is wrong with one that is not a file), sorted.
func Environments(dir string) []string {
	return environments(os.DirFS(dir))
}

func environments(fsys fs.FS) []string {
	entries, _ := fs.ReadDir(fsys, EnvDir)
	var envs []string
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".yaml") {
			envs = append(envs, strings.TrimSuffix(n, ".yaml"))
		}
	}
	return envs
}
