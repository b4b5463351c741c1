package audit

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	djangoapi "github.com/sitectl/sitectl/stacks/django-api"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/tunnels"
)

// Inspect reads what probing cannot see on one site and checks it: the
// configuration, the tunnel certificates, the generated kong.yml, the deployed
// services and configs (Env, Labels, published ports, secrets), and PostgreSQL.
func Inspect(ctx context.Context, topo *sites.Topology, site *sites.Site) []Finding {
	out := CheckConfig(site)
	out = append(out, engineTCP(ctx, site)...)
	out = append(out, certFindings(topo, site)...)
	if site.HasStack(kong.Name) {
		out = append(out, kongFindings(topo, site)...)
		out = append(out, kongCertFindings(topo, site)...)
	}
	svcs, cfgs, err := readSwarm(ctx, site)
	if err != nil {
		out = append(out, Finding{Severity: High, Site: site.Name, Object: "engine " + engine.SiteEndpoint(site).String(), State: Unknown,
			What: fmt.Sprintf("could not read the deployed services and configs: %v", err),
			Fix:  "make the site's engine reachable (`sitectl status --site " + site.Name + "`), then audit again"})
	} else {
		known, unread := knownSecrets(site)
		out = append(out, CheckSecrets(site.Name, svcs, cfgs, known)...)
		if len(unread) > 0 {
			out = append(out, Finding{Severity: Medium, Site: site.Name, Object: "secrets " + strings.Join(unread, ", "), State: Unknown,
				What: "not compared with the services and configs: sitectl could not read their values", Fix: "make the secret references readable where the audit runs"})
		}
		out = append(out, CheckServices(site, svcs)...)
		out = append(out, CheckAppRoles(site, svcs)...)
	}
	if site.HasStack("postgres") {
		pg, err := readPostgres(ctx, site, appUser(site, svcs))
		out = append(out, CheckPostgres(site.Name, pg, err)...)
	}
	return out
}

// engineTCP connects to each node's plain Docker API port (2375) from inside the
// site (with the site's Reach: in the lab, from its gateway namespace; without a
// Reach.Dial from this machine): an
// answer is a Docker API without TLS, whoever reaches it is root on the node.
func engineTCP(ctx context.Context, site *sites.Site) []Finding {
	var out []Finding
	for _, n := range site.Nodes {
		addr := net.JoinHostPort(n.Address, "2375")
		dctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		dial := site.Reach.Dial
		if dial == nil {
			var d net.Dialer
			dial = d.DialContext
		}
		c, err := dial(dctx, "tcp", addr)
		cancel()
		if err == nil {
			_ = c.Close() // a probe: the connection was opened, nothing was written
			out = append(out, Finding{Severity: High, Site: site.Name, Object: "engine of node " + n.Name + " " + addr, State: Open,
				What: "a Docker API port without TLS (2375) answers from inside the site",
				Fix:  "remove -H tcp://...:2375 from dockerd; reach the engine over ssh:// or tcp:// with --tlsverify on 2376"})
		}
	}
	return out
}

func certFindings(topo *sites.Topology, site *sites.Site) []Finding {
	if site.Gateway.ID == "" {
		return nil
	}
	ca, gw := tunnels.SiteCerts(topo, site)
	cs, gs := tunnels.Check(ca, gw, site.Gateway.ID)
	var out []Finding
	if site.IsHub() {
		out = append(out, CertFinding(site.Name, "tunnel CA", cs.Path, cs.State, cs.Problem, cs.NotAfter))
	}
	return append(out, CertFinding(site.Name, "tunnel "+gs.Name, gs.Path, gs.State, gs.Problem, gs.NotAfter))
}

// kongCertFindings reports sitectl's Kong CA and the hub Kong's certificate (at the
// hub, when it serves sitectl's certificate to the spokes).
func kongCertFindings(topo *sites.Topology, site *sites.Site) []Finding {
	if !site.IsHub() || !site.HasStack(kong.Name) {
		return nil
	}
	own, err := kong.SitectlTLS(topo)
	if err != nil || !own {
		return nil // a settings error is reported by kongFindings
	}
	p, err := kong.AdminPKI(topo)
	if err != nil {
		return nil
	}
	c, err := kong.HubCert(topo)
	if err != nil {
		return nil
	}
	cs, gs := tunnels.CheckServer(p, p, c)
	out := []Finding{CertFinding(site.Name, "kong CA", cs.Path, cs.State, cs.Problem, cs.NotAfter),
		CertFinding(site.Name, "kong "+gs.Name, gs.Path, gs.State, gs.Problem, gs.NotAfter)}
	for i := range out {
		if out[i].Fix != "" {
			out[i].Fix = "`sitectl deploy` creates or renews it (its kong certificate step)"
		}
	}
	return out
}

func kongFindings(topo *sites.Topology, site *sites.Site) []Finding {
	b, err := kong.Config(topo, site)
	if err != nil {
		return []Finding{{Severity: High, Site: site.Name, Object: "kong.yml", State: Unknown, What: "could not generate kong.yml: " + err.Error(), Fix: "fix the kong configuration (`sitectl config validate`)"}}
	}
	var doc struct {
		Services []KongService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return []Finding{{Severity: High, Site: site.Name, Object: "kong.yml", State: Unknown, What: "could not read the generated kong.yml: " + err.Error(), Fix: "a sitectl bug: report it"}}
	}
	return CheckKongTLS(site.Name, doc.Services)
}

// readSwarm lists the site's services and configs (with their data).
func readSwarm(ctx context.Context, site *sites.Site) ([]Service, []Config, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	eng, err := engine.ForSite(ctx, site)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = eng.Close() }() // read only: nothing to lose
	list, err := eng.ServiceList(ctx, client.ServiceListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list services: %w", err)
	}
	var svcs []Service
	for _, x := range list.Items {
		s := Service{Name: x.Spec.Name, Stack: x.Spec.Labels[stacks.LabelStack], Labels: map[string]string{}}
		for k, v := range x.Spec.Labels {
			s.Labels[k] = v
		}
		if cs := x.Spec.TaskTemplate.ContainerSpec; cs != nil {
			s.Image, s.Env = cs.Image, cs.Env
			s.Args = append(append(s.Args, cs.Command...), cs.Args...)
			for k, v := range cs.Labels {
				s.Labels[k] = v
			}
		}
		if x.Spec.EndpointSpec != nil {
			for _, p := range x.Spec.EndpointSpec.Ports {
				s.Ports = append(s.Ports, PublishedPort{Target: p.TargetPort, Published: p.PublishedPort, Protocol: string(p.Protocol), Mode: string(p.PublishMode)})
			}
		}
		svcs = append(svcs, s)
	}
	cl, err := eng.ConfigList(ctx, client.ConfigListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list configs: %w", err)
	}
	var cfgs []Config
	for _, c := range cl.Items {
		data := c.Spec.Data
		if len(data) == 0 {
			res, err := eng.ConfigInspect(ctx, c.ID, client.ConfigInspectOptions{})
			if err != nil {
				return nil, nil, fmt.Errorf("inspect config %s: %w", c.Spec.Name, err)
			}
			data = res.Config.Spec.Data
		}
		cfgs = append(cfgs, Config{Name: c.Spec.Name, Data: data})
	}
	return svcs, cfgs, nil
}

// knownSecrets resolves every secret sitectl knows for the site; unread names
// those it could not read.
func knownSecrets(site *sites.Site) (known []Secret, unread []string) {
	refs := map[string]sites.SecretRef{}
	for k, r := range site.Secrets {
		refs[k] = r
	}
	refs["postgres.password"] = site.Postgres.Password
	refs["postgres.app_password"] = site.Postgres.AppPassword
	refs["mongo.password"] = site.Mongo.Password
	refs["mongo.keyfile"] = site.Mongo.KeyFile
	for _, k := range sortedRefKeys(refs) {
		if refs[k].IsZero() {
			continue
		}
		v, err := refs[k].Resolve()
		if err != nil {
			unread = append(unread, k)
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(string(v)), "-----BEGIN CERTIFICATE-----") {
			continue // a certificate is public (kong.yml carries the admin CA)
		}
		known = append(known, Secret{Name: k, Value: v})
	}
	return known, unread
}

func sortedRefKeys(m map[string]sites.SecretRef) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// appUser is the role the application connects as: the user of the deployed
// django-api's DATABASE_URL, else of the one sitectl renders.
func appUser(site *sites.Site, svcs []Service) string {
	raw := ""
	for _, s := range svcs {
		if v, ok := env(s, "DATABASE_URL"); ok && (s.Stack == djangoapi.Name || strings.Contains(s.Name, "django-api")) {
			raw = v
			break
		}
	}
	if raw == "" && site.HasStack(djangoapi.Name) {
		raw = djangoapi.DatabaseURL(site)
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

// readPostgres reads pg_hba_file_rules, the application role and the subscriptions
// whose connection string carries a password, as sitectl's administrative role.
func readPostgres(ctx context.Context, site *sites.Site, app string) (*PGFacts, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pool, err := postgres.Connect(ctx, site)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	pg := &PGFacts{AdminUser: site.Postgres.User, AppUser: app}
	rows, err := pool.Query(ctx, `SELECT line_number, coalesce(type,''), coalesce(array_to_string(database, ','),''),
		coalesce(array_to_string(user_name, ','),''), coalesce(address,''), coalesce(auth_method,''), coalesce(error,'')
		FROM pg_hba_file_rules ORDER BY line_number`)
	if err != nil {
		return nil, fmt.Errorf("pg_hba_file_rules: %w", err)
	}
	for rows.Next() {
		var r HBARule
		var line int32
		if err := rows.Scan(&line, &r.Type, &r.Database, &r.User, &r.Address, &r.Method, &r.Error); err != nil {
			rows.Close()
			return nil, fmt.Errorf("pg_hba_file_rules: %w", err)
		}
		r.Line = int(line)
		pg.HBA = append(pg.HBA, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pg_hba_file_rules: %w", err)
	}
	if app != "" {
		var createRole, createDB, repl, bypass bool
		err := pool.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = $1`, app).
			Scan(&pg.AppSuper, &createRole, &createDB, &repl, &bypass)
		switch {
		case err == nil:
			pg.AppFound = true
			for _, a := range []struct {
				on   bool
				name string
			}{{createRole, "CREATEROLE"}, {createDB, "CREATEDB"}, {repl, "REPLICATION"}, {bypass, "BYPASSRLS"}} {
				if a.on {
					pg.AppAttrs = append(pg.AppAttrs, a.name)
				}
			}
		case strings.Contains(err.Error(), "no rows"):
		default:
			return nil, fmt.Errorf("pg_roles: %w", err)
		}
	}
	// Only whether a password is there is read: the connection string never leaves
	// the server.
	srows, err := pool.Query(ctx, `SELECT subname FROM pg_subscription WHERE subconninfo ~ '(^|\s)password\s*='`)
	if err != nil {
		return nil, fmt.Errorf("pg_subscription: %w", err)
	}
	for srows.Next() {
		var n string
		if err := srows.Scan(&n); err != nil {
			srows.Close()
			return nil, fmt.Errorf("pg_subscription: %w", err)
		}
		pg.SubsWithPassword = append(pg.SubsWithPassword, n)
	}
	srows.Close()
	return pg, srows.Err()
}
