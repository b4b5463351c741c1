package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/lab/images"
)

// A golden engine data root holds every lab image, loaded once by a throwaway dockerd
// and kept in the image cache. Each node's data root starts as a hard-link copy of it
// (see seedDataRoot): image layers are never written in place (containers write to
// their own upper dirs), so the engines share the bytes, a warm lab up loads nothing,
// and lab down frees no image data. Only the image store (image/, overlay2/) is kept.
var goldenParts = []string{"image", "overlay2"}

// goldenKey names the golden data root of a set of built images.
func goldenKey(built []images.Built) string {
	h := sha256.New()
	for _, b := range built {
		fmt.Fprintf(h, "%s %s %s\n", b.Ref, b.Key, b.DiffID)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// golden returns the golden data root for the images, making it when missing.
func (u *upper) golden(ctx context.Context, built []images.Built) (string, error) {
	dir := filepath.Join(u.opts.ImageCache, "engine-"+goldenKey(built))
	done := filepath.Join(dir, ".complete")
	if _, err := os.Stat(done); err == nil {
		return dir, nil
	}
	unlock, err := flock(filepath.Join(u.opts.ImageCache, ".engine.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(done); err == nil {
		return dir, nil
	}
	start := time.Now()
	// A throwaway engine in a namespace of this lab (recorded, so a crash here is
	// cleaned by lab down like the rest).
	ns := u.layout.Prefix + "-imgload"
	if err := u.ensureNamespace(ctx, ns); err != nil {
		return "", err
	}
	defer func() {
		_, _ = killLab(context.Background(), nil, []string{ns})
		if runIP(context.Background(), "netns", "del", ns) == nil {
			removeResolvConf(ns)
			u.state.Namespaces = removeString(u.state.Namespaces, ns)
			_ = u.save()
		}
	}()
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	node := &NodeLayout{
		Name: "imgload", NS: ns, Dir: filepath.Join(u.dir(), "imgload"),
		Socket: filepath.Join(u.dir(), "imgload", "docker.sock"),
		Bip:    "172.16.99.1/24", Pool: "172.30.0.0/16", CgroupParent: u.layout.Prefix + "-imgload",
	}
	ready, err := u.launchDockerdAt(ctx, node, filepath.Join(tmp, "data"))
	if err != nil {
		return "", err
	}
	if err := ready(); err != nil {
		return "", fmt.Errorf("image loading engine: %w", err)
	}
	c, err := newEngineClient(node.Socket)
	if err != nil {
		return "", err
	}
	n, err := images.Load(ctx, c, built)
	_ = c.Close()
	if err != nil {
		return "", fmt.Errorf("load images into the golden engine: %w", err)
	}
	if p := u.state.process("dockerd imgload"); p != nil {
		_ = syscall.Kill(p.PID, syscall.SIGTERM)
		deadline := time.Now().Add(10 * time.Second)
		for p.Alive() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	u.state.Processes = removeProcess(u.state.Processes, "dockerd imgload")
	_ = os.RemoveAll(node.Dir)
	// Keep only the image store.
	entries, _ := os.ReadDir(filepath.Join(tmp, "data"))
	for _, e := range entries {
		keep := false
		for _, k := range goldenParts {
			keep = keep || e.Name() == k
		}
		if !keep {
			_ = os.RemoveAll(filepath.Join(tmp, "data", e.Name()))
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	u.p.Infof("golden engine data root %s: %d image(s) loaded in %s", dir, n, time.Since(start).Round(10*time.Millisecond))
	// Older golden roots are dropped once no lab can still use them: running labs'
	// engines link into the root they started from, so only roots unused for a day go.
	old, _ := filepath.Glob(filepath.Join(u.opts.ImageCache, "engine-*"))
	for _, o := range old {
		fi, err := os.Stat(filepath.Join(o, ".complete"))
		if o != dir && err == nil && time.Since(fi.ModTime()) > 24*time.Hour && !goldenInUse(o) {
			_ = os.RemoveAll(o)
		}
	}
	return dir, nil
}

// goldenInUse reports whether a node data root of any lab on this machine links into
// the golden root.
func goldenInUse(golden string) bool {
	links, _ := filepath.Glob(filepath.Join(filepath.Dir(DefaultStateDir), "*", "nodes", "*", "data", "overlay2", "*", "diff"))
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && strings.HasPrefix(t, golden+"/") {
			return true
		}
	}
	return false
}

// seedDataRoot gives a node's new data root the golden image store: the image
// metadata is copied, and each overlay2 layer gets its own dir whose diff/ is a
// symlink to the golden layer's (read-only in use: containers write to upper dirs of
// their own). A few hundred small writes instead of thousands of files per engine.
func seedDataRoot(golden, dataRoot string) error {
	if _, err := os.Stat(dataRoot); err == nil {
		return nil // the engine has its own already
	}
	src := filepath.Join(golden, "data")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(dataRoot, rel)
		// overlay2/<layer>/diff: link, do not copy.
		if parts := strings.Split(rel, string(filepath.Separator)); len(parts) == 3 && parts[0] == "overlay2" && parts[2] == "diff" && d.IsDir() {
			if err := os.Symlink(p, dst); err != nil {
				return err
			}
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(dst, info.Mode().Perm())
		case info.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, dst)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed engine data root %s: %w", dataRoot, err)
	}
	return nil
}

func removeProcess(ps []Process, name string) []Process {
	out := ps[:0]
	for _, p := range ps {
		if p.Name != name {
			out = append(out, p)
		}
	}
	return out
}

func removeString(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
