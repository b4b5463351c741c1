// Command standin is the lab's stand-in for services no Debian package provides (Kong,
// Elasticsearch, Logstash, Kibana, Grafana, MongoDB, cAdvisor): one static binary,
// FROM scratch, that listens on the service's usual ports, answers its health checks
// and says everywhere that it is a stand-in. It is also a multi-call helper, chosen
// by the name it runs under: curl/wget (HTTP checks), sh -c (simple health check
// lines), kong/mongosh (their health commands), and docker-entrypoint.sh (the
// PostgreSQL image's first-start setup, see pg.go).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	os.Exit(dispatch(filepath.Base(os.Args[0]), os.Args[1:]))
}

func dispatch(name string, args []string) int {
	switch name {
	case "curl", "wget":
		return httpCheck(name, args)
	case "sh", "bash":
		return shell(args)
	case "kong":
		return tcpCheck("127.0.0.1:8000")
	case "mongosh", "mongo":
		return tcpCheck("127.0.0.1:27017")
	case "docker-entrypoint.sh", "pg-entrypoint":
		return pgEntrypoint(args)
	case "healthcheck":
		return healthcheck(args)
	case "sleep":
		return sleep(args)
	}
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return healthcheck(args[1:])
		case "curl", "wget", "sh", "kong", "mongosh", "pg-entrypoint", "sleep":
			return dispatch(args[0], args[1:])
		}
	}
	service := os.Getenv("STANDIN_SERVICE")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if _, ok := services[args[0]]; ok {
			service = args[0]
		}
	}
	if service == "" {
		fmt.Fprintln(os.Stderr, "standin: set STANDIN_SERVICE (one of "+strings.Join(serviceNames(), ", ")+")")
		return 2
	}
	if err := serve(service); err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		return 1
	}
	return 0
}
