package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/sites"
)

// Status is what `sitectl lab status` shows.
type Status struct {
	Prefix     string          `json:"prefix"`
	StateDir   string          `json:"state_dir"`
	Up         bool            `json:"up"`
	Problem    string          `json:"problem,omitempty"`
	WAN        NamespaceStatus `json:"wan"`
	Sites      []SiteStatus    `json:"sites"`
	Images     []Image         `json:"images"`
	MemoryMiB  float64         `json:"memory_mib"`
	StartedAt  time.Time       `json:"started_at"`
	ConfigDir  string          `json:"config_dir"`
	EnvOverlay string          `json:"env_overlay"`
	// Receiver is the alert receiver (nil when the lab has no hub).
	Receiver *ReceiverStatus `json:"alert_receiver,omitempty"`
}

// ReceiverStatus is the lab's alert receiver.
type ReceiverStatus struct {
	URL   string `json:"url"`
	PID   int    `json:"pid"`
	State string `json:"state"` // answering | not answering: ...
}

// NamespaceStatus says whether a namespace exists.
type NamespaceStatus struct {
	Name   string `json:"name"`
	Exists bool   `json:"exists"`
}

// SiteStatus is one site of the lab.
type SiteStatus struct {
	Name    string        `json:"name"`
	Gateway GatewayStatus `json:"gateway"`
	// Postgres is the site's database address (postgres.host:port of the lab
	// environment) and whether it accepts connections from the gateway namespace.
	Postgres DatabaseStatus  `json:"postgres"`
	Nodes    []EngineStatus  `json:"nodes"`
	NS       NamespaceStatus `json:"namespace"`
	LAN      string          `json:"lan"`
}

// GatewayStatus is a site's gateway: its namespace, addresses and charon.
type GatewayStatus struct {
	Namespace  string `json:"namespace"`
	WANAddress string `json:"wan_address"`
	LANAddress string `json:"lan_address"`
	Vici       string `json:"vici"`
	Charon     string `json:"charon"` // version, or the error
	CharonPID  int    `json:"charon_pid"`
	SAs        int    `json:"ike_sas"`
}

// DatabaseStatus says whether a site's database accepts TCP connections.
type DatabaseStatus struct {
	Address string `json:"address"`
	State   string `json:"state"` // accepting | not deployed (connection refused) | error
}

// EngineStatus is one node's engine.
type EngineStatus struct {
	Node       string            `json:"node"`
	Namespace  string            `json:"namespace"`
	Address    string            `json:"address"`
	Engine     string            `json:"engine"`
	PID        int               `json:"pid"`
	Version    string            `json:"version,omitempty"`
	SwarmRole  string            `json:"swarm_role,omitempty"` // manager | worker | none
	NodeState  string            `json:"node_state,omitempty"` // ready | down | ...
	Labels     map[string]string `json:"labels,omitempty"`
	Containers int               `json:"containers"`
	Images     int               `json:"images"`
	Error      string            `json:"error,omitempty"`
}

// ErrNoLab is returned by GetStatus when no lab is recorded.
var ErrNoLab = errors.New("no lab is up")

// GetStatus reads the lab's record and asks every namespace, engine and charon how it
// is.
func GetStatus(ctx context.Context, opts Options) (*Status, error) {
	opts.defaults()
	st, err := ReadState(opts.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (prefix %s, state dir %s): bring one up with `sitectl lab up`", ErrNoLab, opts.Prefix, opts.StateDir)
	}
	if err != nil {
		return nil, err
	}
	l := st.Layout
	out := &Status{Prefix: st.Prefix, StateDir: opts.StateDir, Images: st.Images, StartedAt: st.StartedAt,
		ConfigDir: st.ConfigDir, EnvOverlay: OverlayPath(st.ConfigDir)}
	out.Problem = staleReason(st)
	out.Up = out.Problem == ""
	out.WAN = NamespaceStatus{Name: l.WANNS, Exists: netns.Exists(l.WANNS)}
	topo, _ := sites.Load(sites.Options{Dir: st.ConfigDir, Env: EnvName, Environ: []string{}})
	for _, sl := range l.Sites {
		ss := SiteStatus{Name: sl.Name, LAN: sl.LAN, NS: NamespaceStatus{Name: sl.GatewayNS, Exists: netns.Exists(sl.GatewayNS)}}
		ss.Gateway = GatewayStatus{Namespace: sl.GatewayNS, WANAddress: sl.WANAddress, LANAddress: sl.LANAddress, Vici: sl.Vici}
		if p := st.process("charon " + sl.Name); p != nil {
			ss.Gateway.CharonPID = p.PID
		}
		vctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if v, err := ViciVersion(vctx, sl.Vici); err != nil {
			ss.Gateway.Charon = "not answering: " + err.Error()
		} else {
			ss.Gateway.Charon = "charon " + v
			ss.Gateway.SAs, _ = countSAs(vctx, sl.Vici)
		}
		cancel()
		for _, n := range sl.Nodes {
			ss.Nodes = append(ss.Nodes, engineStatus(ctx, st, n))
		}
		if topo != nil {
			if site := topo.Site(sl.Name); site != nil && site.Postgres.Host != "" {
				ss.Postgres = dbStatus(ctx, sl.GatewayNS, net.JoinHostPort(site.Postgres.Host, strconv.Itoa(site.Postgres.Port)))
			}
		}
		out.Sites = append(out.Sites, ss)
	}
	if topo != nil {
		if sl, _ := l.ReceiverNode(topo.Hub); sl != nil {
			r := &ReceiverStatus{URL: l.ReceiverURL(topo.Hub), State: "answering"}
			if p := st.process(receiverProcess); p != nil {
				r.PID = p.PID
			}
			if err := pingReceiver(ctx, sl.GatewayNS, r.URL); err != nil {
				r.State = "not answering: " + err.Error()
			}
			out.Receiver = r
		}
	}
	var pids []int
	for _, p := range st.Processes {
		if p.Alive() {
			pids = append(pids, p.PID)
		}
	}
	inNS, _ := netns.PIDs(l.Namespaces()...)
	roots := map[int]bool{}
	for _, pid := range append(pids, inNS...) {
		roots[pid] = true
	}
	out.MemoryMiB = float64(pssKiB(withDescendants(roots))) / 1024
	return out, nil
}

func dbStatus(ctx context.Context, ns, addr string) DatabaseStatus {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := netns.DialContext(ctx, ns, "tcp", addr)
	switch {
	case err == nil:
		_ = c.Close()
		return DatabaseStatus{Address: addr, State: "accepting"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return DatabaseStatus{Address: addr, State: "not deployed (connection refused)"}
	}
	return DatabaseStatus{Address: addr, State: "error: " + err.Error()}
}

func engineStatus(ctx context.Context, st *State, n NodeLayout) EngineStatus {
	es := EngineStatus{Node: n.Name, Namespace: n.NS, Address: n.Address, Engine: n.Engine()}
	if p := st.process("dockerd " + n.Name); p != nil {
		es.PID = p.PID
	}
	c, err := newEngineClient(n.Socket)
	if err != nil {
		es.Error = err.Error()
		return es
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		es.Error = "not answering: " + err.Error()
		return es
	}
	es.Version = info.Info.ServerVersion
	es.Containers = info.Info.ContainersRunning
	es.Images = info.Info.Images
	es.SwarmRole = "none"
	if info.Info.Swarm.NodeID != "" {
		es.SwarmRole = "worker"
		if info.Info.Swarm.ControlAvailable {
			es.SwarmRole = "manager"
		}
		// The node's own record lives on the managers.
		for _, m := range managersOf(st, n) {
			mc, err := newEngineClient(m.Socket)
			if err != nil {
				continue
			}
			res, err := mc.NodeInspect(ctx, info.Info.Swarm.NodeID, client.NodeInspectOptions{})
			_ = mc.Close()
			if err == nil {
				es.NodeState = string(res.Node.Status.State)
				es.Labels = res.Node.Spec.Labels
				break
			}
		}
	}
	return es
}

func managersOf(st *State, n NodeLayout) []NodeLayout {
	for _, s := range st.Layout.Sites {
		for _, x := range s.Nodes {
			if x.Name != n.Name {
				continue
			}
			var out []NodeLayout
			for _, y := range s.Nodes {
				if y.Role == "manager" {
					out = append(out, y)
				}
			}
			return out
		}
	}
	return nil
}

// pssKiB sums the proportional set size of the processes (shared pages split
// between the processes sharing them), from /proc/<pid>/smaps_rollup.
func pssKiB(pids map[int]bool) int64 {
	var total int64
	for pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		var v int64
		for _, line := range splitLines(string(b)) {
			if n, _ := fmt.Sscanf(line, "Pss: %d kB", &v); n == 1 {
				total += v
				break
			}
		}
	}
	return total
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// ResolveNamespace maps "site" to the site's gateway namespace and "site/node" to the
// node's namespace, for `lab exec`.
func ResolveNamespace(opts Options, target string) (string, error) {
	opts.defaults()
	st, err := ReadState(opts.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w (prefix %s): bring one up with `sitectl lab up`", ErrNoLab, opts.Prefix)
	}
	if err != nil {
		return "", err
	}
	siteName, nodeName, hasNode := cutSlash(target)
	s := st.Layout.Site(siteName)
	if s == nil {
		return "", fmt.Errorf("no site %q in the lab (sites: %v)", siteName, siteNames(st.Layout))
	}
	if !hasNode {
		return s.GatewayNS, nil
	}
	var names []string
	for _, n := range s.Nodes {
		if n.Name == nodeName || n.Name == siteName+"-"+nodeName {
			return n.NS, nil
		}
		names = append(names, n.Name)
	}
	return "", fmt.Errorf("no node %q at site %s (nodes: %v)", nodeName, siteName, names)
}

func cutSlash(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
