// Package sites loads the per-site configuration files, merges their layers
// (defaults < site < environment overlay < SITECTL_* variables < flags), validates
// them and builds the typed Topology every other part of sitectl reads.
package sites

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Site is the merged, final configuration of one site in one environment.
// Field tags: mapstructure for loading, json/yaml for `config show`.
type Site struct {
	Name        string `mapstructure:"name" json:"name" yaml:"name"`
	Env         string `mapstructure:"-" json:"environment" yaml:"environment"`
	Role        string `mapstructure:"role" json:"role" yaml:"role"` // hub | spoke
	Description string `mapstructure:"description" json:"description,omitempty" yaml:"description,omitempty"`
	// LAN is the site's LAN subnet (CIDR): nodes, gateway LAN side, databases.
	LAN      string             `mapstructure:"lan" json:"lan" yaml:"lan"`
	Engine   Engine             `mapstructure:"engine" json:"engine" yaml:"engine"`
	Nodes    []Node             `mapstructure:"nodes" json:"nodes" yaml:"nodes"`
	Swarm    Swarm              `mapstructure:"swarm" json:"swarm" yaml:"swarm"`
	Networks map[string]Network `mapstructure:"networks" json:"networks" yaml:"networks"`
	Deploy   Deploy             `mapstructure:"deploy" json:"deploy" yaml:"deploy"`
	// Stacks lists the stacks this site runs (folders under stacks/).
	Stacks []string `mapstructure:"stacks" json:"stacks" yaml:"stacks"`
	// Images maps a logical image name (kong, postgres, django-api, ...) to a reference.
	Images map[string]string `mapstructure:"images" json:"images" yaml:"images"`
	// Values holds per-stack settings (replicas, heap sizes, canary weights...), read by
	// the stack that owns them.
	Values map[string]map[string]any `mapstructure:"values" json:"values,omitempty" yaml:"values,omitempty"`
	// Secrets names where each secret's value comes from; values never live in config.
	Secrets  map[string]SecretRef `mapstructure:"secrets" json:"secrets,omitempty" yaml:"secrets,omitempty"`
	Gateway  Gateway              `mapstructure:"gateway" json:"gateway" yaml:"gateway"`
	Tunnel   Tunnel               `mapstructure:"tunnel" json:"tunnel" yaml:"tunnel"`
	Postgres Postgres             `mapstructure:"postgres" json:"postgres" yaml:"postgres"`
	Mongo    Mongo                `mapstructure:"mongo" json:"mongo" yaml:"mongo"`
	Lab      Lab                  `mapstructure:"lab" json:"lab,omitzero" yaml:"lab,omitempty"`

	// Alerting is where the hub's Alertmanager sends alerts (sites/alerting.go).
	Alerting Alerting `mapstructure:"alerting" json:"alerting,omitzero" yaml:"alerting,omitempty"`

	// Backup is how the site's database is backed up (sites/backup.go).
	Backup Backup `mapstructure:"backup" json:"backup,omitzero" yaml:"backup,omitempty"`

	// Reach is how sitectl reaches the site from where it runs (sites/reach.go):
	// not configuration, installed after loading (the lab: lab/labreach).
	Reach Reach `mapstructure:"-" json:"-" yaml:"-"`
}

// Engine says how sitectl reaches the site's Docker engine (a swarm manager), the way
// the docker CLI does: unix://, tcp:// (+TLS), ssh://user@host, or a docker context.
type Engine struct {
	Host       string `mapstructure:"host" json:"host,omitempty" yaml:"host,omitempty"`
	Context    string `mapstructure:"context" json:"context,omitempty" yaml:"context,omitempty"`
	TLSVerify  bool   `mapstructure:"tls_verify" json:"tls_verify,omitempty" yaml:"tls_verify,omitempty"`
	CACert     string `mapstructure:"ca_cert" json:"ca_cert,omitempty" yaml:"ca_cert,omitempty"`
	Cert       string `mapstructure:"cert" json:"cert,omitempty" yaml:"cert,omitempty"`
	Key        string `mapstructure:"key" json:"key,omitempty" yaml:"key,omitempty"`
	APIVersion string `mapstructure:"api_version" json:"api_version,omitempty" yaml:"api_version,omitempty"`
}

// Node is one swarm node of a site.
type Node struct {
	Name string `mapstructure:"name" json:"name" yaml:"name"`
	Role string `mapstructure:"role" json:"role" yaml:"role"` // manager | worker
	// Address is the node's LAN address, used as the swarm advertise address.
	Address string `mapstructure:"address" json:"address" yaml:"address"`
	// Engine reaches this node's own engine (needed to join it); empty for the node
	// reached through the site engine.
	Engine string            `mapstructure:"engine" json:"engine,omitempty" yaml:"engine,omitempty"`
	Labels map[string]string `mapstructure:"labels" json:"labels,omitempty" yaml:"labels,omitempty"`
}

// Swarm holds swarm-wide settings of a site.
type Swarm struct {
	DefaultAddrPool []string `mapstructure:"default_addr_pool" json:"default_addr_pool" yaml:"default_addr_pool"`
	SubnetSize      int      `mapstructure:"subnet_size" json:"subnet_size" yaml:"subnet_size"`
}

// Network is one overlay network of a site (edge, app, data).
type Network struct {
	Subnet     string `mapstructure:"subnet" json:"subnet" yaml:"subnet"`
	Encrypted  bool   `mapstructure:"encrypted" json:"encrypted" yaml:"encrypted"`
	Attachable bool   `mapstructure:"attachable" json:"attachable" yaml:"attachable"`
	Internal   bool   `mapstructure:"internal" json:"internal" yaml:"internal"`
}

// Deploy holds how stacks are deployed on the site.
type Deploy struct {
	EndpointMode string   `mapstructure:"endpoint_mode" json:"endpoint_mode" yaml:"endpoint_mode"` // vip | dnsrr
	PublishMode  string   `mapstructure:"publish_mode" json:"publish_mode" yaml:"publish_mode"`    // ingress | host
	Timeout      Duration `mapstructure:"timeout" json:"timeout" yaml:"timeout"`
	// EncryptionException is the reason overlay encryption is off, when it is.
	// Plans and the audit show it; encryption off without a reason is refused.
	EncryptionException string `mapstructure:"encryption_exception" json:"encryption_exception,omitempty" yaml:"encryption_exception,omitempty"`
}

// Gateway is the site's IPsec gateway.
type Gateway struct {
	// ID is the IKE identity and the certificate SAN (a DNS name).
	ID         string `mapstructure:"id" json:"id" yaml:"id"`
	WANAddress string `mapstructure:"wan_address" json:"wan_address" yaml:"wan_address"`
	LANAddress string `mapstructure:"lan_address" json:"lan_address" yaml:"lan_address"`
	// Vici is how sitectl reaches charon's vici socket: unix:///path on the gateway
	// host, or ssh://user@host/path (forwarded, never TCP).
	Vici string `mapstructure:"vici" json:"vici" yaml:"vici"`
	// Firewall is the gateway's nftables ruleset (tunnels/firewall).
	Firewall Firewall `mapstructure:"firewall" json:"firewall" yaml:"firewall"`
}

// Firewall holds the settings of the gateway's nftables ruleset, which sitectl
// renders from the topology and applies as the `gateway firewall` step.
type Firewall struct {
	// Enabled makes plan/deploy manage the ruleset (table inet sitectl).
	Enabled bool `mapstructure:"enabled" json:"enabled" yaml:"enabled"`
	// AdminNetworks (CIDR) may reach the gateway's SSH and, through the gateway,
	// sitectl's management endpoints in the site (engines, databases).
	AdminNetworks []string `mapstructure:"admin_networks" json:"admin_networks" yaml:"admin_networks"`
	// ManagementFrom (CIDR) is where sitectl connects from, as the gateway sees it.
	// Empty: sitectl's own address toward the gateway. The apply refuses a ruleset
	// that would cut these addresses off the gateway or the site's engines.
	ManagementFrom []string `mapstructure:"management_from" json:"management_from,omitempty" yaml:"management_from,omitempty"`
	// ConfirmTimeout is how long a new ruleset stays unless sitectl reaches the
	// gateway again through it; then the previous ruleset is restored.
	ConfirmTimeout Duration `mapstructure:"confirm_timeout" json:"confirm_timeout" yaml:"confirm_timeout"`
}

// Tunnel holds the site's IPsec settings.
type Tunnel struct {
	// Peers are the sites this site has a direct tunnel with. Links are undirected;
	// naming a peer on one side is enough.
	Peers        []string  `mapstructure:"peers" json:"peers" yaml:"peers"`
	Auth         string    `mapstructure:"auth" json:"auth" yaml:"auth"` // x509 | psk
	PSK          SecretRef `mapstructure:"psk" json:"psk,omitzero" yaml:"psk,omitempty"`
	IKEProposals []string  `mapstructure:"ike_proposals" json:"ike_proposals" yaml:"ike_proposals"`
	ESPProposals []string  `mapstructure:"esp_proposals" json:"esp_proposals" yaml:"esp_proposals"`
	StartAction  string    `mapstructure:"start_action" json:"start_action" yaml:"start_action"` // trap | start | none
	DPDDelay     Duration  `mapstructure:"dpd_delay" json:"dpd_delay" yaml:"dpd_delay"`
	// IPsec is the data path: kernel (kernel-netlink) or libipsec (userspace, lab).
	IPsec string `mapstructure:"ipsec" json:"ipsec" yaml:"ipsec"`
	// PKIDir holds the CA, certificates and private keys (0600), outside the repo.
	PKIDir       string   `mapstructure:"pki_dir" json:"pki_dir" yaml:"pki_dir"`
	KeyType      string   `mapstructure:"key_type" json:"key_type" yaml:"key_type"` // ecdsa-p256 | ecdsa-p384
	CertLifetime Duration `mapstructure:"cert_lifetime" json:"cert_lifetime" yaml:"cert_lifetime"`
}

// Postgres holds the site's PostgreSQL role in replication.
type Postgres struct {
	// Host and Port reach the site's database from where sitectl runs.
	Host string `mapstructure:"host" json:"host" yaml:"host"`
	Port int    `mapstructure:"port" json:"port" yaml:"port"`
	// ReplicationHost is the address other sites use to reach this database (over the
	// tunnels); defaults to Host.
	ReplicationHost string    `mapstructure:"replication_host" json:"replication_host,omitempty" yaml:"replication_host,omitempty"`
	Database        string    `mapstructure:"database" json:"database" yaml:"database"`
	User            string    `mapstructure:"user" json:"user" yaml:"user"`
	Password        SecretRef `mapstructure:"password" json:"password" yaml:"password"`
	// AppUser is the application's own role (django-api connects as it): LOGIN,
	// no superuser, only SELECT/INSERT/UPDATE/DELETE on the schema's tables. sitectl
	// creates it with the replication part; User stays sitectl's administrative role.
	AppUser string `mapstructure:"app_user" json:"app_user" yaml:"app_user"`
	// AppPassword is AppUser's password (a secret reference).
	AppPassword SecretRef `mapstructure:"app_password" json:"app_password,omitzero" yaml:"app_password,omitempty"`
	// PassFile is where this site's server reads the publishers' passwords for its
	// subscriptions (libpq passfile): subscriptions' connection strings carry
	// passfile=, never a password. Default: the postgres stack's pgpass secret
	// (/run/secrets/postgres-pgpass) when the site runs the stack; "none" puts the
	// password in the connection string (audit reports it).
	PassFile string `mapstructure:"passfile" json:"passfile,omitempty" yaml:"passfile,omitempty"`
	// Tables are the replicated tables; every site must list the same ones.
	Tables             []string `mapstructure:"tables" json:"tables" yaml:"tables"`
	SchemaFile         string   `mapstructure:"schema_file" json:"schema_file" yaml:"schema_file"`
	MaxSlotWALKeepSize string   `mapstructure:"max_slot_wal_keep_size" json:"max_slot_wal_keep_size" yaml:"max_slot_wal_keep_size"`
	SSLMode            string   `mapstructure:"sslmode" json:"sslmode" yaml:"sslmode"`
}

// Mongo holds the site's members of the one replica set spanning the sites.
type Mongo struct {
	ReplicaSet string        `mapstructure:"replica_set" json:"replica_set" yaml:"replica_set"`
	Members    []MongoMember `mapstructure:"members" json:"members,omitempty" yaml:"members,omitempty"`
	// ReadPreference is what this site's applications use (nearest, primaryPreferred...).
	ReadPreference string    `mapstructure:"read_preference" json:"read_preference" yaml:"read_preference"`
	AllowArbiter   bool      `mapstructure:"allow_arbiter" json:"allow_arbiter,omitempty" yaml:"allow_arbiter,omitempty"`
	KeyFile        SecretRef `mapstructure:"keyfile" json:"keyfile,omitzero" yaml:"keyfile,omitempty"`
	User           string    `mapstructure:"user" json:"user,omitempty" yaml:"user,omitempty"`
	Password       SecretRef `mapstructure:"password" json:"password,omitzero" yaml:"password,omitempty"`
	// MaxPartition is the longest partition the oplog window must survive.
	MaxPartition Duration `mapstructure:"max_partition" json:"max_partition" yaml:"max_partition"`
}

// MongoMember is one replica set member placed at this site.
type MongoMember struct {
	Host     string   `mapstructure:"host" json:"host" yaml:"host"`
	Votes    *int     `mapstructure:"votes" json:"votes,omitempty" yaml:"votes,omitempty"`
	Priority *float64 `mapstructure:"priority" json:"priority,omitempty" yaml:"priority,omitempty"`
	Hidden   bool     `mapstructure:"hidden" json:"hidden,omitempty" yaml:"hidden,omitempty"`
	Delay    Duration `mapstructure:"delay" json:"delay,omitzero" yaml:"delay,omitempty"`
	Arbiter  bool     `mapstructure:"arbiter" json:"arbiter,omitempty" yaml:"arbiter,omitempty"`
}

// VotesOrDefault is the member's votes (1 unless set; 0 for hidden or delayed members).
func (m MongoMember) VotesOrDefault() int {
	if m.Votes != nil {
		return *m.Votes
	}
	if m.Hidden || m.Delay > 0 {
		return 0
	}
	return 1
}

// Lab holds settings only the lab environment sets (namespaces, state dir).
type Lab struct {
	// Namespace is the network namespace of the site's gateway, where its LAN and
	// databases are reachable from; empty outside the lab.
	Namespace string `mapstructure:"namespace" json:"namespace,omitempty" yaml:"namespace,omitempty"`
	StateDir  string `mapstructure:"state_dir" json:"state_dir,omitempty" yaml:"state_dir,omitempty"`
	// AlertReceiver is the base URL of the lab's webhook receiver (hub only): the
	// hub's Alertmanager posts to <url>/hook, drills read GET <url>/received.
	AlertReceiver string `mapstructure:"alert_receiver" json:"alert_receiver,omitempty" yaml:"alert_receiver,omitempty"`
}

// SecretRef names where a secret's value comes from. Exactly one field is set.
// Its value is read only when needed and never printed.
type SecretRef struct {
	Env          string `mapstructure:"env" json:"env,omitempty" yaml:"env,omitempty"`
	File         string `mapstructure:"file" json:"file,omitempty" yaml:"file,omitempty"`
	DockerSecret string `mapstructure:"docker_secret" json:"docker_secret,omitempty" yaml:"docker_secret,omitempty"`
}

// IsZero reports whether no source is named.
func (r SecretRef) IsZero() bool { return r.Env == "" && r.File == "" && r.DockerSecret == "" }

// String describes the reference (never the value): "env:PGPASSWORD", "file:/run/x".
func (r SecretRef) String() string {
	switch {
	case r.Env != "":
		return "env:" + r.Env
	case r.File != "":
		return "file:" + r.File
	case r.DockerSecret != "":
		return "docker-secret:" + r.DockerSecret
	}
	return "unset"
}

// Resolve reads the secret's value. Errors name the reference, never a value.
// A docker_secret reference cannot be read from outside the swarm.
func (r SecretRef) Resolve() ([]byte, error) {
	switch {
	case r.Env != "":
		v, ok := os.LookupEnv(r.Env)
		if !ok {
			return nil, fmt.Errorf("secret %s: environment variable %s is not set (export it, or point the reference at a file)", r, r.Env)
		}
		return []byte(v), nil
	case r.File != "":
		b, err := os.ReadFile(r.File)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", r, err)
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	case r.DockerSecret != "":
		return nil, fmt.Errorf("secret %s: only readable inside a service of the swarm; reference it by env or file for sitectl to read it", r)
	}
	return nil, fmt.Errorf("secret reference is empty: name env, file or docker_secret")
}

// ResolveLine is Resolve for a value that must fit on one line (a passfile line):
// a line break in it is refused, naming the reference, never the value.
func (r SecretRef) ResolveLine() ([]byte, error) {
	v, err := r.Resolve()
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(string(v), "\r\n") {
		return nil, fmt.Errorf("secret %s holds a line break, which a passfile line cannot carry: set it without one", r)
	}
	return v, nil
}

// Duration is a time.Duration that reads and prints as "30s", "1h".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText prints the duration as Go duration text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses Go duration text ("90s", "1h30m").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. 30s, 5m, 24h)", string(b))
	}
	*d = Duration(v)
	return nil
}

// NodeByName returns the site's node with that name, or nil.
func (s *Site) NodeByName(name string) *Node {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i]
		}
	}
	return nil
}

// HasStack reports whether the site runs the stack.
func (s *Site) HasStack(name string) bool {
	for _, st := range s.Stacks {
		if st == name {
			return true
		}
	}
	return false
}

// IsHub reports whether the site is the hub.
func (s *Site) IsHub() bool { return s.Role == RoleHub }

// Site roles.
const (
	RoleHub   = "hub"
	RoleSpoke = "spoke"
)

// KnownStacks are the stack folders sitectl ships under stacks/.
var KnownStacks = []string{"backup", "django-api", "elk", "kong", "mongo", "monitoring", "postgres"}
