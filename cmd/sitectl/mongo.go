package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/replication/mongo"
)

func newMongoCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mongo",
		Short: "The MongoDB replica set across the sites: partition analysis, status, forced recovery",
		Long: `One replica set spans the sites (DESIGN.md decision 5). A primary is elected only
where a majority of the votes is: a cut-off minority does not promote itself, and
writes a cut-off primary took without a majority are rolled back after the heal,
not merged. ` + "`sitectl plan`/`deploy`" + ` initiate and reconfigure the set.`,
	}
	cmd.AddCommand(newMongoAnalyzeCommand(g), newMongoStatusCommand(g), newMongoAuthoritativeCommand(g))
	return cmd
}

func newMongoAnalyzeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "analyze",
		Short: "Show, for every tunnel cut and for the hub lost, which sites can elect a primary and write",
		Long: `Works from the configuration only (no site is contacted): the members and votes
of every site, and the tunnels between sites (hub and spoke, plus direct links).
For the topology as it is, each single link cut, and the hub lost, it prints which
side elects a primary, which sites can take majority writes and which become
read-only. Layout problems (mongo.members) are printed first; errors exit 1.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			problems := mongo.Check(topo)
			a, err := mongo.Analyze(topo)
			if err != nil {
				return err
			}
			if ok, err := g.printStructured(struct {
				*mongo.Analysis
				Problems any `json:"problems,omitempty"`
			}{a, problems}); ok {
				if err == nil && len(problems.Errors()) > 0 {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			for _, p := range problems {
				fmt.Fprintln(g.streams.Err, p.String())
			}
			if err := a.Render(g.streams.Out); err != nil {
				return err
			}
			if n := len(problems.Errors()); n > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("mongo layout has %d error(s): fix mongo.members in the files named above", n)}
			}
			return nil
		},
	}
}

func newMongoStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Members, states, replication lag and the oplog window of the replica set",
		Long: `Asks every member what it is, reads replSetGetStatus from the primary (or any
member that answers) and each data-bearing member's oplog window, and warns when
there is no primary, a member is unreachable, the default write concern is not
majority, or the oplog window is shorter than mongo.max_partition. The last line
says whether the set is healthy. Exit code 1 when there is no primary, a member is
unreachable or in another state than primary, secondary or arbiter, or the set
cannot be read; the warnings alone do not fail it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			conn := mongo.NewConn(topo)
			defer conn.Close()
			done := g.progress().Step("read the MongoDB replica set")
			st, err := conn.GetStatus(cmd.Context())
			done(err)
			if err != nil {
				return fmt.Errorf("mongo status: %w", err)
			}
			failed := len(st.Problems()) > 0
			if ok, err := g.printStructured(st); ok {
				if err == nil {
					fmt.Fprintln(g.streams.Err, st.Verdict()) // stdout holds the document
				}
				if err == nil && failed {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			if err := st.Render(g.streams.Out); err != nil {
				return err
			}
			fmt.Fprintln(g.streams.Out, st.Verdict())
			if failed {
				return &ExitError{Code: 1, Silent: true}
			}
			return nil
		},
	}
}

func newMongoAuthoritativeCommand(g *globals) *cobra.Command {
	var site string
	var understand bool
	cmd := &cobra.Command{
		Use:   "declare-authoritative --site SITE --i-understand-rollback",
		Short: "Force a cut-off site's members to form the replica set alone (writes elsewhere are rolled back)",
		Long: `One of the two paths to a forced replSetReconfig (the other: site rebuild --mongo
with no primary reachable). For a site cut off without a majority that must take
writes anyway (the hub is gone for good): the set is reconfigured, on a member at
SITE, to keep only the members SITE still reaches. Every write the
removed members hold that SITE does not is rolled back when they return (saved to
rollback/ files), not merged. Without --i-understand-rollback it only prints what it
would do and exits 1. Refused when SITE already reaches a primary.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if site == "" {
				return errors.New("--site is required: the site whose members become the replica set")
			}
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			if _, err := topo.Select(site); err != nil {
				return err
			}
			conn := mongo.NewConn(topo)
			defer conn.Close()
			fp, err := conn.PlanAuthoritative(cmd.Context(), site)
			if errors.Is(err, mongo.ErrNotNeeded) {
				return &ExitError{Code: 1, Err: fmt.Errorf("declare %s authoritative: %w", site, err)}
			}
			if err != nil {
				return fmt.Errorf("declare %s authoritative: %w", site, err)
			}
			if ok, err := g.printStructured(fp); !ok {
				if err := fp.Render(g.streams.Out); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			if !understand {
				return &ExitError{Code: 1, Err: fmt.Errorf("refusing to force a reconfig: re-run with --i-understand-rollback after reading what is rolled back above")}
			}
			done := g.progress().Step("forced replSetReconfig on %s", fp.On)
			err = fp.Apply(cmd.Context())
			done(err)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Out, "%s is authoritative; re-add the other sites' members with `sitectl deploy` once their links are back.\n", site)
			return nil
		},
	}
	cmd.Flags().StringVar(&site, "site", "", "the site whose members become the replica set")
	markRequired(cmd, "site", "")
	cmd.Flags().BoolVar(&understand, "i-understand-rollback", false, "confirm that writes held only by the removed members will be rolled back")
	return cmd
}
