package lab

import (
	"errors"
	"os"
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
