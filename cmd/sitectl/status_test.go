package main

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/tunnels"
)

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestSiteProblems(t *testing.T) {
	ok := deploy.SiteStatus{Site: "douala", Swarm: "active",
		Nodes: []deploy.NodeStatus{{Hostname: "d1", State: "ready", Availability: "active"}, {Hostname: "d2", State: "ready", Availability: "drain"}},
		Services: []deploy.ServiceStatus{{Name: "postgres_db", Running: 1, Desired: 1, Managed: true, UpdateState: "completed"},
			{Name: "someone_else", Running: 0, Desired: 3}, // not sitectl's: shown, not judged
			{Name: "migrate_job", Running: 0, Desired: 0, Managed: true}}}
	with := func(f func(*deploy.SiteStatus)) deploy.SiteStatus {
		st := ok
		st.Nodes = append([]deploy.NodeStatus(nil), ok.Nodes...)
		st.Services = append([]deploy.ServiceStatus(nil), ok.Services...)
		f(&st)
		return st
	}
	tests := []struct {
		name string
		in   deploy.SiteStatus
		want string
	}{
		{"healthy", ok, ""},
		{"unreadable", with(func(s *deploy.SiteStatus) { s.Error = "status douala: engine does not answer" }), "douala could not be read"},
		{"no swarm", with(func(s *deploy.SiteStatus) { s.Swarm = "inactive" }), "douala: swarm is inactive, not active (run sitectl deploy --site douala)"},
		{"node down", with(func(s *deploy.SiteStatus) { s.Nodes[1].State = "down" }), "douala: node d2 is down"},
		{"service short", with(func(s *deploy.SiteStatus) { s.Services[0].Running = 0 }), "douala: service postgres_db runs 0/1"},
		{"rolled back", with(func(s *deploy.SiteStatus) { s.Services[0].UpdateState = "rollback_completed" }), "douala: service postgres_db update rollback_completed"},
		{"update paused", with(func(s *deploy.SiteStatus) { s.Services[0].UpdateState = "paused" }), "douala: service postgres_db update paused"},
		{"updating, all running", with(func(s *deploy.SiteStatus) { s.Services[0].UpdateState = "updating" }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(siteProblems(tt.in), "; ")
			if got != tt.want {
				t.Errorf("problems %q, want %q", got, tt.want)
			}
			verdict := statusVerdict([]deploy.SiteStatus{tt.in}, siteProblems(tt.in))
			if (tt.want == "") != strings.HasPrefix(verdict, "✓ ") {
				t.Errorf("verdict %q", verdict)
			}
		})
	}
}

// A site whose engine does not answer fails `status` (exit 1), and the last line
// says so; nothing says ✓.
func TestStatusUnreadableSiteFails(t *testing.T) {
	dir := exampleConfig(t, nil)
	out, errOut, err := run(t, []string{}, "--config-dir", dir, "--env", "dev", "status", "--site", "douala", "--no-alerts",
		"--set", "douala:engine.host=tcp://127.0.0.1:1", "--set", "douala:engine.tls_verify=false")
	if err == nil || exitCode(err) != 1 || lastLine(out) != "✗ 1 problem(s): douala could not be read" || strings.Contains(out+errOut, "✓") {
		t.Fatalf("err %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
}

// A site whose database cannot be read fails `replication status`: error rows, a
// last line naming the flows, exit 1, and no ✓ (not even on the progress line).
func TestReplicationStatusUnreadableFails(t *testing.T) {
	dir := exampleConfig(t, nil)
	environ := []string{"SITECTL_PG_PASSWORD=x"}
	args := []string{"--config-dir", dir, "--env", "dev", "replication", "status",
		"--set", "postgres.host=127.0.0.1", "--set", "postgres.port=1", "--set", "postgres.sslmode=disable"}
	out, errOut, err := run(t, environ, args...)
	if err == nil || exitCode(err) != 1 || strings.Contains(out+errOut, "✓") ||
		!strings.HasPrefix(lastLine(out), "✗ 4 of 4 replication flows do not work: douala → cloud unknown") ||
		!strings.Contains(errOut, "✗ read replication status") || !strings.Contains(errOut, "could not read cloud, douala, yaounde") {
		t.Fatalf("err %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	out, errOut, err = run(t, environ, append(args, "-o", "json")...)
	if err == nil || exitCode(err) != 1 || !strings.Contains(out, `"state": "unknown"`) || !strings.HasPrefix(lastLine(errOut), "✗ 4 of 4") {
		t.Fatalf("-o json: err %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
}

func TestTunnelsProblem(t *testing.T) {
	up := tunnels.EndStatus{Loaded: true, IKEState: "ESTABLISHED", ChildState: "INSTALLED"}
	at := func(site string, e tunnels.EndStatus) tunnels.EndStatus { e.Site = site; return e }
	unread := tunnels.EndStatus{Error: "dial ssh://ops@10.10.0.1: timeout"}
	tests := []struct {
		name  string
		links []tunnels.LinkStatus
		want  string
	}{
		{"all up", []tunnels.LinkStatus{{Link: "douala-cloud", State: tunnels.StateUp, Ends: []tunnels.EndStatus{at("douala", up), at("cloud", up)}}}, ""},
		{"one cut", []tunnels.LinkStatus{{Link: "douala-cloud", State: tunnels.StateCut}, {Link: "yaounde-cloud", State: tunnels.StateUp}}, "1 of 2 links not up"},
		{"up from the peer, one gateway unread", []tunnels.LinkStatus{{Link: "douala-cloud", State: tunnels.StateUp, Ends: []tunnels.EndStatus{at("douala", unread), at("cloud", up)}}},
			"could not read the gateway of douala"},
		{"unknown", []tunnels.LinkStatus{{Link: "douala-cloud", State: tunnels.StateUnknown, Ends: []tunnels.EndStatus{at("douala", unread)}}},
			"1 of 1 links not up; could not read the gateway of douala"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := tunnelsProblem(tt.links); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("problem %q, want %q", got, tt.want)
			}
		})
	}
}
