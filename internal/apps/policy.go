package apps

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	composetypes "github.com/docker/cli/cli/compose/types"
	units "github.com/docker/go-units"

	"github.com/sitectl/sitectl/sites"
)

// resources is x-sitectl.resources: compose's deploy.resources limits and
// reservations of cpus and memory.
type resources struct {
	Limits       *resourceSet `yaml:"limits"`
	Reservations *resourceSet `yaml:"reservations"`
}

type resourceSet struct {
	CPUs   any    `yaml:"cpus"`
	Memory string `yaml:"memory"`
}

// policy is x-sitectl.update or x-sitectl.rollback: compose's update_config or
// rollback_config.
type policy struct {
	Parallelism   *int   `yaml:"parallelism"`
	Delay         string `yaml:"delay"`
	Monitor       string `yaml:"monitor"`
	Order         string `yaml:"order"`
	FailureAction string `yaml:"failure_action"`
}

// canaryDecl is x-sitectl.canary (and x-sitectl.site.<site>.canary,
// x-sitectl.env.<env>.canary, which replace it).
type canaryDecl struct {
	Image    string `yaml:"image"`
	Weight   int    `yaml:"weight"`
	Replicas *int   `yaml:"replicas"`
	// Environment is set on the canary service only, over the entry service's
	// (e.g. API_VARIANT: canary).
	Environment map[string]string `yaml:"environment"`
}

// minMemory is the smallest memory limit Docker accepts (6 MiB).
const minMemory = 6 << 20

// checkResources checks x-sitectl.resources and returns it for the App (nil: none).
func checkResources(c *collector, rel string, r *resources) *sites.AppResources {
	if r == nil {
		return nil
	}
	out := &sites.AppResources{}
	var cpus, mem [2]float64 // limit, reservation
	for i, set := range []*resourceSet{r.Limits, r.Reservations} {
		if set == nil {
			continue
		}
		key := Extension + ".resources." + []string{"limits", "reservations"}[i]
		cpu, memory := "", set.Memory
		if set.CPUs != nil {
			cpu = fmt.Sprint(set.CPUs)
			f, err := strconv.ParseFloat(cpu, 64)
			if err != nil || f <= 0 {
				c.errf(rel, "", key+".cpus", "%q is not a number of CPUs: write a positive number, e.g. 0.5 or \"2\"", cpu)
				return nil
			}
			cpus[i] = f
		}
		if memory != "" {
			n, err := units.RAMInBytes(memory)
			switch {
			case err != nil || n <= 0:
				c.errf(rel, "", key+".memory", "%q is not an amount of memory: write e.g. 256M or 1G", memory)
				return nil
			case i == 0 && n < minMemory:
				c.errf(rel, "", key+".memory", "%q is below Docker's smallest memory limit (6M): raise it", memory)
				return nil
			}
			mem[i] = float64(n)
		}
		if i == 0 {
			out.LimitCPUs, out.LimitMemory = cpu, memory
		} else {
			out.ReservationCPUs, out.ReservationMemory = cpu, memory
		}
	}
	for _, x := range []struct {
		what string
		v    [2]float64
	}{{"cpus", cpus}, {"memory", mem}} {
		if x.v[0] > 0 && x.v[1] > x.v[0] {
			c.errf(rel, "", Extension+".resources.reservations."+x.what, "reserves more %s than the limit (resources.limits.%s): lower the reservation or raise the limit", x.what, x.what)
			return nil
		}
	}
	return out
}

// checkPolicy checks x-sitectl.update (rollback false) or x-sitectl.rollback.
func checkPolicy(c *collector, rel string, p *policy, rollback bool) *sites.AppPolicy {
	if p == nil {
		return nil
	}
	key, actions := Extension+".update", []string{"continue", "rollback", "pause"}
	if rollback {
		key, actions = Extension+".rollback", []string{"continue", "pause"}
	}
	before := len(c.ps)
	if p.Parallelism != nil && *p.Parallelism < 0 {
		c.errf(rel, "", key+".parallelism", "%d: how many tasks change at once, 0 (all) or more", *p.Parallelism)
	}
	for k, v := range map[string]string{"delay": p.Delay, "monitor": p.Monitor} {
		if d, err := time.ParseDuration(v); v != "" && (err != nil || d < 0) {
			c.errf(rel, "", key+"."+k, "%q is not a duration: write e.g. 10s or 1m30s", v)
		}
	}
	if p.Order != "" && p.Order != "start-first" && p.Order != "stop-first" {
		c.errf(rel, "", key+".order", "%q: allowed: stop-first (the old task stops, then the new one starts) or start-first", p.Order)
	}
	if p.FailureAction != "" && !slices.Contains(actions, p.FailureAction) {
		c.errf(rel, "", key+".failure_action", "%q: allowed: %s", p.FailureAction, strings.Join(actions, ", "))
	}
	if len(c.ps) > before {
		return nil
	}
	return &sites.AppPolicy{Parallelism: p.Parallelism, Delay: p.Delay, Monitor: p.Monitor, Order: p.Order, FailureAction: p.FailureAction}
}

// checkCanaryShape checks every canary declared (x-sitectl.canary, site.<site>.canary,
// env.<env>.canary) once, and what a canary needs of the app itself: routes to
// split, a replicated entry service, a free service name.
func checkCanaryShape(c *collector, rel string, a *sites.App, d decl, svc *composetypes.ServiceConfig, cfg *composetypes.Config) {
	type declared struct {
		key string
		cd  *canaryDecl
	}
	var all []declared
	if d.Canary != nil {
		all = append(all, declared{Extension + ".canary", d.Canary})
	}
	for _, layer := range []struct {
		m    map[string]overrides
		name string
	}{{d.Site, "site"}, {d.Env, "env"}} {
		for _, k := range slices.Sorted(maps.Keys(layer.m)) {
			if cd := layer.m[k].Canary; cd != nil {
				all = append(all, declared{Extension + "." + layer.name + "." + k + ".canary", cd})
			}
		}
	}
	if len(all) == 0 {
		return
	}
	for _, x := range all {
		switch {
		case x.cd.Image == "":
			c.errf(rel, "", x.key+".image", "a canary runs another image: set %s.image (a reference or images.<name>)", x.key)
		case x.cd.Weight < 1 || x.cd.Weight > 99:
			c.errf(rel, "", x.key+".weight", "%d: the percentage of the routes' requests the canary gets, from 1 to 99", x.cd.Weight)
		case x.cd.Replicas != nil && *x.cd.Replicas < 1:
			c.errf(rel, "", x.key+".replicas", "%d: a canary runs at least 1 replica", *x.cd.Replicas)
		}
		for _, k := range slices.Sorted(maps.Keys(x.cd.Environment)) {
			if x.cd.Environment[k] != "" && secretEnvRE.MatchString(k) {
				c.errf(rel, "", x.key+".environment."+k, "an inline secret (value not shown): pass it as a compose secret (file: secrets/<name>) and point the app at /run/secrets/<name>, e.g. %s_FILE", k)
			}
		}
	}
	key := all[0].key
	switch {
	case len(a.Routes) == 0:
		c.errf(rel, "", key, "a canary takes a share of the app's routes, and the app has none: add x-sitectl.routes or drop the canary")
	case svc.Deploy.Mode == "global":
		c.errf(rel, "", key, "service %s is global (one task per node): a canary needs deploy.mode replicated", svc.Name)
	case slices.Contains(serviceNames(cfg), a.CanaryService()):
		c.errf(rel, "", key, "the compose file already has a service %s, the name sitectl gives the canary: rename that service", a.CanaryService())
	}
}

// resolveCanary is the site's canary: x-sitectl.canary, replaced by
// x-sitectl.site.<site>.canary, then x-sitectl.env.<env>.canary.
func resolveCanary(c *collector, rel string, topo *sites.Topology, site *sites.Site, d decl) (*sites.AppCanary, string, bool) {
	cd, key := d.Canary, Extension+".canary"
	if o := d.Site[site.Name].Canary; o != nil {
		cd, key = o, Extension+".site."+site.Name+".canary"
	}
	if o := d.Env[topo.Env].Canary; o != nil {
		cd, key = o, Extension+".env."+topo.Env+".canary"
	}
	if cd == nil {
		return nil, "", true
	}
	out := &sites.AppCanary{Image: cd.Image, Weight: cd.Weight, Replicas: 1, Environment: cd.Environment}
	if cd.Replicas != nil {
		out.Replicas = *cd.Replicas
	}
	img, ok := siteImage(c, rel, site, cd.Image, rel+": "+key+".image")
	if !ok {
		return nil, "", false
	}
	out.Image = img
	return out, rel + ": " + key + ".image", true
}
