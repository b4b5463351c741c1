package images

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNginxImageServes builds the lab nginx image's root filesystem, unpacks it, checks
// its configuration (nginx -t), then runs nginx in it (chroot) on a loopback port:
// it serves the image's static page and its /healthz, and a conf.d server added the
// way an app mounts one.
func TestNginxImageServes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	rc := nginxRecipe()
	root := unpackRecipe(t, rc, testStandin(t), false)
	// A container has /dev/stdout; the bare chroot gets a file in its place.
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dev", "stdout"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chroot", root, "/usr/sbin/nginx", "-t").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t in the image: %v\n%s", err, out)
	}

	// Serve on free loopback ports: the default server, and an app's server.
	ports := freePorts(t, 2)
	def := strings.Replace(string(nginxDefault), "listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", ports[0]), 1)
	app := fmt.Sprintf("server {\n listen 127.0.0.1:%d;\n root /srv/app;\n}\n", ports[1])
	for name, content := range map[string]string{"etc/nginx/conf.d/default.conf": def, "etc/nginx/conf.d/app.conf": app, "srv/app/index.html": "<h1>app</h1>\n"} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	cmd := exec.Command("chroot", append([]string{root, rc.cfg.Entrypoint[0]}, rc.cfg.Cmd...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Logf("nginx stopped: %v", err)
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Logf("nginx killed: %v", <-done)
		}
	}()
	for _, c := range []struct {
		port       int
		path, want string
	}{{ports[0], "/healthz", "ok"}, {ports[0], "/", "sitectl lab nginx"}, {ports[1], "/", "<h1>app</h1>"}} {
		body, err := getRetry(fmt.Sprintf("http://127.0.0.1:%d%s", c.port, c.path))
		if err != nil || !strings.Contains(body, c.want) {
			t.Errorf("GET :%d%s = %q, %v; want %q\nnginx output:\n%s", c.port, c.path, body, err, c.want, logs.String())
		}
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// getRetry GETs url until it answers 200 (nginx is starting), for at most 10 s.
func getRetry(url string) (string, error) {
	var last error
	for range 100 {
		resp, err := http.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b), nil
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return "", last
}
