package images

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRealMonitoringImagesRun builds the root filesystems of the Debian-built
// node-exporter, postgres-exporter and Alertmanager images, unpacks each, and runs
// its binary inside it (chroot): the image holds the program and every library it
// loads. Alertmanager's amtool accepts the image's default configuration.
func TestRealMonitoringImagesRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	standin := testStandin(t)
	runs := map[string][][]string{
		"node-exporter":     {{"/usr/bin/prometheus-node-exporter", "--version"}},
		"postgres-exporter": {{"/usr/bin/prometheus-postgres-exporter", "--version"}},
		"alertmanager": {{"/usr/bin/prometheus-alertmanager", "--version"},
			{"/usr/bin/amtool", "check-config", "/etc/alertmanager/alertmanager.yml"}},
	}
	found := 0
	for _, rc := range recipes() {
		cmds, ok := runs[rc.spec.Logical]
		if !ok {
			continue
		}
		found++
		t.Run(rc.spec.Logical, func(t *testing.T) {
			if !rc.spec.Real || rc.spec.Ref != Repo+rc.spec.Logical+":lab" {
				t.Errorf("catalog: %+v, want a real image tagged :lab", rc.spec)
			}
			root := unpackRecipe(t, rc, standin, false)
			for _, c := range cmds {
				out, err := exec.Command("chroot", append([]string{root}, c...)...).CombinedOutput()
				if err != nil {
					t.Errorf("chroot %s: %v\n%s", strings.Join(c, " "), err, out)
				}
			}
			if rc.cfg.Entrypoint[0] != cmds[0][0] {
				t.Errorf("entrypoint %v, want %s", rc.cfg.Entrypoint, cmds[0][0])
			}
		})
	}
	if found != len(runs) {
		t.Fatalf("recipes for %d of the %d real monitoring images", found, len(runs))
	}
}
