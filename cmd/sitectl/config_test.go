package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
)

func TestConfigShowGolden(t *testing.T) {
	dir := exampleConfig(t, nil)
	secret := "pg-secret-value-42"
	environ := []string{"SITECTL_PG_PASSWORD=" + secret}
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"config-show-douala-production.yaml.golden", []string{"config", "show", "--site", "douala", "--env", "production"}},
		{"config-show-cloud-dev.json.golden", []string{"config", "show", "--site", "cloud", "--env", "dev", "-o", "json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, _, err := run(t, environ, append(tc.args, "--config-dir", dir)...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, secret) {
				t.Fatal("config show printed a secret value")
			}
			golden.AssertString(t, tc.golden, out)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	dir := exampleConfig(t, nil)
	out, _, err := run(t, nil, "config", "validate", "--config-dir", dir)
	if err != nil {
		t.Fatalf("valid examples refused: %v\n%s", err, out)
	}
	golden.AssertString(t, "config-validate-ok.golden", out)

	douala, _ := os.ReadFile(dir + "/douala.yaml")
	bad := strings.Replace(string(douala), "peers: [cloud]", "peers: [cloud, garoua]", 1) + "colour: blue\n"
	broken := exampleConfig(t, map[string]string{"douala.yaml": bad})
	out, _, err = run(t, nil, "config", "validate", "--config-dir", broken, "--env", "dev")
	if exitCode(err) != 1 {
		t.Fatalf("exit code %d, want 1 (err %v)", exitCode(err), err)
	}
	out = strings.ReplaceAll(out, broken, "<config-dir>")
	golden.AssertString(t, "config-validate-broken.golden", out)

	out, _, err = run(t, nil, "config", "validate", "--config-dir", broken, "--env", "dev", "-o", "json")
	if exitCode(err) != 1 {
		t.Fatalf("json: exit code %d, want 1", exitCode(err))
	}
	var res []validateResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if len(res) != 1 || res[0].Valid || len(res[0].Problems) != 2 {
		t.Fatalf("json result = %+v", res)
	}
}

func TestVersionAndBadOutput(t *testing.T) {
	out, _, err := run(t, nil, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version == "" || v.Go == "" {
		t.Fatalf("version json = %q (%v)", out, err)
	}
	if _, _, err := run(t, nil, "version", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "allowed: text, json, yaml") {
		t.Fatalf("bad --output accepted: %v", err)
	}
}

func TestCompletion(t *testing.T) {
	out, _, err := run(t, nil, "completion", "bash")
	if err != nil || !strings.Contains(out, "__start_sitectl") {
		t.Fatalf("bash completion: %v", err)
	}
}
