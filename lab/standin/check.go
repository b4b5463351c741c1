package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// httpCheck is enough of curl/wget for health checks: GET the URL argument, exit 0 on
// a 2xx answer; -o/-O/--output and other flags are accepted and ignored.
func httpCheck(name string, args []string) int {
	url := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "-O" || a == "--output" || a == "-m" || a == "--max-time" || a == "-H" || a == "-T" || a == "--timeout":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			url = a
		}
	}
	if url == "" {
		fmt.Fprintf(os.Stderr, "%s (sitectl lab stand-in): no URL\n", name)
		return 2
	}
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 7
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(os.Stderr, "%s: %s: %s\n", name, url, resp.Status)
		return 22
	}
	return 0
}

func tcpCheck(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c.Close()
	return 0
}

// healthcheck checks the running service's first port ("healthcheck" or "check").
func healthcheck(args []string) int {
	name := os.Getenv("STANDIN_SERVICE")
	if len(args) > 0 {
		name = args[0]
	}
	svc, ok := services[name]
	if !ok {
		fmt.Fprintln(os.Stderr, "healthcheck: unknown service", name)
		return 2
	}
	switch {
	case len(svc.http) > 0:
		return httpCheck("healthcheck", []string{fmt.Sprintf("http://127.0.0.1:%d/", ports(svc.http, "STANDIN_PORTS")[0])})
	case len(svc.mongo) > 0:
		return tcpCheck(fmt.Sprintf("127.0.0.1:%d", svc.mongo[0]))
	}
	return 0
}

// shell runs `sh -c "<line>"` for the simple lines health checks use: commands
// joined by && and ||, each one of the helpers above; `exit N` and `true`/`false`.
func shell(args []string) int {
	if len(args) < 2 || args[0] != "-c" {
		fmt.Fprintln(os.Stderr, "sh (sitectl lab stand-in): only `sh -c \"cmd [&& cmd] [|| cmd]\"` is supported")
		return 2
	}
	code := 0
	op := ""
	for _, tok := range splitOps(args[1]) {
		if tok == "&&" || tok == "||" {
			op = tok
			continue
		}
		if (op == "&&" && code != 0) || (op == "||" && code == 0) {
			continue
		}
		f := strings.Fields(tok)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "exit":
			if len(f) > 1 && f[1] != "0" {
				return 1
			}
			return code
		case "true":
			code = 0
		case "false":
			code = 1
		default:
			for i := range f {
				f[i] = strings.Trim(f[i], `'"`)
			}
			base := f[0][strings.LastIndex(f[0], "/")+1:]
			code = dispatch(base, f[1:])
		}
	}
	return code
}

func splitOps(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "&&")
		j := strings.Index(s, "||")
		k := i
		if k < 0 || (j >= 0 && j < k) {
			k = j
		}
		if k < 0 {
			return append(out, s)
		}
		out = append(out, s[:k], s[k:k+2])
		s = s[k+2:]
	}
}
