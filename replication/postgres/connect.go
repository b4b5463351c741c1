package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/sites"
)

// brief keeps what matters of a failed connection: the server's own error (wrong
// password, unknown database) or the network one. pgx's connect error repeats the
// same dial failure once per sslmode attempt, which buries the cause in an operator's
// terminal. The original error stays reachable with errors.As.
func brief(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return briefError{pg.Error(), err}
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return briefError{op.Error(), err}
	}
	return err
}

type briefError struct {
	msg string
	err error
}

func (e briefError) Error() string { return e.msg }
func (e briefError) Unwrap() error { return e.err }

// ConnectTimeout bounds how long sitectl waits for a site's database to answer.
const ConnectTimeout = 5 * time.Second

// Connect opens a small pool to the site's database as configured (host, port,
// database, user, password from its secret reference, sslmode), dialled with the
// site's Reach (inside the gateway's namespace in the lab).
// Errors name the site and address, never the password.
func Connect(ctx context.Context, site *sites.Site) (*pgxpool.Pool, error) {
	p := site.Postgres
	addr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	pw, err := p.Password.Resolve()
	if err != nil {
		return nil, fmt.Errorf("%s: postgres password: %w", site.Name, err)
	}
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s application_name=sitectl",
		connValue(p.Host), p.Port, connValue(p.Database), connValue(p.User))
	if p.SSLMode != "" {
		dsn += " sslmode=" + connValue(p.SSLMode)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: postgres at %s: %w", site.Name, addr, err)
	}
	cfg.ConnConfig.Password = string(pw)
	cfg.ConnConfig.ConnectTimeout = ConnectTimeout
	cfg.MaxConns = 4
	cfg.MinConns = 0
	if d := site.Reach.Dial; d != nil {
		cfg.ConnConfig.DialFunc = pgconn.DialFunc(d)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: postgres at %s: %w", site.Name, addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, ConnectTimeout+time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		err = fmt.Errorf("cannot reach %s's PostgreSQL at %s as %s: %w (is the postgres stack running and the site reachable?)", site.Name, addr, p.User, brief(err))
		if notAnswering(err) {
			err = unreachableError{err}
		}
		return nil, err
	}
	return pool, nil
}

// notAnswering reports whether a failed ping means the server is not there (yet):
// no connection, or a server still starting. A server that answers and refuses
// (wrong password, unknown database) is not.
func notAnswering(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "57P03" // cannot_connect_now: the server is starting up
	}
	return true
}

// unreachableError is a connection to a database that does not answer: the plan
// treats it as a database the same deploy may still start (plan.NotYet).
type unreachableError struct{ err error }

func (e unreachableError) Error() string { return e.err.Error() }
func (e unreachableError) Unwrap() error { return e.err }

// Session holds one pool per site, opened on first use and shared by the reads of
// a plan and the steps that apply it.
type Session struct {
	topo  *sites.Topology
	mu    sync.Mutex
	pools map[string]*pgxpool.Pool
	// failed remembers a site that could not be reached for a little while, so a
	// status of many flows does not wait for the same dead site again and again.
	failed map[string]failure
}

type failure struct {
	err error
	at  time.Time
}

// retryAfter is how long a failed connection attempt is remembered.
const retryAfter = 5 * time.Second

// NewSession starts a session over the topology's sites.
func NewSession(topo *sites.Topology) *Session {
	return &Session{topo: topo, pools: map[string]*pgxpool.Pool{}, failed: map[string]failure{}}
}

// Pool returns the site's pool, connecting on first use.
func (s *Session) Pool(ctx context.Context, name string) (*pgxpool.Pool, error) {
	s.mu.Lock()
	p, f := s.pools[name], s.failed[name]
	s.mu.Unlock()
	if p != nil {
		return p, nil
	}
	if f.err != nil && time.Since(f.at) < retryAfter {
		return nil, f.err
	}
	site := s.topo.Site(name)
	if site == nil {
		return nil, fmt.Errorf("no site %q in the topology", name)
	}
	p, err := Connect(ctx, site)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed[name] = failure{err: err, at: time.Now()}
		return nil, err
	}
	delete(s.failed, name)
	if old := s.pools[name]; old != nil {
		p.Close()
		return old, nil
	}
	s.pools[name] = p
	return p, nil
}

// Close closes every pool.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, p := range s.pools {
		p.Close()
		delete(s.pools, n)
	}
}
