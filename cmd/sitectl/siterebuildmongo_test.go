package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/mongofake"
	"github.com/sitectl/sitectl/replication/mongo"
	"github.com/sitectl/sitectl/sites"
)

// TestSiteRebuildMongo runs `site rebuild --mongo` against the wire-protocol fake
// replica set (no mongod here) with no PostgreSQL answering: the MongoDB part is
// planned first, so a site whose member still answers is refused naming it before
// any database is contacted; once the member is lost the MongoDB part plans and the
// PostgreSQL part is next (and fails here, as no database answers).
func TestSiteRebuildMongo(t *testing.T) {
	c, err := mongofake.NewCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := c.Hosts()
	overlay := fmt.Sprintf("all:\n  mongo:\n    user: \"\"\nsites:\n  cloud:\n    mongo:\n      members: [{host: %q, priority: 2}]\n  douala:\n    mongo:\n      members: [{host: %q}]\n  yaounde:\n    mongo:\n      members: [{host: %q}]\n", h[0], h[1], h[2])
	dir := exampleConfig(t, map[string]string{"env/mgtest.yaml": overlay})
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
	env := []string{"SITECTL_PG_PASSWORD=x"}
	args := []string{"--config-dir", dir, "--env", "mgtest", "-q", "--set", "postgres.host=127.0.0.1", "--set", "postgres.port=1", "site", "rebuild", "douala", "--dry-run"}

	_, _, err = run(t, env, append(args, "--i-understand-rollback")...)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "needs --mongo") {
		t.Errorf("--i-understand-rollback without --mongo: %v", err)
	}
	_, _, err = run(t, env, append(args, "--mongo")...)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), h[1]+" answers as SECONDARY") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("--mongo with douala's member healthy: %v, want a refusal naming %s", err, h[1])
	}
	c.Wipe(h[1])
	_, _, err = run(t, env, append(args, "--mongo")...)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "every replicating site's database must answer") {
		t.Errorf("--mongo with douala's member lost: %v, want the MongoDB part planned and PostgreSQL's refusal next", err)
	}
}

// TestMongoRebuildSummary: the rebuild's MongoDB line names each reconfig's path
// and each vote the rebuild kept, with why.
func TestMongoRebuildSummary(t *testing.T) {
	if got := mongoRebuildSummary(nil); got != "" {
		t.Errorf("without --mongo: %q", got)
	}
	mr := &mongo.Rebuild{Site: "cloud", Kept: []mongo.KeptVote{{Member: "10.30.0.11:27017", Reason: "its mongod is back and answers as PRIMARY"}}}
	got := mongoRebuildSummary(mr)
	for _, want := range []string{"no reconfig", "vote kept by 10.30.0.11:27017: its mongod is back and answers as PRIMARY"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	mr = &mongo.Rebuild{Site: "douala", Reconfigs: []mongo.Reconfig{{Member: "10.10.0.12:27017", Path: mongo.PathReconfig, On: "10.30.0.11:27017"}}}
	if got := mongoRebuildSummary(mr); !strings.Contains(got, "1 reconfig(s)") || !strings.Contains(got, "10.10.0.12:27017 reconfig on 10.30.0.11:27017") || strings.Contains(got, "kept") {
		t.Errorf("summary %q", got)
	}
}
