package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// runIP runs ip(8) and keeps its output in the error.
func runIP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipBatch runs `ip [-n ns] -batch -` with one command per line, stopping at the first
// failure (-force is not used: an error is an error).
func ipBatch(ctx context.Context, ns string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	args := []string{}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	args = append(args, "-batch", "-")
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		where := "root namespace"
		if ns != "" {
			where = "namespace " + ns
		}
		return fmt.Errorf("ip in %s: %w: %s", where, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// linkExists reports whether the link exists in ns.
func linkExists(ctx context.Context, ns, link string) bool {
	return exec.CommandContext(ctx, "ip", "-n", ns, "link", "show", "dev", link).Run() == nil
}
