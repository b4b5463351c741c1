package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/moby/term"

	"github.com/sitectl/sitectl/internal/scaffold"
)

// isTerminal reports whether in is a terminal (sitectl init then asks its
// questions); a variable so tests can script a terminal.
var isTerminal = func(in io.Reader) bool {
	f, ok := in.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// errNoSites is init's error without --site or --defaults when it cannot ask.
var errNoSites = errors.New("sitectl init needs the sites: pass --site NAME:ROLE:LAN for each (one hub, the others spokes, e.g. --site hq:hub:10.30.0.0/24 --site plant:spoke:10.10.0.0/24), or --defaults for a hub and two spokes; on a terminal it asks instead")

// maxTries is how many times a question is asked again after a wrong answer.
const maxTries = 3

// asker asks init's questions on a terminal, each with its default in brackets
// (an empty answer takes it), and asks again after a wrong answer.
type asker struct {
	in  *bufio.Reader
	out io.Writer
}

// ask asks q until check accepts the answer (the default for an empty one).
func (a asker) ask(q, def string, check func(string) error) (string, error) {
	for try := 0; ; try++ {
		fmt.Fprintf(a.out, "%s [%s]: ", q, def)
		line, err := a.in.ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			return "", fmt.Errorf("sitectl init: the input ended before %q was answered: %w", q, errors.Join(err, errNoSites))
		}
		v := strings.TrimSpace(line)
		if v == "" {
			v = def
		}
		cerr := check(v)
		if cerr == nil {
			return v, nil
		}
		if try+1 >= maxTries {
			return "", fmt.Errorf("sitectl init: %s: %w", q, cerr)
		}
		fmt.Fprintf(a.out, "  %v; try again\n", cerr)
	}
}

// list splits a comma- or space-separated answer.
func list(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
}

// askSites asks for the new repository's sites (names, the hub, each LAN) and its
// environments, with the defaults of `sitectl init --defaults`.
func askSites(in io.Reader, out io.Writer) ([]scaffold.Site, []string, error) {
	a := asker{in: bufio.NewReader(in), out: out}
	defs := scaffold.DefaultSites()
	var defNames []string
	for _, s := range defs {
		defNames = append(defNames, s.Name)
	}
	fmt.Fprintln(out, "sitectl init: a few questions about your sites (Enter takes the default in brackets).")
	ans, err := a.ask("Site names (one hub and its spokes, comma-separated)", strings.Join(defNames, ","), func(v string) error {
		names := list(v)
		for _, n := range names {
			if _, err := scaffold.ParseSite(n + ":spoke:10.0.0.0/24"); err != nil {
				return fmt.Errorf("site name %q: lower case letters, digits and dashes, starting with a letter", n)
			}
		}
		if len(names) < 2 || len(names) > 10 {
			return fmt.Errorf("%d sites: give the hub and 1 to 9 spokes", len(names))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	names := list(ans)
	hub, err := a.ask("Which site is the hub (the others are spokes)", names[0], func(v string) error {
		if !slices.Contains(names, v) {
			return fmt.Errorf("%q is not one of the sites (%s)", v, strings.Join(names, ", "))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var sites []scaffold.Site
	for i, n := range names {
		role := "spoke"
		if n == hub {
			role = "hub"
		}
		def := defaultLAN(i, n, defs, sites)
		ans, err := a.ask(fmt.Sprintf("LAN of %s (the %s's IPv4 network)", n, role), def, func(v string) error {
			s, err := scaffold.ParseSite(n + ":" + role + ":" + v)
			if err != nil {
				return fmt.Errorf("LAN %q: an IPv4 network from /8 to /27, e.g. 10.10.0.0/24", v)
			}
			for _, o := range sites {
				if o.LAN.Overlaps(s.LAN) {
					return fmt.Errorf("%s overlaps %s's LAN %s", s.LAN, o.Name, o.LAN)
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		s, _ := scaffold.ParseSite(n + ":" + role + ":" + ans)
		sites = append(sites, s)
	}
	ans, err = a.ask("Environments ("+strings.Join(scaffold.Envs, ", ")+")", strings.Join(scaffold.Envs, ","), func(v string) error {
		return scaffold.CheckEnvs(list(v), "environments")
	})
	if err != nil {
		return nil, nil, err
	}
	return sites, list(ans), scaffold.CheckSites(sites, "the answers")
}

// defaultLAN is the default LAN of the i-th site named n: the default site's of
// that name, else the first 10.<10k>.0.0/24 from k = i+1 that no LAN already
// chosen overlaps.
func defaultLAN(i int, n string, defs, chosen []scaffold.Site) string {
	free := func(p netip.Prefix) bool {
		return !slices.ContainsFunc(chosen, func(c scaffold.Site) bool { return c.LAN.Overlaps(p) })
	}
	for _, d := range defs {
		if d.Name == n && free(d.LAN) {
			return d.LAN.String()
		}
	}
	for k := i + 1; k < 25; k++ {
		if p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(10 * k), 0, 0}), 24); free(p) {
			return p.String()
		}
	}
	return "10.250.0.0/24"
}
