package monitoring

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/cli/cli/compose/loader"
	composetypes "github.com/docker/cli/cli/compose/types"
	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []rule `yaml:"rules"`
}

type rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Alert names.
const (
	AlertTunnelDown         = "TunnelDown"
	AlertTargetDown         = "TargetDown"
	AlertReplicasBelow      = "ServiceReplicasBelowDesired"
	AlertReplicationLag     = "ReplicationLagHigh"
	AlertSubscriptionSilent = "SubscriptionSilent"
	AlertSlotWAL            = "ReplicationSlotWALNearLimit"
	AlertKong5xx            = "Kong5xxRateHigh"
	AlertKongLatency        = "KongLatencyP95High"
	AlertBackupLate         = "BackupLate"
	AlertWALStreaming       = "WALStreamingStopped"
)

// Desired is a service's desired task count at a site, as its stack renders.
type Desired struct {
	Site     string
	Service  string // <stack>_<service>, as cAdvisor labels its containers
	Replicas int
}

// DesiredReplicas renders every stack each monitored site lists and reads the
// desired task count of every service: replicas for replicated services, the
// nodes matching the placement for global ones. Stacks not registered in this
// build, and global services whose placement cannot be resolved, are returned in
// skipped. The apps each site runs are read from their compose files and what
// sitectl resolved for the site (appDesired).
func DesiredReplicas(topo *sites.Topology) (out []Desired, skipped []string, err error) {
	apps := map[string]appServices{} // each app's compose file, read once
	for _, s := range topo.Sites {
		if !s.HasStack(Name) {
			continue
		}
		in := stacks.Input{Topo: topo, Site: s}
		for _, name := range s.Stacks {
			var compose []byte
			if name == Name {
				// Our own compose file, without the rules (which would recurse).
				compose, err = renderCompose(in)
			} else {
				st, gerr := stacks.Get(name)
				if gerr != nil {
					skipped = append(skipped, s.Name+"/"+name)
					continue
				}
				var r stacks.Rendered
				r, err = st.Render(in)
				compose = r.Compose
			}
			if err != nil {
				return nil, nil, fmt.Errorf("monitoring: desired replicas of %s at %s: %w", name, s.Name, err)
			}
			ds, unresolved, err := desiredOf(s, name, compose)
			if err != nil {
				return nil, nil, fmt.Errorf("monitoring: desired replicas of %s at %s: %w", name, s.Name, err)
			}
			out = append(out, ds...)
			skipped = append(skipped, unresolved...)
		}
		// The apps the site runs (the Django API once it is one): their services are
		// watched like the built-in stacks'.
		for _, a := range topo.AppsAt(s.Name) {
			ds, unresolved := appDesired(s, a, apps)
			out = append(out, ds...)
			skipped = append(skipped, unresolved...)
		}
	}
	return out, skipped, nil
}

// appServices are an app's compose services as read for their task counts; nil
// when the file does not read (the app's own deploy reports it).
type appServices map[string]struct {
	Deploy struct {
		Mode     string `yaml:"mode"`
		Replicas *int   `yaml:"replicas"`
	} `yaml:"deploy"`
}

// appDesired are the desired task counts of app a's services at s, from what
// sitectl resolved for the site (the entry service's and the canary's replicas)
// and the compose file (the others' deploy.replicas, default 1), without
// rendering the app: the hub renders its rules for every app at every site. A
// global service (no rule is better than a wrong one) and an app whose file does
// not read are returned in unresolved.
func appDesired(s *sites.Site, a *sites.App, cache map[string]appServices) (out []Desired, unresolved []string) {
	svcs, ok := cache[a.Name]
	if !ok {
		var doc struct {
			Services appServices `yaml:"services"`
		}
		if yaml.Unmarshal(a.Compose, &doc) == nil {
			svcs = doc.Services
		}
		cache[a.Name] = svcs
	}
	if svcs == nil {
		return nil, []string{s.Name + "/" + a.Name}
	}
	as := a.Sites[s.Name]
	for _, name := range sortedKeys(svcs) {
		svc := svcs[name]
		full := a.Name + "_" + name
		switch {
		case svc.Deploy.Mode == "global":
			unresolved = append(unresolved, s.Name+"/"+full)
		case name == a.Service:
			out = append(out, Desired{Site: s.Name, Service: full, Replicas: as.Replicas})
		case svc.Deploy.Replicas != nil:
			out = append(out, Desired{Site: s.Name, Service: full, Replicas: *svc.Deploy.Replicas})
		default:
			out = append(out, Desired{Site: s.Name, Service: full, Replicas: 1})
		}
		if name == a.Service && as.Canary != nil && svc.Deploy.Mode != "global" {
			out = append(out, Desired{Site: s.Name, Service: a.Name + "_" + a.CanaryService(), Replicas: as.Canary.Replicas})
		}
	}
	return out, unresolved
}

func sortedKeys(m appServices) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// desiredOf reads a rendered compose file's services. A global service whose
// placement sitectl cannot resolve against the topology is returned in unresolved
// (no rule is better than a wrong one).
func desiredOf(s *sites.Site, stack string, compose []byte) (out []Desired, unresolved []string, err error) {
	dict, err := loader.ParseYAML(compose)
	if err != nil {
		return nil, nil, err
	}
	// Only the services' deploy sections are read. The schema check is skipped: the
	// deploy engine runs it on every stack, and compiling docker/cli's schema for each
	// of a topology's stacks made the hub's render ~15x slower.
	cfg, err := loader.Load(composetypes.ConfigDetails{
		WorkingDir:  "/sitectl-rendered/" + stack,
		ConfigFiles: []composetypes.ConfigFile{{Filename: stack + "/compose.yml", Config: dict}},
		Environment: map[string]string{},
	}, func(o *loader.Options) { o.SkipValidation = true })
	if err != nil {
		return nil, nil, err
	}
	for _, svc := range cfg.Services {
		n := 1
		if svc.Deploy.Mode == "global" {
			nodes, err := targets.Matching(s, svc.Deploy.Placement.Constraints)
			switch {
			case err != nil && strings.Contains(err.Error(), "no node satisfies"):
				n = 0 // runs nowhere at this site: nothing to expect
			case err != nil:
				unresolved = append(unresolved, fmt.Sprintf("%s/%s_%s (%v)", s.Name, stack, svc.Name, err))
				continue
			default:
				n = len(nodes)
			}
		} else if svc.Deploy.Replicas != nil {
			n = int(*svc.Deploy.Replicas)
		}
		if n > 0 {
			out = append(out, Desired{Site: s.Name, Service: stack + "_" + svc.Name, Replicas: n})
		}
	}
	return out, unresolved, nil
}

// Rules renders the alert rules for the hub's Prometheus.
func Rules(topo *sites.Topology, s Settings) ([]byte, error) {
	desired, skipped, err := DesiredReplicas(topo)
	if err != nil {
		return nil, err
	}
	sort.Slice(desired, func(i, j int) bool {
		if desired[i].Site != desired[j].Site {
			return desired[i].Site < desired[j].Site
		}
		return desired[i].Service < desired[j].Service
	})
	var f ruleFile
	repl, err := replicationGroup(topo, s)
	if err != nil {
		return nil, err
	}
	f.Groups = append(f.Groups, replicaGroup(desired, s), tunnelGroup(topo, s), repl, kongGroup(s))
	if g := backupGroup(topo, s); len(g.Rules) > 0 {
		f.Groups = append(f.Groups, g)
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "# Alert rules for the hub %s (%s), rendered by sitectl from the topology; do not edit.\n", topo.Hub, topo.Env)
	if len(skipped) > 0 {
		sort.Strings(skipped)
		fmt.Fprintf(&b, "# No desired-replica rule for (stack not registered in this build, or placement not resolvable): %s\n", strings.Join(skipped, ", "))
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// replicaGroup: desired counts come from the rendered stacks (recording rules with
// constant values); running counts from cAdvisor's swarm service label. Only sites
// whose cAdvisors report containers are judged: an unreachable site is TunnelDown
// or TargetDown, not "every service lost its tasks".
func replicaGroup(desired []Desired, s Settings) ruleGroup {
	rep := ruleGroup{Name: "sitectl-replicas"}
	for _, d := range desired {
		rep.Rules = append(rep.Rules, rule{Record: "sitectl:service_desired_replicas", Expr: fmt.Sprintf("vector(%d)", d.Replicas),
			Labels: map[string]string{"site": d.Site, "service": d.Service}})
	}
	rep.Rules = append(rep.Rules,
		rule{Record: "sitectl:service_running_replicas",
			Expr: `count by (site, service) (label_replace(container_start_time_seconds{container_label_com_docker_swarm_service_name!=""}, "service", "$1", "container_label_com_docker_swarm_service_name", "(.+)"))`},
		rule{Alert: AlertReplicasBelow, For: s.ReplicasFor,
			Expr: `sitectl:service_desired_replicas > on (site, service) (sitectl:service_running_replicas or on (site, service) (sitectl:service_desired_replicas * 0))` +
				` and on (site) (count by (site) (container_start_time_seconds) > 0)`,
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "{{ $labels.service }} at {{ $labels.site }} runs fewer tasks than desired",
				"description": "{{ $labels.service }} at {{ $labels.site }} wants {{ $value }} tasks and fewer are running (cAdvisor); see `sitectl status --site {{ $labels.site }}`."}})
	return rep
}

// tunnelGroup: from the hub, a spoke whose every target is down is cut off; with
// several targets per site one dead exporter does not look like a dead tunnel.
func tunnelGroup(topo *sites.Topology, s Settings) ruleGroup {
	tun := ruleGroup{Name: "sitectl-tunnels"}
	monitored := map[string]bool{}
	for _, n := range sortedSites(topo, Name) {
		monitored[n] = true
	}
	for _, l := range topo.Links {
		if l.Direct || !l.Has(topo.Hub) {
			continue // the hub's Prometheus sees only its own links
		}
		far := l.Other(topo.Hub)
		if !monitored[far] && !topo.Site(far).HasStack("kong") {
			continue
		}
		tun.Rules = append(tun.Rules, rule{Alert: AlertTunnelDown, For: s.TunnelDownFor,
			Expr:   fmt.Sprintf(`max by (site) (up{site=%q}) == 0`, far),
			Labels: map[string]string{"severity": "critical", "link": l.Name()},
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("tunnel %s is down: no target at %s answers the hub", l.Name(), far),
				"description": fmt.Sprintf("Every scrape target at %s has failed for %s from %s. Check the tunnel (`sitectl status`, `swanctl --list-sas` on the gateways); %s keeps serving on its own.", far, s.TunnelDownFor, topo.Hub, far)}})
	}
	tun.Rules = append(tun.Rules, rule{Alert: AlertTargetDown, For: s.TargetDownFor,
		Expr:   `up == 0 unless on (site) (max by (site) (up) == 0)`,
		Labels: map[string]string{"severity": "warning"},
		Annotations: map[string]string{
			"summary": "{{ $labels.job }} on {{ $labels.node }} ({{ $labels.site }}) is down"}})
	return tun
}

// replicationGroup: the publisher's slots (postgres-exporter with sitectl's queries).
func replicationGroup(topo *sites.Topology, s Settings) (ruleGroup, error) {
	repl := ruleGroup{Name: "sitectl-replication"}
	repl.Rules = append(repl.Rules,
		rule{Alert: AlertReplicationLag, For: s.ReplicationFor,
			Expr:   fmt.Sprintf(`sitectl_slots_lag_bytes{slot_type="logical"} > %d`, s.ReplicationLag),
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "replication slot {{ $labels.slot_name }} at {{ $labels.site }} is {{ $value | humanize1024 }}B behind",
				"description": fmt.Sprintf("The subscriber of slot {{ $labels.slot_name }} at {{ $labels.site }} has not confirmed WAL for more than %s (threshold %d bytes). A partition or a disabled subscription (disable_on_error) holds it; see `sitectl replication status`.", s.ReplicationFor, s.ReplicationLag)}},
		rule{Alert: AlertSubscriptionSilent, For: s.ReplicationFor,
			Expr:   fmt.Sprintf(`sitectl_subscriptions_silent_seconds > %d`, s.SubscriptionAge),
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary": "subscription {{ $labels.subname }} at {{ $labels.site }} has heard nothing from its publisher for {{ $value | humanizeDuration }}"}})
	for _, site := range topo.Sites {
		if !site.HasStack("postgres") || !site.HasStack(Name) {
			continue
		}
		keep, err := PGSize(site.Postgres.MaxSlotWALKeepSize)
		if err != nil {
			return ruleGroup{}, fmt.Errorf("monitoring: site %s postgres.max_slot_wal_keep_size: %w", site.Name, err)
		}
		expr := fmt.Sprintf(`sitectl_slots_lost{site=%q} > 0`, site.Name)
		if keep > 0 {
			expr = fmt.Sprintf(`sitectl_slots_retained_bytes{site=%q} > %s or `, site.Name, strconv.FormatInt(int64(s.SlotWALRatio*float64(keep)), 10)) + expr
		}
		// One rule per site (each site has its own limit); the site label keeps them
		// distinct for promtool's duplicate-rule lint, and equals the series' own.
		repl.Rules = append(repl.Rules, rule{Alert: AlertSlotWAL, For: "1m", Expr: expr,
			Labels: map[string]string{"severity": "critical", "site": site.Name},
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("slot {{ $labels.slot_name }} at %s retains {{ $value | humanize1024 }}B of WAL (limit max_slot_wal_keep_size = %s)", site.Name, site.Postgres.MaxSlotWALKeepSize),
				"description": fmt.Sprintf("Past %.0f%% of max_slot_wal_keep_size PostgreSQL invalidates the slot and the subscriber must be re-seeded. Heal the partition or raise postgres.max_slot_wal_keep_size for %s.", s.SlotWALRatio*100, site.Name)}})
	}
	return repl, nil
}

// kongGroup: error rate and latency per site, from the prometheus plugin.
func kongGroup(s Settings) ruleGroup {
	return ruleGroup{Name: "sitectl-kong", Rules: []rule{
		{Alert: AlertKong5xx, For: s.KongFor,
			Expr:   fmt.Sprintf(`sum by (site) (rate(kong_http_requests_total{code=~"5.."}[5m])) / sum by (site) (rate(kong_http_requests_total[5m])) > %s`, strconv.FormatFloat(s.Kong5xxRatio, 'f', -1, 64)),
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary": "Kong at {{ $labels.site }} answers {{ $value | humanizePercentage }} of requests with 5xx"}},
		{Alert: AlertKongLatency, For: s.KongFor,
			Expr:   fmt.Sprintf(`histogram_quantile(0.95, sum by (site, le) (rate(kong_request_latency_ms_bucket[5m]))) > %d`, s.KongP95Millis),
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary": "Kong at {{ $labels.site }}: p95 latency {{ $value }} ms over " + strconv.Itoa(s.KongP95Millis) + " ms"}},
	}}
}

// backupGroup: per backed-up site whose backup server runs the backup and
// monitoring stacks (so its Barman exporter is scraped), BackupLate when the
// newest base backup is older than the site's backup.schedule, or there is none,
// or the exporter says nothing of the site; WALStreamingStopped when Barman's
// pg_receivewal does not stream from the site's slot. One rule per site: each has
// its own schedule, and the site label keeps them distinct for promtool's lint.
func backupGroup(topo *sites.Topology, s Settings) ruleGroup {
	g := ruleGroup{Name: "sitectl-backup"}
	for _, site := range topo.Sites {
		if !site.Backup.Enabled() {
			continue
		}
		server := topo.Site(site.Backup.Server)
		if server == nil || !server.HasStack("backup") || !server.HasStack(Name) {
			continue
		}
		sel := fmt.Sprintf("{site=%q}", site.Name)
		sched := site.Backup.Schedule.D()
		g.Rules = append(g.Rules,
			rule{Alert: AlertBackupLate, For: s.BackupLateFor,
				Expr: fmt.Sprintf(`time() - %s%s > %d or %s%s == 0 or absent(%s%s)`, backup.MetricLastBackupTime, sel, int64(sched.Seconds()),
					backup.MetricBaseBackups, sel, backup.MetricBaseBackups, sel),
				Labels: map[string]string{"severity": "warning", "site": site.Name},
				Annotations: map[string]string{
					"summary":     fmt.Sprintf("no base backup of %s within its schedule %s", site.Name, sched),
					"description": fmt.Sprintf("The newest base backup of %s held by Barman at %s is older than backup.schedule %s, or there is none, or Barman's exporter reports nothing of %s. See `sitectl backup status --site %s`; `sitectl backup run --site %s` takes one now.", site.Name, site.Backup.Server, sched, site.Name, site.Name, site.Name)}},
			rule{Alert: AlertWALStreaming, For: s.WALStreamingFor,
				Expr:   fmt.Sprintf(`%s%s == 0 or absent(%s%s)`, backup.MetricWALStreaming, sel, backup.MetricWALStreaming, sel),
				Labels: map[string]string{"severity": "critical", "site": site.Name},
				Annotations: map[string]string{
					"summary":     fmt.Sprintf("WAL of %s is not streaming to Barman at %s", site.Name, site.Backup.Server),
					"description": fmt.Sprintf("Barman's pg_receivewal at %s does not stream from slot %s of %s: restores cannot reach past the newest WAL received, and the slot retains WAL up to max_slot_wal_keep_size %s, then is lost. See `sitectl backup status --site %s`.", site.Backup.Server, site.Backup.SlotName(site.Name), site.Name, site.Backup.MaxSlotWALKeepSize, site.Name)}})
	}
	return g
}
