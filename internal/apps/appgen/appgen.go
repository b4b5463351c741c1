// Package appgen writes generated operator apps for benchmarks and tests: n folders
// gen00, gen01, … each with a compose file and a config file, like an operator's
// apps. No Go code names them; they are what "adding an app is adding a folder"
// looks like at scale (the 20-app benchmarks of deploy and cmd/sitectl).
package appgen

import (
	"fmt"
	"os"
	"path/filepath"
)

// Options says how the apps are written.
type Options struct {
	// Image is every app's image; empty: registry.example.com/gen/<name>:1.0.<i>
	// (a reference no engine has: for plans only).
	Image string
	// Port is the container port each app's service listens on and Kong sends its
	// route to (default 8080). The lab's stand-in image serves it when Image is one.
	Port int
	// FirstPublished is the host port the first app's metrics port is published
	// at; app i gets FirstPublished+i (default 19200).
	FirstPublished int
}

// Where the apps run, in turn: app i runs at Where[i%3].
var Where = []string{"all", "hub", "spokes"}

// Write writes n apps into the folder dir (made if missing): app i, named
// gen<i>, is a web service with a config file, a health check, a route /gen<i> and
// a published metrics port, running at every site, the hub or the spokes in turn.
func Write(dir string, n int, o Options) error {
	if o.Port == 0 {
		o.Port = 8080
	}
	if o.FirstPublished == 0 {
		o.FirstPublished = 19200
	}
	for i := range n {
		name := fmt.Sprintf("gen%02d", i)
		image := o.Image
		if image == "" {
			image = fmt.Sprintf("registry.example.com/gen/%s:1.0.%d", name, i)
		}
		compose := fmt.Sprintf(`version: "3.8"
services:
  web:
    image: %s
    configs:
      - source: settings
        target: /etc/%s/settings.json
    environment:
      APP_NAME: %s
      STANDIN_SERVICE: cadvisor
      STANDIN_PORTS: "%d"
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:%d/"]
      interval: 5s
      timeout: 3s
      retries: 3
    deploy:
      update_config: {order: stop-first, failure_action: rollback}
configs:
  settings:
    file: ./settings.json
x-sitectl:
  port: %d
  sites: %s
  replicas: 1
  health: {liveness: /healthz, readiness: /healthz}
  metrics: {port: %d, published: %d}
  routes:
    - path: /%s
`, image, name, name, o.Port, o.Port, o.Port, Where[i%len(Where)], o.Port, o.FirstPublished+i, name)
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			return err
		}
		for f, body := range map[string]string{"compose.yaml": compose, "settings.json": fmt.Sprintf(`{"app": %q, "n": %d}`+"\n", name, i)} {
			if err := os.WriteFile(filepath.Join(dir, name, f), []byte(body), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
