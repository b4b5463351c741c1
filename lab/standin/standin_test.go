package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sitectl/sitectl/lab/images"
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
			defer resp.Body.Close()
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
	defer l.Close()
	go func() { _ = serveMongo(l) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + l.Addr().String() + "/?directConnection=true&serverSelectionTimeoutMS=3000"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatalf("ping the stand-in: %v", err)
	}
	err = c.Database("app").RunCommand(ctx, bson.D{{Key: "replSetGetStatus", Value: 1}}).Err()
	if err == nil || !strings.Contains(err.Error(), "stand-in") {
		t.Fatalf("replSetGetStatus = %v, want a not-supported error naming the stand-in", err)
	}
}

func TestShellAndCurlHelpers(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
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
