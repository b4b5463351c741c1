package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/swarm"

	"github.com/sitectl/sitectl/stacks"
)

// describe flattens the parts of a service spec an operator reads into "key → value"
// lines, so plan can say what changes ("replicas: 1 → 2"). Environment values are
// reduced to a digest: they may carry anything and are never printed. netName maps
// a network target (an ID in live specs) to its name.
func describe(spec swarm.ServiceSpec, netName func(string) string) map[string]string {
	m := map[string]string{}
	t := spec.TaskTemplate
	if cs := t.ContainerSpec; cs != nil {
		m["image"] = normalImage(cs.Image)
		for _, kv := range cs.Env {
			k, v, _ := strings.Cut(kv, "=")
			sum := sha256.Sum256([]byte(v))
			m["env "+k] = hex.EncodeToString(sum[:8])
		}
		for _, s := range cs.Secrets {
			if s.File != nil {
				m["secret "+s.File.Name] = fmt.Sprintf("%s (uid %s, mode %#o)", s.SecretName, s.File.UID, s.File.Mode)
			}
		}
		for _, c := range cs.Configs {
			if c.File != nil {
				m["config "+c.File.Name] = fmt.Sprintf("%s (uid %s, mode %#o)", c.ConfigName, c.File.UID, c.File.Mode)
			}
		}
		if len(cs.Command) > 0 {
			m["command"] = strings.Join(cs.Command, " ")
		}
		if len(cs.Args) > 0 {
			m["args"] = strings.Join(cs.Args, " ")
		}
		for _, mt := range cs.Mounts {
			m["mount "+mt.Target] = fmt.Sprintf("%s %s", mt.Type, mt.Source)
		}
		if h := cs.Healthcheck; h != nil {
			m["healthcheck"] = fmt.Sprintf("%s every %s timeout %s retries %d", strings.Join(h.Test, " "), h.Interval, h.Timeout, h.Retries)
		}
		if cs.User != "" {
			m["user"] = cs.User
		}
	}
	if p := t.Placement; p != nil {
		for _, c := range p.Constraints {
			m["constraint "+c] = "set"
		}
		if p.MaxReplicas > 0 {
			m["max_replicas_per_node"] = fmt.Sprint(p.MaxReplicas)
		}
	}
	for _, n := range t.Networks {
		m["network "+netName(n.Target)] = "attached"
	}
	if r := t.Resources; r != nil && r.Limits != nil {
		m["limits"] = fmt.Sprintf("cpu %d memory %d", r.Limits.NanoCPUs, r.Limits.MemoryBytes)
	}
	switch {
	case spec.Mode.Replicated != nil && spec.Mode.Replicated.Replicas != nil:
		m["replicas"] = fmt.Sprint(*spec.Mode.Replicated.Replicas)
	case spec.Mode.Global != nil:
		m["mode"] = "global"
	}
	if e := spec.EndpointSpec; e != nil {
		if e.Mode != "" {
			m["endpoint_mode"] = string(e.Mode)
		}
		for _, p := range e.Ports {
			m[fmt.Sprintf("port %d/%s", p.PublishedPort, p.Protocol)] = fmt.Sprintf("→ %d (%s)", p.TargetPort, p.PublishMode)
		}
	}
	if u := spec.UpdateConfig; u != nil {
		m["update_config"] = fmt.Sprintf("%s, on failure %s, parallelism %d, monitor %s", u.Order, u.FailureAction, u.Parallelism, u.Monitor)
	}
	for k, v := range spec.Labels {
		if k != stacks.LabelSpecHash && k != stacks.LabelTaskHash {
			m["label "+k] = v
		}
	}
	return m
}

// driftKeys are the keys compared even when the spec hash label says nothing
// changed: what someone changes by hand with `docker service update`.
var driftKeys = []string{"image", "replicas", "env ", "secret ", "config ", "constraint ", "port "}

func isDriftKey(k string) bool {
	for _, p := range driftKeys {
		if k == p || (strings.HasSuffix(p, " ") && strings.HasPrefix(k, p)) {
			return true
		}
	}
	return false
}

// diffLines says what changes from old to cur, one readable line per key, sorted.
// only, when set, limits the keys compared.
func diffLines(old, cur map[string]string, only func(string) bool) []string {
	keys := map[string]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range cur {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if only != nil && !only(k) {
			continue
		}
		o, inOld := old[k]
		n, inNew := cur[k]
		hidden := strings.HasPrefix(k, "env ")
		switch {
		case inOld && inNew && o == n:
		case !inOld:
			if hidden || n == "set" || n == "attached" {
				out = append(out, "+ "+k)
			} else {
				out = append(out, fmt.Sprintf("+ %s: %s", k, n))
			}
		case !inNew:
			out = append(out, "- "+k)
		case hidden:
			out = append(out, k+": changed (value not shown)")
		default:
			out = append(out, fmt.Sprintf("%s: %s → %s", k, o, n))
		}
	}
	return out
}

// normalImage is the image reference as the engine stores it ("postgres" is
// "postgres:latest").
func normalImage(img string) string {
	if i := strings.Index(img, "@"); i > 0 {
		img = img[:i]
	}
	named, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return img
	}
	return reference.FamiliarString(reference.TagNameOnly(named))
}
