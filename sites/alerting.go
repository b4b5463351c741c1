package sites

import (
	"fmt"
	"maps"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Alerting says where the hub's Alertmanager (stacks/monitoring) sends the alerts
// of every site. Only the hub's is read; a spoke may leave it empty.
type Alerting struct {
	// Receiver is the default receiver: alerts no route matches go there. Empty with
	// no receivers: alerts are kept (status, Alertmanager's UI) but sent nowhere.
	Receiver  string          `mapstructure:"receiver" json:"receiver,omitempty" yaml:"receiver,omitempty"`
	Receivers []AlertReceiver `mapstructure:"receivers" json:"receivers,omitempty" yaml:"receivers,omitempty"`
	// Routes send matching alerts to another receiver, first match wins (unless continue).
	Routes         []AlertRoute `mapstructure:"routes" json:"routes,omitempty" yaml:"routes,omitempty"`
	GroupWait      Duration     `mapstructure:"group_wait" json:"group_wait,omitzero" yaml:"group_wait,omitempty"`
	GroupInterval  Duration     `mapstructure:"group_interval" json:"group_interval,omitzero" yaml:"group_interval,omitempty"`
	RepeatInterval Duration     `mapstructure:"repeat_interval" json:"repeat_interval,omitzero" yaml:"repeat_interval,omitempty"`
}

// AlertReceiver is one named receiver: web hooks and e-mail addresses.
type AlertReceiver struct {
	Name     string         `mapstructure:"name" json:"name" yaml:"name"`
	Webhooks []AlertWebhook `mapstructure:"webhooks" json:"webhooks,omitempty" yaml:"webhooks,omitempty"`
	Emails   []AlertEmail   `mapstructure:"emails" json:"emails,omitempty" yaml:"emails,omitempty"`
}

// AlertWebhook posts Alertmanager's webhook JSON to URL.
type AlertWebhook struct {
	URL string `mapstructure:"url" json:"url" yaml:"url"`
	// Token is sent as "Authorization: Bearer <token>"; optional.
	Token        SecretRef `mapstructure:"token" json:"token,omitzero" yaml:"token,omitempty"`
	SendResolved *bool     `mapstructure:"send_resolved" json:"send_resolved,omitempty" yaml:"send_resolved,omitempty"`
}

// AlertEmail sends alerts by e-mail through an SMTP smarthost.
type AlertEmail struct {
	To        string `mapstructure:"to" json:"to" yaml:"to"`
	From      string `mapstructure:"from" json:"from" yaml:"from"`
	Smarthost string `mapstructure:"smarthost" json:"smarthost" yaml:"smarthost"` // host:port
	Username  string `mapstructure:"username" json:"username,omitempty" yaml:"username,omitempty"`
	// Password is the SMTP password (with Username); optional.
	Password     SecretRef `mapstructure:"password" json:"password,omitzero" yaml:"password,omitempty"`
	RequireTLS   *bool     `mapstructure:"require_tls" json:"require_tls,omitempty" yaml:"require_tls,omitempty"`
	SendResolved *bool     `mapstructure:"send_resolved" json:"send_resolved,omitempty" yaml:"send_resolved,omitempty"`
}

// AlertRoute sends the alerts matching every matcher to Receiver.
type AlertRoute struct {
	Receiver string `mapstructure:"receiver" json:"receiver" yaml:"receiver"`
	// Matchers in Alertmanager's syntax: severity="critical", site=~"douala|yaounde".
	Matchers []string `mapstructure:"matchers" json:"matchers" yaml:"matchers"`
	Continue bool     `mapstructure:"continue" json:"continue,omitempty" yaml:"continue,omitempty"`
}

var (
	receiverNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	matcherRE      = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"$`)
)

// validateAlerting checks the alerting section of a site.
func validateAlerting(errf func(key, format string, args ...any), a Alerting) {
	names := map[string]bool{}
	for i, r := range a.Receivers {
		key := fmt.Sprintf("alerting.receivers[%d]", i)
		switch {
		case !receiverNameRE.MatchString(r.Name):
			errf(key+".name", "is %q; a receiver name is lower-case letters, digits and dashes (e.g. ops, oncall)", r.Name)
		case names[r.Name]:
			errf(key+".name", "receiver %q is listed twice", r.Name)
		}
		names[r.Name] = true
		if len(r.Webhooks)+len(r.Emails) == 0 {
			errf(key, "receiver %q sends nowhere; give it webhooks or emails", r.Name)
		}
		for j, w := range r.Webhooks {
			k := fmt.Sprintf("%s.webhooks[%d]", key, j)
			if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errf(k+".url", "is %q, not an http:// or https:// URL", w.URL)
			} else if u.User != nil {
				errf(k+".url", "carries credentials; put the token in %s.token ({env: VAR} or {file: /path})", k)
			}
			if !w.Token.IsZero() {
				checkRef(errf, k+".token", w.Token, true)
			}
		}
		for j, e := range r.Emails {
			k := fmt.Sprintf("%s.emails[%d]", key, j)
			for _, f := range []struct{ key, v string }{{"to", e.To}, {"from", e.From}} {
				if _, err := mail.ParseAddressList(f.v); err != nil {
					errf(k+"."+f.key, "is %q, not an e-mail address (e.g. ops@example.org)", f.v)
				}
			}
			if h, p, ok := strings.Cut(e.Smarthost, ":"); !ok || h == "" || p == "" {
				errf(k+".smarthost", "is %q; give the SMTP server as host:port (e.g. smtp.example.org:587)", e.Smarthost)
			}
			if !e.Password.IsZero() {
				checkRef(errf, k+".password", e.Password, true)
				if e.Username == "" {
					errf(k+".username", "is empty but a password is set; give the SMTP user name")
				}
			}
		}
	}
	if a.Receiver != "" && !names[a.Receiver] {
		errf("alerting.receiver", "is %q, which is not a receiver (receivers: %s)", a.Receiver, strings.Join(slices.Sorted(maps.Keys(names)), ", "))
	}
	if a.Receiver == "" && len(a.Receivers) > 0 {
		errf("alerting.receiver", "is empty; name the default receiver (one of %s)", strings.Join(slices.Sorted(maps.Keys(names)), ", "))
	}
	for i, r := range a.Routes {
		key := fmt.Sprintf("alerting.routes[%d]", i)
		if !names[r.Receiver] {
			errf(key+".receiver", "is %q, which is not a receiver (receivers: %s)", r.Receiver, strings.Join(slices.Sorted(maps.Keys(names)), ", "))
		}
		if len(r.Matchers) == 0 {
			errf(key+".matchers", "is empty; a route needs at least one matcher such as severity=\"critical\"")
		}
		for j, m := range r.Matchers {
			if !matcherRE.MatchString(strings.TrimSpace(m)) {
				errf(fmt.Sprintf("%s.matchers[%d]", key, j), "is %q; write label=\"value\" (also !=, =~, !~), e.g. severity=\"critical\"", m)
			}
		}
	}
}
