package audit

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestKongTLSDefault: on the rendered state of a spoke, the "Kong does not verify"
// finding is gone by default (sitectl's Kong CA) and stands, high, with the opt-out
// values.kong.admin.tls_verify: false; at the hub the Kong CA and certificate are
// reported with their state (missing before deploy creates them, then valid).
func TestKongTLSDefault(t *testing.T) {
	kongHigh := func(fs []Finding) []string {
		var out []string
		for _, f := range fs {
			if strings.Contains(f.What, "tls_verify off") {
				out = append(out, string(f.Severity)+" "+f.Object)
			}
		}
		return out
	}
	topo := stacktest.Load(t, "lab")
	for _, s := range []string{"douala", "yaounde"} {
		if got := kongHigh(kongFindings(topo, topo.Site(s))); len(got) != 0 {
			t.Errorf("%s by default: %v", s, got)
		}
		if fs := kongFindings(topo, topo.Site(s)); len(fs) != 0 {
			t.Errorf("%s by default: %+v", s, fs)
		}
	}
	off := stacktest.Load(t, "lab", "douala:values.kong.admin.tls_verify=false")
	fs := kongFindings(off, off.Site("douala"))
	checkFixes(t, fs)
	if got := kongHigh(fs); strings.Join(got, "|") != "high kong.yml service admin (admin.hub)" {
		t.Errorf("with the opt-out: %v", got)
	}

	fresh := stacktest.Load(t, "lab", "cloud:tunnel.pki_dir="+t.TempDir())
	states := func() string {
		var out []string
		for _, f := range kongCertFindings(fresh, fresh.Site("cloud")) {
			out = append(out, f.Object+" "+string(f.Severity))
		}
		return strings.Join(out, "|")
	}
	if got := states(); got != "certificate kong CA high|certificate kong kong-cloud high" {
		t.Errorf("before the PKI exists: %s", got)
	}
	if _, _, err := kong.EnsureHubCert(fresh); err != nil {
		t.Fatal(err)
	}
	if got := states(); got != "certificate kong CA info|certificate kong kong-cloud info" {
		t.Errorf("after: %s", got)
	}
	if fs := kongCertFindings(fresh, fresh.Site("douala")); fs != nil {
		t.Errorf("a spoke reports the hub's certificates: %+v", fs)
	}
}
