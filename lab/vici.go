package lab

import (
	"context"
	"fmt"

	"github.com/strongswan/govici/vici"
)

// ViciVersion asks charon at the vici socket for its version ("5.9.8").
func ViciVersion(ctx context.Context, socket string) (string, error) {
	s, err := vici.NewSession(vici.WithSocketPath(socket))
	if err != nil {
		return "", fmt.Errorf("vici %s: %w", socket, err)
	}
	defer func() { _ = s.Close() }()
	m, err := s.Call(ctx, "version", nil)
	if err != nil {
		return "", fmt.Errorf("vici %s: version: %w", socket, err)
	}
	v, _ := m.Get("version").(string)
	return v, nil
}

func pingVici(ctx context.Context, socket string) error {
	_, err := ViciVersion(ctx, socket)
	return err
}

// countSAs returns how many IKE SAs charon holds.
func countSAs(ctx context.Context, socket string) (int, error) {
	s, err := vici.NewSession(vici.WithSocketPath(socket))
	if err != nil {
		return 0, err
	}
	defer func() { _ = s.Close() }()
	n := 0
	for _, err := range s.CallStreaming(ctx, "list-sas", "list-sa", nil) {
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
