package deploy

import (
	"fmt"

	"github.com/moby/moby/api/types/network"
)

// netView is what can differ between a wanted and a live network.
type netView struct {
	driver, subnet                  string
	encrypted, attachable, internal bool
}

func networkView(driver string, ipam *network.IPAM, opts map[string]string, attachable, internal bool) netView {
	v := netView{driver: driver, attachable: attachable, internal: internal}
	if ipam != nil && len(ipam.Config) > 0 && ipam.Config[0].Subnet.IsValid() {
		v.subnet = ipam.Config[0].Subnet.String()
	}
	_, v.encrypted = opts["encrypted"]
	return v
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (v netView) String() string {
	return fmt.Sprintf("%s, subnet %s, encrypted: %s, attachable: %s, internal: %s", v.driver, v.subnet, yesNo(v.encrypted), yesNo(v.attachable), yesNo(v.internal))
}

func (v netView) diff(want netView) []string {
	var out []string
	add := func(k, a, b string) {
		if a != b {
			out = append(out, fmt.Sprintf("%s: %s → %s", k, a, b))
		}
	}
	add("driver", v.driver, want.driver)
	add("subnet", v.subnet, want.subnet)
	add("encrypted", yesNo(v.encrypted), yesNo(want.encrypted))
	add("attachable", yesNo(v.attachable), yesNo(want.attachable))
	add("internal", yesNo(v.internal), yesNo(want.internal))
	return out
}
