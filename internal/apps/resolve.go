package apps

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	composetypes "github.com/docker/cli/cli/compose/types"

	"github.com/sitectl/sitectl/sites"
)

// resolve layers an app's settings for one site: the compose file, x-sitectl,
// x-sitectl.site.<site>, x-sitectl.env.<env>, then the site's values.<app>.
func resolve(c *collector, rel string, topo *sites.Topology, site *sites.Site, a *sites.App, d decl, svc *composetypes.ServiceConfig) (sites.AppSite, string, bool) {
	as := sites.AppSite{Replicas: 1, Image: svc.Image}
	imageFrom := rel + ": services." + svc.Name + ".image"
	if svc.Deploy.Replicas != nil {
		as.Replicas = int(*svc.Deploy.Replicas)
	}
	if d.Replicas != nil {
		as.Replicas = *d.Replicas
	}
	switch x := d.Image.(type) {
	case nil:
	case string:
		as.Image, imageFrom = x, rel+": "+Extension+".image"
	case map[string]any:
		if v, ok := x[topo.Env]; ok {
			as.Image, imageFrom = fmt.Sprint(v), rel+": "+Extension+".image."+topo.Env
		} else if v, ok := x["default"]; ok {
			as.Image, imageFrom = fmt.Sprint(v), rel+": "+Extension+".image.default"
		}
	default:
		c.errf(rel, "", Extension+".image", "must be an image reference or a map of environment (or default) to reference, not %T", d.Image)
		return as, imageFrom, false
	}
	for _, o := range []struct {
		ov  overrides
		key string
	}{{d.Site[site.Name], Extension + ".site." + site.Name}, {d.Env[topo.Env], Extension + ".env." + topo.Env}} {
		if o.ov.Replicas != nil {
			as.Replicas = *o.ov.Replicas
		}
		if o.ov.Image != "" {
			as.Image, imageFrom = o.ov.Image, rel+": "+o.key+".image"
		}
	}
	vals := site.Values[a.Name]
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		key := "values." + a.Name + "." + k
		origin := topo.Origin(site.Name, key)
		switch k {
		case "image":
			as.Image, imageFrom = fmt.Sprint(vals[k]), origin+": "+key
		case "replicas":
			n, err := strconv.Atoi(fmt.Sprint(vals[k]))
			if err != nil {
				c.errf(origin, site.Name, key, "%q is not a whole number of replicas", fmt.Sprint(vals[k]))
				return as, imageFrom, false
			}
			as.Replicas = n
		case "rate_limit", "healthcheck": // resolveSiteLayers
		default:
			c.errf(origin, site.Name, key, "unknown key for app %s (allowed: %s)", a.Name, strings.Join(valueKeys, ", "))
			return as, imageFrom, false
		}
	}
	if as.Replicas < 0 {
		c.errf(rel, site.Name, Extension+".replicas", "%d replicas at %s: must be 0 or more", as.Replicas, site.Name)
		return as, imageFrom, false
	}
	if img, ok := siteImage(c, rel, site, as.Image, imageFrom); ok {
		as.Image = img
	} else {
		return as, imageFrom, false
	}
	if as.Image == "" {
		c.errf(rel, site.Name, "services."+svc.Name+".image", "no image for %s at %s: set the service's image or %s.image", a.Name, site.Name, Extension)
		return as, imageFrom, false
	}
	return as, imageFrom, true
}

func sitesPhrase(list []string) string {
	if len(list) == 1 {
		return "site " + list[0]
	}
	return "sites " + strings.Join(list, ", ")
}

// productionImage says what makes ref unfit for production ("" if nothing).
func productionImage(ref string) string {
	if strings.Contains(ref, "${") {
		return ""
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "not an image reference (" + err.Error() + ")"
	}
	if _, ok := named.(reference.Digested); ok {
		return ""
	}
	t, ok := named.(reference.Tagged)
	switch {
	case !ok:
		return "untagged (it means latest)"
	case t.Tag() == "latest":
		return "tagged latest"
	}
	return ""
}
