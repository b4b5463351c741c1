package backup

import (
	"context"
	"net"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5"
)

// argsRunner records the barman commands it is given.
type argsRunner struct{ got *[][]string }

func (a argsRunner) Name() string { return "barman at cloud" }

func (a argsRunner) Barman(_ context.Context, args ...string) ([]byte, error) {
	*a.got = append(*a.got, args)
	return nil, nil
}

// TestCloseSegment: the segment is closed with `barman switch-wal --archive`
// whether or not the live database can be nudged; a live database that cannot be
// reached is the nudge's error, not the switch's.
func TestCloseSegment(t *testing.T) {
	want := [][]string{{"switch-wal", "--archive", "--archive-timeout", "60", "douala"}}
	var got [][]string
	if nudgeErr, err := closeSegment(context.Background(), argsRunner{&got}, Target{Site: "douala"}, nil); nudgeErr != nil || err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("without a live database: barman %v, errors %v / %v; want %v", got, nudgeErr, err, want)
	}

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cfg, err := pgx.ParseConfig("host=127.0.0.1 user=sitectl dbname=app sslmode=disable connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = uint16(port)
	got = nil
	nudgeErr, err := closeSegment(context.Background(), argsRunner{&got}, Target{Site: "douala"}, cfg)
	if err != nil || nudgeErr == nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("live database unreachable: barman %v, switch error %v, nudge error %v; want the switch run and the connection's error", got, err, nudgeErr)
	}
}
