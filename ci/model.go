package ci

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Pipeline is one .gitlab-ci.yml: global keywords, then the jobs in order.
type Pipeline struct {
	// Header is written as a comment block at the top of the file.
	Header    string
	Stages    []string
	Workflow  *Workflow
	Variables map[string]string
	Default   *Default
	Jobs      []*Job
}

// Workflow decides whether a pipeline is created at all.
type Workflow struct {
	Rules []Rule `yaml:"rules"`
}

// Default holds the keywords every job inherits.
type Default struct {
	Image         string `yaml:"image,omitempty"`
	Interruptible *bool  `yaml:"interruptible,omitempty"`
}

// Job is one GitLab CI job. Field order is the order the keys are written in.
type Job struct {
	Name string `yaml:"-"`
	// Comment is written above the job.
	Comment       string            `yaml:"-"`
	Stage         string            `yaml:"stage"`
	Needs         []string          `yaml:"needs,omitempty"`
	Tags          []string          `yaml:"tags,omitempty"`
	Rules         []Rule            `yaml:"rules,omitempty"`
	Environment   *Environment      `yaml:"environment,omitempty"`
	ResourceGroup string            `yaml:"resource_group,omitempty"`
	Interruptible *bool             `yaml:"interruptible,omitempty"`
	AllowFailure  *AllowFailure     `yaml:"allow_failure,omitempty"`
	Variables     map[string]string `yaml:"variables,omitempty"`
	BeforeScript  []string          `yaml:"before_script,omitempty"`
	Script        []string          `yaml:"script"`
	Artifacts     *Artifacts        `yaml:"artifacts,omitempty"`
}

// Rule is one entry of `rules:`.
type Rule struct {
	If   string `yaml:"if,omitempty"`
	When string `yaml:"when,omitempty"`
}

// Environment binds a job to a GitLab environment.
type Environment struct {
	Name           string `yaml:"name"`
	Action         string `yaml:"action,omitempty"`
	DeploymentTier string `yaml:"deployment_tier,omitempty"`
}

// AllowFailure lets a job fail with the listed exit codes without failing the pipeline.
type AllowFailure struct {
	ExitCodes []int `yaml:"exit_codes"`
}

// Artifacts are the files a job keeps.
type Artifacts struct {
	Name     string   `yaml:"name,omitempty"`
	Paths    []string `yaml:"paths"`
	When     string   `yaml:"when,omitempty"`
	ExpireIn string   `yaml:"expire_in,omitempty"`
}

// Job returns the job with that name, or nil.
func (p *Pipeline) Job(name string) *Job {
	for _, j := range p.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// Marshal writes the pipeline as YAML: header comment, global keywords, then the jobs
// in order, each after its comment.
func (p *Pipeline) Marshal() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v any, comment string) error {
		var val yaml.Node
		if err := val.Encode(v); err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: key, HeadComment: comment}
		root.Content = append(root.Content, k, &val)
		return nil
	}
	type global struct {
		key string
		v   any
		set bool
	}
	for _, g := range []global{
		{"stages", p.Stages, len(p.Stages) > 0},
		{"workflow", p.Workflow, p.Workflow != nil},
		{"variables", p.Variables, len(p.Variables) > 0},
		{"default", p.Default, p.Default != nil},
	} {
		if g.set {
			if err := add(g.key, g.v, ""); err != nil {
				return nil, err
			}
		}
	}
	for _, j := range p.Jobs {
		if err := add(j.Name, j, j.Comment); err != nil {
			return nil, err
		}
	}
	var body bytes.Buffer
	enc := yaml.NewEncoder(&body)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString(p.Header)
	buf.Write(spaceTopLevel(body.Bytes()))
	return buf.Bytes(), nil
}

// spaceTopLevel puts a blank line before every top-level key after the first (before
// the key's comment, when it has one), so jobs read as blocks.
func spaceTopLevel(b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	var out bytes.Buffer
	inComment := false
	for i, l := range lines {
		top := len(l) > 0 && l[0] != ' ' && l[0] != '\n'
		comment := top && l[0] == '#'
		if top && i > 0 && !inComment {
			out.WriteByte('\n')
		}
		inComment = comment
		out.Write(l)
	}
	return out.Bytes()
}
