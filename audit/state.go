package audit

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
)

// What the audit reads where probing cannot: the deployed services, the swarm
// configs and the site's PostgreSQL. Each check below is a function of what was
// read (so it is tested from fixtures); what could not be read is an "unknown"
// finding, never a pass.

// Service is what the audit reads of one deployed swarm service.
type Service struct {
	Name   string
	Stack  string
	Image  string
	Env    []string          // KEY=value
	Labels map[string]string // service and container labels
	Args   []string          // command and args
	Ports  []PublishedPort
}

// PublishedPort is one published port of a service.
type PublishedPort struct {
	Target, Published uint32
	Protocol, Mode    string
}

// Config is one swarm config.
type Config struct {
	Name string
	Data []byte
}

// HBARule is one line of pg_hba_file_rules.
type HBARule struct {
	Line     int
	Type     string
	Database string
	User     string
	Address  string
	Method   string
	Error    string
}

// PGFacts is what the audit reads of a site's PostgreSQL.
type PGFacts struct {
	HBA []HBARule
	// AdminUser is the role sitectl administers the database with; AppUser the
	// role the application (django-api) connects as, AppSuper whether it is a
	// superuser (rolsuper), AppFound whether the role exists.
	AdminUser, AppUser string
	AppSuper, AppFound bool
	// AppAttrs are the application role's other attributes it should not have
	// (CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS).
	AppAttrs []string
	// SubsWithPassword are the subscriptions whose subconninfo carries a password.
	SubsWithPassword []string
}

// Secret is a secret value sitectl resolved, by the name it is known by. Its
// value is only compared, never printed.
type Secret struct {
	Name  string
	Value []byte
}

// minSecretLen: shorter values are not searched for (they would match by chance).
const minSecretLen = 6

// secretKey matches an environment variable or label name that carries a secret.
var secretKey = regexp.MustCompile(`(?i)(pass(word|wd)?|secret|token|api_?key|private_?key|credential)`)

// urlCredentials matches a URL with a password in it (scheme://user:pass@host).
var urlCredentials = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@]+@`)

// CheckSecrets looks for secret values in services' Env and Labels and in swarm
// configs: a value sitectl knows (compared, never printed), a variable named like
// a secret whose value is not a file path, or a URL with a password in it.
func CheckSecrets(site string, svcs []Service, cfgs []Config, known []Secret) []Finding {
	var out []Finding
	fix := "pass secrets as Docker secrets (a *_FILE variable pointing at /run/secrets/...), never as a value in the service spec or a config"
	matchKnown := func(v []byte) string {
		for _, s := range known {
			if len(s.Value) >= minSecretLen && strings.Contains(string(v), string(s.Value)) {
				return s.Name
			}
		}
		return ""
	}
	look := func(obj, key, val string) {
		if name := matchKnown([]byte(val)); name != "" {
			out = append(out, Finding{Severity: High, Site: site, Object: obj, What: fmt.Sprintf("%s holds the value of secret %s", key, name), Fix: fix})
			return
		}
		if urlCredentials.MatchString(val) {
			out = append(out, Finding{Severity: High, Site: site, Object: obj, What: key + " holds a URL with a password in it", Fix: fix})
			return
		}
		up := strings.ToUpper(key)
		if secretKey.MatchString(key) && val != "" && !strings.HasPrefix(val, "/") && !strings.HasSuffix(up, "_FILE") && !strings.HasSuffix(up, "_PATH") {
			out = append(out, Finding{Severity: High, Site: site, Object: obj, What: key + " is named like a secret and holds a value, not a file path", Fix: fix})
		}
	}
	for _, s := range svcs {
		for _, kv := range s.Env {
			k, v, _ := strings.Cut(kv, "=")
			look("service "+s.Name+" env", k, v)
		}
		for _, k := range sortedLabelKeys(s.Labels) {
			look("service "+s.Name+" label", k, s.Labels[k])
		}
	}
	for _, c := range cfgs {
		if name := matchKnown(c.Data); name != "" {
			out = append(out, Finding{Severity: High, Site: site, Object: "config " + c.Name, What: "holds the value of secret " + name, Fix: fix})
		} else if urlCredentials.Match(c.Data) {
			out = append(out, Finding{Severity: High, Site: site, Object: "config " + c.Name, What: "holds a URL with a password in it", Fix: fix})
		}
	}
	return out
}

func sortedLabelKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func env(s Service, key string) (string, bool) {
	for _, kv := range s.Env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// KongAdminPorts are the ports Kong's admin API listens on inside its container.
var KongAdminPorts = []uint32{8001, 8444}

// CheckServices checks the deployed services of a site: Kong's admin API never
// published (nor listening), Elasticsearch's security on outside the lab, MongoDB
// started with its keyfile (auth on).
func CheckServices(site *sites.Site, svcs []Service) []Finding {
	var out []Finding
	lab := site.InLab()
	for _, s := range svcs {
		switch {
		case s.Stack == "kong" || strings.HasSuffix(s.Name, "_kong"):
			for _, p := range s.Ports {
				if slices.Contains(KongAdminPorts, p.Target) {
					out = append(out, Finding{Severity: High, Site: site.Name, Object: fmt.Sprintf("service %s port %d", s.Name, p.Published),
						What: fmt.Sprintf("Kong's admin API (container port %d) is published (%s mode)", p.Target, p.Mode),
						Fix:  "never publish Kong's admin API: sitectl's kong stack runs DB-less with KONG_ADMIN_LISTEN=off; redeploy it (`sitectl deploy --site " + site.Name + "`)"})
				}
			}
			if v, ok := env(s, "KONG_ADMIN_LISTEN"); ok && strings.TrimSpace(v) != "off" {
				out = append(out, Finding{Severity: Medium, Site: site.Name, Object: "service " + s.Name + " env KONG_ADMIN_LISTEN",
					What: "Kong's admin API listens (reachable on the service's networks)", Fix: "set KONG_ADMIN_LISTEN=off (sitectl's kong stack does)"})
			}
		case s.Stack == "elk" && strings.HasSuffix(s.Name, "_elasticsearch"):
			if v, _ := env(s, "xpack.security.enabled"); strings.EqualFold(v, "false") {
				f := Finding{Site: site.Name, Object: "service " + s.Name + " env xpack.security.enabled",
					What: "Elasticsearch runs with security off: anyone who reaches port 9200 reads and writes every log",
					Fix:  "turn security on outside the lab: values.elk.security: true (the default) with secrets.elastic-password, kibana-es-password and logstash-es-password, then `sitectl deploy`"}
				if lab {
					f.Severity, f.What = Info, "lab exception: "+f.What+" (the lab runs a stand-in)"
				} else {
					f.Severity = High
				}
				out = append(out, f)
			}
		case slices.Contains(s.Args, "mongod"): // a mongod, not an exporter or a client
			if !slices.ContainsFunc(s.Args, func(a string) bool { return a == "--keyFile" || strings.HasPrefix(a, "--keyFile=") || a == "--auth" }) {
				out = append(out, Finding{Severity: High, Site: site.Name, Object: "service " + s.Name,
					What: "mongod runs without --keyFile or --auth: authentication is off", Fix: "run the mongo stack sitectl renders (keyfile from secrets.mongo-keyfile)"})
			}
		}
	}
	return out
}

// CheckPostgres checks what was read of a site's PostgreSQL: no trust in pg_hba,
// scram-sha-256 only; the application's own role, not a superuser and not
// sitectl's; no password in a subscription's connection string.
func CheckPostgres(site string, pg *PGFacts, readErr error) []Finding {
	obj := "postgres"
	if readErr != nil || pg == nil {
		return []Finding{{Severity: High, Site: site, Object: obj, State: Unknown,
			What: fmt.Sprintf("could not read pg_hba_file_rules, roles and subscriptions: %v", readErr),
			Fix:  "make the database reachable for sitectl's administrative role (`sitectl status`), then audit again"}}
	}
	var out []Finding
	for _, r := range pg.HBA {
		o := fmt.Sprintf("pg_hba line %d (%s %s %s %s)", r.Line, r.Type, r.Database, r.User, strings.TrimSpace(r.Address))
		switch {
		case r.Error != "":
			out = append(out, Finding{Severity: Medium, Site: site, Object: o, What: "the line has an error: " + r.Error, Fix: "correct pg_hba.conf"})
		case r.Method == "trust":
			out = append(out, Finding{Severity: High, Site: site, Object: o, What: "trust: connects without a password",
				Fix: "use scram-sha-256 for every line (initdb --auth-local=scram-sha-256 --auth-host=scram-sha-256; on an existing cluster edit pg_hba.conf and SELECT pg_reload_conf())"})
		case r.Method != "scram-sha-256" && r.Method != "reject":
			out = append(out, Finding{Severity: Medium, Site: site, Object: o, What: r.Method + " authentication, not scram-sha-256",
				Fix: "use scram-sha-256 (password_encryption = scram-sha-256, reset the passwords, then change the method)"})
		}
	}
	switch {
	case pg.AppUser == "":
		out = append(out, Finding{Severity: High, Site: site, Object: "application role", State: Unknown, What: "the role the application connects as is not known", Fix: "configure django-api's database user"})
	case pg.AppUser == pg.AdminUser:
		out = append(out, Finding{Severity: High, Site: site, Object: "role " + pg.AppUser,
			What: "the application connects with sitectl's administrative role" + map[bool]string{true: ", a superuser", false: ""}[pg.AppSuper],
			Fix:  "give django-api its own role: postgres.app_user (default app) and postgres.app_password, then `sitectl deploy` (it creates the role without superuser, grants only its tables' rows, and django-api connects as it); sitectl keeps its own administrative role"})
	case !pg.AppFound:
		out = append(out, Finding{Severity: Medium, Site: site, Object: "role " + pg.AppUser, What: "the application's role does not exist", Fix: "create the application's role"})
	case pg.AppSuper:
		out = append(out, Finding{Severity: High, Site: site, Object: "role " + pg.AppUser, What: "the application's role is a superuser",
			Fix: "ALTER ROLE " + pg.AppUser + " NOSUPERUSER; grant it only its tables (`sitectl deploy` makes postgres.app_user right)"})
	case len(pg.AppAttrs) > 0:
		out = append(out, Finding{Severity: Medium, Site: site, Object: "role " + pg.AppUser,
			What: "the application's role has " + strings.Join(pg.AppAttrs, ", ") + ": more than reading and writing its rows needs",
			Fix:  "`sitectl deploy` takes them away (postgres.app_user), or ALTER ROLE " + pg.AppUser + " NO" + strings.Join(pg.AppAttrs, " NO")})
	}
	for _, sub := range pg.SubsWithPassword {
		out = append(out, Finding{Severity: High, Site: site, Object: "subscription " + sub,
			What: "its connection string (pg_subscription.subconninfo) holds the publisher's password: it is stored in the catalog and in every site's WAL",
			Fix:  "`sitectl deploy` gives the database container a passfile (the postgres stack's pgpass secret) and alters the subscription to passfile= without the password; for a database sitectl does not run, mount a passfile and set postgres.passfile"})
	}
	return out
}

// CheckConfig checks what the configuration says: overlay encryption off only with
// a stated reason (an exception), engines not on TCP without TLS, the lab's
// stand-in images (exceptions).
func CheckConfig(site *sites.Site) []Finding {
	var out []Finding
	for _, name := range sortedNetworks(site.Networks) {
		n := site.Networks[name]
		if n.Encrypted {
			continue
		}
		if r := site.Deploy.EncryptionException; r != "" {
			out = append(out, Finding{Severity: Info, Site: site.Name, Object: "network " + name, What: "exception: overlay encryption is off: " + r})
		} else {
			out = append(out, Finding{Severity: High, Site: site.Name, Object: "network " + name, What: "overlay encryption is off and no reason is stated",
				Fix: "set networks." + name + ".encrypted: true, or state why in deploy.encryption_exception"})
		}
	}
	engines := []struct{ obj, host string }{{"site engine", site.Engine.Host}}
	for _, n := range site.Nodes {
		engines = append(engines, struct{ obj, host string }{"engine of node " + n.Name, n.Engine})
	}
	for _, e := range engines {
		if strings.HasPrefix(e.host, "tcp://") && !site.Engine.TLSVerify {
			out = append(out, Finding{Severity: High, Site: site.Name, Object: e.obj + " " + e.host, What: "Docker API over TCP without TLS: whoever reaches it is root on the node",
				Fix: "use ssh://, or tcp:// with engine.tls_verify and client certificates (dockerd --tlsverify)"})
		}
	}
	if site.InLab() {
		var standins []string
		for _, k := range sortedImageKeys(site.Images) {
			if strings.Contains(site.Images[k], "standin") {
				standins = append(standins, k)
			}
		}
		if len(standins) > 0 {
			out = append(out, Finding{Severity: Info, Site: site.Name, Object: "images", What: "lab exception: stand-ins for " + strings.Join(standins, ", ")})
		}
	}
	return out
}

func sortedNetworks(m map[string]sites.Network) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedImageKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// CertFinding turns a tunnel certificate's state into a finding: expired or
// invalid high, missing high and unknown, expiring (within 30 days) medium, valid
// info with its expiry.
func CertFinding(site, name, path string, state tunnels.CertStatus, problem string, notAfter time.Time) Finding {
	f := Finding{Site: site, Object: "certificate " + name, State: string(state)}
	renew := "`sitectl tunnels certs` renews it"
	switch state {
	case tunnels.CertOK:
		f.Severity, f.What = Info, "valid until "+notAfter.Format(time.DateOnly)
	case tunnels.CertExpiring:
		f.Severity, f.What, f.Fix = Medium, problem+" ("+notAfter.Format(time.DateOnly)+")", renew
	case tunnels.CertMissing:
		f.Severity, f.State, f.What, f.Fix = High, Unknown, "not found at "+path, "`sitectl deploy` (or `sitectl tunnels certs`) creates it"
	default:
		f.Severity, f.What, f.Fix = High, problem, renew
	}
	return f
}

// CheckKongTLS checks the generated kong.yml: every HTTPS service verifies its
// upstream's certificate (tls_verify).
func CheckKongTLS(site string, services []KongService) []Finding {
	var out []Finding
	for _, s := range services {
		if s.Protocol != "https" {
			continue
		}
		if s.TLSVerify == nil || !*s.TLSVerify {
			out = append(out, Finding{Severity: High, Site: site, Object: "kong.yml service " + s.Name + " (" + s.Host + ")",
				What: "Kong does not verify the upstream's TLS certificate (tls_verify off): anyone on the path can impersonate it",
				Fix:  "remove values.kong.admin.tls_verify: false (verification is on by default, against sitectl's Kong CA that `sitectl deploy` creates), or name your own CA: values.kong.admin.ca: <secret> with secrets.<secret>: {file: ca.pem}"})
		} else if len(s.CACertificates) == 0 {
			out = append(out, Finding{Severity: Medium, Site: site, Object: "kong.yml service " + s.Name + " (" + s.Host + ")",
				What: "tls_verify is on but no CA is named: Kong verifies against its default bundle", Fix: "name the CA (ca_certificates)"})
		}
	}
	return out
}

// KongService is the part of a kong.yml service the audit reads.
type KongService struct {
	Name           string   `yaml:"name"`
	Protocol       string   `yaml:"protocol"`
	Host           string   `yaml:"host"`
	TLSVerify      *bool    `yaml:"tls_verify"`
	CACertificates []string `yaml:"ca_certificates"`
}
