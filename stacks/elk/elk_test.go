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
		want := "logstash"
		if in.Site.IsHub() {
			want = "elasticsearch,kibana,logstash"
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("services %s, want %s", got, want)
		}
		if len(d.Services) != len(names) || len(d.Configs) != 2 {
			t.Errorf("converted %d services and %d configs", len(d.Services), len(d.Configs))
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
