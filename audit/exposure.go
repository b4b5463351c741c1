// Package audit checks a deployed environment like an attacker would, and reports
// findings with a severity, each naming the site, the object and the fix. It never
// reports "pass" for what it could not check: that is an "unknown" finding.
//
// This first part is the exposure probe (DESIGN.md decision 10): TCP connections
// from outside a site to its gateway's WAN address and to its LAN addresses routed
// through the gateway. Only Kong's published proxy ports on the edge nodes may
// answer.
package audit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels/firewall"
)

// Severities. Any high finding fails the audit (exit 1).
const (
	High   = "high"
	Medium = "medium"
	Info   = "info"
)

// Probe states.
const (
	Open     = "open"     // the connection was accepted
	Closed   = "closed"   // refused: the packet reached the host, nothing listens
	Filtered = "filtered" // no answer: dropped on the way
	Unknown  = "unknown"  // could not be probed from here (no route, ...)
)

// Finding is one result of the audit.
type Finding struct {
	Severity string `json:"severity"`
	Site     string `json:"site"`
	Object   string `json:"object"` // "10.10.0.12:5432/tcp"
	State    string `json:"state,omitempty"`
	What     string `json:"finding"`
	Fix      string `json:"fix,omitempty"`
}

// Report is the audit of the selected sites.
type Report struct {
	Env      string        `json:"environment"`
	From     string        `json:"probed_from"`
	Probes   int           `json:"probes"`
	Took     time.Duration `json:"took_ns"`
	Findings []Finding     `json:"findings"`
}

// Highs counts the high findings.
func (r *Report) Highs() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == High {
			n++
		}
	}
	return n
}

// Ports are the TCP ports probed on every address: SSH, Docker (plain and TLS),
// swarm, the stacks' services (PostgreSQL, MongoDB, Elasticsearch, Kibana, Grafana,
// Prometheus, exporters, Kong's proxy, admin and status ports).
var Ports = []int{22, 80, 443, 2375, 2376, 2377, 3000, 5432, 5601, 7946, 8000, 8001, 8100, 8443, 8444, 9090, 9100, 9200, 9300, 27017}

// Dialer opens a TCP connection from the audit's vantage point.
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

// Target is one address of a site to probe.
type Target struct {
	Site string
	Addr netip.Addr
	What string // "gateway WAN", "node douala-db1"
}

// Targets are a site's addresses seen from outside: its gateway's WAN address and
// its nodes' LAN addresses (reachable from the WAN only through the gateway).
func Targets(site *sites.Site) []Target {
	var out []Target
	if a, err := netip.ParseAddr(site.Gateway.WANAddress); err == nil {
		out = append(out, Target{Site: site.Name, Addr: a, What: "gateway WAN address"})
	}
	for _, n := range site.Nodes {
		if a, err := netip.ParseAddr(n.Address); err == nil {
			out = append(out, Target{Site: site.Name, Addr: a, What: "node " + n.Name})
		}
	}
	return out
}

// Exposure probes every target's Ports (plus the site's edge ports) through dial,
// at most parallel at once, each for timeout, and returns the findings: anything
// that answers but an edge port is high, a refused connection from outside medium
// (the host is reachable), an address it cannot reach from here high and
// "unknown".
func Exposure(ctx context.Context, topo *sites.Topology, selected []*sites.Site, dial Dialer, timeout time.Duration, parallel int) (findings []Finding, probes int, err error) {
	type job struct {
		t        Target
		port     int
		expected bool
		state    string
		err      error
	}
	var jobs []*job
	for _, s := range selected {
		edge, ports, err := firewall.EdgePorts(topo, s)
		if err != nil {
			return nil, 0, err
		}
		probe := slices.Clone(Ports)
		probe = append(probe, ports...)
		slices.Sort(probe)
		probe = slices.Compact(probe)
		for _, t := range Targets(s) {
			isEdge := slices.ContainsFunc(edge, func(p netip.Prefix) bool { return p.Contains(t.Addr) })
			for _, p := range probe {
				jobs = append(jobs, &job{t: t, port: p, expected: isEdge && slices.Contains(ports, p)})
			}
		}
	}
	if parallel < 1 {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, err := dial(dctx, net.JoinHostPort(j.t.Addr.String(), strconv.Itoa(j.port)))
			switch {
			case err == nil:
				c.Close()
				j.state = Open
			case errors.Is(err, syscall.ECONNREFUSED):
				j.state = Closed
			case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err):
				j.state = Filtered
			default:
				j.state, j.err = Unknown, err
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, len(jobs), err
	}
	unknown := map[string]bool{}
	for _, j := range jobs {
		obj := fmt.Sprintf("%s:%d/tcp", j.t.Addr, j.port)
		f := Finding{Site: j.t.Site, Object: obj, State: j.state}
		switch {
		case j.state == Open && j.expected:
			f.Severity, f.What = Info, fmt.Sprintf("Kong's published proxy port on %s answers from the WAN, as intended", j.t.What)
		case j.state == Open:
			f.Severity = High
			f.What = fmt.Sprintf("%s answers on TCP %d from outside the site", j.t.What, j.port)
			f.Fix = fmt.Sprintf("only Kong's proxy ports on the edge nodes may be reachable from the WAN: deploy the gateway firewall (gateway.firewall.enabled, `sitectl plan --site %s`) and do not publish this port on the WAN", j.t.Site)
		case j.state == Closed && j.expected:
			f.Severity, f.What = Medium, fmt.Sprintf("Kong's published proxy port on %s is reachable but nothing listens", j.t.What)
			f.Fix = "check the kong stack (`sitectl status`)"
		case j.state == Closed:
			f.Severity = Medium
			f.What = fmt.Sprintf("%s is reachable on TCP %d from outside (connection refused, not dropped)", j.t.What, j.port)
			f.Fix = fmt.Sprintf("the gateway should drop it: deploy the gateway firewall (`sitectl plan --site %s`)", j.t.Site)
		case j.state == Filtered && j.expected:
			f.Severity, f.What = Medium, fmt.Sprintf("Kong's published proxy port on %s does not answer from the WAN", j.t.What)
			f.Fix = "check the kong stack and the gateway firewall's edge rule"
		case j.state == Filtered:
			continue // the pass: dropped on the way
		default:
			key := j.t.Site + " " + j.t.Addr.String()
			if unknown[key] {
				continue // one finding per address
			}
			unknown[key] = true
			f.Severity, f.State, f.Object = High, Unknown, j.t.Addr.String()
			f.What = fmt.Sprintf("%s could not be probed from here: %v", j.t.What, j.err)
			f.Fix = "probe from a host outside the site with a route to it (the lab audit adds the routes in the WAN namespace)"
		}
		findings = append(findings, f)
	}
	return findings, len(jobs), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
