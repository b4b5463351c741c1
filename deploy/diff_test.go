package deploy

import (
	"context"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	_ "github.com/sitectl/sitectl/stacks/all"
	"github.com/sitectl/sitectl/tunnels/firewall"
)

func desiredFor(t *testing.T, env, site string, set ...string) *stacks.Desired {
	t.Helper()
	t.Setenv("SITECTL_PG_PASSWORD", "pw-1")
	t.Setenv("SITECTL_PG_APP_PASSWORD", "app-pw-1")
	t.Setenv("SITECTL_DJANGO_SECRET_KEY", "dk-1")
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: env, Environ: []string{}, Set: set})
	if err != nil {
		t.Fatal(err)
	}
	s := topo.Site(site)
	s.Stacks = []string{"postgres", "django-api"}
	d, err := stacks.Build(context.Background(), stacks.Input{Topo: topo, Site: s}, stacks.ConvertOptions{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func api(t *testing.T, d *stacks.Desired) swarm.ServiceSpec {
	t.Helper()
	for _, s := range d.Services {
		if s.Name == "django-api_api" {
			return s.Spec
		}
	}
	t.Fatal("no django-api_api")
	return swarm.ServiceSpec{}
}

func ident(s string) string { return s }

func TestDiffLines(t *testing.T) {
	base := api(t, desiredFor(t, "dev", "douala"))
	tests := []struct {
		name string
		set  []string
		want []string
	}{
		{"nothing", nil, nil},
		{"replicas", []string{"douala:values.django-api.replicas=3"}, []string{"replicas: 1 → 3"}},
		{"image", []string{"douala:images.django-api=registry.example.com/sitectl/django-api:2.0"},
			[]string{"image: registry.example.com/sitectl/django-api:dev → registry.example.com/sitectl/django-api:2.0"}},
		{"published port", []string{"douala:values.django-api.published_port=8080"},
			[]string{"+ port 8080/tcp: → 8000 (ingress)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := api(t, desiredFor(t, "dev", "douala", tt.set...))
			got := diffLines(describe(base, ident), describe(next, ident), isDriftKey)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDiffHidesEnvValues(t *testing.T) {
	a := swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Env: []string{"TOKEN=old-value-123", "GONE=x"}}}}
	b := swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Env: []string{"TOKEN=new-value-456", "NEW=y"}}}}
	got := strings.Join(diffLines(describe(a, ident), describe(b, ident), nil), "\n")
	for _, v := range []string{"old-value-123", "new-value-456", "=y", "=x"} {
		if strings.Contains(got, v) {
			t.Fatalf("diff shows an environment value %q:\n%s", v, got)
		}
	}
	for _, want := range []string{"env TOKEN: changed", "+ env NEW", "- env GONE"} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
}

func TestDiffNamesNetworksNotIDs(t *testing.T) {
	spec := api(t, desiredFor(t, "dev", "douala"))
	live := spec
	live.TaskTemplate.Networks = nil
	ids := map[string]string{}
	for _, n := range spec.TaskTemplate.Networks {
		id := "id-" + n.Target
		ids[id] = n.Target
		live.TaskTemplate.Networks = append(live.TaskTemplate.Networks, swarm.NetworkAttachmentConfig{Target: id})
	}
	name := func(s string) string {
		if n, ok := ids[s]; ok {
			return n
		}
		return s
	}
	if d := diffLines(describe(live, name), describe(spec, name), nil); len(d) != 0 {
		t.Errorf("same networks by ID and by name differ: %v", d)
	}
}

func TestNormalImage(t *testing.T) {
	for in, want := range map[string]string{
		"postgres":    "postgres:latest",
		"postgres:15": "postgres:15",
		"sitectl-lab/postgres:15@sha256:" + strings.Repeat("a", 64): "sitectl-lab/postgres:15",
		"registry.example.com/x/y:1":                                "registry.example.com/x/y:1",
	} {
		if got := normalImage(in); got != want {
			t.Errorf("normalImage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNetworkView(t *testing.T) {
	p := netip.MustParsePrefix("10.1.2.0/24")
	want := networkView("overlay", &network.IPAM{Config: []network.IPAMConfig{{Subnet: p}}}, map[string]string{"encrypted": ""}, false, false)
	same := networkView("overlay", &network.IPAM{Config: []network.IPAMConfig{{Subnet: p}}}, map[string]string{"encrypted": "", "com.docker.network.driver.overlay.vxlanid_list": "4097"}, false, false)
	if same != want {
		t.Errorf("engine-added options make a difference: %v vs %v", same, want)
	}
	other := networkView("overlay", &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.9.9.0/24")}}}, nil, true, false)
	got := strings.Join(other.diff(want), "; ")
	if got != "subnet: 10.9.9.0/24 → 10.1.2.0/24; encrypted: no → yes; attachable: yes → no" {
		t.Errorf("diff = %s", got)
	}
}

func TestLockStale(t *testing.T) {
	host, _ := os.Hostname()
	now := time.Now()
	tests := []struct {
		name string
		h    LockHolder
		want bool
	}{
		{"fresh, live process", LockHolder{Host: host, PID: os.Getppid(), Heartbeat: now}, false},
		{"fresh, other host", LockHolder{Host: "elsewhere", PID: 1 << 22, Heartbeat: now}, false},
		{"not refreshed", LockHolder{Host: "elsewhere", PID: 1, Heartbeat: now.Add(-2 * LockStale)}, true},
		{"dead process here", LockHolder{Host: host, PID: deadPID(t), Heartbeat: now}, true},
	}
	for _, tt := range tests {
		if got := tt.h.stale(now); got != tt.want {
			t.Errorf("%s: stale = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// deadPID returns a PID no process has (the kernel's pid_max is below it).
func deadPID(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Skip("no /proc/sys/kernel/pid_max")
	}
	var pidMax int
	for _, c := range strings.TrimSpace(string(b)) {
		pidMax = pidMax*10 + int(c-'0')
	}
	return pidMax + 1
}

func TestHolderFromLabels(t *testing.T) {
	since := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	h := holderFrom(map[string]string{labelOwner: "ci@runner pid 42", labelHost: "runner", labelPID: "42",
		labelSince: since.Format(time.RFC3339Nano), labelHeartbeat: since.Format(time.RFC3339Nano)})
	if h.Owner != "ci@runner pid 42" || h.PID != 42 || !h.Since.Equal(since) {
		t.Errorf("holder %+v", h)
	}
	if !strings.Contains(h.String(), "ci@runner pid 42 since 2026-11-23T14:00:00Z") {
		t.Errorf("String() = %s", h)
	}
}

func TestRenderStatusGolden(t *testing.T) {
	now := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)
	all := []SiteStatus{
		{Site: "douala", Swarm: "active",
			Nodes: []NodeStatus{{Hostname: "douala-app1", Role: "manager", Leader: true, State: "ready", Availability: "active", Address: "10.10.0.11", Labels: map[string]string{"role": "app", "site": "douala"}},
				{Hostname: "douala-db1", Role: "worker", State: "ready", Availability: "active", Address: "10.10.0.12", Labels: map[string]string{"role": "db"}}},
			Services: []ServiceStatus{{Name: "django-api_api", Running: 1, Desired: 2, Image: "sitectl-lab/django-api:lab", UpdatedAt: now.Add(-90 * time.Second), UpdateState: "updating", Managed: true},
				{Name: "hand-made", Running: 1, Desired: 1, Image: "busybox", UpdatedAt: now.Add(-time.Hour)}},
			Networks: []NetworkStatus{{Name: "data", Driver: "overlay", Subnet: "10.111.2.0/24", Managed: true}},
			Lock:     &LockHolder{Owner: "ci@runner pid 7", Since: now.Add(-time.Minute), Heartbeat: now},
			Firewall: &FirewallStatus{Present: true, Counters: []firewall.Counter{{Name: "input_drop", Packets: 3}, {Name: "forward_drop", Packets: 41}, {Name: "leak"}, {Name: "invalid"}}}},
		{Site: "yaounde", Error: "status yaounde: engine unix:///x does not answer"},
	}
	var b strings.Builder
	if err := RenderStatus(&b, all, now); err != nil {
		t.Fatal(err)
	}
	out := regexp.MustCompile(`last refreshed [^)]*`).ReplaceAllString(b.String(), "last refreshed <t>")
	golden.AssertString(t, "status.golden", out)
}
