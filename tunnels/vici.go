package tunnels

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/strongswan/govici/vici"
)

// Client is a vici session with one gateway's charon.
type Client struct {
	Site    string
	s       *vici.Session
	cleanup func()
}

// Dial opens a vici session to the gateway: the unix socket directly (unix:///path,
// where sitectl runs on the gateway host or in the lab), or the remote unix socket
// forwarded over SSH (ssh://user@host/path). vici is never reached over TCP.
func Dial(ctx context.Context, g *Gateway) (*Client, error) {
	path, err := SocketPath(g.Vici)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(g.Vici)
	c := &Client{Site: g.Site, cleanup: func() {}}
	var sshErr func() string
	remote := path
	if u.Scheme == "ssh" {
		local, stop, stderr, err := forwardSSH(ctx, u, path)
		if err != nil {
			return nil, fmt.Errorf("vici %s: %w", g.Site, err)
		}
		path, c.cleanup, sshErr = local, stop, stderr
	}
	s, err := vici.NewSession(vici.WithSocketPath(path))
	if err != nil {
		c.cleanup()
		return nil, fmt.Errorf("vici %s: connect %s: %w (is charon running on the gateway? check gateway.vici)", g.Site, g.Vici, err)
	}
	c.s = s
	if sshErr != nil {
		// ssh forwards lazily: the remote socket is first opened by this call, and a
		// refusal only shows as a reset connection, with ssh's reason on its stderr.
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := s.Call(vctx, "version", nil)
		cancel()
		if err != nil {
			c.Close() // waits for ssh to exit: its stderr is complete after it
			why := strings.TrimSpace(sshErr())
			if why == "" {
				why = err.Error()
			}
			return nil, fmt.Errorf("vici %s: %s: the SSH server did not connect to %s (ssh: %s): check that charon runs on %s and that the path is its vici socket; sshd refuses to forward sockets with AllowStreamLocalForwarding no, DisableForwarding yes or AllowTcpForwarding no", g.Site, g.Vici, remote, why, u.Hostname())
		}
	}
	return c, nil
}

// Close ends the session (and the SSH forward, if any). It reports nothing: vici
// is request and answer, so every command's outcome is known before Close, and a
// failure to close the socket loses nothing.
func (c *Client) Close() {
	_ = c.s.Close()
	c.cleanup()
}

// sshArgs are the ssh arguments that forward the remote vici socket to a local one.
func sshArgs(u *url.URL, remote, local string) []string {
	args := []string{"-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-o", "ConnectTimeout=5",
		"-o", "StreamLocalBindUnlink=yes", "-L", local + ":" + remote}
	if p := u.Port(); p != "" {
		args = append(args, "-p", p)
	}
	host := u.Hostname()
	if u.User != nil && u.User.Username() != "" {
		host = u.User.Username() + "@" + host
	}
	return append(args, host)
}

// forwardSSH runs `ssh -L local.sock:remote.sock` and waits for the local socket;
// stderr returns what ssh said, complete once stop has returned.
func forwardSSH(ctx context.Context, u *url.URL, remote string) (local string, stop func(), stderr func() string, err error) {
	dir, err := os.MkdirTemp("", "sitectl-vici-")
	if err != nil {
		return "", nil, nil, err
	}
	local = filepath.Join(dir, "charon.vici")
	cmd := exec.Command("ssh", sshArgs(u, remote, local)...)
	var buf strings.Builder // read only after cmd.Wait, which ends its copying
	cmd.Stderr = &buf
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, nil, fmt.Errorf("start ssh: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done //nolint:errcheck // killed: its exit status says nothing
		os.RemoveAll(dir)
	}
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(local); err == nil {
			return local, stop, buf.String, nil
		}
		select {
		case err := <-done:
			os.RemoveAll(dir)
			return "", nil, nil, fmt.Errorf("ssh forward to %s failed: %v: %s", u.Host, err, strings.TrimSpace(buf.String()))
		case <-ctx.Done():
			stop()
			return "", nil, nil, ctx.Err()
		case <-deadline.C:
			stop()
			return "", nil, nil, fmt.Errorf("ssh forward to %s: no socket after 15s", u.Host)
		case <-tick.C:
		}
	}
}

func (c *Client) call(ctx context.Context, cmd string, in *vici.Message) (*vici.Message, error) {
	out, err := c.s.Call(ctx, cmd, in)
	if err != nil {
		return out, fmt.Errorf("vici %s %s: %w", c.Site, cmd, err)
	}
	return out, nil
}

// stream runs a command whose results come as events (list-sas → list-sa). It does
// not use govici's CallStreaming: that waits on the event and response channels with
// one select, and when both are ready it may take the response first and drop the
// events (list-sas then returns nothing at random). Subscribed events are dispatched
// in socket order, before the response, so after Call returns every event is queued.
func (c *Client) stream(ctx context.Context, cmd, event string, in *vici.Message) ([]*vici.Message, error) {
	if err := c.s.Subscribe(event); err != nil {
		return nil, fmt.Errorf("vici %s subscribe %s: %w", c.Site, event, err)
	}
	ch := make(chan vici.Event, 4096)
	c.s.NotifyEvents(ch)
	defer c.s.StopEvents(ch)
	if _, err := c.call(ctx, cmd, in); err != nil {
		return nil, err
	}
	var out []*vici.Message
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out, nil
			}
			if ev.Name == event {
				out = append(out, ev.Message)
			}
		default:
			return out, nil
		}
	}
}

func msg(kv ...any) *vici.Message {
	m := vici.NewMessage()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := m.Set(kv[i].(string), kv[i+1]); err != nil {
			panic(fmt.Sprintf("vici message %v: %v", kv[i], err))
		}
	}
	return m
}

// connMessage is the load-conn request for a connection: the same settings
// RenderSwanctl writes. The gateway certificate is found by its identity among the
// loaded certificates (LoadCredentials), so the connection carries no key material.
func connMessage(c Conn) *vici.Message {
	auth := "pubkey"
	if c.Auth == "psk" {
		auth = "psk"
	}
	child := msg(
		"local_ts", c.LocalTS,
		"remote_ts", c.RemoteTS,
		"esp_proposals", c.ESPProposals,
		"start_action", c.StartAction,
		"dpd_action", "restart",
	)
	conn := msg(
		"version", "2",
		"local_addrs", []string{c.LocalAddr},
		"remote_addrs", []string{c.RemoteAddr},
		"proposals", c.IKEProposals,
		"dpd_delay", dpdSeconds(c.DPDDelay),
		"keyingtries", "0",
		"unique", "replace",
		"mobike", "no",
		"local", msg("auth", auth, "id", c.LocalID),
		"remote", msg("auth", auth, "id", c.RemoteID),
		"children", msg(c.Child, child),
	)
	return msg(c.Name, conn)
}

// LoadConn loads (or replaces) a connection; charon applies its start action.
func (c *Client) LoadConn(ctx context.Context, conn Conn) error {
	_, err := c.call(ctx, "load-conn", connMessage(conn))
	return err
}

// UnloadConn removes a connection: its trap policies go and nothing re-initiates it.
func (c *Client) UnloadConn(ctx context.Context, name string) error {
	_, err := c.call(ctx, "unload-conn", msg("name", name))
	return err
}

// ConnNames lists the loaded connections.
func (c *Client) ConnNames(ctx context.Context) ([]string, error) {
	m, err := c.call(ctx, "get-conns", nil)
	if err != nil {
		return nil, err
	}
	names, _ := m.Get("conns").([]string)
	return names, nil
}

// LoadCredentials loads the CA, the gateway certificate and its private key.
func (c *Client) LoadCredentials(ctx context.Context, cr *Credentials) error {
	if _, err := c.call(ctx, "load-cert", msg("type", "X509", "flag", "CA", "data", string(cr.CADER))); err != nil {
		return fmt.Errorf("load CA certificate: %w", err)
	}
	if _, err := c.call(ctx, "load-cert", msg("type", "X509", "flag", "NONE", "data", string(cr.CertDER))); err != nil {
		return fmt.Errorf("load certificate %s: %w", cr.Cert.Subject.CommonName, err)
	}
	if _, err := c.s.Call(ctx, "load-key", msg("type", "any", "data", string(cr.KeyDER))); err != nil {
		// The error may not echo the key, but never risk it: report without details.
		return fmt.Errorf("vici %s load-key: charon refused the private key of %s", c.Site, cr.Cert.Subject.CommonName)
	}
	return nil
}

// LoadShared loads a link's pre-shared key, bound to both identities.
func (c *Client) LoadShared(ctx context.Context, conn Conn, value []byte) error {
	_, err := c.s.Call(ctx, "load-shared", msg("id", "sitectl-psk-"+conn.Name, "type", "IKE",
		"data", string(value), "owners", []string{conn.LocalID, conn.RemoteID}))
	if err != nil {
		return fmt.Errorf("vici %s load-shared %s: charon refused the pre-shared key", c.Site, conn.Name)
	}
	return nil
}

// Initiate brings up a connection's CHILD_SA (and its IKE_SA) and waits for it.
func (c *Client) Initiate(ctx context.Context, conn Conn, timeout time.Duration) error {
	_, err := c.call(ctx, "initiate", msg("child", conn.Child, "ike", conn.Name,
		"timeout", fmt.Sprint(timeout.Milliseconds()), "init-limits", "no"))
	return err
}

// Terminate closes every IKE_SA of a connection; having none is not an error.
func (c *Client) Terminate(ctx context.Context, name string, timeout time.Duration) error {
	_, err := c.call(ctx, "terminate", msg("ike", name, "timeout", fmt.Sprint(timeout.Milliseconds()), "force", "yes"))
	if err == nil || strings.Contains(err.Error(), "no matching SAs") {
		return nil
	}
	// "terminating SA failed" also comes back when the SA was being deleted at the same
	// moment (by the peer, or because its connection was just replaced): what counts
	// is that none is left.
	deadline := time.Now().Add(timeout)
	for {
		if sas, serr := c.SAs(ctx); serr == nil && bestSA(sas, name) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
