package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/lab"
)

func TestLabStatusTextGolden(t *testing.T) {
	st := &lab.Status{
		Prefix: "sl", StateDir: "/var/lib/sitectl/lab-sl", Up: true, MemoryMiB: 167,
		StartedAt: time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC),
		WAN:       lab.NamespaceStatus{Name: "sl-wan", Exists: true},
		Sites: []lab.SiteStatus{{
			Name: "douala", LAN: "10.10.0.0/24",
			Gateway:  lab.GatewayStatus{Namespace: "sl-douala-gw", WANAddress: "198.51.100.10/24", LANAddress: "10.10.0.1/24", Charon: "charon 5.9.8", SAs: 1},
			Postgres: lab.DatabaseStatus{Address: "10.10.0.12:5432", State: "accepting"},
			Nodes: []lab.EngineStatus{
				{Node: "douala-app1", Namespace: "sl-douala-app1", Address: "10.10.0.11/24", Version: "20.10.24", SwarmRole: "manager", NodeState: "ready", Labels: map[string]string{"site": "douala", "role": "app"}, Containers: 3},
				{Node: "douala-db1", Namespace: "sl-douala-db1", Address: "10.10.0.12/24", Error: "not answering: connection refused"},
			},
		}},
		Receiver: &lab.ReceiverStatus{URL: "http://10.30.0.11:19093", PID: 4242, State: "answering"},
		Images: []lab.Image{
			{Logical: "postgres", Ref: "sitectl-lab/postgres:15", Real: true, Source: "Debian postgresql-15"},
			{Logical: "kong", Ref: "sitectl-lab/kong:standin", Source: "lab/standin"},
		},
	}
	var out bytes.Buffer
	printLabStatus(&globals{streams: Streams{Out: &out}}, st)
	golden.Assert(t, "lab-status.golden", out.Bytes())
	if !strings.Contains(out.String(), "stand-in") || !strings.Contains(out.String(), "real") {
		t.Error("status does not say which images are real and which are stand-ins")
	}
}

func TestLabExecUnknownTarget(t *testing.T) {
	_, _, err := run(t, []string{"SITECTL_LAB_DIR=" + t.TempDir()}, "lab", "exec", "douala", "--", "true")
	if err == nil || !strings.Contains(err.Error(), "no lab is up") {
		t.Fatalf("lab exec with no lab: %v", err)
	}
}
