package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// httpCheck is enough of curl/wget for health checks: GET the URL argument and exit 0
// on an answer (curl without -f: any HTTP answer; curl -f: below 400, else 22; wget
// and the healthcheck helper: a 2xx). curl's retry flags behave as curl's own
// (--retry N, --retry-delay S, --retry-max-time S, --retry-connrefused,
// --retry-all-errors), so a health check that retries in production retries in the
// lab too; -m/--max-time bounds each attempt. Other flags are accepted and ignored.
func httpCheck(name string, args []string) int {
	req, err := parseHTTPCheck(name, args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s (sitectl lab stand-in): %v\n", name, err)
		return 2
	}
	return req.run(os.Stderr, realClock{})
}

// clock is the time the retries see (a test's is fake).
type clock interface {
	Now() time.Time
	Sleep(time.Duration)
}

type realClock struct{}

func (realClock) Now() time.Time        { return time.Now() }
func (realClock) Sleep(d time.Duration) { time.Sleep(d) }

// curlArgLetters are curl's short options that take an argument.
const curlArgLetters = "AbcCdeEFHKmoQrtTuUwxXyYz"

// httpCheckReq is one parsed curl/wget command line.
type httpCheckReq struct {
	name, url      string
	failHTTP       bool          // a 4xx/5xx answer fails the command (curl -f; wget)
	maxTime        time.Duration // per attempt
	retries        int
	retryDelay     time.Duration // 0: curl's doubling backoff from 1s
	retryMaxTime   time.Duration // 0: no limit
	retryRefused   bool
	retryAllErrors bool
}

func parseHTTPCheck(name string, args []string) (*httpCheckReq, error) {
	r := &httpCheckReq{name: name, failHTTP: name != "curl", maxTime: 5 * time.Second}
	secs := func(flag, v string) (time.Duration, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return 0, fmt.Errorf("%s %q: want seconds", flag, v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := ""
		if i+1 < len(args) {
			next = args[i+1]
		}
		var err error
		if name == "curl" && len(a) > 1 && a[0] == '-' && a[1] != '-' {
			// A group of short options (-fsS, -sfo FILE, -m5): the first letter
			// that takes an argument takes the rest of the group, or the next word.
			for k := 1; k < len(a); k++ {
				if c := a[k]; strings.IndexByte(curlArgLetters, c) >= 0 {
					val := a[k+1:]
					if val == "" {
						val, i = next, i+1
					}
					if c == 'm' {
						r.maxTime, err = secs("-m", val)
					}
					break
				} else if c == 'f' {
					r.failHTTP = true
				}
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		switch a {
		case "--output", "--header", "--timeout", "--connect-timeout", "--user-agent":
			i++
		case "-o", "-O", "-H", "-T", "-A", "-U", "-t": // wget's (curl's are parsed above)
			i++
		case "--max-time":
			i++
			if name == "curl" {
				r.maxTime, err = secs(a, next)
			}
		case "--retry":
			i++
			r.retries, err = strconv.Atoi(next)
			if err != nil || r.retries < 0 {
				err = fmt.Errorf("--retry %q: want a count", next)
			}
		case "--retry-delay":
			i++
			r.retryDelay, err = secs(a, next)
		case "--retry-max-time":
			i++
			r.retryMaxTime, err = secs(a, next)
		case "--retry-connrefused":
			r.retryRefused = true
		case "--retry-all-errors":
			r.retryAllErrors = true
		case "--fail", "--fail-with-body":
			r.failHTTP = true
		default:
			switch {
			case strings.HasPrefix(a, "--"):
			case strings.HasPrefix(a, "-"):
			default:
				r.url = a
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if r.url == "" {
		return nil, fmt.Errorf("no URL")
	}
	if !strings.Contains(r.url, "://") {
		r.url = "http://" + r.url
	}
	return r, nil
}

// run makes the attempts, as curl spaces them on clk; it reports on w.
func (r *httpCheckReq) run(w io.Writer, clk clock) int {
	c := &http.Client{Timeout: r.maxTime}
	start := clk.Now()
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		code, transient := r.once(c, w)
		if attempt >= r.retries || (!transient && (code == 0 || !r.retryAllErrors)) ||
			(r.retryMaxTime > 0 && clk.Now().Sub(start) >= r.retryMaxTime) {
			return code
		}
		d := r.retryDelay
		if d == 0 {
			d, backoff = backoff, min(2*backoff, 10*time.Minute)
		}
		fmt.Fprintf(w, "%s: retry %d of %d in %s\n", r.name, attempt+1, r.retries, d)
		clk.Sleep(d)
	}
}

// once is one attempt: its exit code, and whether curl counts the answer as
// transient (a timeout; HTTP 408, 429, 500, 502, 503, 504; a refused connection with
// --retry-connrefused).
func (r *httpCheckReq) once(c *http.Client, w io.Writer) (code int, transient bool) {
	resp, err := c.Get(r.url)
	if err != nil {
		fmt.Fprintf(w, "%s: %v\n", r.name, err)
		var ne net.Error
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr):
			return 6, true // curl retries a name that does not resolve (yet)
		case errors.As(err, &ne) && ne.Timeout():
			return 28, true
		case errors.Is(err, syscall.ECONNREFUSED):
			return 7, r.retryRefused
		}
		return 7, false
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	transient = slices.Contains([]int{408, 429, 500, 502, 503, 504}, resp.StatusCode)
	bad := resp.StatusCode >= 400
	if r.name != "curl" {
		bad = resp.StatusCode/100 != 2
	}
	if !bad {
		return 0, false
	}
	if !r.failHTTP {
		// curl without -f: an HTTP error answer is a transfer that worked (exit 0),
		// though --retry still retries a transient one.
		return 0, transient
	}
	fmt.Fprintf(w, "%s: %s: %s\n", r.name, r.url, resp.Status)
	if r.name == "wget" {
		return 8, transient
	}
	return 22, transient
}

func tcpCheck(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = c.Close()
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

// sleep is coreutils' `sleep SECONDS` (a decimal number, one argument): the real
// images' health checks (the postgres stack's retry loop) need it, and the lab
// images carry only dash and this binary.
func sleep(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "sleep (sitectl lab stand-in): usage: sleep SECONDS")
		return 2
	}
	secs, err := strconv.ParseFloat(args[0], 64)
	if err != nil || secs < 0 || math.IsNaN(secs) || secs > float64(math.MaxInt64)/float64(time.Second) {
		fmt.Fprintf(os.Stderr, "sleep (sitectl lab stand-in): invalid time interval %q\n", args[0])
		return 2
	}
	time.Sleep(time.Duration(secs * float64(time.Second)))
	return 0
}
