package postgres

import (
	"context"
	"testing"
	"time"
)

// A publisher whose server stops after its subscriber's deploy re-enabled the
// flow (the lab's stacks-render test: douala's database service removed, and its
// old server still answering when `deploy --all` starts) leaves that flow disabled:
// PostgreSQL 15 disables a subscription with disable_on_error on a lost
// connection, and the subscriber's deploy, already past its Wait, does not look
// again. The publisher's own deploy, whose replication part runs once its server
// is the final one, re-enables it: deploy --all ends with every flow streaming.
func TestLabPublisherStopsAfterSubscriberDeploy(t *testing.T) {
	ctx := context.Background()
	l := startLab(t)
	if err := l.plan(ctx).Apply(ctx, nil); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	l.waitStreaming(30 * time.Second)
	const sub = "sitectl_douala_to_cloud"
	// dropConn drops cloud's replication connection to douala's server, as a stop
	// of that server does, and waits until cloud disabled the subscription for it.
	dropConn := func(when string) {
		t.Helper()
		l.proxies["douala"].CutApps(sub)
		defer l.heal()
		deadline := time.Now().Add(30 * time.Second)
		for l.flow(l.status(), "douala", "cloud").State != StateDisabledBy {
			if time.Now().After(deadline) {
				t.Fatalf("%s: douala → cloud not disabled 30s after its connection dropped:\n%s", when, l.statusText())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// deploySite is the replication part of one site's deploy: plan, apply, Wait.
	part := NewPart(Options{Wait: 45 * time.Second})
	t.Cleanup(part.Close)
	deploySite := func(name string) {
		t.Helper()
		site := l.topo.Site(name)
		steps, err := part.Plan(ctx, l.topo, site)
		if err != nil {
			t.Fatalf("%s: plan: %v", name, err)
		}
		for _, st := range steps {
			if st.Apply == nil {
				continue
			}
			if err := st.Apply(ctx); err != nil {
				t.Fatalf("%s: %s: %v", name, st, err)
			}
		}
		if err := part.Wait(ctx, l.topo, site); err != nil {
			t.Fatalf("%s: wait: %v\n%s", name, err, l.statusText())
		}
	}

	dropConn("douala's database removed")
	deploySite("cloud") // re-enables douala → cloud and sees it stream
	dropConn("douala's old server stopping after cloud's deploy")
	deploySite("douala")
	if f := l.flow(l.status(), "douala", "cloud"); f.State != StateStreaming && f.State != StateCatchingUp {
		t.Errorf("after douala's deploy, douala → cloud is %s (apply errors %d), want streaming:\n%s", f.State, f.ApplyErrors, l.statusText())
	}
	l.waitStreaming(30 * time.Second)
}
