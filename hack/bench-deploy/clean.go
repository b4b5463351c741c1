package main

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// empty removes the stacks' services, networks, secrets and configs (both tools')
// and waits until the networks could be removed (tasks gone).
func empty(ctx context.Context, c *client.Client, s *sites.Site) error {
	svcs, err := c.ServiceList(ctx, client.ServiceListOptions{})
	if err != nil {
		return err
	}
	for _, x := range svcs.Items {
		if owned(x.Spec.Labels) {
			if _, err := c.ServiceRemove(ctx, x.ID, client.ServiceRemoveOptions{}); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		nets, err := c.NetworkList(ctx, client.NetworkListOptions{})
		if err != nil {
			return err
		}
		left := 0
		for _, n := range nets.Items {
			if n.Scope == "swarm" && (owned(n.Labels) || s.Networks[n.Name] != (sites.Network{})) {
				if _, err := c.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
					left++
				}
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d networks still in use after 2m", left)
		}
		time.Sleep(500 * time.Millisecond)
	}
	secs, err := c.SecretList(ctx, client.SecretListOptions{})
	if err != nil {
		return err
	}
	for _, x := range secs.Items {
		if owned(x.Spec.Labels) {
			_, _ = c.SecretRemove(ctx, x.ID, client.SecretRemoveOptions{}) // best-effort clean-up between runs
		}
	}
	cfgs, err := c.ConfigList(ctx, client.ConfigListOptions{})
	if err != nil {
		return err
	}
	for _, x := range cfgs.Items {
		if owned(x.Spec.Labels) {
			_, _ = c.ConfigRemove(ctx, x.ID, client.ConfigRemoveOptions{}) // best-effort clean-up between runs
		}
	}
	// Wait until no task of a removed service remains (containers stopped).
	for {
		tasks, err := c.TaskList(ctx, client.TaskListOptions{})
		if err != nil {
			return err
		}
		running := 0
		for _, t := range tasks.Items {
			if t.Status.State == swarm.TaskStateRunning {
				running++
			}
		}
		if running == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return removeVolumes(ctx, s)
}

// settle waits until the clean-up's work in the engines is over, so that it does not
// run into the next measured run: no task container left on any node, then the
// machine's CPU under 20 % busy over one second (at most 30 s; a machine busy with
// other work is not waited for longer). It returns how long it waited.
func settle(ctx context.Context, topo *sites.Topology) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for _, s := range topo.Sites {
		for i := range s.Nodes {
			c, err := engine.ForNode(ctx, s, &s.Nodes[i])
			if err != nil {
				return 0, err
			}
			for {
				res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "com.docker.swarm.task.id")})
				if err != nil || len(res.Items) == 0 || time.Now().After(deadline) {
					_ = c.Close() // releasing a client: nothing to do about a failure
					if err != nil {
						return 0, fmt.Errorf("node %s: %w", s.Nodes[i].Name, err)
					}
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	cores := float64(onlineCPUs())
	for quiet := time.Now().Add(30 * time.Second); time.Now().Before(quiet); {
		b0 := busyCPU()
		time.Sleep(time.Second)
		if (busyCPU()-b0)/cores < 0.2 {
			break
		}
	}
	return time.Since(start), nil
}

// removeVolumes removes the stacks' volumes on every node, so each run starts from
// empty (PostgreSQL runs initdb again).
func removeVolumes(ctx context.Context, s *sites.Site) error {
	for i := range s.Nodes {
		c, err := engine.ForNode(ctx, s, &s.Nodes[i])
		if err != nil {
			return err
		}
		vols, err := c.VolumeList(ctx, client.VolumeListOptions{})
		if err == nil {
			for _, v := range vols.Items {
				if owned(v.Labels) {
					for try := 0; try < 20; try++ {
						if _, err = c.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err == nil {
							break
						}
						time.Sleep(500 * time.Millisecond) // the container is still being removed
					}
				}
			}
		}
		_ = c.Close() // releasing a client: nothing to do about a failure
		if err != nil {
			return fmt.Errorf("node %s: %w", s.Nodes[i].Name, err)
		}
	}
	return nil
}

func owned(labels map[string]string) bool {
	return labels[stacks.LabelManaged] == "true" || labels["com.docker.stack.namespace"] != ""
}
