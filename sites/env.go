package sites

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// EnvError is a refused environment choice: Source is where it came from
// ("--env", "SITECTL_ENV", the path of .sitectl-env).
type EnvError struct {
	Source  string
	Message string
}

func (e *EnvError) Error() string { return e.Source + ": " + e.Message }

// Problem is the refusal as a configuration problem.
func (e *EnvError) Problem() Problem {
	return Problem{Severity: SevError, File: e.Source, Message: e.Message}
}

// ChooseEnv picks the environment: the flag value, else SITECTL_ENV, else the
// config dir's .sitectl-env, else "dev". A name that is not an environment name is
// refused naming its source; .sitectl-env must name an existing overlay and never
// selects production (that takes --env or SITECTL_ENV).
func ChooseEnv(flagValue, dir string, environ []string) (EnvChoice, error) {
	check := func(c EnvChoice) (EnvChoice, error) {
		if !envNameRE.MatchString(c.Env) {
			return c, &EnvError{c.Source, fmt.Sprintf("%s is not an environment name (lower case letters, digits, - and _; known: %s)", quoteShort(c.Env), strings.Join(Environments(dir), ", "))}
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
		return EnvChoice{}, &EnvError{path, fmt.Sprintf("cannot read: %s; write one environment name in it (e.g. lab), or remove it", plainError(err))}
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return EnvChoice{"dev", "default"}, nil
	}
	known := Environments(dir)
	if !envNameRE.MatchString(v) || len(b) > 64 {
		return EnvChoice{}, &EnvError{path, fmt.Sprintf("holds %s, not an environment name; write one of %s in it (as `sitectl lab up` does), or remove it", quoteShort(v), strings.Join(known, ", "))}
	}
	if v == ProductionEnv {
		return EnvChoice{}, &EnvError{path, fmt.Sprintf("names %s, which is never selected from this file; pass --env %s or set SITECTL_ENV=%s", ProductionEnv, ProductionEnv, ProductionEnv)}
	}
	if !slices.Contains(known, v) {
		return EnvChoice{}, &EnvError{path, fmt.Sprintf("names environment %q, which has no overlay %s (known: %s); fix or remove the file", v, filepath.Join(dir, EnvDir, v+".yaml"), strings.Join(known, ", "))}
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
