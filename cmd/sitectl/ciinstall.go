package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/sitectl/sitectl/ci"
)

// ownRepository says whether dir is sitectl's own source tree (its go.mod declares
// sitectl's module): its pipelines build sitectl from source; any other
// repository's install it pinned.
func ownRepository(dir string) bool {
	f, err := os.Open(dir + "/go.mod")
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mod, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(mod), `"`) == ci.Module
		}
	}
	return false
}

// buildVersion is the module version this binary was built at: the -X main.version
// of a release build, else what go install recorded ("" for a source build).
func buildVersion() string {
	if version != "dev" && version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path == ci.Module && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
}

// pinVersion fills opts.Version for a pipeline generated in dir: nothing for
// sitectl's own repository (unless --sitectl-version pins it anyway), else the
// flag's version or the version of this binary.
func pinVersion(opts *ci.Options, dir, flagVersion string) error {
	if flagVersion != "" {
		if err := ci.CheckVersion(flagVersion); err != nil {
			return fmt.Errorf("--sitectl-version: %w", err)
		}
		opts.Version = flagVersion
		return nil
	}
	if ownRepository(dir) {
		return nil
	}
	v := buildVersion()
	if err := ci.CheckVersion(v); err != nil {
		return fmt.Errorf("this repository is not sitectl's source tree, so its pipeline installs sitectl pinned, but this sitectl is a development build (version %q): pass --sitectl-version vX.Y.Z (the release the jobs should run), or run a sitectl installed with go install %s/cmd/sitectl@vX.Y.Z", v, ci.Module)
	}
	opts.Version = v
	return nil
}
