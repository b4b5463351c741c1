package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Packet is what the evaluator asks about: one packet at one hook.
type Packet struct {
	Hook     string // input | forward
	Iif, Oif string
	IPsecIn  bool
	IPsecOut bool
	Ct       string // new | established | related | invalid
	Src, Dst netip.Addr
	Proto    string // tcp | udp | esp | icmp
	Dport    int
	ICMPType string
}

func (p Packet) String() string {
	s := fmt.Sprintf("%s → %s %s", p.Src, p.Dst, p.Proto)
	if p.Dport != 0 {
		s += fmt.Sprintf("/%d", p.Dport)
	}
	return s + " (" + p.Ct + ", " + p.Hook + ")"
}

// Verdict is the evaluator's answer: the verdict and the rule that gave it.
type Verdict struct {
	Accept bool
	Chain  string
	Rule   string // the rule's comment, or "policy drop"
}

func (v Verdict) String() string {
	return fmt.Sprintf("%s %q (chain %s)", map[bool]string{true: "accept", false: "drop"}[v.Accept], v.Rule, v.Chain)
}

// Eval runs a packet through the chain of its hook, as nftables would: the first
// rule that matches with a verdict decides, else the chain's policy. A hook the
// table has no chain for accepts.
func (r *Ruleset) Eval(p Packet) Verdict {
	for _, c := range r.Chains {
		if c.Hook != p.Hook {
			continue
		}
		for _, rule := range c.Rules {
			if rule.matches(p) {
				return Verdict{Accept: rule.Verdict == "accept", Chain: c.Name, Rule: rule.Comment}
			}
		}
		return Verdict{Accept: c.Policy == "accept", Chain: c.Name, Rule: "policy " + c.Policy}
	}
	return Verdict{Accept: true, Chain: p.Hook, Rule: "no chain"}
}

func (r Rule) matches(p Packet) bool {
	if r.Iif != "" && r.Iif != p.Iif || r.Oif != "" && r.Oif != p.Oif {
		return false
	}
	if r.IPsecIn && !p.IPsecIn || r.IPsecOut && !p.IPsecOut {
		return false
	}
	if len(r.CtState) > 0 && !slices.Contains(r.CtState, p.Ct) {
		return false
	}
	if len(r.Saddr) > 0 && !containsAddr(r.Saddr, p.Src) || len(r.Daddr) > 0 && !containsAddr(r.Daddr, p.Dst) {
		return false
	}
	switch r.Proto {
	case "":
	case "icmp", "icmpv6":
		if p.Proto != r.Proto || !slices.Contains(r.ICMPTypes, p.ICMPType) {
			return false
		}
	default:
		if p.Proto != r.Proto || len(r.Dport) > 0 && !slices.Contains(r.Dport, p.Dport) {
			return false
		}
	}
	return true
}

func containsAddr(set []netip.Prefix, a netip.Addr) bool {
	for _, p := range set {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Check refuses a ruleset that would cut sitectl off the gateway or the site:
// every management path (Paths) from every source address sitectl uses must be
// accepted. The error names the path and the rule that would drop it, and what to
// change. Paths that are unix sockets cross no rule; a path named by a host name or
// a docker context cannot be checked and is returned in unchecked.
func (r *Ruleset) Check(lan netip.Prefix, gatewayLAN netip.Addr, sources []netip.Addr) (unchecked []string, err error) {
	var refused []string
	for _, path := range r.Paths {
		switch path.Kind {
		case PathLocal:
			continue
		case PathUnknown:
			unchecked = append(unchecked, path.What)
			continue
		case PathFromGateway:
			// Dialled from the gateway: output is not filtered; the replies must pass input.
			p := Packet{Hook: "input", Ct: "established", Src: path.Addr, Dst: gatewayLAN, Proto: path.Proto}
			if v := r.Eval(p); !v.Accept {
				refused = append(refused, fmt.Sprintf("%s: replies %s would be dropped by %s", path, p, v))
			}
			continue
		}
		for _, src := range sources {
			p := Packet{Ct: "new", Src: src, Dst: path.Addr, Proto: path.Proto, Dport: path.Port}
			switch {
			case path.ToGateway:
				p.Hook = "input"
			case lan.Contains(path.Addr):
				p.Hook = "forward"
			default:
				continue // does not cross this gateway
			}
			if v := r.Eval(p); !v.Accept {
				refused = append(refused, fmt.Sprintf("%s from %s: %s would be dropped by %s", path, src, p, v))
			}
		}
	}
	if len(refused) > 0 {
		return unchecked, fmt.Errorf("gateway firewall %s: refused before applying: the new ruleset would cut sitectl's own management path:\n  %s\nadd sitectl's address to gateway.firewall.admin_networks, or set gateway.firewall.management_from to the address the gateway sees sitectl connect from",
			r.Site, strings.Join(refused, "\n  "))
	}
	return unchecked, nil
}
