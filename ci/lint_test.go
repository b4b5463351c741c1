package ci

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The validator must be able to fail: each of these is wrong in a way GitLab rejects.
func TestLintRejects(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"not yaml", "stages: [a\n", "not valid YAML"},
		{"bad when", "job:\n  script: [x]\n  when: sometimes\n", "GitLab's .gitlab-ci.yml schema"},
		{"allow_failure exit codes as text", "job:\n  script: [x]\n  allow_failure: {exit_codes: two}\n", "schema"},
		{"unknown job keyword", "job:\n  script: [x]\n  scripts: [y]\n", "schema"},
		{"environment action", "job:\n  script: [x]\n  environment: {name: a, action: deploy}\n", "schema"},
		{"undeclared stage", "stages: [build]\njob:\n  stage: deploy\n  script: [x]\n", `stage "deploy" is not in stages`},
		{"needs unknown job", "a:\n  script: [x]\n  needs: [b]\n", `needs "b"`},
		{"extends unknown job", "a:\n  extends: .tmpl\n  script: [x]\n", `extends ".tmpl"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Lint("x.yml", []byte(c.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error lacks %q:\n%v", c.want, err)
			}
		})
	}
}

func TestLintAccepts(t *testing.T) {
	docs := []string{
		"job:\n  script: [x]\n",
		"stages: [a]\n.t:\n  image: x\njob:\n  extends: .t\n  stage: a\n  script: [x]\n  needs: [{job: other, optional: true}]\nother:\n  stage: a\n  script: [y]\n",
		"include: [{local: other.yml}]\njob:\n  needs: [elsewhere]\n  script: [x]\n",
	}
	for _, d := range docs {
		if err := Lint("ok.yml", []byte(d)); err != nil {
			t.Errorf("%v\n%s", err, d)
		}
	}
}

// The project's own pipeline is hand-kept; it is checked the same way as the
// generated ones, and must keep the jobs issue 2 asks for.
func TestProjectPipeline(t *testing.T) {
	b := readFile(t, "../.gitlab-ci.yml")
	if err := Lint(".gitlab-ci.yml", b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Stages  []string `yaml:"stages"`
		Default struct {
			Image string `yaml:"image"`
		} `yaml:"default"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	type job struct {
		Stage  string   `yaml:"stage"`
		Tags   []string `yaml:"tags"`
		Script []string `yaml:"script"`
	}
	var nodes map[string]yaml.Node
	if err := yaml.Unmarshal(b, &nodes); err != nil {
		t.Fatal(err)
	}
	jobs := map[string]job{}
	for name, n := range nodes {
		if globalKeys[name] || n.Kind != yaml.MappingNode {
			continue
		}
		var j job
		if err := n.Decode(&j); err != nil {
			t.Fatalf("job %s: %v", name, err)
		}
		jobs[name] = j
	}
	if !strings.HasPrefix(doc.Default.Image, "golang:1.26") || !strings.Contains(doc.Default.Image, "bookworm") {
		t.Errorf("default image %q, want golang:1.26 on bookworm", doc.Default.Image)
	}
	wantScript := map[string]string{"lint": "make lint", "unit": "make unit", "build": "make build", "lab": ".ci/run"}
	for job, cmd := range wantScript {
		j, ok := jobs[job]
		if !ok {
			t.Errorf("job %s missing", job)
			continue
		}
		if !strings.Contains(strings.Join(j.Script, "\n"), cmd) {
			t.Errorf("job %s does not run %s: %q", job, cmd, j.Script)
		}
	}
	if lab := jobs["lab"]; len(lab.Tags) != 1 || lab.Tags[0] != "privileged" {
		t.Errorf("lab job tags %v, want [privileged]", lab.Tags)
	}
	for job, j := range jobs {
		if job == "lab" || strings.HasPrefix(job, ".") {
			continue
		}
		for _, tag := range j.Tags {
			if tag == "privileged" {
				t.Errorf("job %s asks for the privileged runner; only the lab job needs it", job)
			}
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The embedded schema is GitLab's, unaltered: byte for byte the shared copy, when this
// checkout sits beside it.
func TestEmbeddedSchemaIsGitLabs(t *testing.T) {
	shared, err := os.ReadFile("../../shared/schemas/gitlab-ci.schema.json")
	if err != nil {
		t.Skipf("no shared schema beside the checkout to compare with: %v", err)
	}
	if string(shared) != string(gitlabSchema) {
		t.Error("ci/schema/gitlab-ci.schema.json differs from ../shared/schemas/gitlab-ci.schema.json")
	}
}
