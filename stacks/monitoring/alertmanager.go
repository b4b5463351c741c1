package monitoring

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// AlertmanagerFile is Alertmanager's configuration file, next to prometheus.yml.
const AlertmanagerFile = "alertmanager.yml"

// NoReceiver is the default receiver when the hub's config names none: alerts are
// kept (Alertmanager's API, `sitectl status`) and sent nowhere.
const NoReceiver = "none"

// Defaults of the hub's alerting section.
const (
	DefaultGroupWait      = "10s"
	DefaultGroupInterval  = "1m"
	DefaultRepeatInterval = "4h"
)

// secretsDir is where Docker mounts secrets in the Alertmanager container.
const secretsDir = "/run/secrets"

// AlertSecret is one secret Alertmanager reads through a *_file setting: a Docker
// secret made from the reference (env or file), or an existing Docker secret.
type AlertSecret struct {
	Name string // the compose secret's name and its file under /run/secrets
	Ref  sites.SecretRef
}

// External is the Docker secret's name when the reference names one ("" otherwise).
func (s AlertSecret) External() string { return s.Ref.DockerSecret }

// AlertSecrets lists the secrets of the hub's receivers, in receiver order.
func AlertSecrets(a sites.Alerting) []AlertSecret {
	var out []AlertSecret
	for _, r := range a.Receivers {
		for j, w := range r.Webhooks {
			if !w.Token.IsZero() {
				out = append(out, AlertSecret{Name: fmt.Sprintf("alertmanager-%s-webhook%d-token", r.Name, j), Ref: w.Token})
			}
		}
		for j, e := range r.Emails {
			if !e.Password.IsZero() {
				out = append(out, AlertSecret{Name: fmt.Sprintf("alertmanager-%s-email%d-password", r.Name, j), Ref: e.Password})
			}
		}
	}
	return out
}

type amConfig struct {
	Route        amRoute      `yaml:"route"`
	InhibitRules []amInhibit  `yaml:"inhibit_rules,omitempty"`
	Receivers    []amReceiver `yaml:"receivers"`
}

type amRoute struct {
	Receiver       string    `yaml:"receiver"`
	GroupBy        []string  `yaml:"group_by,omitempty"`
	GroupWait      string    `yaml:"group_wait,omitempty"`
	GroupInterval  string    `yaml:"group_interval,omitempty"`
	RepeatInterval string    `yaml:"repeat_interval,omitempty"`
	Matchers       []string  `yaml:"matchers,omitempty"`
	Continue       bool      `yaml:"continue,omitempty"`
	Routes         []amRoute `yaml:"routes,omitempty"`
}

type amInhibit struct {
	SourceMatchers []string `yaml:"source_matchers"`
	TargetMatchers []string `yaml:"target_matchers"`
	Equal          []string `yaml:"equal,omitempty"`
}

type amReceiver struct {
	Name           string      `yaml:"name"`
	WebhookConfigs []amWebhook `yaml:"webhook_configs,omitempty"`
	EmailConfigs   []amEmail   `yaml:"email_configs,omitempty"`
}

type amWebhook struct {
	URL          string  `yaml:"url"`
	SendResolved bool    `yaml:"send_resolved"`
	HTTPConfig   *amHTTP `yaml:"http_config,omitempty"`
}

type amHTTP struct {
	Authorization struct {
		Type            string `yaml:"type"`
		CredentialsFile string `yaml:"credentials_file"`
	} `yaml:"authorization"`
}

type amEmail struct {
	To               string `yaml:"to"`
	From             string `yaml:"from"`
	Smarthost        string `yaml:"smarthost"`
	AuthUsername     string `yaml:"auth_username,omitempty"`
	AuthPasswordFile string `yaml:"auth_password_file,omitempty"`
	RequireTLS       *bool  `yaml:"require_tls,omitempty"`
	SendResolved     bool   `yaml:"send_resolved"`
}

// replicationAlerts are inhibited by the TunnelDown of a site they concern.
var replicationAlerts = []string{AlertReplicationLag, AlertSubscriptionSilent, AlertSlotWAL}

func orTrue(b *bool) bool { return b == nil || *b }

func durationOr(d sites.Duration, def string) string {
	if d > 0 {
		return d.D().String()
	}
	return def
}

// AlertmanagerConfig renders alertmanager.yml for the hub from its alerting
// section: alerts are grouped per site; receivers' secrets are files under
// /run/secrets (Docker secrets), never inline; a site's TunnelDown inhibits the
// replication alerts about that site, at the site itself and at its peers (slots
// and subscriptions are named sitectl_<from>_to_<to>).
func AlertmanagerConfig(topo *sites.Topology) ([]byte, error) {
	hub := topo.HubSite()
	if hub == nil {
		return nil, fmt.Errorf("monitoring: alertmanager.yml: the topology has no hub")
	}
	a := hub.Alerting
	c := amConfig{Route: amRoute{
		Receiver:       a.Receiver,
		GroupBy:        []string{"site"},
		GroupWait:      durationOr(a.GroupWait, DefaultGroupWait),
		GroupInterval:  durationOr(a.GroupInterval, DefaultGroupInterval),
		RepeatInterval: durationOr(a.RepeatInterval, DefaultRepeatInterval),
	}}
	if c.Route.Receiver == "" {
		c.Route.Receiver = NoReceiver
		c.Receivers = append(c.Receivers, amReceiver{Name: NoReceiver})
	}
	for _, r := range a.Routes {
		ms := make([]string, len(r.Matchers))
		for i, m := range r.Matchers {
			ms[i] = strings.TrimSpace(m)
		}
		c.Route.Routes = append(c.Route.Routes, amRoute{Receiver: r.Receiver, Matchers: ms, Continue: r.Continue})
	}
	secrets := map[sites.SecretRef]string{}
	for _, s := range AlertSecrets(a) {
		secrets[s.Ref] = path.Join(secretsDir, s.Name)
	}
	for _, r := range a.Receivers {
		rc := amReceiver{Name: r.Name}
		for _, w := range r.Webhooks {
			wc := amWebhook{URL: w.URL, SendResolved: orTrue(w.SendResolved)}
			if !w.Token.IsZero() {
				wc.HTTPConfig = &amHTTP{}
				wc.HTTPConfig.Authorization.Type = "Bearer"
				wc.HTTPConfig.Authorization.CredentialsFile = secrets[w.Token]
			}
			rc.WebhookConfigs = append(rc.WebhookConfigs, wc)
		}
		for _, e := range r.Emails {
			ec := amEmail{To: e.To, From: e.From, Smarthost: e.Smarthost, AuthUsername: e.Username, RequireTLS: e.RequireTLS, SendResolved: orTrue(e.SendResolved)}
			if !e.Password.IsZero() {
				ec.AuthPasswordFile = secrets[e.Password]
			}
			rc.EmailConfigs = append(rc.EmailConfigs, ec)
		}
		c.Receivers = append(c.Receivers, rc)
	}
	repl := `alertname=~"` + strings.Join(replicationAlerts, "|") + `"`
	c.InhibitRules = append(c.InhibitRules, amInhibit{
		SourceMatchers: []string{`alertname="` + AlertTunnelDown + `"`},
		TargetMatchers: []string{repl},
		Equal:          []string{"site"},
	})
	for _, s := range topo.Sites {
		if s.IsHub() {
			continue
		}
		id := regexp.QuoteMeta(postgresIdent(s.Name))
		// A rebuilt site's flows end in _g<from>_<to> (postgres.Flow.SlotName).
		flows := fmt.Sprintf(`"%s%s_to_.+|%s.+_to_%s(_g[0-9]+_[0-9]+)?"`, postgres.Prefix, id, postgres.Prefix, id)
		src := []string{`alertname="` + AlertTunnelDown + `"`, fmt.Sprintf("site=%q", s.Name)}
		c.InhibitRules = append(c.InhibitRules,
			amInhibit{SourceMatchers: src, TargetMatchers: []string{`alertname=~"` + AlertReplicationLag + "|" + AlertSlotWAL + `"`, "slot_name=~" + flows}},
			amInhibit{SourceMatchers: src, TargetMatchers: []string{`alertname="` + AlertSubscriptionSilent + `"`, "subname=~" + flows}})
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# alertmanager.yml for the hub %s (%s), rendered by sitectl from alerting in the site config; do not edit.\n", topo.Hub, topo.Env)
	b.WriteString("# Secrets are Docker secrets under " + secretsDir + ", read through *_file settings; none is written here.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// postgresIdent is a site's name as replication/postgres spells it in slot and
// subscription names.
func postgresIdent(site string) string {
	return strings.TrimSuffix(strings.TrimPrefix(postgres.Flow{From: site}.Name(), postgres.Prefix), "_to_")
}

// AlertmanagerURL is where the hub's Alertmanager API is reached from sitectl:
// its node's LAN address and published port.
func AlertmanagerURL(topo *sites.Topology) string {
	hub := topo.HubSite()
	if hub == nil {
		return ""
	}
	return "http://" + targets.Addr(PrometheusNode(hub).Address, targets.AlertmanagerPort)
}
