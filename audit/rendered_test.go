package audit

import (
	"context"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	_ "github.com/sitectl/sitectl/stacks/all"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// renderedState converts every stack of site as deploy would (secrets read from
// the test's variables) and returns what the audit would read of the deployed
// services and configs, and the secrets it compares with them.
func renderedState(t *testing.T, topo *sites.Topology, site *sites.Site) ([]Service, []Config, []Secret) {
	t.Helper()
	d, err := stacks.Build(context.Background(), stacks.Input{Topo: topo, Site: site}, stacks.ConvertOptions{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	var svcs []Service
	for _, x := range d.Services {
		s := Service{Name: x.Name, Stack: x.Stack, Labels: map[string]string{}}
		for k, v := range x.Spec.Labels {
			s.Labels[k] = v
		}
		if cs := x.Spec.TaskTemplate.ContainerSpec; cs != nil {
			s.Image, s.Env = cs.Image, cs.Env
			s.Args = append(append(s.Args, cs.Command...), cs.Args...)
		}
		svcs = append(svcs, s)
	}
	var cfgs []Config
	for _, c := range d.Configs {
		cfgs = append(cfgs, Config{Name: c.Name, Data: c.Data})
	}
	known, unread := knownSecrets(site)
	if len(unread) > 0 {
		t.Fatalf("secrets not read: %v", unread)
	}
	return svcs, cfgs, known
}

// TestRenderedStacksAudit: what a fresh deploy of each environment runs passes the
// audit's reads of services, configs and roles: no secret in any Env, label or
// config, Elasticsearch security on, the API connecting as its own role, not
// sitectl's. Turning Elasticsearch security off is high again (sitectl's own role
// as the application's is refused by config validate, and high in TestCheckPostgres).
func TestRenderedStacksAudit(t *testing.T) {
	for _, v := range []string{"SITECTL_PG_PASSWORD", "SITECTL_PG_APP_PASSWORD", "SITECTL_DJANGO_SECRET_KEY", "SITECTL_MONGO_KEYFILE",
		"SITECTL_MONGO_PASSWORD", "SITECTL_KONG_TLS_CERT", "SITECTL_KONG_TLS_KEY", "SITECTL_GRAFANA_ADMIN_PASSWORD",
		"SITECTL_ELASTIC_PASSWORD", "SITECTL_KIBANA_ES_PASSWORD", "SITECTL_LOGSTASH_ES_PASSWORD", "SITECTL_SMTP_PASSWORD", "SITECTL_ALERT_WEBHOOK_TOKEN"} {
		t.Setenv(v, "value-of-"+strings.ToLower(v))
	}
	highs := func(fs []Finding) []string {
		var out []string
		for _, f := range fs {
			if f.Severity == High {
				out = append(out, f.Site+" "+f.Object+": "+f.What)
			}
		}
		return out
	}
	for _, env := range []string{"dev", "staging", "production"} {
		topo := stacktest.Load(t, env)
		for _, site := range topo.Sites {
			svcs, cfgs, known := renderedState(t, topo, site)
			fs := append(CheckServices(site, svcs), CheckSecrets(site.Name, svcs, cfgs, known)...)
			app := appUser(site, svcs)
			fs = append(fs, CheckPostgres(site.Name, &PGFacts{AdminUser: site.Postgres.User, AppUser: app, AppFound: true}, nil)...)
			if h := highs(fs); len(h) > 0 {
				t.Errorf("%s %s: %d high: %s", env, site.Name, len(h), strings.Join(h, "; "))
			}
			if app != site.Postgres.AppUser || app == site.Postgres.User {
				t.Errorf("%s %s: the API connects as %q, want postgres.app_user %q", env, site.Name, app, site.Postgres.AppUser)
			}
		}
	}
	off := stacktest.Load(t, "production", "values.elk.security=false")
	hub := off.HubSite()
	svcs, _, _ := renderedState(t, off, hub)
	if h := highs(CheckServices(hub, svcs)); len(h) != 1 || !strings.Contains(h[0], "xpack.security.enabled") {
		t.Errorf("security off in production: highs %v, want the Elasticsearch one", h)
	}
}
