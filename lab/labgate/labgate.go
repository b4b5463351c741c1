// Package labgate is the one gate of lab tests (TestLab..., which build network
// namespaces, run dockerd, charon or PostgreSQL as root): Skip(t) skips the test under
// -short and when not root. It imports nothing of sitectl, so any package's tests can
// use it without an import cycle (lab/labtest, which brings up a shared lab, imports
// lab and through it tunnels; labtest.Skip is this gate).
//
//	func TestLabSomething(t *testing.T) {
//		labgate.Skip(t)
//		...
//	}
//
// Checks a test needs beyond these two (a binary on PATH, lab.Preflight) follow it.
// Lab tests still run one at a time on a machine, under the shared lock:
// flock /tmp/sitectl-lab.lock go test -count=1 -p 1 -run 'TestLab...' ./pkg/
package labgate

import (
	"os"
	"testing"
)

// Skip skips t under -short and when the test is not root.
func Skip(t testing.TB) {
	t.Helper()
	if why := reason(testing.Short(), os.Geteuid()); why != "" {
		t.Skip(why)
	}
}

func reason(short bool, euid int) string {
	switch {
	case short:
		return "lab test: needs the lab (network namespaces, dockerd, charon, PostgreSQL); skipped under -short"
	case euid != 0:
		return "lab test: needs root (network namespaces, dockerd); run it as root under flock /tmp/sitectl-lab.lock"
	}
	return ""
}
