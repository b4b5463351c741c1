package sites

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkLoadExample loads and validates the three example sites.
func BenchmarkLoadExample(b *testing.B) {
	dir := copyConfig(b, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Load(Options{Dir: dir, Env: "production", Environ: []string{}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad100Sites loads and validates a generated hub with 99 spokes (goal:
// under 100 ms per load).
func BenchmarkLoad100Sites(b *testing.B) {
	dir := generateSites(b, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		topo, err := Load(Options{Dir: dir, Env: "production", Environ: []string{}})
		if err != nil {
			b.Fatal(err)
		}
		if len(topo.Sites) != 100 {
			b.Fatalf("%d sites", len(topo.Sites))
		}
	}
}

// generateSites writes n sites modelled on douala.yaml: site000 is the hub.
func generateSites(tb testing.TB, n int) string {
	dir := copyConfig(tb, map[string]string{"douala.yaml": "", "yaounde.yaml": "", "cloud.yaml": ""})
	tmpl := mustRead(tb, "douala.yaml")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("site%03d", i)
		a, bb := 10+i/200, i%200 // LAN 10+a.bb.0.0/24 style, overlays in 172.16-31
		s := tmpl
		s = strings.ReplaceAll(s, "douala", name)
		s = strings.ReplaceAll(s, "10.10.0.", fmt.Sprintf("%d.%d.0.", a, bb))
		s = strings.ReplaceAll(s, "10.10.0.0/24", fmt.Sprintf("%d.%d.0.0/24", a, bb))
		for k := 0; k < 3; k++ {
			s = strings.ReplaceAll(s, fmt.Sprintf("10.111.%d.0/24", k), fmt.Sprintf("172.%d.%d.0/24", 16+i/64, (i%64)*4+k))
		}
		s = strings.ReplaceAll(s, "10.110.0.0/16", fmt.Sprintf("100.%d.0.0/16", 64+i))
		s = strings.ReplaceAll(s, "198.51.100.10", fmt.Sprintf("198.51.%d.%d", i/250, 1+i%250))
		if i == 0 {
			s = strings.Replace(s, "role: spoke", "role: hub", 1)
			s = strings.Replace(s, "peers: [cloud]", "peers: []", 1)
		} else {
			s = strings.Replace(s, "peers: [cloud]", "peers: [site000]", 1)
		}
		// a replica set has at most 7 voters: the first 7 sites run mongo
		if i >= 7 {
			s = strings.Replace(s, "monitoring, mongo]", "monitoring]", 1)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(s), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, EnvDir, "production.yaml"), []byte("all:\n  deploy:\n    timeout: 10m\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func TestGeneratedSitesAreValid(t *testing.T) {
	topo, err := Load(Options{Dir: generateSites(t, 100), Env: "production", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Links) != 99 || topo.Hub != "site000" {
		t.Fatalf("links=%d hub=%s", len(topo.Links), topo.Hub)
	}
}

// BenchmarkLoad20kKeys loads the example sites with one site file holding a
// 20,000-key map (images): the loader must stay linear in its input (goal: ≤ 0.2 s
// per load).
func BenchmarkLoad20kKeys(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(mustRead(b, "douala.yaml"))
	sb.WriteString("images:\n")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&sb, "  img%05d: registry.example.com/img%05d:1.0\n", i, i)
	}
	dir := copyConfig(b, map[string]string{"douala.yaml": sb.String()})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		topo, err := Load(Options{Dir: dir, Env: "dev", Environ: []string{}})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(topo.Site("douala").Images); n < 20000 {
			b.Fatalf("%d images", n)
		}
	}
}
