package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sitectl/sitectl/lab/images"
	"github.com/sitectl/sitectl/stacks"
	djangoapi "github.com/sitectl/sitectl/stacks/django-api"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

func TestHealthAnswersSayStandin(t *testing.T) {
	cases := []struct {
		service, path, key string
	}{
		{"elasticsearch", "/_cluster/health", "status"},
		{"kibana", "/api/status", "status"},
		{"grafana", "/api/health", "database"},
		{"kong", "/status", "database"},
		{"logstash", "/", "status"},
	}
	for _, c := range cases {
		t.Run(c.service, func(t *testing.T) {
			srv := httptest.NewServer(handler(c.service, services[c.service], "h"))
			defer srv.Close()
			resp, err := http.Get(srv.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.Header.Get("X-Sitectl-Standin") != c.service {
				t.Errorf("header X-Sitectl-Standin = %q", resp.Header.Get("X-Sitectl-Standin"))
			}
			if _, ok := body[c.key]; !ok {
				t.Errorf("answer %v lacks %q", body, c.key)
			}
			id, _ := body["standin"].(map[string]any)
			if id["standin"] != true || id["service"] != c.service {
				t.Errorf("answer does not identify the stand-in: %v", body)
			}
		})
	}
	if got := services["elasticsearch"].answers["/_cluster/health"].(map[string]any)["status"]; got != "green" {
		t.Errorf("elasticsearch health = %v", got)
	}
}

// A real MongoDB driver connects to the stand-in and pings it; other commands fail
// with a message naming the stand-in.
func TestMongoStandinWithRealDriver(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	go func() { _ = serveMongo(l) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + l.Addr().String() + "/?directConnection=true&serverSelectionTimeoutMS=3000"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(ctx) }()
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatalf("ping the stand-in: %v", err)
	}
	err = c.Database("app").RunCommand(ctx, bson.D{{Key: "replSetGetStatus", Value: 1}}).Err()
	if err == nil || !strings.Contains(err.Error(), "stand-in") {
		t.Fatalf("replSetGetStatus = %v, want a not-supported error naming the stand-in", err)
	}
}

func TestShellAndCurlHelpers(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer bad.Close()
	cases := []struct {
		line string
		want int
	}{
		{"curl -f " + ok.URL, 0},
		{"curl -fsS " + bad.URL + " || exit 1", 1},
		{"wget -q -O - " + ok.URL + " && true", 0},
		{"false || curl -f " + ok.URL, 0},
		{"curl -f " + bad.URL + " && exit 0", 22},
	}
	for _, c := range cases {
		if got := shell([]string{"-c", c.line}); got != c.want {
			t.Errorf("sh -c %q = %d, want %d", c.line, got, c.want)
		}
	}
	if got := dispatch("curl", []string{"-f", ok.URL}); got != 0 {
		t.Errorf("curl ok = %d", got)
	}
}

// The entrypoint finds the template cluster where the image build puts it.
func TestPGTemplateMatchesTheImage(t *testing.T) {
	if pgTemplateDir != images.PGTemplateDir || pgTemplateUser != images.PGTemplateUser {
		t.Fatalf("entrypoint looks for %s (user %s), the image has %s (user %s)", pgTemplateDir, pgTemplateUser, images.PGTemplateDir, images.PGTemplateUser)
	}
}

// fakeClock advances only when slept on.
type fakeClock struct {
	now   time.Time
	slept []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(d time.Duration) {
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
}

// failing answers code to its first n requests, then 200; it counts them.
func failing(t *testing.T, n, code int) (*httptest.Server, *atomic.Int32) {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if int(seen.Add(1)) <= n {
			w.WriteHeader(code)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

// The stand-in's curl retries as curl does: transient answers (503) and, with
// --retry-connrefused, refused connections; not a 404; spaced by --retry-delay or
// curl's doubling backoff; no new attempt once --retry-max-time has passed.
func TestCurlRetries(t *testing.T) {
	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		return "http://" + addr + "/"
	}()
	cases := []struct {
		name     string
		fails    int // answers before the 200
		status   int
		args     string // URL appended
		url      string // instead of the server's
		want     int
		requests int32
		slept    []time.Duration
	}{
		{"no retry", 1, 503, "-fsS", "", 22, 1, nil},
		{"503 retried until 200", 2, 503, "-fsS --retry 3 --retry-delay 1", "", 0, 3, []time.Duration{time.Second, time.Second}},
		{"retries run out", 5, 503, "-f --retry 2 --retry-delay 1", "", 22, 3, []time.Duration{time.Second, time.Second}},
		{"doubling backoff", 5, 502, "-f --retry 3", "", 22, 4, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{"404 is not transient", 5, 404, "-f --retry 3 --retry-delay 1", "", 22, 1, nil},
		{"--retry-all-errors retries a 404", 1, 404, "-f --retry 3 --retry-delay 1 --retry-all-errors", "", 0, 2, []time.Duration{time.Second}},
		{"max time stops new attempts", 9, 503, "-f --retry 5 --retry-delay 1 --retry-max-time 2", "", 22, 3, []time.Duration{time.Second, time.Second}},
		{"without -f an error answer is exit 0", 1, 503, "-sS", "", 0, 1, nil},
		{"without -f a transient answer is still retried", 1, 503, "-sS --retry 2 --retry-delay 1", "", 0, 2, []time.Duration{time.Second}},
		{"refused, not retried", 0, 0, "-f --retry 2 --retry-delay 1", refused, 7, 0, nil},
		{"refused, retried with --retry-connrefused", 0, 0, "-f --retry 2 --retry-delay 1 --retry-connrefused", refused, 7, 0, []time.Duration{time.Second, time.Second}},
		{"a name that does not resolve is retried", 0, 0, "-f --retry 1 --retry-delay 1", "http://sitectl-test.invalid/", 6, 0, []time.Duration{time.Second}},
		{"-f inside a group whose last option takes the next word", 1, 503, "-sfo /dev/null", "", 22, 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, seen := failing(t, c.fails, c.status)
			url := c.url
			if url == "" {
				url = srv.URL + "/health"
			}
			req, err := parseHTTPCheck("curl", append(strings.Fields(c.args+" -o /dev/null"), url))
			if err != nil {
				t.Fatal(err)
			}
			clk := &fakeClock{now: time.Unix(0, 0)}
			var out strings.Builder
			if got := req.run(&out, clk); got != c.want {
				t.Errorf("exit %d, want %d (%s)", got, c.want, out.String())
			}
			if got := seen.Load(); got != c.requests {
				t.Errorf("%d requests, want %d", got, c.requests)
			}
			if !slices.Equal(clk.slept, c.slept) {
				t.Errorf("slept %v, want %v", clk.slept, c.slept)
			}
		})
	}
	req, err := parseHTTPCheck("curl", []string{"-fm5", "-sSo", "/dev/null", "-H", "X-A: b", "http://h/x"})
	if err != nil || req.url != "http://h/x" || !req.failHTTP || req.maxTime != 5*time.Second {
		t.Errorf("grouped short options: %+v, %v", req, err)
	}
	for _, bad := range []string{"--retry x", "--retry-delay soon", "--retry -1", "-m soon"} {
		if _, err := parseHTTPCheck("curl", append(strings.Fields(bad), "http://x/")); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// The django-api health check sitectl renders for the lab (healthcheck: curl)
// retries in the lab's image as it does with the real curl: an API whose database
// answers a moment after the check began is healthy at that check.
func TestRenderedAPIHealthCheckRetriesInTheLab(t *testing.T) {
	topo := stacktest.Load(t, "dev", "douala:values.django-api.healthcheck=curl")
	r, err := djangoapi.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
	if err != nil {
		t.Fatal(err)
	}
	test := stacktest.LoadCompose(t, r).Services[0].HealthCheck.Test
	if len(test) < 3 || test[0] != "CMD" || test[1] != "curl" {
		t.Fatalf("health test %q, want CMD curl ...", test)
	}
	srv, seen := failing(t, 2, 503)
	args := slices.Clone(test[2:])
	args[len(args)-1] = strings.Replace(args[len(args)-1], "http://127.0.0.1:8000", srv.URL, 1)
	req, err := parseHTTPCheck("curl", args)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: time.Unix(0, 0)}
	var out strings.Builder
	if got := req.run(&out, clk); got != 0 || seen.Load() != 3 {
		t.Fatalf("%q against an API that answers 503 twice: exit %d after %d requests, want 0 after 3 (%s)", test, got, seen.Load(), out.String())
	}
}

func TestSleep(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"0.01"}, 0},
		{[]string{"0"}, 0},
		{nil, 2},
		{[]string{"soon"}, 2},
		{[]string{"-1"}, 2},
		{[]string{"1", "2"}, 2},
		{[]string{"nan"}, 2},
		{[]string{"inf"}, 2},
		{[]string{"1e300"}, 2},
	} {
		if got := dispatch("sleep", tc.args); got != tc.want {
			t.Errorf("sleep %q: exit %d, want %d", tc.args, got, tc.want)
		}
	}
}

func TestAuthLocal(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"", "trust"},
		{"--auth-local=scram-sha-256 --auth-host=scram-sha-256", "scram-sha-256"},
		{"--data-checksums --auth-local peer", "peer"},
		{"--auth-host=scram-sha-256", "trust"},
	} {
		t.Setenv("POSTGRES_INITDB_ARGS", tc.args)
		if got := authLocal(); got != tc.want {
			t.Errorf("POSTGRES_INITDB_ARGS=%q: %q, want %q", tc.args, got, tc.want)
		}
	}
}
