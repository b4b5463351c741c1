package monitoring_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

func amtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("amtool")
	if err != nil {
		t.Skip("amtool not installed (Debian package prometheus-alertmanager provides /usr/bin/amtool): alertmanager.yml not checked")
	}
	return p
}

// TestAmtoolCheckConfig runs `amtool check-config` on the hub's rendered
// alertmanager.yml of every environment, and shows amtool refuses a broken one.
func TestAmtoolCheckConfig(t *testing.T) {
	at := amtool(t)
	for _, env := range stacktest.Envs {
		dir := writeAll(t, hubFiles(t, env))
		if out, err := exec.Command(at, "check-config", filepath.Join(dir, monitoring.AlertmanagerFile)).CombinedOutput(); err != nil {
			t.Errorf("%s: amtool check-config: %v\n%s", env, err, out)
		}
	}
	for _, tc := range []struct{ name, old, new string }{
		{"route to a missing receiver", "receiver: oncall", "receiver: pager"},
		{"broken matcher", `severity="critical"`, `severity="critical`},
		{"inline password field", "auth_password_file: /run/secrets/", "auth_password_files: /run/secrets/"},
	} {
		files := hubFiles(t, "production")
		am := string(files[monitoring.AlertmanagerFile])
		if !strings.Contains(am, tc.old) {
			t.Fatalf("%s: production alertmanager.yml has no %q", tc.name, tc.old)
		}
		files[monitoring.AlertmanagerFile] = []byte(strings.Replace(am, tc.old, tc.new, 1))
		dir := writeAll(t, files)
		if out, err := exec.Command(at, "check-config", filepath.Join(dir, monitoring.AlertmanagerFile)).CombinedOutput(); err == nil {
			t.Errorf("%s: amtool accepted a broken alertmanager.yml:\n%s", tc.name, out)
		}
	}
}

// TestAlertmanagerSecretsAreFiles: the receivers' secrets reach Alertmanager as
// Docker secrets read through *_file settings; no value is in any rendered file,
// and each reference is what the deploy engine resolves.
func TestAlertmanagerSecretsAreFiles(t *testing.T) {
	topo := stacktest.Load(t, "production")
	hub := topo.HubSite()
	in := stacks.Input{Topo: topo, Site: hub}
	r, err := monitoring.Stack{}.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	d := stacktest.Convert(t, in, r) // sets SITECTL_* to test-value-<name>
	var am struct {
		Receivers []struct {
			Name     string `yaml:"name"`
			Webhooks []struct {
				HTTP struct {
					Auth struct {
						File string `yaml:"credentials_file"`
					} `yaml:"authorization"`
				} `yaml:"http_config"`
			} `yaml:"webhook_configs"`
			Emails []struct {
				File string `yaml:"auth_password_file"`
			} `yaml:"email_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(r.Files[monitoring.AlertmanagerFile], &am); err != nil {
		t.Fatal(err)
	}
	if len(am.Receivers) == 0 || am.Receivers[0].Name != "ops" ||
		am.Receivers[0].Webhooks[0].HTTP.Auth.File != "/run/secrets/alertmanager-ops-webhook0-token" ||
		am.Receivers[0].Emails[0].File != "/run/secrets/alertmanager-ops-email0-password" {
		t.Fatalf("receivers do not read their secrets from /run/secrets: %+v", am.Receivers)
	}
	for name, b := range r.Files {
		if strings.Contains(string(b), "test-value-") {
			t.Errorf("%s carries a secret value", name)
		}
	}
	if strings.Contains(string(r.Compose), "test-value-") {
		t.Error("compose.yml carries a secret value")
	}
	got := map[string]string{}
	for _, o := range d.Secrets {
		got[o.Logical] = string(o.Data)
	}
	for logical, want := range map[string]string{
		"monitoring_alertmanager-ops-webhook0-token":  "test-value-sitectl_alert_webhook_token",
		"monitoring_alertmanager-ops-email0-password": "test-value-sitectl_smtp_password",
	} {
		if got[logical] != want {
			t.Errorf("secret %s: the deploy engine resolved %d bytes, want the value of its reference", logical, len(got[logical]))
		}
	}
}

// TestAlertmanagerDockerSecretIsExternal: a {docker_secret: name} reference is the
// existing swarm secret, declared external in the compose file; nothing for sitectl
// to resolve.
func TestAlertmanagerDockerSecretIsExternal(t *testing.T) {
	topo := stacktest.Load(t, "production")
	hub := topo.HubSite()
	hub.Alerting.Receivers[0].Webhooks[0].Token = sites.SecretRef{DockerSecret: "ops-hook-token"}
	r, err := monitoring.Stack{}.Render(stacks.Input{Topo: topo, Site: hub})
	if err != nil {
		t.Fatal(err)
	}
	cfg := stacktest.LoadCompose(t, r)
	stacktest.Convert(t, stacks.Input{Topo: topo, Site: hub}, r)
	s, ok := cfg.Secrets["alertmanager-ops-webhook0-token"]
	if !ok || !s.External.External || s.Name != "ops-hook-token" {
		t.Fatalf("secret alertmanager-ops-webhook0-token: %+v, want external ops-hook-token", s)
	}
	if _, ok := r.Secrets["alertmanager-ops-webhook0-token"]; ok {
		t.Error("an external secret is among the references sitectl resolves")
	}
	if _, ok := r.Secrets["alertmanager-ops-email0-password"]; !ok {
		t.Error("the e-mail password's reference is missing")
	}
}
