package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTunnelsCLI(t *testing.T) {
	dir := exampleConfig(t, nil)
	pki := filepath.Join(t.TempDir(), "pki")
	base := []string{"--config-dir", dir, "--env", "dev", "--set", "tunnel.pki_dir=" + pki}

	// render: both files per gateway, the direct link only when configured.
	out, _, err := run(t, nil, append(base, "tunnels", "render")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"==> cloud/swanctl.conf <==", "==> yaounde/strongswan.conf <==", "douala-cloud-lan-",
		"==> douala/firewall.nft <==", `ip daddr 10.10.0.11 tcp dport { 80, 443 } accept`} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q", want)
		}
	}
	if strings.Contains(out, "douala-yaounde") {
		t.Error("render has a direct link that is not configured")
	}
	// A bad admin network: one error naming the site, the key and the form.
	_, _, err = run(t, nil, append(base, "--set", "douala:gateway.firewall.admin_networks=192.0.2.0/33", "tunnels", "render")...)
	if err == nil || !strings.Contains(err.Error(), "gateway.firewall.admin_networks[0]") || !strings.Contains(err.Error(), "CIDR") || !strings.Contains(err.Error(), "douala") {
		t.Errorf("bad admin_networks: %v", err)
	}
	out, _, err = run(t, nil, append(base, "--set", "douala:tunnel.peers=cloud,yaounde", "tunnels", "render", "--site", "douala")...)
	if err != nil || !strings.Contains(out, "douala-yaounde {") {
		t.Fatalf("render with a direct link: %v\n%s", err, out)
	}

	// certs --check before creation: exit 1; certs creates; --check passes; keys 0600
	// and never printed.
	if _, _, err := run(t, nil, append(base, "tunnels", "certs", "--check")...); exitCode(err) != 1 {
		t.Fatalf("certs --check with no certificates: %v", err)
	}
	out, _, err = run(t, nil, append(base, "-o", "json", "tunnels", "certs")...)
	if err != nil {
		t.Fatal(err)
	}
	var states []map[string]any
	if err := json.Unmarshal([]byte(out), &states); err != nil || len(states) != 4 {
		t.Fatalf("certs json: %v (%d states)\n%s", err, len(states), out)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Fatal("certs printed a key")
	}
	fi, err := os.Stat(filepath.Join(pki, "gw.douala.sitectl.example.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if _, _, err := run(t, nil, append(base, "tunnels", "certs", "--check")...); err != nil {
		t.Fatalf("certs --check after creation: %v", err)
	}
	// A PKI dir inside the repository is refused.
	if _, _, err := run(t, nil, "--config-dir", dir, "--env", "dev", "--set", "tunnel.pki_dir=.", "tunnels", "certs"); err == nil || !strings.Contains(err.Error(), "git work tree") {
		t.Fatalf("pki dir in the repo: %v", err)
	}

	// down needs a link; an unknown link names the known ones.
	if _, _, err := run(t, nil, append(base, "tunnels", "down")...); err == nil || !strings.Contains(err.Error(), "--link") {
		t.Fatalf("down without --link: %v", err)
	}
	if _, _, err := run(t, nil, append(base, "tunnels", "down", "--link", "douala-kribi")...); err == nil || !strings.Contains(err.Error(), "douala-cloud") {
		t.Fatalf("down unknown link: %v", err)
	}

	// The swarm service stack renders with the certificates just made.
	out, _, err = run(t, nil, append(base, "tunnels", "render", "--service", "--site", "cloud")...)
	if err != nil || !strings.Contains(out, "cap_add: [NET_ADMIN, NET_RAW]") || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("render --service: %v\n%s", err, out)
	}
}
