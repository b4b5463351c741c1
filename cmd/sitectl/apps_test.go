package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyApps copies the fixture apps (internal/apps/testdata/apps) into a new folder.
func copyApps(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "internal", "apps", "testdata", "apps")
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestAppsCLI: the apps folder is found by --apps-dir or SITECTL_APPS_DIR; config
// validate accepts the fixtures in every environment, stacks render includes them,
// --set reaches values.<app>, and a bad app fails validate with its file and key.
func TestAppsCLI(t *testing.T) {
	dir := exampleConfig(t, nil)
	appsDir := copyApps(t)
	out, _, err := run(t, nil, "config", "validate", "--config-dir", dir, "--apps-dir", appsDir)
	if err != nil {
		t.Fatalf("fixture apps refused: %v\n%s", err, out)
	}
	out, _, err = run(t, []string{"SITECTL_APPS_DIR=" + appsDir}, "stacks", "render", "--config-dir", dir, "--env", "dev", "--site", "cloud",
		"--set", "cloud:values.hello.replicas=4", "-q")
	if err != nil {
		t.Fatalf("stacks render: %v", err)
	}
	if !strings.Contains(out, "==> cloud/hello/compose.yaml <==") || !strings.Contains(out, "==> cloud/plain/compose.yaml <==") || !strings.Contains(out, "replicas: 4") {
		t.Fatalf("stacks render lacks the apps or the --set replicas:\n%s", out)
	}

	// --app names an app of the apps dir; refused before any engine is reached.
	for _, cmd := range []string{"plan", "deploy"} {
		_, _, err := run(t, nil, cmd, "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev", "--all", "--app", "nope")
		if err == nil || !strings.Contains(err.Error(), `--app "nope": no such app in `+appsDir+" (apps: hello, plain)") {
			t.Errorf("%s --app nope: %v", cmd, err)
		}
	}

	// A config file the app's folder lacks: refused at validate (rendered as deploy would).
	cfgApp := filepath.Join(appsDir, "cfg", "compose.yaml")
	if err := os.MkdirAll(filepath.Dir(cfgApp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgApp, []byte("version: \"3.8\"\nservices:\n  s:\n    image: x/s:1\n    configs: [c]\nconfigs:\n  c:\n    file: ./missing.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, nil, "config", "validate", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev")
	if exitCode(err) != 1 || !strings.Contains(out, cfgApp) || !strings.Contains(out, "at cloud, douala, yaounde: config c:") || strings.Count(out, "error:") != 1 {
		t.Fatalf("an app whose config file is missing: exit %d\n%s", exitCode(err), out)
	}
	os.RemoveAll(filepath.Dir(cfgApp))

	hello := filepath.Join(appsDir, "hello", "compose.yaml")
	b, _ := os.ReadFile(hello)
	if err := os.WriteFile(hello, []byte(strings.Replace(string(b), "sites: all", "sites: [hub, garoua]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, nil, "config", "validate", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev")
	if exitCode(err) != 1 {
		t.Fatalf("exit code %d, want 1 (err %v)\n%s", exitCode(err), err, out)
	}
	want := "error: " + hello + `: x-sitectl.sites: "garoua" is not a site or role`
	if !strings.Contains(out, want) || strings.Count(out, "error:") != 1 {
		t.Fatalf("validate output lacks %q (once):\n%s", want, out)
	}
	if _, _, err := run(t, nil, "stacks", "render", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev", "--site", "cloud", "-q"); err == nil || !strings.Contains(err.Error(), "garoua") {
		t.Fatalf("stacks render with a bad app: %v, want the app's problem", err)
	}
}
