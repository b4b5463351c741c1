package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Module is the Go module the stand-in is built from.
const Module = "github.com/sitectl/sitectl"

// Builder builds the lab images into a cache dir.
type Builder struct {
	// CacheDir keeps built layers between labs (e.g. /var/cache/sitectl/lab-images).
	CacheDir string
	// SourceDirs are where to look for the sitectl source (for the stand-in binary):
	// each dir and its parents are searched for sitectl's go.mod.
	SourceDirs []string
	// Log receives one line per image built (nil: silent).
	Log func(format string, args ...any)
}

// Built is one image ready to load.
type Built struct {
	Spec
	Key    string `json:"key"`
	Layer  string `json:"layer"`   // layer tar in the cache
	DiffID string `json:"diff_id"` // sha256:<hex> of the layer tar
	Size   int64  `json:"size"`
	// Cached is true when the layer was already in the cache.
	Cached bool   `json:"cached"`
	config []byte // image config JSON
}

func (b *Builder) logf(format string, args ...any) {
	if b.Log != nil {
		b.Log(format, args...)
	}
}

// BuildAll builds (or finds in the cache) every image of the catalog.
func (b *Builder) BuildAll(ctx context.Context) ([]Built, error) {
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("image cache %s: %w", b.CacheDir, err)
	}
	standin, standinHash, err := b.standinBinary(ctx)
	if err != nil {
		return nil, err
	}
	var out []Built
	for _, rc := range recipes() {
		key, err := rc.key(standinHash)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", rc.spec.Logical, err)
		}
		layer := filepath.Join(b.CacheDir, rc.spec.Logical+"-"+key+".tar")
		built, err := b.layer(layer, rc.spec.Logical, func(r *rootfs) error {
			if err := rc.build(r, standin); err != nil {
				return err
			}
			return r.addLibraries()
		})
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", rc.spec.Logical, err)
		}
		built.Spec = rc.spec
		built.Key, built.config = finalConfig(rc.cfg, built.DiffID, key, rc.spec)
		out = append(out, built)
	}
	layer := filepath.Join(b.CacheDir, "standin-layer-"+standinHash[:16]+".tar")
	sb, err := b.layer(layer, "standin", func(r *rootfs) error { standinRootfs(r, standin); return nil })
	if err != nil {
		return nil, fmt.Errorf("stand-in image: %w", err)
	}
	for _, sp := range Catalog() {
		if sp.Real {
			continue
		}
		x := sb
		x.Spec = sp
		x.Key, x.config = finalConfig(standinConfig(sp.Logical), sb.DiffID, standinHash[:16], sp)
		out = append(out, x)
	}
	pruneCache(b.CacheDir, standin, out)
	return out, nil
}

// pruneCache removes layers and stand-in binaries of older builds. Golden engine
// stores (engine-*) are the lab's to manage: running labs link into them.
func pruneCache(dir, standin string, current []Built) {
	keep := map[string]bool{standin: true}
	for _, b := range current {
		keep[b.Layer], keep[b.Layer+".diffid"] = true, true
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "engine-") || strings.HasSuffix(e.Name(), ".tmp") || keep[p] {
			continue
		}
		if strings.HasSuffix(e.Name(), ".tar") || strings.HasSuffix(e.Name(), ".diffid") || strings.HasPrefix(e.Name(), "standin-") {
			_ = os.Remove(p)
		}
	}
}

// layer returns the cached layer at path, building it under a lock when missing.
func (b *Builder) layer(path, name string, fill func(*rootfs) error) (Built, error) {
	if bt, ok := readLayer(path); ok {
		bt.Cached = true
		return bt, nil
	}
	unlock, err := flock(filepath.Join(b.CacheDir, "."+name+".lock"))
	if err != nil {
		return Built{}, err
	}
	defer unlock()
	if bt, ok := readLayer(path); ok { // another builder finished it meanwhile
		bt.Cached = true
		return bt, nil
	}
	start := time.Now()
	r := newRootfs()
	if err := fill(r); err != nil {
		return Built{}, err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return Built{}, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	if err := r.writeTar(cw); err != nil {
		_ = f.Close()
		os.Remove(tmp)
		return Built{}, err
	}
	if err := f.Close(); err != nil {
		return Built{}, err
	}
	diff := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if err := os.WriteFile(path+".diffid", []byte(diff), 0o644); err != nil {
		return Built{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return Built{}, err
	}
	b.logf("built %s layer: %d files, %.1f MB in %s", name, len(r.files), float64(cw.n)/1e6, time.Since(start).Round(time.Millisecond))
	return Built{Layer: path, DiffID: diff, Size: cw.n}, nil
}

func readLayer(path string) (Built, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return Built{}, false
	}
	d, err := os.ReadFile(path + ".diffid")
	if err != nil || !strings.HasPrefix(string(d), "sha256:") {
		return Built{}, false
	}
	return Built{Layer: path, DiffID: string(d), Size: fi.Size()}, true
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// finalConfig returns the image's key (the layer's key and its config together, so a
// changed config reloads the image) and its config carrying that key.
func finalConfig(c config, diffID, layerKey string, sp Spec) (string, []byte) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", layerKey)
	h.Write(imageConfig(c, diffID, "", sp))
	key := hex.EncodeToString(h.Sum(nil))[:16]
	return key, imageConfig(c, diffID, key, sp)
}

// imageConfig renders the image config JSON docker load reads.
func imageConfig(c config, diffID, key string, sp Spec) []byte {
	ports := map[string]struct{}{}
	for _, p := range c.ExposedPorts {
		ports[p] = struct{}{}
	}
	kind := "real"
	if !sp.Real {
		kind = "standin"
	}
	cc := map[string]any{
		"Env":          c.Env,
		"Entrypoint":   c.Entrypoint,
		"Cmd":          c.Cmd,
		"ExposedPorts": ports,
		"WorkingDir":   c.WorkingDir,
		"Labels": map[string]string{
			LabelKey:                               key,
			LabelKind:                              kind,
			"org.opencontainers.image.description": "sitectl lab image for " + sp.Logical + ": " + sp.Source,
		},
	}
	if c.StopSignal != "" {
		cc["StopSignal"] = c.StopSignal
	}
	if c.Healthcheck != nil {
		cc["Healthcheck"] = map[string]any{
			"Test": append([]string{"CMD"}, c.Healthcheck...),
			// Generous: on a loaded 2-core machine a first start takes seconds.
			"Interval": int64(5 * time.Second), "Timeout": int64(10 * time.Second), "Retries": 5,
			"StartPeriod": int64(60 * time.Second),
		}
	}
	doc := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       cc,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history":      []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "sitectl lab images (" + sp.Source + ")"}},
	}
	b, _ := json.Marshal(doc)
	return b
}

// Labels on every lab image.
const (
	LabelKey  = "org.sitectl.lab.key"
	LabelKind = "org.sitectl.lab.kind" // real | standin
)

// standinBinary builds lab/standin statically (CGO_ENABLED=0), cached by the hash of
// its sources, and returns its path and that hash.
func (b *Builder) standinBinary(ctx context.Context) (string, string, error) {
	src, err := findSource(b.SourceDirs)
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	files, _ := filepath.Glob(filepath.Join(src, "lab", "standin", "*.go"))
	sort.Strings(files)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return "", "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(data))
		h.Write(data)
	}
	// Of go.mod only what the stand-in is built with: the Go version and the one
	// module it imports (other modules coming and going must not rebuild every image).
	mod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return "", "", err
	}
	for _, l := range strings.Split(string(mod), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "go ") || strings.HasPrefix(l, "toolchain ") || strings.Contains(l, "go.mongodb.org/mongo-driver/v2 ") {
			fmt.Fprintln(h, l)
		}
	}
	hash := hex.EncodeToString(h.Sum(nil))
	out := filepath.Join(b.CacheDir, "standin-"+hash[:16])
	if _, err := os.Stat(out); err == nil {
		return out, hash, nil
	}
	unlock, err := flock(filepath.Join(b.CacheDir, ".standin.lock"))
	if err != nil {
		return "", "", err
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		return out, hash, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		if _, serr := os.Stat("/usr/local/go/bin/go"); serr == nil {
			goBin = "/usr/local/go/bin/go"
		} else {
			return "", "", errors.New("building the lab stand-in needs the Go toolchain (go on PATH or /usr/local/go/bin/go)")
		}
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags", "-s -w", "-o", out+".tmp", "./lab/standin")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build lab stand-in: %w: %s", err, strings.TrimSpace(string(o)))
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return "", "", err
	}
	b.logf("built stand-in binary %s", out)
	return out, hash, nil
}

// findSource finds the sitectl source tree from dirs (and their parents), then the
// working directory.
func findSource(dirs []string) (string, error) {
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	for _, d := range dirs {
		d, _ = filepath.Abs(d)
		for ; ; d = filepath.Dir(d) {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && strings.Contains(string(b), "module "+Module+"\n") {
				if _, err := os.Stat(filepath.Join(d, "lab", "standin")); err == nil {
					return d, nil
				}
			}
			if d == "/" || d == "." {
				break
			}
		}
	}
	return "", fmt.Errorf("cannot find the sitectl source (go.mod of %s with lab/standin) to build the lab stand-in; run sitectl from the repository", Module)
}

// flock takes an exclusive lock on path, waiting for it.
func flock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); _ = f.Close() }, nil
}
