package ci

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

// Runs a generated job's before_script in a real shell, the way a GitLab runner
// does: job variables, then CI/CD variables over them (File variables as paths to
// files), a real ssh-agent loading real keys. Then sitectl's config loader reads the
// environment the script leaves, and must see the CI endpoints.
func TestBeforeScriptPointsSitectlAtTheCIEndpoints(t *testing.T) {
	for _, tool := range []string{"sh", "ssh-agent", "ssh-add", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian: openssh-client): %v", tool, err)
		}
	}
	dir := copyConfig(t, nil)
	topo := load(t, dir, "production", nil)
	p, err := Generate(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	job := p.Job("deploy:production:cloud") // reaches cloud (TLS) and both spokes (SSH)
	if job == nil {
		t.Fatal("no deploy:production:cloud job")
	}

	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	file := func(name, content string) string {
		path := filepath.Join(tmp, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil { // GitLab's mode, loosened on purpose
			t.Fatal(err)
		}
		return path
	}
	// GitLab: job variables first, CI/CD settings override them.
	vars := map[string]string{}
	for k, v := range job.Variables {
		vars[k] = v
	}
	vars["DOCKER_HOST_CLOUD"] = "tcp://cloud.ci.example:2376"
	vars["DOCKER_TLS_CA_CLOUD"] = file("ca.pem", "ca")
	vars["DOCKER_TLS_CERT_CLOUD"] = file("cert.pem", "cert")
	vars["DOCKER_TLS_KEY_CLOUD"] = file("key.pem", "key")
	for _, s := range topo.SiteNames() {
		key := filepath.Join(tmp, "id_"+s)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci-"+s, "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		if err := os.Chmod(key, 0o644); err != nil {
			t.Fatal(err)
		}
		vars["SSH_KEY_"+VarSuffix(s)] = key
		vars["SSH_KNOWN_HOSTS_"+VarSuffix(s)] = file("known_hosts_"+s, "gw."+s+".example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKnownHost"+s+"\n")
	}
	secrets, err := SecretVars(topo, topo.Sites)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range secrets {
		vars[v.Name] = "value-of-" + v.Name
	}
	environ := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}

	// Line 1 is `sitectl ci check`: run the same check here, for the sites it names.
	check := strings.Fields(job.BeforeScript[0])
	if len(check) < 5 || strings.Join(check[:5], " ") != "bin/sitectl ci check --env production" {
		t.Fatalf("first before_script line is not the variable check: %q", job.BeforeScript[0])
	}
	var reach []string
	for i := 5; i+1 < len(check); i += 2 {
		reach = append(reach, check[i+1])
	}
	needed, err := Needed(topo, reach)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckError("production", Check(needed, environ)); err != nil {
		t.Fatalf("check fails with every variable set: %v", err)
	}

	envOut := filepath.Join(tmp, "env.out")
	script := `trap '[ -z "${SSH_AGENT_PID:-}" ] || kill "$SSH_AGENT_PID"' EXIT` + "\n" +
		strings.Join(job.BeforeScript[1:], "\n") + "\n" +
		"ssh-add -l\n" +
		"env > " + envOut + "\n"
	cmd := exec.Command("sh", "-ec", script)
	cmd.Env = environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("before_script failed: %v\n%s", err, out.String())
	}
	for _, s := range topo.SiteNames() {
		if !strings.Contains(out.String(), "ci-"+s) {
			t.Errorf("ssh-agent does not hold the key of %s:\n%s", s, out.String())
		}
	}
	kh, err := os.ReadFile(filepath.Join(home, ".ssh", "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(kh), "\n"); n != 3 {
		t.Errorf("known_hosts has %d lines, want one per site:\n%s", n, kh)
	}

	// The environment the script leaves is what sitectl runs with.
	b, err := os.ReadFile(envOut)
	if err != nil {
		t.Fatal(err)
	}
	after := strings.Split(strings.TrimSpace(string(b)), "\n")
	ci, err := sites.Load(sites.Options{Dir: dir, Env: "production", Environ: after})
	if err != nil {
		t.Fatal(err)
	}
	cloud, douala := ci.Site("cloud"), ci.Site("douala")
	if cloud.Engine.Host != "tcp://cloud.ci.example:2376" {
		t.Errorf("cloud engine host %q: the CI/CD variable did not reach sitectl", cloud.Engine.Host)
	}
	if cloud.Engine.CACert != vars["DOCKER_TLS_CA_CLOUD"] || cloud.Engine.Cert != vars["DOCKER_TLS_CERT_CLOUD"] || cloud.Engine.Key != vars["DOCKER_TLS_KEY_CLOUD"] {
		t.Errorf("cloud TLS files %q %q %q, want the File variables' paths", cloud.Engine.CACert, cloud.Engine.Cert, cloud.Engine.Key)
	}
	if douala.Engine.Host != topo.Site("douala").Engine.Host {
		t.Errorf("douala engine host %q, want the config's %q (no CI/CD override set)", douala.Engine.Host, topo.Site("douala").Engine.Host)
	}
}
