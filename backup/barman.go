package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs the barman command where the site's Barman server lives: a container
// of the backup stack, or this host (tests, a sitectl run on the backup server).
type Runner interface {
	// Barman runs `barman args...` and returns its standard output; an error keeps
	// the command's standard error.
	Barman(ctx context.Context, args ...string) ([]byte, error)
	// Name says where Barman runs, for messages ("barman at cloud").
	Name() string
}

// Local runs the barman program of this host with the given configuration file.
// Run as root, barman drops to its barman_user.
type Local struct {
	// Config is barman.conf (-c); Env is added to the environment (PGPASSFILE).
	Config string
	Env    []string
	Label  string
}

// Barman runs barman on this host.
func (l Local) Barman(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{"-c", l.Config}, args...)
	cmd := exec.CommandContext(ctx, "barman", full...)
	cmd.Env = append(cmd.Environ(), l.Env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &CommandError{Where: l.Name(), Args: args, Err: err, Output: strings.TrimSpace(stderr.String() + "\n" + string(out))}
	}
	return out, nil
}

// Name is the label, or "barman (local)".
func (l Local) Name() string {
	if l.Label != "" {
		return l.Label
	}
	return "barman (local)"
}

// CommandError is a barman command that failed, with its output.
type CommandError struct {
	Where  string
	Args   []string
	Err    error
	Output string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: barman %s: %v", e.Where, strings.Join(e.Args, " "), e.Err)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// barmanJSON runs `barman -f json args...` and decodes the value of the site's key.
// A command that fails but still prints JSON (`barman check` exits 1 when a check
// fails) is decoded too, and its error returned.
func barmanJSON(ctx context.Context, r Runner, site string, into any, args ...string) error {
	out, runErr := r.Barman(ctx, append([]string{"-f", "json"}, args...)...)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		if runErr != nil {
			return runErr
		}
		return fmt.Errorf("%s: barman %s: output is not JSON: %w", r.Name(), strings.Join(args, " "), err)
	}
	raw, ok := m[site]
	if !ok {
		if runErr != nil {
			return runErr
		}
		return fmt.Errorf("%s: barman %s: no server %q in the output (is the site in its configuration?)", r.Name(), strings.Join(args, " "), site)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("%s: barman %s: %w", r.Name(), strings.Join(args, " "), err)
	}
	return runErr
}
