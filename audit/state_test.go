package audit

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
)

// summary lists findings as "severity object: what" lines, sorted as found.
func summary(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Severity+" "+f.Object)
	}
	return out
}

func checkFixes(t *testing.T, fs []Finding) {
	t.Helper()
	for _, f := range fs {
		if f.Severity != Info && f.Fix == "" {
			t.Errorf("%s finding without a fix: %+v", f.Severity, f)
		}
		if f.Site == "" || f.Object == "" {
			t.Errorf("finding without site or object: %+v", f)
		}
	}
}

func TestCheckSecrets(t *testing.T) {
	known := []Secret{{Name: "postgres-password", Value: []byte("s3cr3t-pg-value")}, {Name: "short", Value: []byte("ab")}}
	for _, tc := range []struct {
		name string
		svcs []Service
		cfgs []Config
		want []string
	}{
		{"clean: _FILE variables, paths, URLs without password", []Service{{Name: "api", Env: []string{"DB_PASSWORD_FILE=/run/secrets/postgres-password", "DATABASE_URL=postgres://sitectl@db:5432/app", "SECRET_KEY_PATH=/run/secrets/k", "MODE=ab"}}}, []Config{{Name: "kong_yml", Data: []byte("services: []")}}, nil},
		{"a known value in Env", []Service{{Name: "api", Env: []string{"SOMETHING=x-s3cr3t-pg-value-y"}}}, nil, []string{"high service api env"}},
		{"a known value in a label", []Service{{Name: "api", Labels: map[string]string{"note": "s3cr3t-pg-value"}}}, nil, []string{"high service api label"}},
		{"named like a secret, holds a value", []Service{{Name: "es", Env: []string{"ELASTIC_PASSWORD=changeme"}}}, nil, []string{"high service es env"}},
		{"named like a secret, empty", []Service{{Name: "es", Env: []string{"ELASTIC_PASSWORD="}}}, nil, nil},
		{"URL with a password", []Service{{Name: "api", Env: []string{"DATABASE_URL=postgres://u:pw@db/app"}}}, nil, []string{"high service api env"}},
		{"a known value in a config", nil, []Config{{Name: "pipeline", Data: []byte("password => \"s3cr3t-pg-value\"")}}, []string{"high config pipeline"}},
		{"a URL with a password in a config", nil, []Config{{Name: "prom", Data: []byte("url: http://admin:hunter2@grafana:3000/")}}, []string{"high config prom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := CheckSecrets("douala", tc.svcs, tc.cfgs, known)
			checkFixes(t, fs)
			if got := summary(fs); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			for _, f := range fs {
				if strings.Contains(fmt.Sprintf("%+v", f), "s3cr3t") || strings.Contains(fmt.Sprintf("%+v", f), "hunter2") || strings.Contains(fmt.Sprintf("%+v", f), "changeme") {
					t.Errorf("a finding shows a secret value: %+v", f)
				}
			}
		})
	}
}

func TestCheckServices(t *testing.T) {
	prod := &sites.Site{Name: "cloud"}
	lab := &sites.Site{Name: "cloud", Lab: sites.Lab{Namespace: "sl-cloud-gw"}}
	kongOK := Service{Name: "kong_kong", Stack: "kong", Env: []string{"KONG_ADMIN_LISTEN=off"}, Ports: []PublishedPort{{Target: 8000, Published: 80, Mode: "host"}, {Target: 8443, Published: 443, Mode: "host"}}}
	kongAdmin := Service{Name: "kong_kong", Stack: "kong", Env: []string{"KONG_ADMIN_LISTEN=0.0.0.0:8001"}, Ports: []PublishedPort{{Target: 8001, Published: 8001, Mode: "ingress"}}}
	esOff := Service{Name: "elk_elasticsearch", Stack: "elk", Env: []string{"xpack.security.enabled=false"}}
	esOn := Service{Name: "elk_elasticsearch", Stack: "elk", Env: []string{"xpack.security.enabled=true", "ELASTIC_PASSWORD_FILE=/run/secrets/elastic-password"}}
	mongoKey := Service{Name: "mongo_mongo1", Stack: "mongo", Image: "mongo:7.0", Args: []string{"mongod", "--replSet", "rs", "--keyFile", "/run/secrets/mongo-keyfile"}}
	mongoOpen := Service{Name: "mongo_mongo1", Stack: "mongo", Image: "mongo:7.0", Args: []string{"mongod", "--replSet", "rs", "--bind_ip_all"}}
	for _, tc := range []struct {
		name string
		site *sites.Site
		svcs []Service
		want []string
	}{
		{"as sitectl renders them, outside the lab", prod, []Service{kongOK, esOn, mongoKey}, nil},
		{"Kong's admin API listening and published", prod, []Service{kongAdmin}, []string{"high service kong_kong port 8001", "medium service kong_kong env KONG_ADMIN_LISTEN"}},
		{"Elasticsearch security off outside the lab", prod, []Service{esOff}, []string{"high service elk_elasticsearch env xpack.security.enabled"}},
		{"Elasticsearch security off in the lab: an exception", lab, []Service{esOff}, []string{"info service elk_elasticsearch env xpack.security.enabled"}},
		{"mongod without keyfile", prod, []Service{mongoOpen}, []string{"high service mongo_mongo1"}},
		{"a MongoDB exporter is no mongod", prod, []Service{{Name: "monitoring_mongo-exporter", Image: "percona/mongodb_exporter:0.40", Args: []string{"--mongodb.uri=mongodb://mongo1:27017"}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := CheckServices(tc.site, tc.svcs)
			checkFixes(t, fs)
			if got := summary(fs); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCheckPostgres(t *testing.T) {
	scram := []HBARule{{Line: 1, Type: "local", Database: "all", User: "all", Method: "scram-sha-256"}, {Line: 2, Type: "host", Database: "all", User: "all", Address: "all", Method: "scram-sha-256"}}
	dockerDefault := []HBARule{{Line: 89, Type: "local", Database: "all", User: "all", Method: "trust"}, {Line: 95, Type: "host", Database: "all", User: "all", Address: "127.0.0.1", Method: "trust"}, {Line: 100, Type: "host", Database: "all", User: "all", Address: "all", Method: "scram-sha-256"}}
	for _, tc := range []struct {
		name string
		pg   *PGFacts
		err  error
		want []string
	}{
		{"clean", &PGFacts{HBA: scram, AdminUser: "sitectl", AppUser: "app", AppFound: true}, nil, nil},
		{"unreadable: unknown, high", nil, errors.New("connection refused"), []string{"high postgres"}},
		{"the image's default pg_hba: trust on the socket and localhost", &PGFacts{HBA: dockerDefault, AdminUser: "sitectl", AppUser: "app", AppFound: true}, nil,
			[]string{"high pg_hba line 89 (local all all )", "high pg_hba line 95 (host all all 127.0.0.1)"}},
		{"md5 is not scram", &PGFacts{HBA: []HBARule{{Line: 3, Type: "host", Database: "all", User: "all", Address: "10.0.0.0/8", Method: "md5"}}, AdminUser: "sitectl", AppUser: "app", AppFound: true}, nil,
			[]string{"medium pg_hba line 3 (host all all 10.0.0.0/8)"}},
		{"the app connects as sitectl's superuser", &PGFacts{HBA: scram, AdminUser: "sitectl", AppUser: "sitectl", AppSuper: true, AppFound: true}, nil, []string{"high role sitectl"}},
		{"the app shares sitectl's role, even without superuser", &PGFacts{HBA: scram, AdminUser: "sitectl", AppUser: "sitectl", AppFound: true}, nil, []string{"high role sitectl"}},
		{"the app's own role is a superuser", &PGFacts{HBA: scram, AdminUser: "sitectl", AppUser: "app", AppSuper: true, AppFound: true}, nil, []string{"high role app"}},
		{"the app's own role may create roles and databases", &PGFacts{HBA: scram, AdminUser: "sitectl", AppUser: "app", AppFound: true, AppAttrs: []string{"CREATEROLE", "CREATEDB"}}, nil, []string{"medium role app"}},
		{"app role unknown", &PGFacts{HBA: scram, AdminUser: "sitectl"}, nil, []string{"high application role"}},
		{"subscription passwords in subconninfo", &PGFacts{HBA: scram, AdminUser: "sitectl", AppUser: "app", AppFound: true, SubsWithPassword: []string{"sitectl_cloud_to_douala"}}, nil,
			[]string{"high subscription sitectl_cloud_to_douala"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := CheckPostgres("douala", tc.pg, tc.err)
			checkFixes(t, fs)
			if got := summary(fs); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.err != nil && fs[0].State != Unknown {
				t.Errorf("unreadable database: state %q, want unknown", fs[0].State)
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	base := func() *sites.Site {
		return &sites.Site{Name: "douala", Engine: sites.Engine{Host: "ssh://ops@10.10.0.11"},
			Nodes:    []sites.Node{{Name: "douala-db1", Engine: "ssh://ops@10.10.0.12"}},
			Networks: map[string]sites.Network{"app": {Encrypted: true}, "edge": {Encrypted: true}}}
	}
	for _, tc := range []struct {
		name string
		edit func(*sites.Site)
		want []string
	}{
		{"clean", func(*sites.Site) {}, nil},
		{"encryption off without a reason", func(s *sites.Site) { s.Networks["edge"] = sites.Network{} }, []string{"high network edge"}},
		{"encryption off with a reason: an exception", func(s *sites.Site) {
			s.Networks["edge"] = sites.Network{}
			s.Deploy.EncryptionException = "lab kernel has no ESP"
		}, []string{"info network edge"}},
		{"a node's engine on TCP without TLS", func(s *sites.Site) { s.Nodes[0].Engine = "tcp://10.10.0.12:2375" }, []string{"high engine of node douala-db1 tcp://10.10.0.12:2375"}},
		{"the site engine on TCP with TLS", func(s *sites.Site) { s.Engine = sites.Engine{Host: "tcp://10.10.0.11:2376", TLSVerify: true} }, nil},
		{"lab stand-ins: an exception", func(s *sites.Site) {
			s.Lab.Namespace = "sl-douala-gw"
			s.Images = map[string]string{"mongo": "sitectl-lab/mongo:standin", "postgres": "sitectl-lab/postgres:15"}
		}, []string{"info images"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(s)
			fs := CheckConfig(s)
			checkFixes(t, fs)
			if got := summary(fs); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCertFinding(t *testing.T) {
	na := time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		state tunnels.CertStatus
		want  string
	}{
		{"ok", "info ok"}, {"expiring", "medium expiring"}, {"expired", "high expired"}, {"invalid", "high invalid"}, {"missing", "high unknown"},
	} {
		f := CertFinding("douala", "tunnel gw.douala", "/pki/gw.crt", tc.state, "a problem", na)
		if got := f.Severity + " " + f.State; got != tc.want {
			t.Errorf("%s: %q, want %q", tc.state, got, tc.want)
		}
		if tc.state == "ok" && !strings.Contains(f.What, "2027-01-02") {
			t.Errorf("ok: %q does not name the expiry", f.What)
		}
		checkFixes(t, []Finding{f})
	}
}

func TestCheckKongTLS(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name string
		svcs []KongService
		want []string
	}{
		{"http services are not judged", []KongService{{Name: "api", Protocol: "http", Host: "django-api.local"}}, nil},
		{"https without verification", []KongService{{Name: "admin", Protocol: "https", Host: "admin.hub", TLSVerify: &no}}, []string{"high kong.yml service admin (admin.hub)"}},
		{"https, tls_verify unset", []KongService{{Name: "admin", Protocol: "https", Host: "admin.hub"}}, []string{"high kong.yml service admin (admin.hub)"}},
		{"https verified without a named CA", []KongService{{Name: "admin", Protocol: "https", Host: "admin.hub", TLSVerify: &yes}}, []string{"medium kong.yml service admin (admin.hub)"}},
		{"https verified with the CA", []KongService{{Name: "admin", Protocol: "https", Host: "admin.hub", TLSVerify: &yes, CACertificates: []string{"0b6f"}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := CheckKongTLS("douala", tc.svcs)
			checkFixes(t, fs)
			if got := summary(fs); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestKnownSecrets: every secret reference is resolved for comparison; an unreadable
// one is named (never its value), a certificate is public and not searched for.
func TestKnownSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	site := &sites.Site{Name: "douala", Secrets: map[string]sites.SecretRef{
		"django-secret-key": {File: write("dj", "a-long-django-key")},
		"kong-tls-cert":     {File: write("crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")},
		"missing":           {File: dir + "/nope"},
	}}
	site.Postgres.Password = sites.SecretRef{File: write("pg", "pg-password-value")}
	known, unread := knownSecrets(site)
	var names []string
	for _, k := range known {
		names = append(names, k.Name)
	}
	if strings.Join(names, ",") != "django-secret-key,postgres.password" || strings.Join(unread, ",") != "missing" {
		t.Errorf("known %v, unread %v", names, unread)
	}
	if string(known[1].Value) != "pg-password-value" {
		t.Errorf("the value is read without its newline: %q", known[1].Value)
	}
}
