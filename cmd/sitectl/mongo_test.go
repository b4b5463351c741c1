package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/internal/mongofake"
	"github.com/sitectl/sitectl/replication/mongo"
	"github.com/sitectl/sitectl/sites"
)

func TestMongoAnalyzeGolden(t *testing.T) {
	dir := exampleConfig(t, nil)
	out, _, err := run(t, nil, "mongo", "analyze", "--config-dir", dir, "--env", "production")
	if err != nil {
		t.Fatal(err)
	}
	golden.AssertString(t, "mongo-analyze-production.golden", out)
}

// TestMongoStatusAndAuthoritative runs `mongo status` and `mongo
// declare-authoritative` against the wire-protocol fake replica set.
func TestMongoStatusAndAuthoritative(t *testing.T) {
	c, err := mongofake.NewCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := c.Hosts()
	// The fake cluster runs without users: connect unauthenticated.
	overlay := fmt.Sprintf("all:\n  mongo:\n    user: \"\"\nsites:\n  cloud:\n    mongo:\n      members: [{host: %q, priority: 2}]\n  douala:\n    mongo:\n      members: [{host: %q}]\n  yaounde:\n    mongo:\n      members: [{host: %q}]\n", h[0], h[1], h[2])
	dir := exampleConfig(t, map[string]string{"env/mgtest.yaml": overlay})
	args := []string{"--config-dir", dir, "--env", "mgtest", "-q"}

	topo, err := sites.Load(sites.Options{Dir: dir, Env: "mgtest", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range topo.Sites {
		steps, err := mongo.Part{}.Plan(ctx, topo, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range steps {
			if st.Apply != nil {
				if err := st.Apply(ctx); err != nil {
					t.Fatalf("%s %s: %v", s.Name, st, err)
				}
			}
		}
	}

	out, _, err := run(t, nil, append(args, "mongo", "status")...)
	if err != nil {
		t.Fatal(err)
	}
	if last := lastLine(out); !strings.HasPrefix(last, "✓ replica set") {
		t.Errorf("healthy set: last line %q", last)
	}
	for _, want := range []string{"primary " + h[0], "PRIMARY", "SECONDARY", "majority (global)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, nil, append(args, "mongo", "status", "-o", "json")...)
	if err != nil || !strings.Contains(out, `"oplog_window_hours"`) {
		t.Errorf("status json: %v\n%s", err, out)
	}

	// douala reaches the primary: nothing to force.
	_, _, err = run(t, nil, append(args, "mongo", "declare-authoritative", "--site", "douala", "--i-understand-rollback")...)
	if err == nil || !strings.Contains(err.Error(), "already reaches the primary") {
		t.Errorf("authoritative with a primary: %v", err)
	}
	// Cloud lost: douala alone has no primary; without the flag nothing happens.
	c.SetDown(h[0], true)
	c.Cut(h[1], h[2])
	out, _, err = run(t, nil, append(args, "mongo", "status")...)
	if err == nil || exitCode(err) != 1 || !strings.HasPrefix(lastLine(out), "✗ replica set") || !strings.Contains(lastLine(out), "no primary") {
		t.Errorf("status with no primary: err %v, last line %q", err, lastLine(out))
	}
	if _, errOut, err := run(t, nil, append(args, "mongo", "status", "-o", "json")...); err == nil || !strings.Contains(errOut, "✗ replica set") {
		t.Errorf("status -o json with no primary: err %v, stderr %q", err, errOut)
	}
	out, _, err = run(t, nil, append(args, "mongo", "declare-authoritative", "--site", "douala")...)
	if err == nil || exitCode(err) != 1 || !strings.Contains(out, "ROLLED BACK") {
		t.Fatalf("without --i-understand-rollback: err %v\n%s", err, out)
	}
	if c.Primary() != "" {
		t.Fatalf("a primary (%s) appeared without the flag", c.Primary())
	}
	_, _, err = run(t, nil, append(args, "mongo", "declare-authoritative", "--site", "douala", "--i-understand-rollback")...)
	if err != nil {
		t.Fatal(err)
	}
	if c.Primary() != h[1] {
		t.Errorf("primary %q after declaring douala authoritative, want %s", c.Primary(), h[1])
	}
}
