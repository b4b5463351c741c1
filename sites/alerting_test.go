package sites

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestAlertingRefusals: a receiver's secret written inline is refused like every
// secret, and receivers, routes and addresses are checked, each as one problem
// naming the file and key.
func TestAlertingRefusals(t *testing.T) {
	t.Parallel()
	base := mustRead(t, "env/production.yaml")
	for _, tc := range []struct {
		name, old, new, key, want string
	}{
		{"inline smtp password", "password: {env: SITECTL_SMTP_PASSWORD}", "password: hunter2", "alerting.receivers[0].emails[0].password", "a secret written inline is refused"},
		{"inline webhook token", "token: {env: SITECTL_ALERT_WEBHOOK_TOKEN}", "token: abc123", "alerting.receivers[0].webhooks[0].token", "a secret written inline is refused"},
		{"two sources", "token: {env: SITECTL_ALERT_WEBHOOK_TOKEN}", "token: {env: A, file: /b}", "alerting.receivers[0].webhooks[0].token", "exactly one of env, file, docker_secret"},
		{"route to nowhere", "- receiver: oncall", "- receiver: pager", "alerting.routes[0].receiver", `"pager", which is not a receiver (receivers: oncall, ops)`},
		{"default to nowhere", "receiver: ops\n", "receiver: opps\n", "alerting.receiver", `"opps", which is not a receiver`},
		{"bad matcher", `['severity="critical"']`, `['severity=critical']`, "alerting.routes[0].matchers[0]", `write label="value"`},
		{"bad url", "https://oncall.example.org/hooks/sitectl", "oncall.example.org", "alerting.receivers[1].webhooks[0].url", "not an http:// or https:// URL"},
		{"credentials in url", "https://oncall.example.org/hooks/sitectl", "https://u:p@oncall.example.org/x", "alerting.receivers[1].webhooks[0].url", "carries credentials"},
		{"bad smarthost", "smtp.example.org:587", "smtp.example.org", "alerting.receivers[0].emails[0].smarthost", "host:port"},
		{"bad address", "to: ops@example.org", "to: ops", "alerting.receivers[0].emails[0].to", "not an e-mail address"},
		{"twice", "- name: oncall", "- name: ops", "alerting.receivers[1].name", `receiver "ops" is listed twice`},
		{"unknown key", "smarthost:", "smarthots:", "alerting.receivers[0].emails[0].smarthots", "did you mean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(base, tc.old) {
				t.Fatalf("env/production.yaml has no %q", tc.old)
			}
			prod := strings.Replace(base, tc.old, tc.new, 1)
			_, err := Load(Options{Dir: "sites", FS: exampleFS(t, map[string]string{"env/production.yaml": prod}), Env: "production", Environ: []string{}})
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want problems, got %v", err)
			}
			var hit []Problem
			for _, p := range ps {
				if strings.Contains(p.Key, tc.key) {
					hit = append(hit, p)
				}
			}
			if len(hit) != 1 || !strings.HasPrefix(hit[0].File, filepath.Join("sites", "env", "production.yaml")) || !strings.Contains(hit[0].Message, tc.want) {
				t.Fatalf("want one problem of sites/env/production.yaml at %s saying %q, got:\n%#v", tc.key, tc.want, ps)
			}
			if strings.Contains(ps.Error(), "hunter2") || strings.Contains(ps.Error(), "abc123") {
				t.Fatalf("a secret value appears in the message:\n%v", ps)
			}
		})
	}
}

// TestAlertingLoads: the example production hub's alerting section loads as written.
func TestAlertingLoads(t *testing.T) {
	t.Parallel()
	topo, err := Load(Options{Dir: "sites", FS: exampleFS(t, nil), Env: "production", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	a := topo.HubSite().Alerting
	if a.Receiver != "ops" || len(a.Receivers) != 2 || a.Receivers[0].Emails[0].Password.Env != "SITECTL_SMTP_PASSWORD" ||
		a.Receivers[0].Webhooks[0].Token.Env != "SITECTL_ALERT_WEBHOOK_TOKEN" || len(a.Routes) != 1 || !a.Routes[0].Continue {
		t.Fatalf("alerting loaded as %+v", a)
	}
}
