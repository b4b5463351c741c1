package sites

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RequiredNetworks are the overlay networks every site has (docs/design.md decision 3).
var RequiredNetworks = []string{"app", "data", "edge"}

var (
	walSizeRE = regexp.MustCompile(`^(-1|[0-9]+(kB|MB|GB|TB)?)$`)
	identRE   = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)
	roleRE    = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
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

// siteCheck validates one site: the errors it reports name the site and the file
// that set the key.
type siteCheck struct {
	c   *collector
	t   *Topology
	s   *Site
	lan netip.Prefix // invalid when the site's lan is not a subnet
}

func (v *siteCheck) at(key string) string { return v.t.Origin(v.s.Name, key) }

func (v *siteCheck) errf(key, format string, args ...any) {
	v.c.errf(v.at(key), v.s.Name, key, format, args...)
}

// inLAN checks that addr is an IP address inside the site LAN.
func (v *siteCheck) inLAN(key, addr string) {
	a, err := netip.ParseAddr(addr)
	switch {
	case err != nil:
		v.errf(key, "is %q, not an IP address", addr)
	case v.lan.IsValid() && !v.lan.Contains(a):
		v.errf(key, "%s is outside the site LAN %s", addr, v.s.LAN)
	}
}

// validateSite checks one site, section by section, in the order of the site file.
func validateSite(c *collector, t *Topology, s *Site, siteNames map[string]bool, opts Options, fsys fs.FS) {
	v := &siteCheck{c: c, t: t, s: s}
	if !oneOf(s.Role, RoleHub, RoleSpoke) {
		v.errf("role", "is %q; allowed: hub, spoke (exactly one site is the hub)", s.Role)
	}
	lan, err := netip.ParsePrefix(s.LAN)
	if err != nil {
		v.errf("lan", "is %q, not a subnet in CIDR form (e.g. 10.10.0.0/24)", s.LAN)
	}
	v.lan = lan
	v.engineAndNodes()
	v.networksAndDeploy()
	v.stacks(opts.KnownStacks)
	v.gateway()
	v.tunnel(siteNames)
	if s.HasStack("postgres") {
		v.postgres(fsys)
	}
	if s.HasStack("mongo") {
		v.mongo()
	}
	validateBackup(v.errf, s, siteNames)
}

// engineAndNodes checks engine.host and nodes.
func (v *siteCheck) engineAndNodes() {
	s := v.s
	if s.Engine.Host == "" && s.Engine.Context == "" {
		v.errf("engine.host", "is empty; set unix://, tcp://host:2376, ssh://user@host, or engine.context")
	} else if s.Engine.Host != "" {
		if msg := checkEngineURL(s.Engine.Host); msg != "" {
			v.errf("engine.host", "is %q: %s", s.Engine.Host, msg)
		}
	}
	if len(s.Nodes) == 0 {
		v.errf("nodes", "no nodes; a site needs at least one swarm manager")
	}
	managers := 0
	seenNode := map[string]bool{}
	for i, n := range s.Nodes {
		key := fmt.Sprintf("nodes[%d]", i)
		if n.Name == "" {
			v.errf(key+".name", "is empty")
		} else if seenNode[n.Name] {
			v.errf(key+".name", "node %q is listed twice", n.Name)
		}
		seenNode[n.Name] = true
		switch n.Role {
		case "manager":
			managers++
		case "worker":
		default:
			v.errf(key+".role", "is %q; allowed: manager, worker", n.Role)
		}
		v.inLAN(key+".address", n.Address)
		if n.Engine != "" {
			if msg := checkEngineURL(n.Engine); msg != "" {
				v.errf(key+".engine", "is %q: %s", n.Engine, msg)
			}
		}
		if r, ok := n.Labels["role"]; ok && !oneOf(r, "app", "db", "gateway", "monitor") {
			v.errf(key+".labels.role", "is %q; allowed: app, db, gateway, monitor", r)
		}
	}
	if len(s.Nodes) > 0 && managers == 0 {
		v.errf("nodes", "no node has role manager; a swarm needs at least one")
	}
	if managers > 0 && managers%2 == 0 {
		v.c.warnf(v.at("nodes"), s.Name, "nodes", "%d swarm managers: an even number tolerates no more failures than one fewer; use an odd number", managers)
	}
}

// networksAndDeploy checks networks, deploy and swarm.
func (v *siteCheck) networksAndDeploy() {
	s := v.s
	for _, n := range RequiredNetworks {
		if _, ok := s.Networks[n]; !ok {
			v.errf("networks."+n, "is missing; every site has the edge, app and data networks")
		}
	}
	for _, n := range slices.Sorted(maps.Keys(s.Networks)) {
		nw := s.Networks[n]
		if _, err := netip.ParsePrefix(nw.Subnet); err != nil {
			v.errf("networks."+n+".subnet", "is %q, not a subnet in CIDR form", nw.Subnet)
		}
		if !nw.Encrypted && n != "edge" && s.Deploy.EncryptionException == "" {
			v.errf("networks."+n+".encrypted", "is false without a reason; set deploy.encryption_exception to why (e.g. the kernel has no ESP)")
		}
	}
	if !oneOf(s.Deploy.EndpointMode, "vip", "dnsrr") {
		v.errf("deploy.endpoint_mode", "is %q; allowed: vip, dnsrr", s.Deploy.EndpointMode)
	}
	if !oneOf(s.Deploy.PublishMode, "ingress", "host") {
		v.errf("deploy.publish_mode", "is %q; allowed: ingress, host", s.Deploy.PublishMode)
	}
	if s.Deploy.Timeout <= 0 {
		v.errf("deploy.timeout", "must be a positive duration (e.g. 5m)")
	}
	minSize := 8
	for _, p := range s.Swarm.DefaultAddrPool {
		pp, err := netip.ParsePrefix(p)
		if err != nil {
			v.errf("swarm.default_addr_pool", "%q is not a subnet in CIDR form", p)
			continue
		}
		minSize = max(minSize, pp.Bits())
	}
	if n := s.Swarm.SubnetSize; n < minSize || n > 29 {
		v.errf("swarm.subnet_size", "is %d; allowed: %d-29 (the prefix length of each network carved from swarm.default_addr_pool: at least the pool's own, at most 29)", n, minSize)
	}
}

// stacks checks stacks, values, images, secrets and alerting.
func (v *siteCheck) stacks(known []string) {
	s := v.s
	seenStack := map[string]bool{}
	for _, st := range s.Stacks {
		if !slices.Contains(known, st) {
			v.errf("stacks", "stack %q does not exist; allowed: %s", st, strings.Join(known, ", "))
		}
		if seenStack[st] {
			v.errf("stacks", "stack %q is listed twice", st)
		}
		seenStack[st] = true
	}
	for _, k := range slices.Sorted(maps.Keys(s.Values)) {
		if !slices.Contains(known, k) {
			msg := fmt.Sprintf("%q is not a stack; values are keyed by stack (allowed: %s)", k, strings.Join(known, ", "))
			if c := closest(k, known); c != "" {
				msg = fmt.Sprintf("%q is not a stack; did you mean values.%s? (allowed: %s)", k, c, strings.Join(known, ", "))
			}
			v.errf("values."+k, "%s", msg)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Images)) {
		if strings.TrimSpace(s.Images[k]) == "" {
			v.errf("images."+k, "is empty; give an image reference (name:tag)")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Secrets)) {
		checkRef(v.errf, "secrets."+k, s.Secrets[k], true)
	}
	validateAlerting(v.errf, s.Alerting)
}

// gateway checks gateway.
func (v *siteCheck) gateway() {
	g := v.s.Gateway
	if g.ID == "" {
		v.errf("gateway.id", "is empty; the gateway's IKE identity (a DNS name, also its certificate SAN)")
	}
	if _, err := netip.ParseAddr(g.WANAddress); err != nil {
		v.errf("gateway.wan_address", "is %q, not an IP address", g.WANAddress)
	}
	v.inLAN("gateway.lan_address", g.LANAddress)
	for _, key := range []string{"admin_networks", "management_from"} {
		list := g.Firewall.AdminNetworks
		if key == "management_from" {
			list = g.Firewall.ManagementFrom
		}
		for i, n := range list {
			if _, err := netip.ParsePrefix(n); err != nil {
				v.errf(fmt.Sprintf("gateway.firewall.%s[%d]", key, i), "is %q, not a network in CIDR form (e.g. 192.0.2.0/24, or 192.0.2.10/32 for one host)", n)
			}
		}
	}
	if d := g.Firewall.ConfirmTimeout.D(); g.Firewall.Enabled && (d < time.Second || d > 5*time.Minute) {
		v.errf("gateway.firewall.confirm_timeout", "is %s; allowed: 1s to 5m (how long a new ruleset waits for sitectl to reach the gateway again)", d)
	}
	if g.Vici != "" && !strings.HasPrefix(g.Vici, "unix://") && !strings.HasPrefix(g.Vici, "ssh://") {
		v.errf("gateway.vici", "is %q; allowed: unix:///path or ssh://user@host/path (vici is never exposed on TCP)", g.Vici)
	}
}

// tunnel checks tunnel.
func (v *siteCheck) tunnel(siteNames map[string]bool) {
	s := v.s
	tn := s.Tunnel
	for _, p := range tn.Peers {
		switch {
		case p == s.Name:
			v.errf("tunnel.peers", "a site cannot be its own tunnel peer")
		case !siteNames[p]:
			v.errf("tunnel.peers", "peer %q is not a site (sites: %s)", p, strings.Join(slices.Sorted(maps.Keys(siteNames)), ", "))
		}
	}
	switch tn.Auth {
	case "x509":
	case "psk":
		if tn.PSK.IsZero() {
			v.errf("tunnel.psk", "auth is psk but no psk reference is set; name it as {env: VAR} or {file: path}")
		} else {
			checkRef(v.errf, "tunnel.psk", tn.PSK, false)
		}
	default:
		v.errf("tunnel.auth", "is %q; allowed: x509 (default), psk", tn.Auth)
	}
	if len(tn.IKEProposals) == 0 || len(tn.ESPProposals) == 0 {
		v.errf("tunnel.ike_proposals", "IKE and ESP proposals must be explicit (e.g. aes256gcm16-prfsha256-x25519)")
	}
	if !oneOf(tn.StartAction, "trap", "start", "none") {
		v.errf("tunnel.start_action", "is %q; allowed: trap, start, none", tn.StartAction)
	}
	if !oneOf(tn.IPsec, "kernel", "libipsec") {
		v.errf("tunnel.ipsec", "is %q; allowed: kernel (kernel-netlink), libipsec (userspace)", tn.IPsec)
	}
	if d := tn.CertLifetime.D(); d < time.Hour || d > maxCertLifetime {
		v.errf("tunnel.cert_lifetime", "is %s; allowed: 1h to %s (e.g. 8760h, one year)", d, maxCertLifetime)
	}
	if d := tn.DPDDelay.D(); d < 0 {
		v.errf("tunnel.dpd_delay", "is %s; allowed: 0s (no dead peer detection) or a positive duration (e.g. 5s)", d)
	}
	if !oneOf(tn.KeyType, "ecdsa-p256", "ecdsa-p384") {
		v.errf("tunnel.key_type", "is %q; allowed: ecdsa-p256, ecdsa-p384", tn.KeyType)
	}
}

// postgres checks postgres, for a site that runs the postgres stack.
func (v *siteCheck) postgres(fsys fs.FS) {
	p := v.s.Postgres
	if p.Host == "" {
		v.errf("postgres.host", "is empty; the address sitectl reaches the site's PostgreSQL at")
	}
	if p.Port < 1 || p.Port > 65535 {
		v.errf("postgres.port", "is %d; allowed: 1-65535", p.Port)
	}
	if p.Database == "" || p.User == "" {
		v.errf("postgres.database", "database and user must be set")
	}
	if p.Password.IsZero() {
		v.errf("postgres.password", "is not set; name it as {env: VAR} or {file: path}")
	} else {
		checkRef(v.errf, "postgres.password", p.Password, false)
	}
	switch {
	case p.AppUser == "":
		v.errf("postgres.app_user", "is empty; name the application's own role (e.g. app), other than postgres.user")
	case p.AppUser == p.User:
		v.errf("postgres.app_user", "is %q, sitectl's administrative role (postgres.user): the application gets its own role without superuser; name another", p.AppUser)
	case !roleRE.MatchString(p.AppUser):
		v.errf("postgres.app_user", "is %q; allowed: a lower-case role name (a-z, 0-9, _; up to 63)", p.AppUser)
	}
	if p.AppPassword.IsZero() {
		v.errf("postgres.app_password", "is not set; name it as {env: VAR} or {file: path}")
	} else {
		checkRef(v.errf, "postgres.app_password", p.AppPassword, false)
	}
	if p.PassFile != "" && p.PassFile != "none" && !strings.HasPrefix(p.PassFile, "/") {
		v.errf("postgres.passfile", "is %q; allowed: an absolute path inside the database container, or none (password in the connection string)", p.PassFile)
	}
	for _, tb := range p.Tables {
		if !identRE.MatchString(tb) {
			v.errf("postgres.tables", "%q is not a plain table name ([schema.]name, lower case)", tb)
		}
	}
	if p.SchemaFile != "" {
		if !schemaFileExists(fsys, v.t.Dir, p.SchemaFile) {
			v.errf("postgres.schema_file", "%s does not exist in the config dir %s", p.SchemaFile, v.t.Dir)
		}
	}
	if !walSizeRE.MatchString(p.MaxSlotWALKeepSize) {
		v.errf("postgres.max_slot_wal_keep_size", "is %q; allowed: -1 (unlimited, not advised) or a size like 2GB", p.MaxSlotWALKeepSize)
	}
}

// mongo checks mongo, for a site that runs the mongo stack.
func (v *siteCheck) mongo() {
	m := v.s.Mongo
	if m.ReplicaSet == "" {
		v.errf("mongo.replica_set", "is empty; name the replica set spanning the sites")
	}
	if m.MaxPartition < 0 {
		v.errf("mongo.max_partition", "is %s; allowed: a positive duration (e.g. 24h)", m.MaxPartition.D())
	}
	for i, mb := range m.Members {
		key := fmt.Sprintf("mongo.members[%d]", i)
		if mb.Host == "" {
			v.errf(key+".host", "is empty (host:port)")
		}
		if mb.Votes != nil && *mb.Votes != 0 && *mb.Votes != 1 {
			v.errf(key+".votes", "is %d; allowed: 0 or 1 (a member has at most one vote)", *mb.Votes)
		}
		if mb.Priority != nil && (*mb.Priority < 0 || *mb.Priority > 1000) {
			v.errf(key+".priority", "is %v; allowed: 0 to 1000", *mb.Priority)
		}
		if mb.Delay < 0 {
			v.errf(key+".delay", "is %s; allowed: 0s or a positive duration", mb.Delay.D())
		}
		if mb.Arbiter && !m.AllowArbiter {
			v.errf(key+".arbiter", "arbiters are refused: they drop the default write concern to w:1; set mongo.allow_arbiter to accept that")
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
