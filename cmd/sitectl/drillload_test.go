package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/traffic"
)

// TestPrintAvailabilityErrorsAndFailover: the text report of a drill with --load
// prints each phase's errors by kind (most frequent first) and the failover the
// clients saw, not only the JSON.
func TestPrintAvailabilityErrorsAndFailover(t *testing.T) {
	var out bytes.Buffer
	printAvailability(&globals{streams: Streams{Out: &out}}, []traffic.Availability{
		{Site: "douala", Phase: "before", Requests: 224, OK: 195, Success: 195.0 / 224,
			ServedBy: map[string]int{"douala": 100, "cloud": 95},
			Errors:   map[string]int{"timeout": 14, "http 500": 22, "http 503": 22},
			Failover: &traffic.Failover{Peer: "cloud", Detection: 180 * time.Millisecond, Requests: 113, OK: 91, Success: 91.0 / 113}},
		{Site: "cloud", Phase: "before", Requests: 224, OK: 224, Success: 1, ServedBy: map[string]int{"cloud": 224}},
	})
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 4 || !strings.Contains(lines[1], "ERRORS") || !strings.Contains(lines[1], "FAILOVER") {
		t.Fatalf("no ERRORS and FAILOVER columns:\n%s", out.String())
	}
	if !strings.Contains(lines[2], "http 500×22, http 503×22, timeout×14") {
		t.Errorf("douala's errors by kind, most frequent first, missing:\n%s", out.String())
	}
	if !strings.Contains(lines[2], "cloud after 180ms: 91/113 (80.53%)") {
		t.Errorf("douala's failover missing:\n%s", out.String())
	}
	if f := strings.Fields(lines[3]); f[len(f)-1] != "-" || f[len(f)-2] != "-" {
		t.Errorf("cloud (no error, no failover) should show dashes:\n%s", out.String())
	}
}
