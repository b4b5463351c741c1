package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

func newReplicationCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replication",
		Short: "PostgreSQL logical replication between the sites: status, resume after a partition",
		Long: `Every replicated row is owned by the site that wrote it. Each spoke publishes its own
rows to the hub; the hub republishes to each spoke the rows it does not own. sitectl
plan/deploy create the publications and subscriptions; these commands watch them.`,
	}
	cmd.AddCommand(newReplicationStatusCommand(g), newReplicationResumeCommand(g))
	return cmd
}

func newReplicationStatusCommand(g *globals) *cobra.Command {
	var siteNames []string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every replication flow: state, lag, WAL held by its slot, errors and conflicts",
		Long: `For each flow (publisher → subscriber): state (streaming, catching up, syncing,
stalled, disabled by error, disabled, down, missing, unknown), lag in bytes and seconds,
WAL retained by the slot and its wal_status, apply and sync error counts, a warning when
the retained WAL nears max_slot_wal_keep_size, and for a subscription stopped by a
conflict: the table, the key, the LSN and how to resolve it. A flow is stalled when
neither end has heard from the other for wal_receiver_status_interval + 4s: a link
that drops packets (a cut tunnel) shows within seconds, not after the 30 s timeouts.
The last line says whether every flow works.
Exit code 0 when every flow is streaming, catching up or syncing; 1 when any flow is
in another state or a site could not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r *postgres.Report
			err := g.withReplication("read replication status", func(topo *sites.Topology, sess *postgres.Session) (err error) {
				r, err = postgres.Status(cmd.Context(), topo, sess, siteNames...)
				if err == nil && len(r.Unread()) > 0 {
					err = fmt.Errorf("could not read %s", strings.Join(r.Unread(), ", "))
				}
				return err
			})
			if r == nil {
				return err
			}
			failed := len(r.Failing()) > 0 || len(r.Unread()) > 0
			if ok, err := g.printStructured(r); ok {
				if err == nil && len(r.Flows) > 0 {
					fmt.Fprintln(g.streams.Err, r.Summary()) // stdout holds the document
				}
				if err == nil && failed {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			if len(r.Flows) == 0 {
				fmt.Fprintln(g.streams.Out, "No replication flows: no site runs the postgres stack next to a hub that does.")
				return nil
			}
			if err := r.Render(g.streams.Out); err != nil {
				return err
			}
			if failed {
				// Render's last line said which flows fail and why.
				return &ExitError{Code: 1, Silent: true}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&siteNames, "site", nil, "only flows from or to these sites")
	return cmd
}

func newReplicationResumeCommand(g *globals) *cobra.Command {
	var siteNames []string
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Re-enable subscriptions a lost connection disabled; leave those stopped by a conflict",
		Long: `With disable_on_error, PostgreSQL 15 disables a subscription on any apply error,
including a lost connection during a partition. After the heal, resume enables every
disabled sitectl subscription for which no conflicting change waits in the slot;
a subscription stopped by a real conflict stays disabled and is reported with its
resolution. sitectl deploy does the same as part of its plan. Exit code 1 when a
subscription is held back by a conflict or could not be resumed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res *postgres.Resumed
			rerr := g.withReplication("resume replication", func(topo *sites.Topology, sess *postgres.Session) (err error) {
				res, err = postgres.Resume(cmd.Context(), topo, sess, siteNames...)
				return err
			})
			if res == nil {
				return rerr
			}
			if ok, err := g.printStructured(res); ok {
				if err == nil && (rerr != nil || len(res.Held) > 0) {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			if len(res.Enabled) == 0 && len(res.Held) == 0 && rerr == nil {
				fmt.Fprintln(g.streams.Out, "Nothing to resume: every subscription is enabled.")
			}
			if len(res.Enabled) > 0 {
				fmt.Fprintf(g.streams.Out, "enabled: %s\n", strings.Join(res.Enabled, ", "))
			}
			for _, c := range res.Held {
				fmt.Fprintf(g.streams.Out, "✗ held %s: %s\n  resolve: %s\n", c.Subscription, c.Summary(), c.Resolution())
			}
			switch {
			case rerr != nil:
				return &ExitError{Code: 1, Err: rerr}
			case len(res.Held) > 0:
				return &ExitError{Code: 1, Err: fmt.Errorf("%d subscription(s) held back by a conflict: resolve it as shown, then run resume again", len(res.Held))}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&siteNames, "site", nil, "only subscriptions at these sites")
	return cmd
}

// withReplication loads the topology, opens a database session over its sites and
// runs fn as one progress step.
func (g *globals) withReplication(step string, fn func(*sites.Topology, *postgres.Session) error) error {
	topo, err := g.loadTopology()
	if err != nil {
		return err
	}
	sess := postgres.NewSession(topo)
	defer sess.Close()
	done := g.progress().Step("%s", step)
	err = fn(topo, sess)
	done(err)
	return err
}
