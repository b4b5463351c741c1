package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/replication/mongo"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// planSiteRebuildMongo plans the MongoDB part of `site rebuild` when --mongo is
// given (nil otherwise): it is planned before the PostgreSQL part, so a site whose
// members still answer is refused before any database is touched. The returned
// func closes its connections.
func planSiteRebuildMongo(ctx context.Context, topo *sites.Topology, site string, o siteRebuildOptions, prog *progress.Printer) (*mongo.Rebuild, func(), error) {
	if !o.mongo {
		if o.rollback {
			return nil, nil, errors.New("site rebuild: --i-understand-rollback acknowledges a forced MongoDB reconfig: it needs --mongo")
		}
		return nil, func() {}, nil
	}
	conn := mongo.NewConn(topo)
	opts := mongo.RebuildOptions{Force: o.force, AllowForcedReconfig: o.rollback, Wait: o.wait}
	if prog != nil {
		opts.Progress = prog.Status
	}
	mr, err := conn.PlanRebuild(ctx, site, opts)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("site rebuild %s (--mongo): %w", site, err)
	}
	return mr, conn.Close, nil
}

// addMongoSteps appends the MongoDB steps after the PostgreSQL ones: they run in
// the same plan, and a re-run resumes both.
func addMongoSteps(r *postgres.Rebuild, mr *mongo.Rebuild) {
	if mr != nil {
		r.Steps = append(r.Steps, mr.Steps...)
	}
}

// mongoRebuildSummary is the MongoDB line of the rebuild's last lines ("" without
// --mongo): how many reconfigs, and which path each took.
func mongoRebuildSummary(mr *mongo.Rebuild) string {
	if mr == nil {
		return ""
	}
	var paths []string
	for _, rc := range mr.Reconfigs {
		paths = append(paths, fmt.Sprintf("%s %s on %s", rc.Member, rc.Path, rc.On))
	}
	kept := ""
	for _, k := range mr.Kept {
		kept += fmt.Sprintf("; vote kept by %s: %s", k.Member, k.Reason)
	}
	if len(paths) == 0 {
		return fmt.Sprintf("MongoDB: %s's members were already voting and caught up: no reconfig%s\n", mr.Site, kept)
	}
	return fmt.Sprintf("MongoDB: %d reconfig(s) of %s's members, one member each (%s); members caught up and voting%s\n", len(paths), mr.Site, strings.Join(paths, "; "), kept)
}
