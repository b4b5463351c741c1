// Package yamlschema checks YAML documents against an embedded JSON schema (GitLab's
// .gitlab-ci.yml schema, Kong's declarative format) with santhosh-tekuri/jsonschema,
// and words the violations one per line.
package yamlschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
)

// maxLines bounds how many violations an error lists.
const maxLines = 20

// Schema is a JSON schema compiled on first use.
type Schema struct {
	name string // "GitLab's .gitlab-ci.yml schema", in messages
	url  string
	raw  []byte

	once   sync.Once
	schema *jsonschema.Schema
	err    error
}

// New returns the schema raw (JSON), known by url, called name in messages.
func New(name, url string, raw []byte) *Schema { return &Schema{name: name, url: url, raw: raw} }

func (s *Schema) compiled() (*jsonschema.Schema, error) {
	s.once.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(s.raw))
		if err != nil {
			s.err = fmt.Errorf("read %s: %w", s.name, err)
			return
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(s.url, doc); err != nil {
			s.err = fmt.Errorf("load %s: %w", s.name, err)
			return
		}
		if s.schema, err = c.Compile(s.url); err != nil {
			s.err = fmt.Errorf("compile %s: %w", s.name, err)
		}
	})
	return s.schema, s.err
}

// Check parses data as YAML and validates it. It returns the document as JSON values
// (map[string]any, []any, json.Number...; anchors and merge keys resolved), for the
// checks a schema cannot express.
func (s *Schema) Check(data []byte) (any, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("cannot be read as JSON values: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return nil, err
	}
	sch, err := s.compiled()
	if err != nil {
		return nil, err
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("does not match %s:\n%s", s.name, messages(ve))
		}
		return nil, err
	}
	return inst, nil
}

var printer = message.NewPrinter(language.English)

// messages lists the leaf violations, "  at /jobs/x/stage: ...", sorted, unique.
func messages(ve *jsonschema.ValidationError) string {
	seen := map[string]bool{}
	var lines []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			l := fmt.Sprintf("  at /%s: %s", strings.Join(e.InstanceLocation, "/"), e.ErrorKind.LocalizedString(printer))
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
	if len(lines) > maxLines {
		lines = append(lines[:maxLines], fmt.Sprintf("  ... and %d more", len(lines)-maxLines))
	}
	return strings.Join(lines, "\n")
}
