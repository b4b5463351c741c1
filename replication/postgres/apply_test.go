package postgres

import (
	"context"
	"maps"
	"slices"
	"sort"

	"github.com/sitectl/sitectl/internal/progress"
)

// This file is test code: sitectl applies replication through the part's steps
// (deploy); the tests apply a whole plan at once.

// Apply applies every site's changes phase by phase across the sites: the schema
// everywhere, then publications, then subscriptions, then removals. The first
// error stops it.
func (p *Planned) Apply(ctx context.Context, pr *progress.Printer) error {
	if err := p.Err(); err != nil {
		return err
	}
	var all []Change
	for _, site := range slices.Sorted(maps.Keys(p.Changes)) {
		all = append(all, p.Changes[site]...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Op.Phase < all[j].Op.Phase })
	for _, c := range all {
		if c.Step.Apply == nil {
			continue
		}
		done := pr.Step("%s: %s", c.Step.Site, c.Step)
		err := c.Step.Apply(ctx)
		done(err)
		if err != nil {
			return err
		}
	}
	return nil
}
