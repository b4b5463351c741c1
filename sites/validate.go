package sites

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// RequiredNetworks are the overlay networks every site has (DESIGN.md decision 3).
var RequiredNetworks = []string{"app", "data", "edge"}

var (
	walSizeRE = regexp.MustCompile(`^(-1|[0-9]+(kB|MB|GB|TB)?)$`)
	identRE   = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)
)

func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// validate checks every site and the sites against each other.
// Sites whose files could not be decoded are missing from t.Sites; the checks
// across sites then wait for a clean run (they would report false problems).
func validate(c *collector, t *Topology, opts Options, fsys fs.FS, allNames []string) {
	names := map[string]bool{}
	for _, n := range allNames {
		names[n] = true
	}
	for _, s := range t.Sites {
		validateSite(c, t, s, names, opts, fsys)
	}
	if len(t.Sites) == len(allNames) {
		validateCross(c, t)
	}
}

func validateSite(c *collector, t *Topology, s *Site, siteNames map[string]bool, opts Options, fsys fs.FS) {
	at := func(key string) string { return t.Origin(s.Name, key) }
	errf := func(key, format string, args ...any) { c.errf(at(key), s.Name, key, format, args...) }

	if !oneOf(s.Role, RoleHub, RoleSpoke) {
		errf("role", "is %q; allowed: hub, spoke (exactly one site is the hub)", s.Role)
	}
	lan, err := netip.ParsePrefix(s.LAN)
	if err != nil {
		errf("lan", "is %q, not a subnet in CIDR form (e.g. 10.10.0.0/24)", s.LAN)
	}
	inLAN := func(key, addr string) {
		a, err := netip.ParseAddr(addr)
		switch {
		case err != nil:
			errf(key, "is %q, not an IP address", addr)
		case lan.IsValid() && !lan.Contains(a):
			errf(key, "%s is outside the site LAN %s", addr, s.LAN)
		}
	}

	// Engine and nodes.
	if s.Engine.Host == "" && s.Engine.Context == "" {
		errf("engine.host", "is empty; set unix://, tcp://host:2376, ssh://user@host, or engine.context")
	} else if s.Engine.Host != "" {
		if msg := checkEngineURL(s.Engine.Host); msg != "" {
			errf("engine.host", "is %q: %s", s.Engine.Host, msg)
		}
	}
	if len(s.Nodes) == 0 {
		errf("nodes", "no nodes; a site needs at least one swarm manager")
	}
	managers := 0
	seenNode := map[string]bool{}
	for i, n := range s.Nodes {
		key := fmt.Sprintf("nodes[%d]", i)
		if n.Name == "" {
			errf(key+".name", "is empty")
		} else if seenNode[n.Name] {
			errf(key+".name", "node %q is listed twice", n.Name)
		}
		seenNode[n.Name] = true
		switch n.Role {
		case "manager":
			managers++
		case "worker":
		default:
			errf(key+".role", "is %q; allowed: manager, worker", n.Role)
		}
		inLAN(key+".address", n.Address)
		if n.Engine != "" {
			if msg := checkEngineURL(n.Engine); msg != "" {
				errf(key+".engine", "is %q: %s", n.Engine, msg)
			}
		}
		if r, ok := n.Labels["role"]; ok && !oneOf(r, "app", "db", "gateway", "monitor") {
			errf(key+".labels.role", "is %q; allowed: app, db, gateway, monitor", r)
		}
	}
	if len(s.Nodes) > 0 && managers == 0 {
		errf("nodes", "no node has role manager; a swarm needs at least one")
	}
	if managers > 0 && managers%2 == 0 {
		c.warnf(at("nodes"), s.Name, "nodes", "%d swarm managers: an even number tolerates no more failures than one fewer; use an odd number", managers)
	}

	// Networks and deploy.
	for _, n := range RequiredNetworks {
		if _, ok := s.Networks[n]; !ok {
			errf("networks."+n, "is missing; every site has the edge, app and data networks")
		}
	}
	for _, n := range sortedKeys(s.Networks) {
		nw := s.Networks[n]
		if _, err := netip.ParsePrefix(nw.Subnet); err != nil {
			errf("networks."+n+".subnet", "is %q, not a subnet in CIDR form", nw.Subnet)
		}
		if !nw.Encrypted && n != "edge" && s.Deploy.EncryptionException == "" {
			errf("networks."+n+".encrypted", "is false without a reason; set deploy.encryption_exception to why (e.g. the kernel has no ESP)")
		}
	}
	if !oneOf(s.Deploy.EndpointMode, "vip", "dnsrr") {
		errf("deploy.endpoint_mode", "is %q; allowed: vip, dnsrr", s.Deploy.EndpointMode)
	}
	if !oneOf(s.Deploy.PublishMode, "ingress", "host") {
		errf("deploy.publish_mode", "is %q; allowed: ingress, host", s.Deploy.PublishMode)
	}
	if s.Deploy.Timeout <= 0 {
		errf("deploy.timeout", "must be a positive duration (e.g. 5m)")
	}
	minSize := 8
	for _, p := range s.Swarm.DefaultAddrPool {
		pp, err := netip.ParsePrefix(p)
		if err != nil {
			errf("swarm.default_addr_pool", "%q is not a subnet in CIDR form", p)
			continue
		}
		minSize = max(minSize, pp.Bits())
	}
	if n := s.Swarm.SubnetSize; n < minSize || n > 29 {
		errf("swarm.subnet_size", "is %d; allowed: %d-29 (the prefix length of each network carved from swarm.default_addr_pool: at least the pool's own, at most 29)", n, minSize)
	}

	// Stacks, images, secrets.
	seenStack := map[string]bool{}
	for _, st := range s.Stacks {
		if !contains(opts.KnownStacks, st) {
			errf("stacks", "stack %q does not exist; allowed: %s", st, strings.Join(opts.KnownStacks, ", "))
		}
		if seenStack[st] {
			errf("stacks", "stack %q is listed twice", st)
		}
		seenStack[st] = true
	}
	for _, k := range sortedKeys(s.Values) {
		if !contains(opts.KnownStacks, k) {
			msg := fmt.Sprintf("%q is not a stack; values are keyed by stack (allowed: %s)", k, strings.Join(opts.KnownStacks, ", "))
			if c := closest(k, opts.KnownStacks); c != "" {
				msg = fmt.Sprintf("%q is not a stack; did you mean values.%s? (allowed: %s)", k, c, strings.Join(opts.KnownStacks, ", "))
			}
			errf("values."+k, "%s", msg)
		}
	}
	for _, k := range sortedKeys(s.Images) {
		if strings.TrimSpace(s.Images[k]) == "" {
			errf("images."+k, "is empty; give an image reference (name:tag)")
		}
	}
	for _, k := range sortedKeys(s.Secrets) {
		checkRef(errf, "secrets."+k, s.Secrets[k], true)
	}
	validateAlerting(errf, s.Alerting)
	validateBackup(errf, s, siteNames)

	// Gateway and tunnel.
	if s.Gateway.ID == "" {
		errf("gateway.id", "is empty; the gateway's IKE identity (a DNS name, also its certificate SAN)")
	}
	if _, err := netip.ParseAddr(s.Gateway.WANAddress); err != nil {
		errf("gateway.wan_address", "is %q, not an IP address", s.Gateway.WANAddress)
	}
	inLAN("gateway.lan_address", s.Gateway.LANAddress)
	for _, key := range []string{"admin_networks", "management_from"} {
		list := s.Gateway.Firewall.AdminNetworks
		if key == "management_from" {
			list = s.Gateway.Firewall.ManagementFrom
		}
		for i, n := range list {
			if _, err := netip.ParsePrefix(n); err != nil {
				errf(fmt.Sprintf("gateway.firewall.%s[%d]", key, i), "is %q, not a network in CIDR form (e.g. 192.0.2.0/24, or 192.0.2.10/32 for one host)", n)
			}
		}
	}
	if d := s.Gateway.Firewall.ConfirmTimeout.D(); s.Gateway.Firewall.Enabled && (d < time.Second || d > 5*time.Minute) {
		errf("gateway.firewall.confirm_timeout", "is %s; allowed: 1s to 5m (how long a new ruleset waits for sitectl to reach the gateway again)", d)
	}
	if s.Gateway.Vici != "" && !strings.HasPrefix(s.Gateway.Vici, "unix://") && !strings.HasPrefix(s.Gateway.Vici, "ssh://") {
		errf("gateway.vici", "is %q; allowed: unix:///path or ssh://user@host/path (vici is never exposed on TCP)", s.Gateway.Vici)
	}
	for _, p := range s.Tunnel.Peers {
		switch {
		case p == s.Name:
			errf("tunnel.peers", "a site cannot be its own tunnel peer")
		case !siteNames[p]:
			errf("tunnel.peers", "peer %q is not a site (sites: %s)", p, strings.Join(sortedKeys(siteNames), ", "))
		}
	}
	switch s.Tunnel.Auth {
	case "x509":
	case "psk":
		if s.Tunnel.PSK.IsZero() {
			errf("tunnel.psk", "auth is psk but no psk reference is set; name it as {env: VAR} or {file: path}")
		} else {
			checkRef(errf, "tunnel.psk", s.Tunnel.PSK, false)
		}
	default:
		errf("tunnel.auth", "is %q; allowed: x509 (default), psk", s.Tunnel.Auth)
	}
	if len(s.Tunnel.IKEProposals) == 0 || len(s.Tunnel.ESPProposals) == 0 {
		errf("tunnel.ike_proposals", "IKE and ESP proposals must be explicit (e.g. aes256gcm16-prfsha256-x25519)")
	}
	if !oneOf(s.Tunnel.StartAction, "trap", "start", "none") {
		errf("tunnel.start_action", "is %q; allowed: trap, start, none", s.Tunnel.StartAction)
	}
	if !oneOf(s.Tunnel.IPsec, "kernel", "libipsec") {
		errf("tunnel.ipsec", "is %q; allowed: kernel (kernel-netlink), libipsec (userspace)", s.Tunnel.IPsec)
	}
	if d := s.Tunnel.CertLifetime.D(); d < time.Hour || d > maxCertLifetime {
		errf("tunnel.cert_lifetime", "is %s; allowed: 1h to %s (e.g. 8760h, one year)", d, maxCertLifetime)
	}
	if d := s.Tunnel.DPDDelay.D(); d < 0 {
		errf("tunnel.dpd_delay", "is %s; allowed: 0s (no dead peer detection) or a positive duration (e.g. 5s)", d)
	}
	if !oneOf(s.Tunnel.KeyType, "ecdsa-p256", "ecdsa-p384") {
		errf("tunnel.key_type", "is %q; allowed: ecdsa-p256, ecdsa-p384", s.Tunnel.KeyType)
	}

	// Databases.
	if s.HasStack("postgres") {
		p := s.Postgres
		if p.Host == "" {
			errf("postgres.host", "is empty; the address sitectl reaches the site's PostgreSQL at")
		}
		if p.Port < 1 || p.Port > 65535 {
			errf("postgres.port", "is %d; allowed: 1-65535", p.Port)
		}
		if p.Database == "" || p.User == "" {
			errf("postgres.database", "database and user must be set")
		}
		if p.Password.IsZero() {
			errf("postgres.password", "is not set; name it as {env: VAR} or {file: path}")
		} else {
			checkRef(errf, "postgres.password", p.Password, false)
		}
		for _, tb := range p.Tables {
			if !identRE.MatchString(tb) {
				errf("postgres.tables", "%q is not a plain table name ([schema.]name, lower case)", tb)
			}
		}
		if p.SchemaFile != "" {
			if !schemaFileExists(fsys, t.Dir, p.SchemaFile) {
				errf("postgres.schema_file", "%s does not exist in the config dir %s", p.SchemaFile, t.Dir)
			}
		}
		if !walSizeRE.MatchString(p.MaxSlotWALKeepSize) {
			errf("postgres.max_slot_wal_keep_size", "is %q; allowed: -1 (unlimited, not advised) or a size like 2GB", p.MaxSlotWALKeepSize)
		}
	}
	if s.HasStack("mongo") {
		if s.Mongo.ReplicaSet == "" {
			errf("mongo.replica_set", "is empty; name the replica set spanning the sites")
		}
		if s.Mongo.MaxPartition < 0 {
			errf("mongo.max_partition", "is %s; allowed: a positive duration (e.g. 24h)", s.Mongo.MaxPartition.D())
		}
		for i, m := range s.Mongo.Members {
			if m.Host == "" {
				errf(fmt.Sprintf("mongo.members[%d].host", i), "is empty (host:port)")
			}
			if m.Votes != nil && *m.Votes != 0 && *m.Votes != 1 {
				errf(fmt.Sprintf("mongo.members[%d].votes", i), "is %d; allowed: 0 or 1 (a member has at most one vote)", *m.Votes)
			}
			if m.Priority != nil && (*m.Priority < 0 || *m.Priority > 1000) {
				errf(fmt.Sprintf("mongo.members[%d].priority", i), "is %v; allowed: 0 to 1000", *m.Priority)
			}
			if m.Delay < 0 {
				errf(fmt.Sprintf("mongo.members[%d].delay", i), "is %s; allowed: 0s or a positive duration", m.Delay.D())
			}
			if m.Arbiter && !s.Mongo.AllowArbiter {
				errf(fmt.Sprintf("mongo.members[%d].arbiter", i), "arbiters are refused: they drop the default write concern to w:1; set mongo.allow_arbiter to accept that")
			}
		}
	}
}

func checkRef(errf func(key, format string, args ...any), key string, r SecretRef, allowDocker bool) {
	n := 0
	for _, v := range []string{r.Env, r.File, r.DockerSecret} {
		if v != "" {
			n++
		}
	}
	switch {
	case n != 1:
		errf(key, "a secret reference names exactly one of env, file, docker_secret")
	case !allowDocker && r.DockerSecret != "":
		errf(key, "sitectl itself needs this value: reference it by env or file")
	}
}

// maxCertLifetime is the longest tunnel certificate lifetime sitectl issues.
const maxCertLifetime = 10 * 365 * 24 * time.Hour

// checkEngineURL says what is wrong with a Docker engine address, or "".
func checkEngineURL(s string) string {
	const allowed = "allowed: unix:///path/docker.sock, tcp://host:port, ssh://user@host, npipe:////./pipe/name"
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Sprintf("not a valid address (%v); %s", err, allowed)
	}
	switch u.Scheme {
	case "unix", "npipe":
		if u.Path == "" || u.Host != "" && u.Scheme == "unix" {
			return "a socket path is needed after " + u.Scheme + ":// (three slashes: unix:///var/run/docker.sock)"
		}
	case "tcp", "ssh":
		if u.Hostname() == "" {
			return "no host; " + allowed
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Sprintf("port %q is not 1-65535", p)
			}
		}
		if u.Scheme == "tcp" && (u.Path != "" && u.Path != "/" || u.User != nil) {
			return "a tcp:// address is host:port only"
		}
	default:
		return allowed
	}
	return ""
}

type namedPrefix struct {
	site, key string
	p         netip.Prefix
}

func validateCross(c *collector, t *Topology) {
	var hubs []string
	for _, s := range t.Sites {
		if s.Role == RoleHub {
			hubs = append(hubs, s.Name)
		}
	}
	switch {
	case len(hubs) == 0 && len(t.Sites) > 0:
		c.errf("", "", "role", "no site has role hub; set role: hub in exactly one site file (the cloud site, usually)")
	case len(hubs) > 1:
		for _, h := range hubs {
			c.errf(t.Origin(h, "role"), h, "role", "sites %s are all hubs; exactly one site is the hub", strings.Join(hubs, ", "))
		}
	}

	// LANs must not overlap between sites: tunnels route them.
	var lans []namedPrefix
	for _, s := range t.Sites {
		if p, err := netip.ParsePrefix(s.LAN); err == nil {
			lans = append(lans, namedPrefix{s.Name, "lan", p.Masked()})
		}
		// Within a site, overlays and pools must not overlap the LAN or each other.
		var local []namedPrefix
		if p, err := netip.ParsePrefix(s.LAN); err == nil {
			local = append(local, namedPrefix{s.Name, "lan", p.Masked()})
		}
		for _, n := range sortedKeys(s.Networks) {
			if p, err := netip.ParsePrefix(s.Networks[n].Subnet); err == nil {
				local = append(local, namedPrefix{s.Name, "networks." + n + ".subnet", p.Masked()})
			}
		}
		overlaps(c, t, local)
	}
	overlaps(c, t, lans)

	// Every spoke must reach the hub.
	hub := ""
	if len(hubs) == 1 {
		hub = hubs[0]
	}
	linked := map[string]bool{}
	for _, s := range t.Sites {
		for _, p := range s.Tunnel.Peers {
			linked[s.Name+"|"+p], linked[p+"|"+s.Name] = true, true
		}
	}
	if hub != "" {
		for _, s := range t.Sites {
			if s.Name != hub && !linked[s.Name+"|"+hub] {
				c.errf(t.Origin(s.Name, "tunnel.peers"), s.Name, "tunnel.peers", "has no tunnel to the hub %q; add %s to tunnel.peers", hub, hub)
			}
		}
	}

	// Settings every site must agree on.
	agree := func(key string, get func(*Site) string, want func(*Site) bool) {
		first := ""
		firstSite := ""
		for _, s := range t.Sites {
			if !want(s) {
				continue
			}
			v := get(s)
			if firstSite == "" {
				first, firstSite = v, s.Name
				continue
			}
			if v != first {
				c.errf(t.Origin(s.Name, key), s.Name, key, "is %q here but %q at %s; every site must agree", v, first, firstSite)
			}
		}
	}
	hasPG := func(s *Site) bool { return s.HasStack("postgres") }
	hasMongo := func(s *Site) bool { return s.HasStack("mongo") }
	agree("postgres.tables", func(s *Site) string { return strings.Join(s.Postgres.Tables, ",") }, hasPG)
	agree("mongo.replica_set", func(s *Site) string { return s.Mongo.ReplicaSet }, hasMongo)

	// Unique gateway identities.
	ids := map[string]string{}
	for _, s := range t.Sites {
		if o, ok := ids[s.Gateway.ID]; ok && s.Gateway.ID != "" {
			c.errf(t.Origin(s.Name, "gateway.id"), s.Name, "gateway.id", "%q is also %s's gateway id; each gateway needs its own", s.Gateway.ID, o)
		}
		ids[s.Gateway.ID] = s.Name
	}

	// MongoDB voting members across the whole replica set (votes beyond 0 or 1
	// are reported per member; here a member votes or not).
	voters, members, arbiters := 0, 0, 0
	for _, s := range t.Sites {
		if !s.HasStack("mongo") {
			continue
		}
		for _, m := range s.Mongo.Members {
			members++
			if m.VotesOrDefault() > 0 {
				voters++
			}
			if m.Arbiter {
				arbiters++
			}
		}
	}
	switch {
	case voters > 7:
		c.errf("", "", "mongo.members", "%d voting members; a replica set allows at most 7 (set votes: 0 on the others)", voters)
	case voters > 0 && voters%2 == 0:
		c.warnf("", "", "mongo.members", "%d voting members (even): a partition can leave no side with a majority; use an odd number", voters)
	}
	if members > 50 {
		c.errf("", "", "mongo.members", "%d members; a replica set allows at most 50", members)
	}
	if arbiters > 0 {
		c.warnf("", "", "mongo.members", "arbiter allowed: with an arbiter the implicit default write concern drops to w:1; sitectl still sets majority explicitly")
	}
}

func overlaps(c *collector, t *Topology, ps []namedPrefix) {
	for i := 0; i < len(ps); i++ {
		for j := i + 1; j < len(ps); j++ {
			a, b := ps[i], ps[j]
			if a.p.Overlaps(b.p) {
				c.errf(t.Origin(b.site, b.key), b.site, b.key, "%s overlaps %s (%s of site %s); subnets must not overlap", b.p, a.p, a.key, a.site)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// schemaFileExists looks for a schema file named relative to the config dir (or
// absolute).
func schemaFileExists(fsys fs.FS, dir, name string) bool {
	if fs.ValidPath(name) {
		_, err := fs.Stat(fsys, name)
		return err == nil
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	_, err := os.Stat(name)
	return err == nil
}
