package stacks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/moby/moby/api/types/swarm"
)

// Labels sitectl puts on every object it creates (services, networks, secrets,
// configs). Prune only ever removes objects carrying LabelManaged for the site.
const (
	LabelManaged = "sitectl.managed"
	LabelSite    = "sitectl.site"
	LabelStack   = "sitectl.stack"
	// LabelSpecHash holds the hash of the desired service (or network) spec sitectl
	// last applied; an unchanged hash means "do not touch" (moby#31115).
	LabelSpecHash = "sitectl.spec-hash"
	// LabelTaskHash is the hash of the task template alone: when it changes the
	// update replaces tasks (and swarm reports the rollout in UpdateStatus); when
	// only it stays, the update only scales or relabels.
	LabelTaskHash = "sitectl.task-hash"
	// LabelObject is the logical name of a secret or config (stack_key) whose
	// swarm name carries a content hash: versions of one object share it.
	LabelObject = "sitectl.object"
	// SiteStack is the stack value of site-wide objects (the edge/app/data networks).
	SiteStack = "_site"
)

// ManagedLabels are the labels of an object sitectl manages for site and stack.
func ManagedLabels(site, stack string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelSite: site, LabelStack: stack}
}

// ContentName names one version of a secret or config: "<logical>_<10 hex>", the
// hex being a keyed hash of the content. The key (the swarm's cluster ID) keeps a
// plan printed in a CI log from confirming guesses of a weak secret value.
func ContentName(logical string, data, key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(logical))
	m.Write([]byte{0})
	m.Write(data)
	return logical + "_" + hex.EncodeToString(m.Sum(nil))[:10]
}

// SpecHash is the hash of a service spec as sitectl will apply it, ignoring what
// only the engine knows (secret and config IDs) and sitectl's hash labels.
func SpecHash(spec swarm.ServiceSpec) string {
	c := spec
	c.Labels = map[string]string{}
	for k, v := range spec.Labels {
		if k != LabelSpecHash && k != LabelTaskHash {
			c.Labels[k] = v
		}
	}
	c.TaskTemplate = withoutIDs(spec.TaskTemplate)
	return hashJSON(c)
}

// TaskHash is the hash of the task template, ignoring secret and config IDs.
func TaskHash(spec swarm.ServiceSpec) string { return hashJSON(withoutIDs(spec.TaskTemplate)) }

func withoutIDs(t swarm.TaskSpec) swarm.TaskSpec {
	cs := t.ContainerSpec
	if cs == nil {
		return t
	}
	cc := *cs
	cc.Secrets = nil
	for _, s := range cs.Secrets {
		r := *s
		r.SecretID = ""
		cc.Secrets = append(cc.Secrets, &r)
	}
	cc.Configs = nil
	for _, s := range cs.Configs {
		r := *s
		r.ConfigID = ""
		cc.Configs = append(cc.Configs, &r)
	}
	t.ContainerSpec = &cc
	return t
}

func hashJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Specs are plain data; this cannot happen.
		panic("stacks: marshal spec: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}
