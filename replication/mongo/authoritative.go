package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ForcePlan is what declaring a site authoritative would do: a forced reconfig, on a
// member at the site, that keeps only the members the site still reaches. It exists
// for a site cut off without a majority that must take writes anyway (e.g. the cloud
// is gone for good). It is one of the two paths to `force`; the other, a Rebuild's
// vote change with no primary reachable, applies a ForcePlan that keeps every member.
type ForcePlan struct {
	Site       string   `json:"site"`
	On         string   `json:"reconfig_on"`
	Keep       []string `json:"keep"`
	Remove     []string `json:"remove"`
	OtherSides []string `json:"other_sides_primary,omitempty"`
	Warnings   []string `json:"warnings"`
	cfg        *Config
	conn       *Conn
}

// ErrNotNeeded is returned when the site already reaches a primary.
var ErrNotNeeded = errors.New("not needed")

// PlanAuthoritative reads the set from the site's own members and works out the
// forced reconfig. It refuses when the site's members already see a primary.
func (c *Conn) PlanAuthoritative(ctx context.Context, site string) (*ForcePlan, error) {
	var mine []string
	for _, h := range Hosts(c.topo) {
		if SiteOf(c.topo, h) == site {
			mine = append(mine, h)
		}
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("site %s has no mongo members (mongo.members in its config)", site)
	}
	fp := &ForcePlan{Site: site, conn: c}
	var lastErr error
	for _, h := range mine {
		v := c.Hello(ctx, h)
		if !v.Reachable {
			lastErr = errors.New(v.Error)
			continue
		}
		if v.SetName == "" {
			lastErr = fmt.Errorf("%s is not part of an initiated replica set", h)
			continue
		}
		if v.Primary || v.SeesPrimary != "" {
			p := v.SeesPrimary
			if v.Primary {
				p = h
			}
			return nil, fmt.Errorf("%w: %s already reaches the primary %s; a forced reconfig would only roll back the majority's writes", ErrNotNeeded, site, p)
		}
		fp.On = h
		break
	}
	if fp.On == "" {
		return nil, fmt.Errorf("no member at %s answers: %w", site, lastErr)
	}
	cfg, err := c.GetConfig(ctx, fp.On)
	if err != nil {
		return nil, fmt.Errorf("read the config on %s: %w", fp.On, err)
	}
	var rs statusReply
	if err := c.Run(ctx, fp.On, bson.D{{Key: "replSetGetStatus", Value: 1}}, &rs); err != nil {
		return nil, fmt.Errorf("replSetGetStatus on %s: %w", fp.On, err)
	}
	healthy := map[string]bool{}
	for _, m := range rs.Members {
		healthy[m.Name] = m.Health == 1
	}
	newCfg := cfg.Clone()
	newCfg.Members = nil
	for _, m := range cfg.Members {
		if healthy[m.Host] {
			fp.Keep = append(fp.Keep, m.Host)
			newCfg.Members = append(newCfg.Members, m)
		} else {
			fp.Remove = append(fp.Remove, m.Host)
		}
	}
	if !slices.ContainsFunc(newCfg.Members, func(m Member) bool { return m.Electable() }) {
		return nil, fmt.Errorf("no member %s reaches can become primary (all hidden, arbiters or priority 0)", site)
	}
	newCfg.Version++
	newCfg.Term = 0
	fp.cfg = newCfg
	// Does a primary exist elsewhere? Ask the removed members (sitectl may reach
	// them over the management path even when the sites cannot reach each other).
	for _, h := range fp.Remove {
		if v := c.Hello(ctx, h); v.Reachable && v.Primary {
			fp.OtherSides = append(fp.OtherSides, h)
		}
	}
	removedSites := map[string]bool{}
	for _, h := range fp.Remove {
		removedSites[SiteOf(c.topo, h)] = true
	}
	others := slices.Sorted(func(yield func(string) bool) {
		for s := range removedSites {
			if !yield(s) {
				return
			}
		}
	})
	fp.Warnings = append(fp.Warnings,
		fmt.Sprintf("the members %s are removed from the set; %s becomes primary with only what it holds now", strings.Join(fp.Remove, ", "), site),
		fmt.Sprintf("when the links return, every write the removed members took that %s does not hold is ROLLED BACK on them (saved to rollback/ files), not merged; re-add them with `sitectl deploy` (one voting change per reconfig)", site))
	if len(fp.OtherSides) > 0 {
		fp.Warnings = append(fp.Warnings, fmt.Sprintf("a primary is running right now at %s (%s): it holds the majority; every write it has taken since the cut will be rolled back — this is almost certainly not what you want", strings.Join(fp.OtherSides, ", "), strings.Join(others, ", ")))
	}
	return fp, nil
}

// Render prints the forced reconfig and what it may roll back.
func (fp *ForcePlan) Render(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "declare %s authoritative: forced replSetReconfig on %s\n", fp.Site, fp.On)
	fmt.Fprintf(&b, "  keep:   %s\n", strings.Join(fp.Keep, ", "))
	fmt.Fprintf(&b, "  remove: %s\n", dash(strings.Join(fp.Remove, ", ")))
	for _, wn := range fp.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", wn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Apply runs the forced reconfig.
func (fp *ForcePlan) Apply(ctx context.Context) error {
	if err := fp.conn.Run(ctx, fp.On, bson.D{{Key: "replSetReconfig", Value: fp.cfg}, {Key: "force", Value: true}}, nil); err != nil {
		return fmt.Errorf("forced replSetReconfig on %s: %w", fp.On, err)
	}
	return nil
}
