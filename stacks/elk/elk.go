// Package elk is the elk stack: Elasticsearch and Kibana at the hub only (single
// node), Logstash at every site that runs the stack, parsing the services' logs,
// tagging them with site and environment and shipping them to the hub's
// Elasticsearch over the tunnel (its LAN address: overlays never span sites), with a
// persistent queue so a partition delays logs instead of losing them.
package elk

import (
	_ "embed"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// Name is the stack's name (its folder under stacks/).
const Name = "elk"

//go:embed compose.yml.tmpl
var composeTemplate []byte

func init() { stacks.Register(Stack{}) }

// Stack renders the elk stack.
type Stack struct{}

// Name implements stacks.Stack.
func (Stack) Name() string { return Name }

// Settings are values.elk of a site, with their defaults.
type Settings struct {
	// Heap is Elasticsearch's JVM heap (-Xms = -Xmx), e.g. "1g"; the hub's matters.
	Heap string
	// LogstashHeap is Logstash's JVM heap.
	LogstashHeap string
	// QueueMaxBytes caps Logstash's persisted queue: how much a partition can buffer.
	QueueMaxBytes string
	Kibana        bool
	Healthchecks  bool
	// HealthInterval is the container health checks' interval.
	HealthInterval string
	// IndexPrefix starts the daily index names: <prefix>-<site>-YYYY.MM.dd.
	IndexPrefix string
	// Security turns on Elasticsearch's security (security.go): users and
	// passwords for Kibana and Logstash. Off only in the lab (its stand-in).
	Security bool
}

var sizeRE = regexp.MustCompile(`^[1-9][0-9]*[kmgKMG]$`)
var queueRE = regexp.MustCompile(`^[1-9][0-9]*(b|kb|mb|gb|tb|pb)$`)

// ReadSettings reads values.elk of site.
func ReadSettings(topo *sites.Topology, site *sites.Site) (Settings, error) {
	v := targets.ValuesOf(topo, site, Name)
	s := Settings{
		Heap:           v.String("heap", "1g"),
		LogstashHeap:   v.String("logstash_heap", "512m"),
		QueueMaxBytes:  v.String("queue_max_bytes", "1gb"),
		Kibana:         v.Bool("kibana", true),
		Healthchecks:   v.Bool("healthchecks", true),
		HealthInterval: v.String("health_interval", "15s"),
		IndexPrefix:    v.String("index_prefix", DefaultIndexPrefix),
		Security:       v.Bool("security", true),
	}
	if err := v.Err(); err != nil {
		return s, err
	}
	if _, err := time.ParseDuration(s.HealthInterval); err != nil {
		return s, fmt.Errorf("site %s: values.elk.health_interval is %q; want a duration such as 2s or 10s", site.Name, s.HealthInterval)
	}
	for _, c := range []struct{ key, val string }{{"heap", s.Heap}, {"logstash_heap", s.LogstashHeap}} {
		if !sizeRE.MatchString(c.val) {
			return s, fmt.Errorf("site %s: values.elk.%s is %q; want a JVM size such as 512m or 2g", site.Name, c.key, c.val)
		}
	}
	if err := checkIndexPrefix(s.IndexPrefix); err != nil {
		return s, fmt.Errorf("site %s: values.elk.index_prefix is %q: %w", site.Name, s.IndexPrefix, err)
	}
	if !queueRE.MatchString(s.QueueMaxBytes) {
		return s, fmt.Errorf("site %s: values.elk.queue_max_bytes is %q; want a size such as 512mb or 4gb", site.Name, s.QueueMaxBytes)
	}
	return s, nil
}

// ElasticsearchNode is the hub node Elasticsearch is pinned to (its data volume
// lives there): the node labelled role=monitor, else the first manager.
func ElasticsearchNode(hub *sites.Site) sites.Node { return targets.Pin(hub, "monitor", "") }

// ElasticsearchURL is where a site's Logstash ships: at the hub the service on the
// stack's own network, elsewhere the hub node's LAN address over the tunnel.
func ElasticsearchURL(topo *sites.Topology, site *sites.Site) string {
	if site.IsHub() {
		return fmt.Sprintf("http://elasticsearch:%d", targets.ElasticsearchPort)
	}
	return "http://" + targets.Addr(ElasticsearchNode(topo.HubSite()).Address, targets.ElasticsearchPort)
}

type composeData struct {
	Settings
	// Secrets are the security secrets this site's stack mounts (none without
	// security).
	Secrets         []string
	ToolPath        string
	Hub             bool
	ESConstraint    string
	ESMemory        string
	LogstashMemory  string
	ESPort          int
	KibanaPort      int
	LogstashAPIPort int
	GELFPort        int
	TCPPort         int
}

// Render implements stacks.Stack: compose.yml, logstash.yml and the pipeline.
func (Stack) Render(in stacks.Input) (stacks.Rendered, error) {
	hub := in.Topo.HubSite()
	if hub == nil || !hub.HasStack(Name) {
		return stacks.Rendered{}, fmt.Errorf("elk at %s: Logstash ships to the hub's Elasticsearch, but the hub does not run the elk stack: add elk to the hub's stacks or remove it from %s's", in.Site.Name, in.Site.Name)
	}
	s, err := ReadSettings(in.Topo, in.Site)
	if err != nil {
		return stacks.Rendered{}, err
	}
	hs, err := ReadSettings(in.Topo, hub)
	if err != nil {
		return stacks.Rendered{}, err
	}
	if s.Security != hs.Security {
		return stacks.Rendered{}, fmt.Errorf("elk at %s: values.elk.security is %v here but %v at the hub %s: Logstash and Elasticsearch must agree; set it the same at every site", in.Site.Name, s.Security, hs.Security, hub.Name)
	}
	var secrets []string
	esUser := ""
	if s.Security {
		if secrets, err = securitySecrets(in.Site); err != nil {
			return stacks.Rendered{}, err
		}
		esUser = LogstashUser
	}
	pipeline := Pipeline(in.Site, ElasticsearchURL(in.Topo, in.Site), s.IndexPrefix, appNames(in), esUser)
	data := composeData{
		Settings: s, Hub: in.Site.IsHub(), Secrets: secrets, ToolPath: ToolPath,
		ESConstraint:   targets.HostnameConstraint(ElasticsearchNode(hub)),
		ESMemory:       double(hs.Heap),
		LogstashMemory: double(s.LogstashHeap),
		ESPort:         targets.ElasticsearchPort, KibanaPort: targets.KibanaPort,
		LogstashAPIPort: targets.LogstashAPIPort, GELFPort: targets.LogstashGELFPort, TCPPort: targets.LogstashTCPPort,
	}
	compose, err := stacks.ExecTemplate("elk/compose.yml.tmpl", composeTemplate, stacks.TemplateData{
		Site: in.Site, Topo: in.Topo, Env: in.Env(), Stack: Name, Values: stacks.Values(in, Name, nil), Extra: data,
	})
	if err != nil {
		return stacks.Rendered{}, err
	}
	files := map[string][]byte{
		"logstash.yml":  LogstashYML(s),
		"logstash.conf": pipeline,
	}
	if s.Security && in.Site.IsHub() {
		files["es-tool.sh"] = ESTool(ElasticsearchURL(in.Topo, in.Site), targets.ElasticsearchPort, s.IndexPrefix)
	}
	return stacks.Rendered{Stack: Name, Compose: compose, Files: files}, nil
}

// double returns twice a JVM size ("1g" → "2g"): the container's memory limit,
// heap plus as much again for off-heap and the page cache the JVM relies on.
func double(size string) string {
	n, _ := strconv.Atoi(size[:len(size)-1]) // checked by sizeRE
	switch size[len(size)-1] {
	case 'k', 'K':
		return fmt.Sprintf("%dK", 2*n)
	case 'm', 'M':
		return fmt.Sprintf("%dM", 2*n)
	}
	return fmt.Sprintf("%dG", 2*n)
}
