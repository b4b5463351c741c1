package elk_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/elastic/go-grok"
	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/elk"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestRenderGolden renders elk for every site and environment through the deploy
// engine's conversion, checks what runs where, and compares every file with its golden.
func TestRenderGolden(t *testing.T) {
	stacktest.RenderEach(t, elk.Stack{}, func(t *testing.T, in stacks.Input, _ stacks.Rendered, cfg *composetypes.Config, d *stacks.Desired) {
		var names []string
		for _, svc := range cfg.Services {
			names = append(names, svc.Name)
		}
		sort.Strings(names)
		// Security is on outside the lab: the hub also runs es-setup and mounts
		// sitectl-es (a third config); the lab's stand-in runs without.
		secure := in.Env() != "lab"
		want, configs := "logstash", 2
		switch {
		case in.Site.IsHub() && secure:
			want, configs = "elasticsearch,es-setup,kibana,logstash", 3
		case in.Site.IsHub():
			want = "elasticsearch,kibana,logstash"
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("services %s, want %s", got, want)
		}
		if len(d.Services) != len(names) || len(d.Configs) != configs {
			t.Errorf("converted %d services and %d configs, want %d configs", len(d.Services), len(d.Configs), configs)
		}
	})
}

// TestShipping: each site's pipeline tags events with its site and environment and
// ships to the hub's Elasticsearch at the hub node's LAN address (the tunnel), and
// Logstash's queue is persisted.
func TestShipping(t *testing.T) {
	topo := stacktest.Load(t, "production")
	hubNode := elk.ElasticsearchNode(topo.HubSite())
	for _, s := range topo.Sites {
		r, err := elk.Stack{}.Render(stacks.Input{Topo: topo, Site: s})
		if err != nil {
			t.Fatal(err)
		}
		conf := string(r.Files["logstash.conf"])
		wantES := `hosts => ["http://` + hubNode.Address + `:9200"]`
		if s.IsHub() {
			wantES = `hosts => ["http://elasticsearch:9200"]`
		}
		for _, want := range []string{wantES, `"site" => "` + s.Name + `"`, `"environment" => "production"`, "json {", "grok {"} {
			if !strings.Contains(conf, want) {
				t.Errorf("%s pipeline lacks %s", s.Name, want)
			}
		}
		if sections, err := topLevel(conf); err != nil || strings.Join(sections, ",") != "input,filter,output" {
			t.Errorf("%s pipeline: sections %v (%v), want input, filter, output", s.Name, sections, err)
		}
		var ls map[string]any
		if err := yaml.Unmarshal(r.Files["logstash.yml"], &ls); err != nil {
			t.Fatal(err)
		}
		if ls["queue.type"] != "persisted" || ls["queue.max_bytes"] != "1gb" {
			t.Errorf("%s logstash.yml: queue %v/%v, want persisted/1gb", s.Name, ls["queue.type"], ls["queue.max_bytes"])
		}
	}
}

// TestValuesAndHub: JVM heap from values reaches ES_JAVA_OPTS and the memory limit;
// a bad heap is refused naming the key; a spoke whose hub has no elk is refused.
func TestValuesAndHub(t *testing.T) {
	topo := stacktest.Load(t, "dev", "cloud:values.elk.heap=2g")
	r, err := elk.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("cloud")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := stacktest.LoadCompose(t, r)
	for _, svc := range cfg.Services {
		if svc.Name != "elasticsearch" {
			continue
		}
		if got := *svc.Environment["ES_JAVA_OPTS"]; got != "-Xms2g -Xmx2g" {
			t.Errorf("ES_JAVA_OPTS %q", got)
		}
		if got := svc.Deploy.Resources.Limits.MemoryBytes; got != 4<<30 {
			t.Errorf("memory limit %d, want 4 GiB", got)
		}
	}
	topo = stacktest.Load(t, "dev", "cloud:values.elk.heap=lots")
	if _, err := (elk.Stack{}).Render(stacks.Input{Topo: topo, Site: topo.Site("cloud")}); err == nil || !strings.Contains(err.Error(), "values.elk.heap") {
		t.Errorf("bad heap: %v", err)
	}
	for _, c := range []struct{ prefix, want string }{
		{"logs", "built-in data-stream template logs-*-*"},
		{"metrics-app", "metrics-*-*"},
		{"Logs", "lowercase"},
		{"_x", "starting with a letter"},
		{"a b", "lowercase"},
	} {
		topo = stacktest.Load(t, "dev", "cloud:values.elk.index_prefix="+c.prefix)
		_, err := (elk.Stack{}).Render(stacks.Input{Topo: topo, Site: topo.Site("cloud")})
		if err == nil || !strings.Contains(err.Error(), "values.elk.index_prefix") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("index_prefix %q: err = %v, want it named with %q", c.prefix, err, c.want)
		}
	}
	topo = stacktest.Load(t, "dev", "cloud:values.elk.index_prefix=logstash")
	if _, err := (elk.Stack{}).Render(stacks.Input{Topo: topo, Site: topo.Site("cloud")}); err != nil {
		t.Errorf("index_prefix logstash: %v", err)
	}
	topo = stacktest.Load(t, "dev", "cloud:stacks=postgres")
	if _, err := (elk.Stack{}).Render(stacks.Input{Topo: topo, Site: topo.Site("douala")}); err == nil || !strings.Contains(err.Error(), "hub does not run the elk stack") {
		t.Errorf("hub without elk: %v", err)
	}
}

// topLevel reads a Logstash config's structure: braces must balance outside strings,
// regex literals and comments; it returns the top-level section names.
func topLevel(conf string) ([]string, error) {
	var sections []string
	depth, word := 0, ""
	prev := ""
	for i := 0; i < len(conf); i++ {
		c := conf[i]
		switch {
		case c == '#':
			for i < len(conf) && conf[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || (c == '/' && strings.HasSuffix(strings.TrimSpace(prev), "=~")):
			end := c
			for i++; i < len(conf) && conf[i] != end; i++ {
				if conf[i] == '\\' {
					i++
				}
			}
			if i >= len(conf) {
				return sections, fmt.Errorf("unterminated %c", end)
			}
		case c == '{':
			if depth == 0 {
				sections = append(sections, strings.TrimSpace(word))
			}
			depth++
			word = ""
		case c == '}':
			depth--
			if depth < 0 {
				return sections, fmt.Errorf("unbalanced } at byte %d", i)
			}
			word = ""
		case c == '\n':
			word = ""
		default:
			word += string(c)
		}
		prev = conf[max(0, i-3) : i+1]
	}
	if depth != 0 {
		return sections, fmt.Errorf("%d unclosed {", depth)
	}
	return sections, nil
}

// groks returns the patterns of the pipeline's `"message" => [ ... ]` grok list,
// unquoted as Logstash reads them.
func groks(t *testing.T, conf string) []string {
	t.Helper()
	i := strings.Index(conf, `"message" => [`)
	if i < 0 {
		t.Fatal("pipeline has no grok list for message")
	}
	rest := conf[i+len(`"message" => [`):]
	rest = rest[:strings.Index(rest, "\n        ]")]
	var out []string
	for _, line := range strings.Split(rest, "\n") {
		line = strings.TrimSuffix(strings.TrimSpace(line), ",")
		if !strings.HasPrefix(line, `"`) {
			continue // comments
		}
		// Logstash strings keep backslashes as written (config.support_escapes off).
		out = append(out, line[1:len(line)-1])
	}
	return out
}

// TestGrokPatterns compiles the pipeline's grok patterns with a grok implementation
// carrying Logstash's pattern set (elastic/go-grok) and checks that each parses the
// log line it is for, and that the line meant for one is not eaten by another.
func TestGrokPatterns(t *testing.T) {
	topo := stacktest.Load(t, "dev")
	r, err := elk.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
	if err != nil {
		t.Fatal(err)
	}
	pats := groks(t, string(r.Files["logstash.conf"]))
	if len(pats) != 3 {
		t.Fatalf("%d grok patterns, want 3 (kong/nginx, postgres, gunicorn): %q", len(pats), pats)
	}
	samples := []struct {
		line  string
		which int
		want  map[string]string // captured field → value (any field name containing the key)
	}{
		{`10.10.0.1 - - [23/Nov/2026:14:00:00 +0000] "GET /api/orders HTTP/1.1" 200 512 "-" "curl/8.5.0"`, 0,
			map[string]string{"status_code": "200"}},
		{`2026-11-23 14:00:00.123 UTC [123] LOG:  checkpoint starting: time`, 1,
			map[string]string{"pid": "123", "level": "LOG", "log_tz": "UTC", "log_message": "checkpoint starting: time"}},
		{`[2026-11-23 14:00:00 +0000] [7] [INFO] Booting worker with pid: 7`, 2,
			map[string]string{"pid": "7", "level": "INFO", "log_time": "2026-11-23 14:00:00 +0000"}},
	}
	for i, p := range pats {
		g, err := grok.NewComplete()
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Compile(p, true); err != nil {
			t.Fatalf("pattern %d %q does not compile: %v", i, p, err)
		}
		for _, s := range samples {
			got, err := g.ParseString(s.line)
			matched := err == nil && len(got) > 0
			if matched != (s.which == i) {
				t.Errorf("pattern %d on %q: matched=%v (%v)", i, s.line, matched, err)
				continue
			}
			if !matched {
				continue
			}
			for key, want := range s.want {
				found := false
				for k, v := range got {
					if strings.Contains(k, key) && v == want {
						found = true
					}
				}
				if !found {
					t.Errorf("pattern %d on %q: no field %s = %q in %v", i, s.line, key, want, got)
				}
			}
		}
	}
}

// TestSecurity: outside the lab Elasticsearch runs with security on, its elastic
// password from a Docker secret; Kibana and Logstash connect as their own users
// with their passwords as Docker secrets, read into the process inside the
// container; no service's environment or config holds a password; a missing
// secret, or a site disagreeing with the hub, is refused by name; the lab renders
// security off (its stand-in).
func TestSecurity(t *testing.T) {
	topo := stacktest.Load(t, "production")
	for _, s := range topo.Sites {
		r, err := elk.Stack{}.Render(stacks.Input{Topo: topo, Site: s})
		if err != nil {
			t.Fatal(err)
		}
		cfg := stacktest.LoadCompose(t, r)
		for _, svc := range cfg.Services {
			for k, v := range svc.Environment {
				if v != nil && strings.Contains(strings.ToLower(k), "password") && !strings.HasSuffix(k, "_FILE") {
					t.Errorf("%s %s: env %s=%s holds a password", s.Name, svc.Name, k, *v)
				}
			}
			var secrets []string
			for _, sec := range svc.Secrets {
				secrets = append(secrets, sec.Source)
			}
			got := strings.Join(secrets, ",")
			want := map[string]string{"elasticsearch": "elastic-password", "kibana": "kibana-es-password", "logstash": "logstash-es-password",
				"es-setup": "elastic-password,kibana-es-password,logstash-es-password"}[svc.Name]
			if got != want {
				t.Errorf("%s %s: secrets %q, want %q", s.Name, svc.Name, got, want)
			}
			// The image runs as uid 1000: a secret it cannot read leaves es-setup
			// waiting forever and Kibana and Logstash without users.
			if svc.Name == "elasticsearch" || svc.Name == "es-setup" {
				for _, sec := range svc.Secrets {
					if sec.UID != "1000" {
						t.Errorf("%s %s: secret %s has uid %q, want 1000 (the image's user)", s.Name, svc.Name, sec.Source, sec.UID)
					}
				}
			}
			if svc.Name == "elasticsearch" && (svc.Environment["xpack.security.enabled"] == nil || *svc.Environment["xpack.security.enabled"] != "true") {
				t.Errorf("%s: xpack.security.enabled is not true", s.Name)
			}
		}
		conf := string(r.Files["logstash.conf"])
		if !strings.Contains(conf, `user => "sitectl_logstash"`) || !strings.Contains(conf, `password => "${LOGSTASH_ES_PASSWORD}"`) {
			t.Errorf("%s pipeline does not ship as sitectl_logstash with the password from its environment", s.Name)
		}
		if s.IsHub() {
			tool := string(r.Files["es-tool.sh"])
			// Swarm names the service only once its task is healthy: the health
			// check must not go through that name.
			health := tool[strings.Index(tool, "health)"):strings.Index(tool, "setup)")]
			if !strings.Contains(health, "es=http://localhost:") {
				t.Errorf("es-tool.sh's health check does not ask localhost:\n%s", health)
			}
			for _, w := range []string{"/_security/user/kibana_system/_password", "/_security/role/sitectl_logstash_writer", `"names":["sitectl-logs-*"]`, "curl -fsS -K -"} {
				if !strings.Contains(tool, w) {
					t.Errorf("es-tool.sh lacks %s", w)
				}
			}
		}
	}
	hub := topo.Site("cloud")
	delete(hub.Secrets, "kibana-es-password")
	if _, err := (elk.Stack{}).Render(stacks.Input{Topo: topo, Site: hub}); err == nil || !strings.Contains(err.Error(), "secrets kibana-es-password are not set") {
		t.Errorf("missing secret: err = %v", err)
	}
	odd := stacktest.Load(t, "production", "douala:values.elk.security=false")
	if _, err := (elk.Stack{}).Render(stacks.Input{Topo: odd, Site: odd.Site("douala")}); err == nil || !strings.Contains(err.Error(), "must agree") {
		t.Errorf("security off at a spoke only: err = %v", err)
	}
	lab := stacktest.Load(t, "production", "values.elk.security=false")
	r, err := elk.Stack{}.Render(stacks.Input{Topo: lab, Site: lab.Site("cloud")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(r.Compose), `xpack.security.enabled: "false"`) || strings.Contains(string(r.Compose), "secrets:") {
		t.Errorf("security off: want xpack.security.enabled false and no secrets")
	}
}
