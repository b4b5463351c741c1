package mongofake

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/v2/bson"
)

const codeUnauthorized = 13
const codeAuthenticationFailed = 18

// conn is one client connection's state.
type conn struct {
	id     int64
	authed bool
	sasl   *scram.ServerConversation
}

// AddUser creates a SCRAM-SHA-256 user in the admin database of every member this
// cluster serves. Once a user exists, commands other than the handshake, ping and
// SASL need an authenticated connection, as on mongod with authorization on.
func (c *Cluster) AddUser(user, password string) error {
	cl, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		return fmt.Errorf("mongofake: user %s: %w", user, err)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	creds, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: 15000})
	if err != nil {
		return fmt.Errorf("mongofake: user %s: %w", user, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.users == nil {
		c.users = map[string]scram.StoredCredentials{}
	}
	c.users[user] = creds
	return nil
}

// open lists the commands a connection may run before authenticating.
var open = map[string]bool{"hello": true, "ismaster": true, "ping": true, "buildinfo": true, "saslstart": true, "saslcontinue": true, "endsessions": true, strings.ToLower(peerCommand): true}

// authorize refuses cmd on an unauthenticated connection when users exist.
func (c *Cluster) authorize(cn *conn, cmd string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.users) == 0 || cn.authed || open[cmd] {
		return nil
	}
	return errf(codeUnauthorized, "command %s requires authentication", cmd)
}

func (c *Cluster) saslStart(cn *conn, cmd bson.D) (bson.D, error) {
	if mech, _ := lookup(cmd, "mechanism").(string); mech != "SCRAM-SHA-256" {
		return nil, errf(codeAuthenticationFailed, "mongofake supports SCRAM-SHA-256 only, not %s", mech)
	}
	srv, err := scram.SHA256.NewServer(func(user string) (scram.StoredCredentials, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		creds, ok := c.users[user]
		if !ok {
			return scram.StoredCredentials{}, fmt.Errorf("no user %s", user)
		}
		return creds, nil
	})
	if err != nil {
		return nil, err
	}
	cn.sasl = srv.NewConversation()
	return c.saslStep(cn, cmd)
}

func (c *Cluster) saslStep(cn *conn, cmd bson.D) (bson.D, error) {
	if cn.sasl == nil {
		return nil, errf(codeAuthenticationFailed, "no SASL conversation in progress")
	}
	var payload []byte
	if b, ok := lookup(cmd, "payload").(bson.Binary); ok {
		payload = b.Data
	}
	var out string
	if !cn.sasl.Done() {
		resp, err := cn.sasl.Step(string(payload))
		if err != nil {
			cn.sasl = nil
			return nil, errf(codeAuthenticationFailed, "Authentication failed.")
		}
		out = resp
	}
	done := cn.sasl.Done()
	if done {
		if !cn.sasl.Valid() {
			cn.sasl = nil
			return nil, errf(codeAuthenticationFailed, "Authentication failed.")
		}
		cn.authed = true
	}
	return append(bson.D{{Key: "conversationId", Value: int32(1)}, {Key: "done", Value: done}, {Key: "payload", Value: bson.Binary{Data: []byte(out)}}}, ok()...), nil
}
