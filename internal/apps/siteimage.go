package apps

import (
	"maps"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// SiteImagePrefix marks an app image taken from the site configuration:
// "images.nginx" is the site's images.nginx (defaults.yaml < site < environment <
// SITECTL_* < --set), so an app is mapped to another registry, or to the lab's
// images, the way the built-in stacks are.
const SiteImagePrefix = "images."

// siteImage resolves ref when it names a site image (images.<name>); any other
// reference comes back as it is. from says where ref was written.
func siteImage(c *collector, rel string, site *sites.Site, ref, from string) (string, bool) {
	name, ok := strings.CutPrefix(ref, SiteImagePrefix)
	if !ok {
		return ref, true
	}
	if img := site.Images[name]; img != "" {
		return img, true
	}
	c.errf(rel, site.Name, Extension+".image", "%s (from %s) names the site image %s, which site %s does not have (images: %s): add images.%s to defaults.yaml or the site's file, or give an image reference",
		ref, from, name, site.Name, strings.Join(slices.Sorted(maps.Keys(site.Images)), ", "), name)
	return "", false
}
