package lab

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPreflightFaults(t *testing.T) {
	all := func(string) (string, error) { return "/usr/bin/x", nil }
	none := func(string) error { return nil }
	cases := []struct {
		name     string
		euid     int
		lookPath func(string) (string, error)
		stat     func(string) error
		want     []string
	}{
		{"not root", 1000, all, none, []string{"needs root", "sudo sitectl lab up"}},
		{"missing charon", 0, func(p string) (string, error) {
			if p == "charon-systemd" {
				return "", errors.New("not found")
			}
			return "/usr/bin/" + p, nil
		}, none, []string{"missing packages for the lab: charon-systemd", "apt-get install charon-systemd"}},
		{"missing libipsec plugin", 0, all, func(p string) error {
			if strings.Contains(p, "kernel-libipsec") {
				return os.ErrNotExist
			}
			return nil
		}, []string{"libcharon-extra-plugins"}},
		{"no tun", 0, all, func(p string) error {
			if p == "/dev/net/tun" {
				return os.ErrNotExist
			}
			return nil
		}, []string{"/dev/net/tun", "mknod"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := preflight(c.euid, c.lookPath, c.stat)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if err := preflight(0, all, none); err != nil {
		t.Errorf("a complete machine fails preflight: %v", err)
	}
}

func TestWriteSecretsFilesAndTLSPairs(t *testing.T) {
	topo, err := LoadTopology("../sites")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLayout(topo, nil, "sl", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	topo.Site("douala").Secrets["web-tls-cert"] = topo.Site("douala").Secrets["postgres-password"]
	topo.Site("douala").Secrets["web-tls-key"] = topo.Site("douala").Secrets["postgres-password"]
	if err := writeSecrets(topo, l); err != nil {
		t.Fatal(err)
	}
	names := secretNames(topo, l)
	for _, n := range []string{"postgres-password", "mongo-keyfile", "mongo-password", "web-tls-cert", "web-tls-key"} {
		found := false
		for _, x := range names {
			found = found || x == n
		}
		if !found {
			t.Errorf("secret %s is not generated (names: %v)", n, names)
		}
	}
	first := map[string][]byte{}
	for _, n := range names {
		p := filepath.Join(l.secretsDir(), n)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", n, fi.Mode().Perm())
		}
		first[n], _ = os.ReadFile(p)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(l.secretsDir(), "web-tls-cert"), filepath.Join(l.secretsDir(), "web-tls-key"))
	if err != nil || len(cert.Certificate) != 1 {
		t.Fatalf("web TLS pair does not load: %v", err)
	}
	// A second run keeps every value.
	if err := writeSecrets(topo, l); err != nil {
		t.Fatal(err)
	}
	for n, v := range first {
		if b, _ := os.ReadFile(filepath.Join(l.secretsDir(), n)); string(b) != string(v) {
			t.Errorf("secret %s changed on a second run", n)
		}
	}
}
