package ci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Generating with every variable the pipeline names set in the process environment
// (as on an operator's machine or in a CI job) writes names only, never a value.
func TestGeneratedPipelineHoldsNoSecretValue(t *testing.T) {
	dir := copyConfig(t, nil)
	for _, env := range envs {
		t.Run(env, func(t *testing.T) {
			vars, err := Variables(load(t, dir, env, nil))
			if err != nil {
				t.Fatal(err)
			}
			values := map[string]string{}
			for _, v := range vars {
				val := "V4lue-of-" + v.Name + "-never-printed"
				values[v.Name] = val
				t.Setenv(v.Name, val)
			}
			if len(values) < 10 {
				t.Fatalf("only %d variables named; the config should name the secrets and site access", len(values))
			}
			// Loaded from the real process environment, like the CLI does.
			topo := load(t, dir, env, os.Environ())
			b, err := Render(topo, Options{ProductionDrills: true})
			if err != nil {
				t.Fatal(err)
			}
			out := string(b)
			for name, val := range values {
				if strings.Contains(out, val) {
					t.Errorf("the pipeline contains the value of %s", name)
				}
				if !strings.Contains(out, name) {
					t.Errorf("the pipeline does not name %s", name)
				}
			}
		})
	}
}

// A failed check names what is wrong, never the value it found.
func TestCheckNeverPrintsValues(t *testing.T) {
	dir := copyConfig(t, nil)
	topo := load(t, dir, "production", nil)
	vars, err := Needed(topo, []string{"cloud", "douala"})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "tcp-Secret-Host-Value"
	environ := []string{
		"DOCKER_HOST_DOUALA=" + secret,        // wrong scheme: douala is reached over ssh
		"SSH_KEY_DOUALA=not/a/file/" + secret, // a File variable whose value is not a path
		"SITECTL_PG_PASSWORD=" + secret,
	}
	results := Check(vars, environ)
	err = CheckError("production", results)
	if err == nil {
		t.Fatal("check passed with variables missing")
	}
	msg := err.Error()
	if strings.Contains(msg, secret) {
		t.Fatalf("check message contains a value:\n%s", msg)
	}
	for _, wantLine := range []string{
		"variable DOCKER_HOST_DOUALA", "must start with ssh://",
		"File variable SSH_KEY_DOUALA", "not a path to a file",
		"DOCKER_TLS_KEY_CLOUD", "SSH_KNOWN_HOSTS_CLOUD", "SITECTL_MONGO_KEYFILE", "is not set",
		`environment scope "production/*"`,
	} {
		if !strings.Contains(msg, wantLine) {
			t.Errorf("check message lacks %q:\n%s", wantLine, msg)
		}
	}
	for _, r := range results {
		if r.Name == "SITECTL_PG_PASSWORD" && !r.OK {
			t.Errorf("SITECTL_PG_PASSWORD is set but reported: %s", r.Problem)
		}
	}
}

func TestCheckPassesWhenEverythingIsSet(t *testing.T) {
	dir := copyConfig(t, nil)
	topo := load(t, dir, "production", nil)
	vars, err := Needed(topo, nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "f.pem")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var environ []string
	for _, v := range vars {
		val := "set-" + v.Name
		switch {
		case v.File:
			val = file
		case v.Prefix != "":
			val = v.Prefix + "host.example"
		}
		environ = append(environ, v.Name+"="+val)
	}
	if err := CheckError("production", Check(vars, environ)); err != nil {
		t.Fatal(err)
	}
}
