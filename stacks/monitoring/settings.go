package monitoring

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// Settings are values.monitoring of a site, with their defaults. The hub's settings
// drive Prometheus and the alert thresholds.
type Settings struct {
	ScrapeInterval     string
	EvaluationInterval string
	Retention          string
	// For windows of the alerts.
	TunnelDownFor   string
	ReplicasFor     string
	ReplicationFor  string
	KongFor         string
	TargetDownFor   string
	BackupLateFor   string
	WALStreamingFor string
	ReplicationLag  int     // bytes a subscriber may be behind its publisher's slot
	SubscriptionAge int     // seconds since a subscription last heard from its publisher
	SlotWALRatio    float64 // retained WAL / max_slot_wal_keep_size that alerts
	Kong5xxRatio    float64
	KongP95Millis   int
	Grafana         bool
	Healthchecks    bool
	// HealthInterval is the container health checks' interval.
	HealthInterval string
	// DockerRoot is the engines' data root cAdvisor reads (read-only).
	DockerRoot      string
	GrafanaPassword string // the name of the site secret holding the admin password (values.monitoring.grafana_admin)
}

// ReadSettings reads values.monitoring of site.
func ReadSettings(topo *sites.Topology, site *sites.Site) (Settings, error) {
	v := targets.ValuesOf(topo, site, Name)
	s := Settings{
		ScrapeInterval:     v.String("scrape_interval", "15s"),
		EvaluationInterval: v.String("evaluation_interval", "15s"),
		Retention:          v.String("retention", "15d"),
		TunnelDownFor:      v.String("alerts.tunnel_down_for", "1m"),
		ReplicasFor:        v.String("alerts.replicas_for", "2m"),
		ReplicationFor:     v.String("alerts.replication_for", "5m"),
		KongFor:            v.String("alerts.kong_for", "5m"),
		TargetDownFor:      v.String("alerts.target_down_for", "2m"),
		BackupLateFor:      v.String("alerts.backup_late_for", "10m"),
		WALStreamingFor:    v.String("alerts.wal_streaming_for", "5m"),
		ReplicationLag:     v.Int("alerts.replication_lag_bytes", 64<<20),
		SubscriptionAge:    v.Int("alerts.subscription_silent_seconds", 300),
		SlotWALRatio:       v.Float("alerts.slot_wal_ratio", 0.8),
		Kong5xxRatio:       v.Float("alerts.kong_5xx_ratio", 0.05),
		KongP95Millis:      v.Int("alerts.kong_p95_ms", 500),
		Grafana:            v.Bool("grafana", true),
		Healthchecks:       v.Bool("healthchecks", true),
		HealthInterval:     v.String("health_interval", "15s"),
		GrafanaPassword:    v.String("grafana_admin", "grafana-admin-password"),
		DockerRoot:         v.String("docker_root", "/var/lib/docker"),
	}
	if err := v.Err(); err != nil {
		return s, err
	}
	for _, d := range []struct{ key, val string }{
		{"scrape_interval", s.ScrapeInterval}, {"evaluation_interval", s.EvaluationInterval},
		{"alerts.tunnel_down_for", s.TunnelDownFor}, {"alerts.replicas_for", s.ReplicasFor},
		{"alerts.replication_for", s.ReplicationFor}, {"alerts.kong_for", s.KongFor}, {"alerts.target_down_for", s.TargetDownFor},
		{"alerts.backup_late_for", s.BackupLateFor}, {"alerts.wal_streaming_for", s.WALStreamingFor},
		{"health_interval", s.HealthInterval},
	} {
		if _, err := time.ParseDuration(d.val); err != nil {
			return s, fmt.Errorf("site %s: values.monitoring.%s is %q; want a duration such as 15s or 5m", site.Name, d.key, d.val)
		}
	}
	if s.SlotWALRatio <= 0 || s.SlotWALRatio > 1 {
		return s, fmt.Errorf("site %s: values.monitoring.alerts.slot_wal_ratio is %v; want a fraction in (0, 1]", site.Name, s.SlotWALRatio)
	}
	if s.Kong5xxRatio <= 0 || s.Kong5xxRatio > 1 {
		return s, fmt.Errorf("site %s: values.monitoring.alerts.kong_5xx_ratio is %v; want a fraction in (0, 1]", site.Name, s.Kong5xxRatio)
	}
	return s, nil
}

// PGSize converts a PostgreSQL size setting (max_slot_wal_keep_size: "2GB",
// "512MB", "1024kB", "64" meaning MB, "-1" meaning unlimited) to bytes; -1 when
// unlimited or unset.
func PGSize(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "-1" {
		return -1, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}
	mult := int64(1 << 20) // the setting's unit is MB
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a PostgreSQL size (use e.g. 2GB, 512MB, or -1 for unlimited)", v)
	}
	return n * mult, nil
}
