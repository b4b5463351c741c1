package firewall

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/sitectl/sitectl/sites"
)

// Runner runs a script on a site's gateway as root, the way sitectl reaches the
// gateway: with the site's Reach when it has a gateway command (the lab: inside
// the gateway's network namespace); else with gateway.vici ssh://user@host/path
// over SSH to that host (with `sudo -n` unless the user is root); with unix:// on
// this machine (sitectl runs on the gateway).
type Runner struct {
	Site string
	// Shell builds the command on the gateway (the site's Reach.GatewayCommand);
	// Via says where it runs, for errors.
	Shell sites.CommandFunc
	Via   string
	SSH   *url.URL
}

// RunnerFor returns the runner of a site's gateway. A site whose config names a
// lab namespace but has no gateway command in its Reach (a topology loaded
// without labreach.Install) is refused: its runner would run nft on this machine.
func RunnerFor(site *sites.Site) (*Runner, error) {
	r := &Runner{Site: site.Name}
	if c := site.Reach.GatewayCommand; c != nil {
		r.Shell, r.Via = c, site.Reach.GatewayWhere
		return r, nil
	}
	if site.InLab() {
		return nil, site.NoReach("the gateway firewall's nft")
	}
	u, err := url.Parse(site.Gateway.Vici)
	if err != nil {
		return nil, fmt.Errorf("firewall %s: gateway.vici %q: %w", site.Name, site.Gateway.Vici, err)
	}
	if u.Scheme == "ssh" {
		r.SSH = u
	}
	return r, nil
}

// Where says where the runner runs ("namespace sl-douala-gw", "ssh ops@10.10.0.1").
func (r *Runner) Where() string {
	switch {
	case r.Shell != nil:
		return r.Via
	case r.SSH != nil:
		return "ssh " + r.SSH.Host
	}
	return "this machine"
}

// Command returns the command that runs a bash script on the gateway; extra
// arguments become $1, $2...
func (r *Runner) Command(ctx context.Context, script string, args ...string) *exec.Cmd {
	argv := append([]string{"bash", "-c", script, "sitectl-firewall"}, args...)
	switch {
	case r.Shell != nil:
		return r.Shell(ctx, argv...)
	case r.SSH != nil:
		if r.SSH.User == nil || r.SSH.User.Username() != "root" {
			argv = append([]string{"sudo", "-n"}, argv...)
		}
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = shellQuote(a)
		}
		ssh := []string{"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-T"}
		if p := r.SSH.Port(); p != "" {
			ssh = append(ssh, "-p", p)
		}
		host := r.SSH.Hostname()
		if r.SSH.User != nil && r.SSH.User.Username() != "" {
			host = r.SSH.User.Username() + "@" + host
		}
		return exec.CommandContext(ctx, "ssh", append(append(ssh, host, "--"), strings.Join(quoted, " "))...)
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

const (
	absentMark    = "# sitectl: no table inet sitectl"
	canonicalMark = "__sitectl_canonical__"
)

// readScript prints the live table (stateless: no counter values), then the
// rendered ruleset as this gateway's nft lists it: loaded into a new, empty network
// namespace, so the two compare line by line whatever the nft version's layout.
const readScript = `set -euo pipefail
command -v nft >/dev/null || { echo "nft is not installed on the gateway: apt-get install nftables" >&2; exit 2; }
if nft list table inet sitectl >/dev/null 2>&1; then nft -s list table inet sitectl; else echo '` + absentMark + `'; fi
echo ` + canonicalMark + `
unshare -n bash -c 'nft -f /dev/stdin && nft -s list table inet sitectl'
`

// Read returns the gateway's live table and the rendered ruleset in the same
// canonical form; live is empty when the gateway has no table inet sitectl.
func (r *Runner) Read(ctx context.Context, rendered string) (live, want string, err error) {
	cmd := r.Command(ctx, readScript)
	cmd.Stdin = strings.NewReader(rendered)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("gateway firewall %s: read the ruleset (%s): %v: %s", r.Site, r.Where(), err, strings.TrimSpace(stderr.String()))
	}
	live, want, ok := strings.Cut(string(out), canonicalMark+"\n")
	if !ok {
		return "", "", fmt.Errorf("gateway firewall %s: unexpected output reading the ruleset (%s)", r.Site, r.Where())
	}
	if strings.TrimSpace(live) == absentMark {
		live = ""
	}
	return live, want, nil
}

// applyScript applies a ruleset the way iptables-apply does: it saves the table
// that is there (or its absence), loads the new one in one transaction, and keeps
// it only if sitectl answers "confirm" within $1 seconds; anything else (an answer
// "rollback", sitectl gone, the SSH session cut) restores the saved table. It runs
// on the gateway, so the restore does not depend on sitectl reaching it.
const applyScript = `set -uo pipefail
trap '' HUP PIPE
command -v nft >/dev/null || { echo "nft is not installed on the gateway: apt-get install nftables"; echo __sitectl_failed__; exit 2; }
dir=$(mktemp -d) || exit 2
trap 'rm -rf "$dir"' EXIT
: >"$dir/new"
while IFS= read -r line; do
  [ "$line" = __sitectl_end__ ] && break
  printf '%s\n' "$line" >>"$dir/new"
done
{ echo 'table inet sitectl'; echo 'delete table inet sitectl'
  if nft list table inet sitectl >/dev/null 2>&1; then nft list table inet sitectl; fi; } >"$dir/old"
if ! nft -f "$dir/new" 2>&1; then echo __sitectl_failed__; exit 3; fi
echo __sitectl_applied__
if read -r -t "$1" answer && [ "$answer" = confirm ]; then echo __sitectl_confirmed__; exit 0; fi
if nft -f "$dir/old" 2>&1; then echo __sitectl_restored__; exit 4; fi
echo __sitectl_restore_failed__; exit 5
`

// Result is what an apply did.
type Result struct {
	Applied    bool          // the new table is in place and confirmed
	RolledBack bool          // it was loaded, then the previous table restored
	Took       time.Duration // from the start to confirmed (or restored)
}

// ErrRolledBack marks an apply whose ruleset was loaded and then restored.
var ErrRolledBack = errors.New("rolled back")

// Apply loads the rendered ruleset on the gateway and calls confirm, which must
// reach the gateway (and the site) through the new ruleset; unless it succeeds
// within timeout, the gateway restores its previous table. A ruleset nft rejects
// changes nothing (nft -f is one transaction).
func (r *Runner) Apply(ctx context.Context, rendered string, timeout time.Duration, confirm func(context.Context) error) (Result, error) {
	start := time.Now()
	var res Result
	// The gateway waits a little longer than sitectl tries, for the answer to arrive.
	secs := int((timeout+time.Second-1)/time.Second) + 2
	cmd := r.Command(ctx, applyScript, fmt.Sprint(secs))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return res, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("gateway firewall %s: %s: %w", r.Site, r.Where(), err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var said []string
	next := func() (string, bool) {
		for l := range lines {
			if strings.HasPrefix(l, "__sitectl_") {
				return l, true
			}
			said = append(said, l)
		}
		return "", false
	}
	finish := func(err error) (Result, error) {
		_ = stdin.Close()
		for range lines {
		}
		werr := cmd.Wait()
		res.Took = time.Since(start)
		if err == nil && werr != nil {
			err = fmt.Errorf("gateway firewall %s: %s: %v: %s", r.Site, r.Where(), werr, strings.TrimSpace(stderr.String()))
		}
		return res, err
	}
	if _, err := io.WriteString(stdin, strings.TrimRight(rendered, "\n")+"\n__sitectl_end__\n"); err != nil {
		return finish(fmt.Errorf("gateway firewall %s: send the ruleset: %w", r.Site, err))
	}
	mark, ok := next()
	switch {
	case !ok:
		return finish(fmt.Errorf("gateway firewall %s: %s ended before applying: %s %s", r.Site, r.Where(), strings.Join(said, "; "), strings.TrimSpace(stderr.String())))
	case mark == "__sitectl_failed__":
		return finish(fmt.Errorf("gateway firewall %s: nft refused the ruleset; the previous one is unchanged: %s", r.Site, strings.Join(said, "; ")))
	case mark != "__sitectl_applied__":
		return finish(fmt.Errorf("gateway firewall %s: unexpected %s", r.Site, mark))
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	cerr := confirm(cctx)
	cancel()
	answer := "confirm"
	if cerr != nil {
		answer = "rollback"
	}
	_, _ = io.WriteString(stdin, answer+"\n")
	mark, _ = next()
	switch mark {
	case "__sitectl_confirmed__":
		res.Applied = true
		return finish(nil)
	case "__sitectl_restored__":
		res.RolledBack = true
		why := "sitectl gave no confirmation in time"
		if cerr != nil {
			why = "sitectl could not reach the gateway through it: " + cerr.Error()
		}
		return finish(fmt.Errorf("gateway firewall %s: new ruleset %w, the previous one is restored: %s", r.Site, ErrRolledBack, why))
	}
	return finish(fmt.Errorf("gateway firewall %s: the previous ruleset could not be restored (%s): %s; fix it on the gateway (%s)", r.Site, mark, strings.Join(said, "; "), r.Where()))
}

// Counter is one named counter of the table.
type Counter struct {
	Name    string `json:"name"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Counters reads the table's named counters; none when the table is absent.
func (r *Runner) Counters(ctx context.Context) ([]Counter, bool, error) {
	cmd := r.Command(ctx, `nft list table inet sitectl >/dev/null 2>&1 || exit 0; nft -j list counters table inet sitectl`)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, false, fmt.Errorf("gateway firewall %s: counters (%s): %v: %s", r.Site, r.Where(), err, strings.TrimSpace(stderr.String()))
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, false, nil
	}
	var doc struct {
		Nftables []struct {
			Counter *Counter `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, true, fmt.Errorf("gateway firewall %s: counters: %w", r.Site, err)
	}
	var cs []Counter
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			cs = append(cs, *o.Counter)
		}
	}
	return cs, true, nil
}

// Diff lists the lines that differ between two listings ("- old", "+ new"), with
// the rule lines' chain as context, in order.
func Diff(live, want string) []string {
	a, b := strings.Split(strings.TrimRight(live, "\n"), "\n"), strings.Split(strings.TrimRight(want, "\n"), "\n")
	if live == "" {
		a = nil
	}
	// Longest common subsequence, lines are few (tens).
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	chain, shown := "", ""
	ctx := func(line string) {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "chain ") || strings.HasPrefix(t, "counter ") {
			chain = strings.TrimSuffix(t, " {")
		}
	}
	emit := func(sign, line string) {
		if chain != "" && chain != shown {
			out = append(out, "in "+chain+":")
			shown = chain
		}
		out = append(out, sign+" "+strings.TrimSpace(line))
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ctx(a[i])
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ctx(a[i])
			emit("-", a[i])
			i++
		default:
			ctx(b[j])
			emit("+", b[j])
			j++
		}
	}
	return out
}
