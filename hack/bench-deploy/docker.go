package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// dockerStackDeploy deploys every site's rendered stacks with the docker CLI, one
// site after the other, creating the site networks first (docker stack deploy
// needs external networks to exist) and waiting for each site to converge. It
// returns each site's time.
func dockerStackDeploy(ctx context.Context, topo *sites.Topology, clients map[string]*client.Client, timeout time.Duration) ([]time.Duration, error) {
	var each []time.Duration
	for _, s := range topo.Sites {
		t0 := time.Now()
		host := engine.SiteEndpoint(s).Host
		for _, n := range stacks.SiteNetworks(s) {
			args := []string{"-H", host, "network", "create", "--driver", "overlay", "--subnet", n.Create.IPAM.Config[0].Subnet.String()}
			if _, enc := n.Create.Options["encrypted"]; enc {
				args = append(args, "--opt", "encrypted")
			}
			if n.Create.Attachable {
				args = append(args, "--attachable")
			}
			if err := docker(append(args, n.Name)...); err != nil {
				return nil, err
			}
		}
		work, err := os.MkdirTemp("", "dp-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
		for _, name := range s.Stacks {
			st, err := stacks.Get(name)
			if err != nil {
				return nil, err
			}
			r, err := st.Render(stacks.Input{Topo: topo, Site: s})
			if err != nil {
				return nil, err
			}
			sd := filepath.Join(work, s.Name, name)
			if err := writeStack(sd, s, r); err != nil {
				return nil, err
			}
			if err := docker("-H", host, "stack", "deploy", "--detach=true", "--resolve-image", "never", "-c", filepath.Join(sd, "compose.yaml"), name); err != nil {
				return nil, err
			}
		}
		if err := converged(ctx, clients[s.Name], timeout); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		each = append(each, time.Since(t0))
	}
	return each, nil
}

// writeStack writes the compose file, its config files and its secrets (0600, from
// the site's references) where `docker stack deploy` reads them.
func writeStack(dir string, s *sites.Site, r stacks.Rendered) error {
	files := map[string][]byte{"compose.yaml": r.Compose}
	for k, v := range r.Files {
		files[k] = v
	}
	for key, ref := range s.Secrets {
		v, err := ref.Resolve()
		if err != nil {
			continue // only the secrets a stack names matter; docker reports missing ones
		}
		files[stacks.SecretsDir+key] = v
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func docker(args ...string) error {
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// converged waits until every service of the engine runs its desired tasks.
func converged(ctx context.Context, c *client.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		res, err := c.ServiceList(ctx, client.ServiceListOptions{Status: true})
		if err != nil {
			return err
		}
		var pending []string
		for _, s := range res.Items {
			if st := s.ServiceStatus; st == nil || st.RunningTasks < st.DesiredTasks || st.DesiredTasks == 0 {
				pending = append(pending, s.Spec.Name)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not converged after %s: %s", timeout, strings.Join(pending, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
