// Package engine opens Docker Engine API clients for a site and its nodes the way
// the docker CLI does: unix://, tcp:// with TLS, ssh://user@host, or the name of an
// existing docker context; the API version is negotiated (the lab's dockerd 20.10
// speaks 1.41).
package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	dcontext "github.com/docker/cli/cli/context"
	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/sites"
)

// Endpoint says how to reach one engine.
type Endpoint struct {
	// Host is unix:///path, tcp://host:port or ssh://user@host; empty with Context.
	Host string
	// Context is a docker context name (from ~/.docker/contexts); used when Host is empty.
	Context string
	// TLS files for tcp:// (PEM); empty for plain sockets and ssh.
	CACert, Cert, Key string
	TLSVerify         bool
	// APIVersion pins the API version; empty negotiates.
	APIVersion string
}

func (e Endpoint) String() string {
	if e.Host != "" {
		return e.Host
	}
	return "context " + e.Context
}

// SiteEndpoint is the endpoint of the site's manager engine.
func SiteEndpoint(s *sites.Site) Endpoint {
	return Endpoint{Host: s.Engine.Host, Context: s.Engine.Context, CACert: s.Engine.CACert, Cert: s.Engine.Cert,
		Key: s.Engine.Key, TLSVerify: s.Engine.TLSVerify, APIVersion: s.Engine.APIVersion}
}

// NodeEndpoint is the endpoint of one node's engine: its own when configured, else the
// site's (the node the site engine reaches).
func NodeEndpoint(s *sites.Site, n *sites.Node) Endpoint {
	ep := SiteEndpoint(s)
	if n.Engine != "" {
		ep.Host, ep.Context = n.Engine, ""
	}
	return ep
}

// New opens a client for ep and checks that the engine answers (within 10 s).
func New(ctx context.Context, ep Endpoint) (*client.Client, error) {
	opts, err := clientOpts(ep)
	if err != nil {
		return nil, fmt.Errorf("engine %s: %w", ep, err)
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("engine %s: %w", ep, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: ep.APIVersion == ""}); err != nil {
		_ = c.Close() // the ping error is the one to report
		return nil, fmt.Errorf("engine %s does not answer: %w (is dockerd running and the endpoint right? check engine.host in the site config)", ep, err)
	}
	return c, nil
}

// ForSite opens the site's manager engine.
func ForSite(ctx context.Context, s *sites.Site) (*client.Client, error) {
	c, err := New(ctx, SiteEndpoint(s))
	if err != nil {
		return nil, fmt.Errorf("site %s: %w", s.Name, err)
	}
	return c, nil
}

// ForNode opens one node's engine.
func ForNode(ctx context.Context, s *sites.Site, n *sites.Node) (*client.Client, error) {
	c, err := New(ctx, NodeEndpoint(s, n))
	if err != nil {
		return nil, fmt.Errorf("site %s node %s: %w", s.Name, n.Name, err)
	}
	return c, nil
}

func clientOpts(ep Endpoint) ([]client.Opt, error) {
	var dep docker.Endpoint
	switch {
	case ep.Host != "":
		dep.Host = ep.Host
		dep.SkipTLSVerify = !ep.TLSVerify && ep.CACert == ""
		if ep.CACert != "" || ep.Cert != "" {
			td := &dcontext.TLSData{}
			for _, f := range []struct {
				path string
				dst  *[]byte
			}{{ep.CACert, &td.CA}, {ep.Cert, &td.Cert}, {ep.Key, &td.Key}} {
				if f.path == "" {
					continue
				}
				b, err := os.ReadFile(f.path)
				if err != nil {
					return nil, fmt.Errorf("read TLS file: %w", err)
				}
				*f.dst = b
			}
			dep.TLSData = td
			dep.SkipTLSVerify = !ep.TLSVerify
		} else if len(ep.Host) > 6 && ep.Host[:6] == "tcp://" {
			dep.SkipTLSVerify = false
		}
	case ep.Context != "":
		s := store.New(filepath.Join(config.Dir(), "contexts"), command.DefaultContextStoreConfig())
		meta, err := s.GetMetadata(ep.Context)
		if err != nil {
			return nil, fmt.Errorf("docker context %q: %w (list them with `docker context ls`)", ep.Context, err)
		}
		em, err := docker.EndpointFromContext(meta)
		if err != nil {
			return nil, fmt.Errorf("docker context %q: %w", ep.Context, err)
		}
		dep, err = docker.WithTLSData(s, ep.Context, em)
		if err != nil {
			return nil, fmt.Errorf("docker context %q: %w", ep.Context, err)
		}
	default:
		return nil, fmt.Errorf("no engine endpoint: set engine.host or engine.context")
	}
	opts, err := dep.ClientOpts()
	if err != nil {
		return nil, err
	}
	if ep.APIVersion != "" {
		opts = append(opts, client.WithAPIVersion(ep.APIVersion))
	} // else the client negotiates the version with the engine (its default)
	return opts, nil
}
