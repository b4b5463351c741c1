package backup

import _ "embed"

// ExporterScript is the Barman exporter of the backup stack (exporter/
// barman_exporter.py): every 30 s it reads `barman -f json list-backups`,
// `replication-status` and `check` of each backed-up site and serves them as
// Prometheus metrics on ExporterPort (DESIGN.md decision 11, docs/design.md: why a
// Python script in the Barman image). The image installs it as ExporterPath.
//
//go:embed exporter/barman_exporter.py
var ExporterScript []byte

// ExporterPath is where the Barman image keeps ExporterScript; the entrypoint
// starts it.
const ExporterPath = "/usr/local/bin/barman-exporter"

// ExporterPort is the exporter's port, published in host mode on the backup
// server's node: the hub's Prometheus scrapes it through the tunnels.
const ExporterPort = 9781

// The exporter's metrics, one series per backed-up site (label site); the alert
// rules of stacks/monitoring use them.
const (
	MetricUp              = "sitectl_backup_up"
	MetricBaseBackups     = "sitectl_backup_base_backups"
	MetricLastBackupTime  = "sitectl_backup_last_base_backup_timestamp_seconds"
	MetricLastBackupAge   = "sitectl_backup_last_base_backup_age_seconds"
	MetricLastBackupSize  = "sitectl_backup_last_base_backup_size_bytes"
	MetricWALStreaming    = "sitectl_backup_wal_streaming"
	MetricWALLag          = "sitectl_backup_wal_lag_bytes"
	MetricSlotOK          = "sitectl_backup_slot_ok"
	MetricCollectTime     = "sitectl_backup_collect_timestamp_seconds"
	MetricCollectDuration = "sitectl_backup_collect_duration_seconds"
)
