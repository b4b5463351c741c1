// Package backup is the backup stack: the Barman server of a site that backs up
// other sites' PostgreSQL databases (each site's backup.server names it). Its
// configuration is rendered by the backup package; this stack deploys it.
package backup

import (
	_ "embed"
	"fmt"
	"strings"

	bk "github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	mtargets "github.com/sitectl/sitectl/stacks/monitoring/targets"
)

//go:embed compose.yaml.tmpl
var composeTemplate []byte

// Name is the stack's name.
const Name = "backup"

// Defaults are the stack's values; a site overrides them under values.backup.
var Defaults = map[string]any{
	// image is used when the site's images map has no "barman".
	"image": "registry.example.com/sitectl/barman:3.4",
	// constraint replaces the placement constraint (default: Node, the node holding
	// the site's database, where the hub's Prometheus scrapes the exporter).
	"constraint": "",
	// mongodump (at the hub only): a scheduled mongodump of the hub's hidden member,
	// else of its lowest-priority member read as a secondary (mongodump.go), every
	// mongodump_every, the newest mongodump_keep archives kept in mongodump_volume.
	"mongodump":        false,
	"mongodump_every":  "24h",
	"mongodump_keep":   7,
	"mongodump_volume": "mongodump",
}

func init() { stacks.Register(Stack{}) }

// Stack renders the backup stack.
type Stack struct{}

// Name is "backup".
func (Stack) Name() string { return Name }

// site is one backed-up site as the template sees it.
type site struct {
	Site, Volume string
}

// Extra is what the template sees besides the values.
type Extra struct {
	Image, Constraint, Targets, SiteList string
	Sites                                []site
	// ExporterPort is the Barman exporter's port (host mode on the node).
	ExporterPort int
	// Mongodump is the hub's scheduled mongodump (values.backup.mongodump), or nil.
	Mongodump *Mongodump
}

// Render renders the Barman server of in.Site: one server section, volume and
// password secret per site it backs up. A site that backs up no one is refused.
func (Stack) Render(in stacks.Input) (stacks.Rendered, error) {
	if err := stacks.CheckValues(in, Name, Defaults); err != nil {
		return stacks.Rendered{}, err
	}
	vals := stacks.Values(in, Name, Defaults)
	targets := bk.Targets(in.Topo, in.Site.Name)
	if len(targets) == 0 {
		return stacks.Rendered{}, fmt.Errorf("site %s runs the backup stack but no site names it as backup.server; set backup.server: %s in the sites it backs up, or drop the stack", in.Site.Name, in.Site.Name)
	}
	extra := Extra{Image: in.Site.Images["barman"], Constraint: fmt.Sprint(vals["constraint"]), ExporterPort: bk.ExporterPort}
	if extra.Constraint == "" || extra.Constraint == "<nil>" {
		extra.Constraint = mtargets.HostnameConstraint(Node(in.Site))
	}
	if extra.Image == "" {
		extra.Image = fmt.Sprint(vals["image"])
	}
	files := map[string][]byte{"barman.conf": bk.GlobalConf(bk.DefaultGlobal)}
	secrets := map[string]sites.SecretRef{}
	var words, names []string
	for _, t := range targets {
		extra.Sites = append(extra.Sites, site{Site: t.Site, Volume: t.Backup.Volume})
		files["barman.d/"+t.Site+".conf"] = bk.ServerConf(t)
		secrets["barman-password-"+t.Site] = t.Backup.Password
		words = append(words, fmt.Sprintf("%s=%s:%d:%s", t.Site, t.Host, t.Port, t.User))
		names = append(names, t.Site)
	}
	extra.Targets, extra.SiteList = strings.Join(words, " "), strings.Join(names, ", ")
	md, err := buildMongodump(in, vals)
	if err != nil {
		return stacks.Rendered{}, err
	}
	if extra.Mongodump = md; md != nil {
		files["mongodump.sh"] = mongodumpScript
		secrets[MongodumpPasswordSecret] = in.Site.Mongo.Password
	}
	out, err := stacks.ExecTemplate("backup/compose.yaml.tmpl", composeTemplate, stacks.TemplateData{
		Site: in.Site, Topo: in.Topo, Env: in.Env(), Stack: Name, Values: vals, Extra: extra,
	})
	if err != nil {
		return stacks.Rendered{}, err
	}
	return stacks.Rendered{Stack: Name, Compose: out, Files: files, Secrets: secrets}, nil
}

// Node is where a site's Barman server runs and its exporter is scraped: the node
// holding the site's database (postgres.host), else a db-labelled node, else a
// manager, as the postgres-exporter is placed.
func Node(s *sites.Site) sites.Node { return mtargets.Pin(s, "db", s.Postgres.Host) }
