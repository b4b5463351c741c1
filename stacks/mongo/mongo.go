// Package mongo is the MongoDB stack: one mongod service per replica set member
// placed at the site, pinned to the node holding the member's address (the db node),
// keyfile auth between members from a Docker secret, optional TLS from secrets, the
// data network only and a host-mode port on the node's LAN address (never the WAN).
// The replica set itself (initiate, reconfig) is replication/mongo's job.
package mongo

import (
	_ "embed"
	"fmt"
	"net"
	"strconv"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

//go:embed compose.yaml.tmpl
var composeTemplate []byte

// Name is the stack's name (its folder and its namespace in the swarm).
const Name = "mongo"

// Defaults are the stack's values; a site overrides them under values.mongo.
var Defaults = map[string]any{
	// oplog_size_mb sizes the oplog: it must hold writes for mongo.max_partition
	// (`sitectl mongo status` warns when the window is shorter).
	"oplog_size_mb": 2048,
	// healthcheck runs mongosh in the container (the lab's stand-in has none).
	"healthcheck": true,
	// tls_mode: "" or disabled (members talk inside the tunnels), allowTLS,
	// preferTLS or requireTLS; TLS needs the two secrets below named in the site config.
	"tls_mode":               "",
	"tls_certificate_secret": "mongo-tls-pem",
	"tls_ca_secret":          "mongo-tls-ca",
}

func init() { stacks.Register(Stack{}) }

// Stack renders the mongo stack.
type Stack struct{}

// Name is "mongo".
func (Stack) Name() string { return Name }

// Member is one mongod service.
type Member struct {
	Service     string
	Host        string
	Port        int
	Volume      string
	Constraints []string
}

// TLS holds the TLS options when enabled.
type TLS struct {
	Mode          string
	CertKeySecret string
	CASecret      string
}

// Extra is what the template sees besides the values.
type Extra struct {
	Members []Member
	TLS     *TLS
	// RootUser is mongo.user: the image creates it (password from the secret
	// RootPasswordSecret) on first start, and sitectl authenticates as it.
	RootUser           string
	RootPasswordSecret string
}

// PasswordSecret is the Docker secret holding mongo.user's password.
const PasswordSecret = "mongo-password"

// Render renders the compose file for in.Site.
func (Stack) Render(in stacks.Input) (stacks.Rendered, error) {
	if err := stacks.CheckValues(in, Name, Defaults); err != nil {
		return stacks.Rendered{}, err
	}
	vals := stacks.Values(in, Name, Defaults)
	extra, err := build(in.Site, vals)
	if err != nil {
		return stacks.Rendered{}, fmt.Errorf("mongo at %s: %w", in.Site.Name, err)
	}
	out, err := stacks.ExecTemplate("mongo/compose.yaml.tmpl", composeTemplate, stacks.TemplateData{
		Site: in.Site, Topo: in.Topo, Env: in.Env(), Stack: Name, Values: vals, Extra: extra,
	})
	if err != nil {
		return stacks.Rendered{}, err
	}
	return stacks.Rendered{Stack: Name, Compose: out}, nil
}

func build(s *sites.Site, vals map[string]any) (Extra, error) {
	var ex Extra
	if len(s.Mongo.Members) == 0 {
		return ex, fmt.Errorf("the site lists the mongo stack but no mongo.members")
	}
	if _, ok := s.Secrets["mongo-keyfile"]; !ok {
		return ex, fmt.Errorf("members authenticate with the secret %q, which the site does not name: add secrets.mongo-keyfile: {env: VAR} or {file: /path}", "mongo-keyfile")
	}
	switch mode := fmt.Sprint(vals["tls_mode"]); mode {
	case "", "disabled", "<nil>":
	case "allowTLS", "preferTLS", "requireTLS":
		ex.TLS = &TLS{Mode: mode, CertKeySecret: fmt.Sprint(vals["tls_certificate_secret"]), CASecret: fmt.Sprint(vals["tls_ca_secret"])}
		for _, name := range []string{ex.TLS.CertKeySecret, ex.TLS.CASecret} {
			if _, ok := s.Secrets[name]; !ok {
				return ex, fmt.Errorf("values.mongo.tls_mode %s needs the secret %q, which the site does not name: add secrets.%s", mode, name, name)
			}
		}
	default:
		return ex, fmt.Errorf("values.mongo.tls_mode %q: allowed: disabled, allowTLS, preferTLS, requireTLS", mode)
	}
	if s.Mongo.User != "" {
		if _, ok := s.Secrets[PasswordSecret]; !ok {
			return ex, fmt.Errorf("mongo.user %s needs its password as the secret %q, which the site does not name: add secrets.%s naming the same source as mongo.password", s.Mongo.User, PasswordSecret, PasswordSecret)
		}
		ex.RootUser, ex.RootPasswordSecret = s.Mongo.User, PasswordSecret
	}
	for i, m := range s.Mongo.Members {
		host, portStr, err := net.SplitHostPort(m.Host)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil {
			return ex, fmt.Errorf("mongo.members[%d].host %q is not host:port", i, m.Host)
		}
		node := targets.Pin(s, "db", host)
		constraints := []string{targets.HostnameConstraint(node)}
		if node.Labels["role"] == "db" {
			constraints = append(constraints, "node.labels.role == db")
		}
		svc, vol := memberNames(i, len(s.Mongo.Members))
		ex.Members = append(ex.Members, Member{Service: svc, Host: m.Host, Port: port, Volume: vol, Constraints: constraints})
	}
	return ex, nil
}

// memberNames are the service and volume names of member i of n.
func memberNames(i, n int) (service, volume string) {
	if n > 1 {
		return fmt.Sprintf("mongod-%d", i+1), fmt.Sprintf("mongo-data-%d", i+1)
	}
	return "mongod", "mongo-data"
}

// MemberService is one of a site's mongod services as deployed: the swarm service
// and volume names (the stack's prefix included: mongo_mongod, mongo_mongo-data).
type MemberService struct {
	Host    string
	Service string
	Volume  string
}

// MemberServices lists the site's mongod services as the stack names them.
func MemberServices(s *sites.Site) []MemberService {
	out := make([]MemberService, 0, len(s.Mongo.Members))
	for i, m := range s.Mongo.Members {
		svc, vol := memberNames(i, len(s.Mongo.Members))
		out = append(out, MemberService{Host: m.Host, Service: Name + "_" + svc, Volume: Name + "_" + vol})
	}
	return out
}
