package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCIGeneratePinsSitectl: in a repository that is not sitectl's source tree the
// generated pipeline installs sitectl pinned (go install @version) and never builds
// ./cmd/sitectl; a development build without --sitectl-version is refused with the
// fix, and a version go install cannot pin is refused naming the flag.
func TestCIGeneratePinsSitectl(t *testing.T) {
	root := t.TempDir()
	if err := os.Rename(exampleConfig(t, nil), filepath.Join(root, "sites")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	_, _, err := run(t, nil, "ci", "generate", "--env", "dev")
	if err == nil || !strings.Contains(err.Error(), "pass --sitectl-version vX.Y.Z") {
		t.Fatalf("a development build, no --sitectl-version: err %v", err)
	}
	for _, bad := range []string{"latest", "main", "v1.2"} {
		_, _, err := run(t, nil, "ci", "generate", "--env", "dev", "--sitectl-version", bad)
		if err == nil || !strings.Contains(err.Error(), "--sitectl-version: \""+bad+"\" is not a module version") {
			t.Errorf("--sitectl-version %s: err %v", bad, err)
		}
	}
	out, _, err := run(t, nil, "ci", "generate", "--env", "dev", "--sitectl-version", "v1.4.0", "--out", "ci-dev.yml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("ci-dev.yml")
	if err != nil {
		t.Fatal(err)
	}
	pipeline := out + string(b)
	for _, want := range []string{
		`GOBIN="$CI_PROJECT_DIR/bin" go install -trimpath github.com/sitectl/sitectl/cmd/sitectl@v1.4.0`,
		"#   sitectl ci generate --env dev --out ci-dev.yml\n",
	} {
		if !strings.Contains(pipeline, want) {
			t.Errorf("pipeline lacks %q", want)
		}
	}
	if strings.Contains(pipeline, "go build") {
		t.Error("the pipeline builds sitectl from a source tree this repository does not have")
	}
	// The drift check, run as the pipeline's job runs it, agrees.
	if _, _, err := run(t, nil, "ci", "generate", "--env", "dev", "--sitectl-version", "v1.4.0", "--check", "ci-dev.yml"); err != nil {
		t.Errorf("--check of the file just written: %v", err)
	}
}
