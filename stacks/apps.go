package stacks

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/sites"
)

// LabelApp marks the services of an operator app (its value is the app's name).
const LabelApp = "sitectl.app"

// AppNetwork is the site network an app's entry service joins so the site's Kong
// reaches it (as Kong reaches django-api).
const AppNetwork = "app"

// RenderApp renders an operator app for in.Site: the app's compose file as the
// user wrote it, plus what sitectl owns — the entry service's image and replicas
// for this site and environment, the site's app network, the sitectl.app label,
// the metrics port published for the hub's Prometheus, and the app's database
// (addAppDatabase). Configs the compose file
// names by relative path are read from the app's folder. The result deploys like a
// built-in stack (the app's name is its stack name).
func RenderApp(in Input, a *sites.App) (Rendered, error) {
	fail := func(format string, args ...any) (Rendered, error) {
		return Rendered{}, fmt.Errorf("app %s (%s) for %s: "+format, append([]any{a.Name, a.File, in.Site.Name}, args...)...)
	}
	as, ok := a.Sites[in.Site.Name]
	if !ok {
		return fail("the app does not run at this site")
	}
	var doc map[string]any
	if err := yaml.Unmarshal(a.Compose, &doc); err != nil {
		return fail("parse compose file: %w", err)
	}
	delete(doc, "x-sitectl")
	interpolateSite(doc, map[string]string{SiteVar: in.Site.Name, EnvVar: in.Env()})
	services, _ := doc["services"].(map[string]any)
	svc, _ := services[a.Service].(map[string]any)
	if svc == nil {
		return fail("no service %q", a.Service)
	}
	shipAppLogs(in, services)
	svc["image"] = as.Image
	dep, _ := svc["deploy"].(map[string]any)
	if dep == nil {
		dep = map[string]any{}
	}
	if mode, _ := dep["mode"].(string); mode != "global" {
		dep["replicas"] = as.Replicas
	}
	labels, _ := dep["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
	}
	labels[LabelApp] = a.Name
	dep["labels"] = labels
	applyPolicy(dep, a)
	applyHealthcheck(svc, as.Healthcheck)
	if a.Placement == sites.PlacementAppNodes {
		addAppPlacement(in, dep)
	}
	if a.Mongo {
		setEnv(svc, sites.AppMongoEnv, MongoURI(in.Topo, in.Site))
	}
	if _, own := dep["endpoint_mode"]; !own && in.Site.Deploy.EndpointMode != "" && in.Site.Deploy.EndpointMode != "vip" {
		// As the built-in stacks' services: the site's (dnsrr where the kernel has no
		// IPVS, as in the lab; Kong and the apps then reach each task by name).
		dep["endpoint_mode"] = in.Site.Deploy.EndpointMode
	}
	svc["deploy"] = dep
	if a.Port > 0 {
		joinNetwork(doc, svc, AppNetwork)
	}
	var secrets map[string]sites.SecretRef
	if a.Database != nil {
		secrets = addAppDatabase(in, a, doc, svc)
	}
	if as.Canary != nil {
		if err := addCanary(services, svc, a, as.Canary); err != nil {
			return fail("canary: %w", err)
		}
	}
	if a.MetricsPort > 0 {
		ports, _ := svc["ports"].([]any)
		svc["ports"] = append(ports, map[string]any{"target": a.MetricsPort, "published": a.MetricsPublished, "protocol": "tcp", "mode": in.Site.Deploy.PublishMode})
	}
	files := map[string][]byte{}
	dir := filepath.Dir(a.File)
	cfgs, _ := doc["configs"].(map[string]any)
	for _, key := range slices.Sorted(maps.Keys(cfgs)) {
		def, _ := cfgs[key].(map[string]any)
		file, _ := def["file"].(string)
		if file == "" {
			continue
		}
		rel := path.Clean(file)
		if path.IsAbs(rel) || strings.HasPrefix(rel, "../") || rel == ".." {
			return fail("config %s: file %q must be inside the app's folder", key, file)
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return fail("config %s: %w", key, err)
		}
		def["file"] = rel
		files[rel] = b
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# app %s for site %s (%s), rendered by sitectl from %s; do not edit.\n", a.Name, in.Site.Name, in.Env(), a.File)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fail("encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fail("encode: %w", err)
	}
	return Rendered{Stack: a.Name, Compose: buf.Bytes(), Files: files, Secrets: secrets}, nil
}

func containsAny(list []any, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// LabelCanary marks an app's canary service (value "true").
const LabelCanary = "sitectl.canary"

// applyPolicy writes x-sitectl's resources, update and rollback policy into the
// entry service's deploy section, key by key over the compose file's own.
func applyPolicy(dep map[string]any, a *sites.App) {
	if r := a.Resources; r != nil {
		res := subMap(dep, "resources")
		for _, x := range []struct{ key, cpus, memory string }{{"limits", r.LimitCPUs, r.LimitMemory}, {"reservations", r.ReservationCPUs, r.ReservationMemory}} {
			if x.cpus == "" && x.memory == "" {
				continue
			}
			set := subMap(res, x.key)
			if x.cpus != "" {
				set["cpus"] = x.cpus
			}
			if x.memory != "" {
				set["memory"] = x.memory
			}
		}
	}
	for key, p := range map[string]*sites.AppPolicy{"update_config": a.Update, "rollback_config": a.Rollback} {
		if p == nil {
			continue
		}
		m := subMap(dep, key)
		if p.Parallelism != nil {
			m["parallelism"] = *p.Parallelism
		}
		for k, v := range map[string]string{"delay": p.Delay, "monitor": p.Monitor, "order": p.Order, "failure_action": p.FailureAction} {
			if v != "" {
				m[k] = v
			}
		}
	}
}

// applyHealthcheck writes the site's healthcheck keys (x-sitectl.site.<site>,
// x-sitectl.env.<env>, values.<app>.healthcheck) over the entry service's, key by
// key; a new test turns a healthcheck the compose file disables back on, and
// disable: true drops the compose file's test.
func applyHealthcheck(svc map[string]any, keys map[string]any) {
	if len(keys) == 0 {
		return
	}
	hc := subMap(svc, "healthcheck")
	if _, test := keys["test"]; test {
		delete(hc, "disable")
	}
	if keys["disable"] == true {
		delete(hc, "test") // compose refuses both
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		hc[k] = keys[k]
	}
}

// subMap is m[key] as a map, created when absent.
func subMap(m map[string]any, key string) map[string]any {
	sub, _ := m[key].(map[string]any)
	if sub == nil {
		sub = map[string]any{}
		m[key] = sub
	}
	return sub
}

// addCanary adds the app's canary service: a copy of the entry service as sitectl
// completed it (networks, labels, database, policy) with the canary's image and
// replicas, the label sitectl.canary, and no published ports (the stable service
// keeps them; two services cannot publish one port).
func addCanary(services, svc map[string]any, a *sites.App, c *sites.AppCanary) error {
	b, err := yaml.Marshal(svc)
	if err != nil {
		return err
	}
	var cp map[string]any
	if err := yaml.Unmarshal(b, &cp); err != nil {
		return err
	}
	delete(cp, "ports")
	cp["image"] = c.Image
	for _, k := range slices.Sorted(maps.Keys(c.Environment)) {
		setEnv(cp, k, c.Environment[k])
	}
	dep := subMap(cp, "deploy")
	dep["replicas"] = c.Replicas
	subMap(dep, "labels")[LabelCanary] = "true"
	services[a.CanaryService()] = cp
	return nil
}
