package ci

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// Options tune a generated pipeline. The zero value is usable.
type Options struct {
	// ConfigDir is the configuration directory as jobs see it, relative to the
	// repository root (default "sites").
	ConfigDir string
	// Image is the job image; it must have Go to build sitectl, and ssh (default
	// golang:1.26-bookworm).
	Image string
	// StagingBranch is the branch that deploys staging, besides tags (default "staging").
	StagingBranch string
	// ProductionDrills opts production in to scheduled drills.
	ProductionDrills bool
	// RunnerTags are added to every job; "{site}" in a tag is replaced by the site the
	// job plans, deploys or verifies (the hub for the replication check), so runners
	// inside each site can pick up that site's jobs. Jobs reaching no site, and drills
	// (which cut sites off), get only the tags without "{site}".
	RunnerTags []string
	// Version pins sitectl: the validate job installs this module version of it
	// (go install) instead of building it from the repository, which a configuration
	// repository of the operator's own does not hold. "" builds it (sitectl's own
	// repository). The command line in the header leaves it out: the pinned sitectl
	// regenerates the same file with its own version.
	Version string
	// AppsDir is the apps directory as jobs see it, relative to the repository root
	// ("" for the default, apps/ next to the configuration directory).
	AppsDir string
	// Out is the path, relative to the repository root, the pipeline is written to.
	// When set, the validate job also fails if that file no longer matches what the
	// configuration generates (the pipeline drifted from the sites).
	Out string
}

// Command is the sitectl command line that generates the pipeline of env with these
// options; the header and the drift check repeat it.
func (o Options) Command(env string) string {
	args := []string{"sitectl", "ci", "generate", "--env", env}
	if o.ConfigDir != "" && o.ConfigDir != "sites" {
		args = append(args, "--config-dir", o.ConfigDir)
	}
	if o.Image != "" && o.Image != DefaultImage {
		args = append(args, "--image", o.Image)
	}
	if o.StagingBranch != "" && o.StagingBranch != DefaultStagingBranch {
		args = append(args, "--staging-branch", o.StagingBranch)
	}
	if o.ProductionDrills {
		args = append(args, "--production-drills")
	}
	for _, t := range o.RunnerTags {
		args = append(args, "--runner-tag", t)
	}
	if o.AppsDir != "" {
		args = append(args, "--apps-dir", o.AppsDir)
	}
	if o.Out != "" {
		args = append(args, "--out", o.Out)
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for sh when it holds anything but plain word characters.
func shellQuote(s string) string {
	plain := s != ""
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_./:=@+,", r) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Defaults.
const (
	DefaultImage         = "golang:1.26-bookworm"
	DefaultStagingBranch = "staging"
	// Bin is where the validate job builds sitectl; later jobs get it as an artifact.
	Bin = "bin/sitectl"
)

// Stages of every generated pipeline, the same for every environment so the three
// files can also be included into one pipeline.
var Stages = []string{"validate", "plan", "deploy", "verify", "drill"}

// Tiers of GitLab deployments; the environment's name picks one.
const (
	TierProduction  = "production"
	TierStaging     = "staging"
	TierDevelopment = "development"
)

// Tier is the GitLab deployment tier of an environment: production and staging by
// name, development for every other environment (dev, lab, ...).
func Tier(env string) string {
	switch env {
	case "production", "prod":
		return TierProduction
	case "staging":
		return TierStaging
	}
	return TierDevelopment
}

// CheckEnv reports an environment that has no overlay in dir, listing the known ones.
func CheckEnv(dir, env string) error {
	known := sites.Environments(dir)
	if len(known) == 0 {
		return fmt.Errorf("no environment overlays in %s: create %s/%s/<env>.yaml (dev, staging, production) or point --config-dir at the configuration", filepath.Join(dir, sites.EnvDir), dir, sites.EnvDir)
	}
	if env == "" {
		return fmt.Errorf("no environment given: pick one with --env (known: %s)", strings.Join(known, ", "))
	}
	if !slices.Contains(known, env) {
		return fmt.Errorf("unknown environment %q (known: %s): pick one with --env, or add %s/%s/%s.yaml to create it",
			env, strings.Join(known, ", "), dir, sites.EnvDir, env)
	}
	return nil
}
