package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// TestPlanNotYetOnlyWhenNotAnswering: the replication part's error is "not yet"
// (planned during deploy when steps ahead are pending) only when every site's
// database does not answer or waits on one that does not; a password that cannot
// be read or a refused login is an error of the plan.
func TestPlanNotYetOnlyWhenNotAnswering(t *testing.T) {
	down := unreachableError{errors.New("cannot reach douala's PostgreSQL")}
	peer := peerError{errors.New("replication not planned: cannot plan douala")}
	tests := []struct {
		name string
		errs map[string]error
		want bool
	}{
		{"every database down", map[string]error{"douala": down, "cloud": down}, true},
		{"one down, the others wait on it", map[string]error{"douala": down, "cloud": peer, "yaounde": peer}, true},
		{"password unreadable", map[string]error{"douala": errors.New("douala: postgres password: secret env:X: environment variable X is not set"), "cloud": peer}, false},
		{"one down, one password unreadable", map[string]error{"douala": down, "cloud": errors.New("cloud: postgres password: secret env:Y: environment variable Y is not set")}, false},
		{"only peers (no cause)", map[string]error{"cloud": peer}, false},
		{"wrapped down", map[string]error{"douala": fmt.Errorf("read: %w", down)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := onlyNotAnswering(tt.errs); got != tt.want {
				t.Errorf("onlyNotAnswering = %t, want %t", got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{errors.New("dial tcp 10.0.0.1:5432: connect: connection refused"), true},
		{&pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, true},
		{&pgconn.PgError{Code: "28P01", Message: "password authentication failed"}, false},
	} {
		if got := notAnswering(fmt.Errorf("ping: %w", tt.err)); got != tt.want {
			t.Errorf("notAnswering(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}

// TestConnectUnreadablePassword: a password that cannot be read fails Connect with
// an error that is not "not answering", naming the reference.
func TestConnectUnreadablePassword(t *testing.T) {
	site := &sites.Site{Name: "douala", Postgres: sites.Postgres{Host: "127.0.0.1", Port: 1, Database: "app", User: "u",
		Password: sites.SecretRef{Env: "PG_TEST_UNSET_PASSWORD"}}}
	_, err := Connect(context.Background(), site)
	if err == nil || errors.As(err, new(unreachableError)) || plan.IsNotYet(err) || !strings.Contains(err.Error(), "env:PG_TEST_UNSET_PASSWORD") {
		t.Fatalf("Connect = %v, want an unreadable-password error naming env:PG_TEST_UNSET_PASSWORD", err)
	}
}
