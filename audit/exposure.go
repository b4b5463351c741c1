// Package audit checks a deployed environment like an attacker would, and reports
// findings with a severity, each naming the site, the object and the fix. It never
// reports "pass" for what it could not check: that is an "unknown" finding.
//
// This first part is the exposure probe (docs/design.md decision 10): TCP connections
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
	"strings"
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

// UDPPorts are the UDP ports probed on every address: DNS, NTP, SNMP, IKE (500,
// 4500: expected on a gateway's WAN address, and only from its peer gateways), VXLAN
// (swarm's overlay data plane), swarm gossip, WireGuard.
var UDPPorts = []int{53, 123, 161, 500, 4500, 4789, 7946, 51820}

// IKEPorts are the UDP ports of IKE and its NAT traversal.
var IKEPorts = []int{500, 4500}

// Dialer opens a connection ("tcp" or "udp") from the audit's vantage point.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

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

// Exposure probes every target's TCP Ports (plus the site's edge ports) and
// UDPPorts through dial, at most parallel at once, each for timeout, and returns the
// findings: anything that answers but an edge port is high (IKE on a gateway's WAN
// address: medium, it should answer its peer gateways only), a refused connection
// from outside medium (the host is reachable), an address it cannot reach from here
// high and "unknown". A UDP port that stays silent is indistinguishable from a
// dropped one: silence is the pass for UDP, as a drop is for TCP.
func Exposure(ctx context.Context, topo *sites.Topology, selected []*sites.Site, dial Dialer, timeout time.Duration, parallel int) (findings []Finding, probes int, err error) {
	jobs, err := planProbes(topo, selected)
	if err != nil {
		return nil, 0, err
	}
	runProbes(ctx, jobs, dial, timeout, parallel)
	if err := ctx.Err(); err != nil {
		return nil, len(jobs), err
	}
	unknown := map[string]bool{}
	for _, j := range jobs {
		if j.state == Unknown {
			key := j.t.Site + " " + j.t.Addr.String()
			if unknown[key] {
				continue // one finding per address
			}
			unknown[key] = true
		}
		if f, ok := j.finding(); ok {
			findings = append(findings, f)
		}
	}
	return findings, len(jobs), nil
}

// probeJob is one port of one target to probe, and what the probe found.
type probeJob struct {
	t        Target
	proto    string
	port     int
	expected bool // an edge port that should answer from the WAN
	state    string
	err      error
}

// planProbes lists the probes of the selected sites: every target's TCP Ports plus
// the site's edge ports, and its UDPPorts.
func planProbes(topo *sites.Topology, selected []*sites.Site) ([]*probeJob, error) {
	var jobs []*probeJob
	for _, s := range selected {
		edge, ports, err := firewall.EdgePorts(topo, s)
		if err != nil {
			return nil, err
		}
		probe := slices.Clone(Ports)
		probe = append(probe, ports...)
		slices.Sort(probe)
		probe = slices.Compact(probe)
		for _, t := range Targets(s) {
			isEdge := slices.ContainsFunc(edge, func(p netip.Prefix) bool { return p.Contains(t.Addr) })
			for _, p := range probe {
				jobs = append(jobs, &probeJob{t: t, proto: "tcp", port: p, expected: isEdge && slices.Contains(ports, p)})
			}
			for _, p := range UDPPorts {
				jobs = append(jobs, &probeJob{t: t, proto: "udp", port: p})
			}
		}
	}
	return jobs, nil
}

// runProbes runs the probes, at most parallel at once, each for timeout.
func runProbes(ctx context.Context, jobs []*probeJob, dial Dialer, timeout time.Duration, parallel int) {
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
			j.probe(dctx, dial)
		}()
	}
	wg.Wait()
}

// probe sets j.state (and j.err when Unknown).
func (j *probeJob) probe(ctx context.Context, dial Dialer) {
	addr := net.JoinHostPort(j.t.Addr.String(), strconv.Itoa(j.port))
	if j.proto == "udp" {
		j.state, j.err = probeUDP(ctx, dial, addr, j.port)
		return
	}
	c, err := dial(ctx, "tcp", addr)
	switch {
	case err == nil:
		_ = c.Close() // a probe: the connection was opened, nothing was written
		j.state = Open
	case errors.Is(err, syscall.ECONNREFUSED):
		j.state = Closed
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err):
		j.state = Filtered
	default:
		j.state, j.err = Unknown, err
	}
}

// finding judges a probe; false when it is the pass (dropped, or silent for UDP).
func (j *probeJob) finding() (Finding, bool) {
	obj := fmt.Sprintf("%s:%d/%s", j.t.Addr, j.port, j.proto)
	proto := strings.ToUpper(j.proto)
	f := Finding{Site: j.t.Site, Object: obj, State: j.state}
	ike := j.proto == "udp" && slices.Contains(IKEPorts, j.port) && j.t.What == "gateway WAN address"
	switch {
	case j.state == Unknown:
		f.Severity, f.Object = High, j.t.Addr.String()
		f.What = fmt.Sprintf("%s could not be probed from here: %v", j.t.What, j.err)
		f.Fix = "probe from a host outside the site with a route to it (the lab audit adds the routes in the WAN namespace)"
	case j.state == Filtered && !j.expected:
		return Finding{}, false // the pass: dropped on the way (or, for UDP, silent)
	case ike:
		f.Severity = Medium
		f.What = fmt.Sprintf("the gateway's IKE port UDP %d answers a host that is not a peer gateway (%s)", j.port, j.state)
		f.Fix = fmt.Sprintf("IKE is expected only from peer gateways' WAN addresses: deploy the gateway firewall (`sitectl plan --site %s`); ignore this when the audit runs from a peer gateway", j.t.Site)
	case j.state == Open && j.expected:
		f.Severity, f.What = Info, fmt.Sprintf("Kong's published proxy port on %s answers from the WAN, as intended", j.t.What)
	case j.state == Open:
		f.Severity = High
		f.What = fmt.Sprintf("%s answers on %s %d from outside the site", j.t.What, proto, j.port)
		f.Fix = fmt.Sprintf("only Kong's proxy ports on the edge nodes may be reachable from the WAN: deploy the gateway firewall (gateway.firewall.enabled, `sitectl plan --site %s`) and do not publish this port on the WAN", j.t.Site)
	case j.state == Closed && j.expected:
		f.Severity, f.What = Medium, fmt.Sprintf("Kong's published proxy port on %s is reachable but nothing listens", j.t.What)
		f.Fix = "check the kong stack (`sitectl status`)"
	case j.state == Closed:
		f.Severity = Medium
		f.What = fmt.Sprintf("%s is reachable on %s %d from outside (refused, not dropped)", j.t.What, proto, j.port)
		f.Fix = fmt.Sprintf("the gateway should drop it: deploy the gateway firewall (`sitectl plan --site %s`)", j.t.Site)
	default: // an expected edge port that does not answer
		f.Severity, f.What = Medium, fmt.Sprintf("Kong's published proxy port on %s does not answer from the WAN", j.t.What)
		f.Fix = "check the kong stack and the gateway firewall's edge rule"
	}
	return f, true
}

// probeUDP sends one datagram (an IKE_SA_INIT header on the IKE ports, else a
// byte) on a connected socket and waits for the deadline: a reply is open, an ICMP
// port unreachable (ECONNREFUSED on the read) closed, silence filtered.
func probeUDP(ctx context.Context, dial Dialer, addr string, port int) (string, error) {
	c, err := dial(ctx, "udp", addr)
	if err != nil {
		return Unknown, err
	}
	defer func() { _ = c.Close() }() // a probe: its outcome is already read
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	if _, err := c.Write(udpPayload(port)); err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return Closed, nil
		}
		return Unknown, err
	}
	buf := make([]byte, 512)
	_, err = c.Read(buf)
	switch {
	case err == nil:
		return Open, nil
	case errors.Is(err, syscall.ECONNREFUSED):
		return Closed, nil
	case isTimeout(err) || errors.Is(err, context.DeadlineExceeded):
		return Filtered, nil
	}
	return Unknown, err
}

// udpPayload is what a UDP probe sends: on IKE's ports the 28-byte header of an
// IKEv2 IKE_SA_INIT request (RFC 7296 §3.1; on 4500 after the non-ESP marker), so a
// responder that parses it may answer; elsewhere one zero byte.
func udpPayload(port int) []byte {
	hdr := []byte{
		0x73, 0x69, 0x74, 0x65, 0x63, 0x74, 0x6c, 0x21, // initiator SPI
		0, 0, 0, 0, 0, 0, 0, 0, // responder SPI
		0,          // next payload: none
		0x20,       // version 2.0
		34,         // exchange: IKE_SA_INIT
		0x08,       // flags: initiator
		0, 0, 0, 0, // message ID
		0, 0, 0, 28, // length
	}
	switch port {
	case 500:
		return hdr
	case 4500:
		return append([]byte{0, 0, 0, 0}, hdr...)
	}
	return []byte{0}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
