package ci

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// gitlabSchema is GitLab's own JSON schema for .gitlab-ci.yml (see schema/README.md).
//
//go:embed schema/gitlab-ci.schema.json
var gitlabSchema []byte

const schemaURL = "https://gitlab.com/.gitlab-ci.yml"

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

func compiledSchema() (*jsonschema.Schema, error) {
	schemaOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(gitlabSchema))
		if err != nil {
			schemaErr = fmt.Errorf("read embedded GitLab CI schema: %w", err)
			return
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(schemaURL, doc); err != nil {
			schemaErr = fmt.Errorf("load embedded GitLab CI schema: %w", err)
			return
		}
		schema, schemaErr = c.Compile(schemaURL)
		if schemaErr != nil {
			schemaErr = fmt.Errorf("compile embedded GitLab CI schema: %w", schemaErr)
		}
	})
	return schema, schemaErr
}

// Lint checks a .gitlab-ci.yml: it must parse as YAML, validate against GitLab's JSON
// schema, and hang together (every job's stage is declared, every `needs` and
// `extends` names a job of the file, unless it comes from an include). name is used
// in messages.
func Lint(name string, data []byte) error {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: not valid YAML: %w", name, err)
	}
	// Round-trip through JSON: the validator wants JSON values (json.Number, []any,
	// map[string]any), and YAML anchors or merge keys are resolved by then.
	j, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("%s: cannot be read as JSON values: %w", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	sch, err := compiledSchema()
	if err != nil {
		return err
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("%s does not match GitLab's .gitlab-ci.yml schema:\n%s", name, schemaMessages(ve))
		}
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
func schemaMessages(ve *jsonschema.ValidationError) string {
	seen := map[string]bool{}
	var lines []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			l := fmt.Sprintf("  at /%s: %s", strings.Join(e.InstanceLocation, "/"), e.ErrorKind)
			if !seen[l] {
				seen[l] = true
				lines = append(lines, l)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.Strings(lines)
	const max = 20
	if len(lines) > max {
		lines = append(lines[:max], fmt.Sprintf("  ... and %d more", len(lines)-max))
	}
	return strings.Join(lines, "\n")
}

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
