package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/mongofake"
)

// service is what a stand-in pretends to be: its ports and health answers.
type service struct {
	version string
	http    []int // HTTP ports
	tcp     []int // plain TCP ports (accept and hold)
	mongo   []int // MongoDB wire protocol ports (hello/ping)
	// answers maps a path to the JSON it returns; "/" is the default.
	answers map[string]any
}

var services = map[string]service{
	"kong": {version: "3.6", http: []int{8000, 8001, 8100}, answers: map[string]any{
		"/status": map[string]any{"database": map[string]any{"reachable": true}, "server": map[string]any{"connections_active": 1}},
	}},
	"elasticsearch": {version: "8.13.4", http: []int{9200}, tcp: []int{9300}, answers: map[string]any{
		"/":                map[string]any{"cluster_name": "standin", "version": map[string]any{"number": "8.13.4"}, "tagline": "You Know, for Search (sitectl lab stand-in)"},
		"/_cluster/health": map[string]any{"cluster_name": "standin", "status": "green", "number_of_nodes": 1},
	}},
	"logstash": {version: "8.13.4", http: []int{9600}, tcp: []int{5044}, answers: map[string]any{
		"/": map[string]any{"status": "green", "version": "8.13.4"},
	}},
	"kibana": {version: "8.13.4", http: []int{5601}, answers: map[string]any{
		"/api/status": map[string]any{"status": map[string]any{"overall": map[string]any{"level": "available", "state": "green"}}},
	}},
	"grafana": {version: "11.1.0", http: []int{3000}, answers: map[string]any{
		"/api/health": map[string]any{"database": "ok", "version": "11.1.0"},
	}},
	"mongo": {version: "7.0", mongo: []int{27017}, http: []int{28017}},
	// cAdvisor has no Debian package; node-exporter and postgres-exporter are real
	// (lab/images, from prometheus-node-exporter and prometheus-postgres-exporter).
	"cadvisor": {version: "0.49.1", http: []int{8080}},
}

func serviceNames() []string {
	var out []string
	for k := range services {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ports returns the service's ports, overridden by STANDIN_PORTS ("8000,8001").
func ports(def []int, env string) []int {
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if p, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func serve(name string) error {
	svc, ok := services[name]
	if !ok {
		return fmt.Errorf("unknown service %q (known: %s)", name, strings.Join(serviceNames(), ", "))
	}
	if conf := os.Getenv("KONG_DECLARATIVE_CONFIG"); name == "kong" && conf != "" {
		return serveKong(conf) // routes the declarative kong.yml (kongproxy.go)
	}
	host, _ := os.Hostname()
	log.SetFlags(log.LstdFlags | log.LUTC)
	log.Printf("sitectl lab stand-in for %s %s on %s: NOT the real service", name, svc.version, host)
	errc := make(chan error, 8)
	for _, p := range ports(svc.http, "STANDIN_PORTS") {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: handler(name, svc, host), ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- srv.Serve(l) }()
		log.Printf("http on :%d", p)
	}
	for _, p := range svc.tcp {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			return err
		}
		go func() { errc <- acceptAndGreet(l, name) }()
		log.Printf("tcp on :%d", p)
	}
	for _, p := range svc.mongo {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			return err
		}
		if member := os.Getenv("SITECTL_MEMBER"); member != "" {
			// A replica set member (stacks/mongo): serve the wire-protocol fake, so
			// sitectl's reconcile and the drills have a replica set to talk to. It is
			// a test fake (internal/mongofake), not MongoDB.
			users, err := mongoUsers()
			if err != nil {
				return err
			}
			go func() { errc <- mongofake.ServeWith(l, member, mongofake.Options{Users: users}) }()
			log.Printf("mongodb wire protocol (sitectl's replica set fake, member %s) on :%d", member, p)
			continue
		}
		go func() { errc <- serveMongo(l) }()
		log.Printf("mongodb wire protocol (hello/ping only) on :%d", p)
	}
	return <-errc
}

// identity is in every answer, so nobody mistakes a stand-in for the service.
func identity(name string, svc service, host string) map[string]any {
	return map[string]any{"service": name, "version": svc.version, "standin": true, "host": host,
		"note": "sitectl lab stand-in: answers health checks only"}
}

func handler(name string, svc service, host string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sitectl-Standin", name)
		if r.URL.Path == "/metrics" {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			fmt.Fprintf(w, "# HELP standin_up A sitectl lab stand-in is running.\n# TYPE standin_up gauge\nstandin_up{service=%q} 1\n", name)
			return
		}
		var body any = map[string]any{"status": "ok"}
		if a, ok := svc.answers[r.URL.Path]; ok {
			body = a
		} else if a, ok := svc.answers["/"]; ok && r.URL.Path == "/" {
			body = a
		}
		out := map[string]any{}
		if m, ok := body.(map[string]any); ok {
			for k, v := range m {
				out[k] = v
			}
		}
		out["standin"] = identity(name, svc, host)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

func acceptAndGreet(l net.Listener, name string) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer func() { _ = c.Close() }()
			fmt.Fprintf(c, "sitectl lab stand-in for %s\n", name)
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
}

// mongoUsers reads the root user the mongo image would create on first start.
func mongoUsers() (map[string]string, error) {
	user := os.Getenv("MONGO_INITDB_ROOT_USERNAME")
	if user == "" {
		return nil, nil
	}
	pw := os.Getenv("MONGO_INITDB_ROOT_PASSWORD")
	if f := os.Getenv("MONGO_INITDB_ROOT_PASSWORD_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("mongo root password: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	return map[string]string{user: pw}, nil
}
