package images

import (
	"os"
	"strings"
)

// addPythonPackages adds the Python modules that the given Debian packages install
// under /usr/lib/python3/dist-packages (files only; skip as for addHost).
func (r *rootfs) addPythonPackages(skip func(string) bool, pkgs ...string) error {
	files, err := dpkgFiles(pkgs...)
	if err != nil {
		return err
	}
	for _, f := range files {
		if !strings.HasPrefix(f, "/usr/lib/python3/dist-packages/") {
			continue
		}
		if fi, err := os.Lstat(f); err != nil || fi.IsDir() {
			continue
		}
		if err := r.addHost(f, skip); err != nil {
			return err
		}
	}
	return nil
}
