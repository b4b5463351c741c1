package ci

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"

	"github.com/sitectl/sitectl/internal/yamlschema"
)

// gitlabSchema is GitLab's own JSON schema for .gitlab-ci.yml (see schema/README.md).
//
//go:embed schema/gitlab-ci.schema.json
var gitlabSchema []byte

// gitlab compiles the schema on first use.
var gitlab = yamlschema.New("GitLab's .gitlab-ci.yml schema", "https://gitlab.com/.gitlab-ci.yml", gitlabSchema)

// Lint checks a .gitlab-ci.yml: it must parse as YAML, validate against GitLab's JSON
// schema, and hang together (every job's stage is declared, every `needs` and
// `extends` names a job of the file, unless it comes from an include). name is used
// in messages.
func Lint(name string, data []byte) error {
	inst, err := gitlab.Check(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	m, ok := inst.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: the top level must be a mapping of keywords and jobs", name)
	}
	if probs := coherence(m); len(probs) > 0 {
		return fmt.Errorf("%s:\n  %s", name, strings.Join(probs, "\n  "))
	}
	return nil
}

// schemaMessages flattens the validator's tree into one line per failing leaf,
// "at /jobs/path: message", deduplicated.
// Global keywords of .gitlab-ci.yml; every other top-level key is a job (or a hidden
// job when it starts with a dot).
var globalKeys = map[string]bool{
	"$schema": true, "spec": true, "image": true, "services": true, "before_script": true,
	"after_script": true, "variables": true, "cache": true, "default": true, "stages": true,
	"include": true, "workflow": true,
}

var builtinStages = []string{".pre", "build", "test", "deploy", ".post"}

// coherence finds what the schema cannot: stages that are not declared, and needs or
// extends that name no job. Files with `include` may get jobs from elsewhere, so
// unknown job names are only reported when nothing is included.
func coherence(doc map[string]any) []string {
	stages := map[string]bool{".pre": true, ".post": true}
	if s, ok := doc["stages"].([]any); ok {
		for _, v := range s {
			if name, ok := v.(string); ok {
				stages[name] = true
			}
		}
	} else {
		for _, s := range builtinStages {
			stages[s] = true
		}
	}
	_, includes := doc["include"]
	jobs := map[string]map[string]any{}
	for k, v := range doc {
		if globalKeys[k] {
			continue
		}
		if m, ok := v.(map[string]any); ok {
			jobs[k] = m
		}
	}
	names := make([]string, 0, len(jobs))
	for k := range jobs {
		names = append(names, k)
	}
	sort.Strings(names)
	var probs []string
	for _, name := range names {
		job := jobs[name]
		if strings.HasPrefix(name, ".") {
			continue
		}
		if st, ok := job["stage"].(string); ok && !stages[st] {
			probs = append(probs, fmt.Sprintf("job %s: stage %q is not in stages", name, st))
		}
		if includes {
			continue
		}
		for _, n := range needNames(job["needs"]) {
			if _, ok := jobs[n]; !ok {
				probs = append(probs, fmt.Sprintf("job %s: needs %q, which is not a job of this file", name, n))
			}
		}
		for _, e := range stringList(job["extends"]) {
			if _, ok := jobs[e]; !ok {
				probs = append(probs, fmt.Sprintf("job %s: extends %q, which is not a job of this file", name, e))
			}
		}
	}
	return probs
}

func needNames(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, n := range list {
		switch x := n.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			if _, cross := x["project"]; cross {
				continue
			}
			if _, pipe := x["pipeline"]; pipe {
				continue
			}
			if j, ok := x["job"].(string); ok {
				out = append(out, j)
			}
		}
	}
	return out
}

func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
