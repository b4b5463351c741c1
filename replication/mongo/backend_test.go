package mongo

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sitectl/sitectl/internal/mongofake"
	"github.com/sitectl/sitectl/sites"
)

// backend is a replica set of fresh, uninitiated members the tests drive: the
// in-repo wire-protocol fake (always), or real mongod processes.
type backend struct {
	name  string
	hosts []string
	fake  *mongofake.Cluster // nil for real mongod: no partitions between members
}

// backends returns the fake, and real mongod when SITECTL_TEST_MONGO_URI names n
// fresh members (mongodb://h1,h2,h3) or mongod is on PATH.
type backendMaker struct {
	name string
	make func(t testing.TB) *backend
}

func backends(n int) []backendMaker {
	fake := func(t testing.TB) *backend {
		c, err := mongofake.NewCluster(n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return &backend{name: "fake", hosts: c.Hosts(), fake: c}
	}
	realBackend := func(t testing.TB) *backend {
		if uri := os.Getenv("SITECTL_TEST_MONGO_URI"); uri != "" {
			hosts := strings.Split(strings.TrimPrefix(strings.SplitN(uri, "/?", 2)[0], "mongodb://"), ",")
			if len(hosts) < n {
				t.Skipf("SITECTL_TEST_MONGO_URI names %d members; this test needs %d fresh ones", len(hosts), n)
			}
			return &backend{name: "mongod", hosts: hosts[:n]}
		}
		bin, err := exec.LookPath("mongod")
		if err != nil {
			t.Skip("no real mongod: mongod is not on PATH and SITECTL_TEST_MONGO_URI is not set")
		}
		return startMongod(t, bin, n)
	}
	return []backendMaker{{"fake", fake}, {"mongod", realBackend}}
}

func startMongod(t testing.TB, bin string, n int) *backend {
	b := &backend{name: "mongod"}
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		_, port, _ := net.SplitHostPort(addr)
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--replSet", "rs-sitectl", "--port", port, "--bind_ip", "127.0.0.1", "--dbpath", dir, "--oplogSize", "50", "--logpath", filepath.Join(dir, "log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				_ = c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("mongod on %s did not start", addr)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.hosts = append(b.hosts, addr)
	}
	return b
}

// topoOn loads the example sites and places their members on the backend's hosts:
// cloud, douala, yaounde get hosts[0..2]; extra hosts go to douala then yaounde.
func topoOn(t testing.TB, b *backend, mutate func(*sites.Topology)) *sites.Topology {
	topo := loadTopo(t, nil)
	order := []string{"cloud", "douala", "yaounde", "douala", "yaounde"}
	for _, s := range topo.Sites {
		s.Mongo.Members = nil
	}
	for i, h := range b.hosts {
		s := topo.Site(order[i])
		s.Mongo.Members = append(s.Mongo.Members, sites.MongoMember{Host: h})
	}
	if mutate != nil {
		mutate(topo)
	}
	return topo
}

// connTo returns a Conn for topo with short timeouts.
func connTo(t testing.TB, topo *sites.Topology) *Conn {
	c := NewConn(topo)
	c.Timeout = 3 * time.Second
	t.Cleanup(c.Close)
	return c
}

// deploySites plans and applies the mongo part for the sites in order.
func deploySites(ctx context.Context, t testing.TB, topo *sites.Topology, names ...string) {
	t.Helper()
	part := Part{Connect: func(tp *sites.Topology) *Conn { return connTo(t, tp) }}
	for _, n := range names {
		steps, err := part.Plan(ctx, topo, topo.Site(n))
		if err != nil {
			t.Fatalf("plan %s: %v", n, err)
		}
		for _, st := range steps {
			if st.Apply == nil {
				continue
			}
			if err := st.Apply(ctx); err != nil {
				t.Fatalf("apply %s %s: %v", n, st, err)
			}
		}
	}
}

func insertMajority(ctx context.Context, c *Conn, host string, doc bson.D) error {
	return c.InsertMajority(ctx, host, "drill", "rows", doc, 3*time.Second)
}
