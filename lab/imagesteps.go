package lab

import (
	"context"
	"errors"
	"fmt"

	"github.com/sitectl/sitectl/lab/images"
)

// DefaultImageCache is where built lab images are kept between labs.
const DefaultImageCache = "/var/cache/sitectl/lab-images"

// images builds (or finds cached) and loads the lab images into every engine, in
// parallel.
func (u *upper) buildImages(ctx context.Context) error {
	b := &images.Builder{CacheDir: u.opts.ImageCache, SourceDirs: []string{u.opts.ConfigDir}, Log: u.p.Infof}
	var built []images.Built
	if err := u.step("images: build or reuse from "+u.opts.ImageCache, func() error {
		var err error
		if built, err = b.BuildAll(ctx); err != nil {
			return err
		}
		u.goldenDir, err = u.golden(ctx, built)
		return err
	}); err != nil {
		return err
	}
	u.built = built
	u.state.Images = nil
	for _, im := range built {
		u.state.Images = append(u.state.Images, Image{Logical: im.Logical, Ref: im.Ref, Real: im.Real, Source: im.Source})
	}
	return u.save()
}

// loadImages makes sure every engine holds every lab image (engines seeded from the
// golden data root already do; older engines get a docker load).
func (u *upper) loadImages(ctx context.Context) error {
	built := u.built
	var nodes []NodeLayout
	for _, s := range u.layout.Sites {
		nodes = append(nodes, s.Nodes...)
	}
	return u.step(fmt.Sprintf("images: present in %d engine(s)", len(nodes)), func() error {
		errc := make(chan error, len(nodes))
		loaded := make(chan int, len(nodes))
		for _, n := range nodes {
			go func(n NodeLayout) {
				c, err := newEngineClient(n.Socket)
				if err != nil {
					errc <- err
					return
				}
				defer func() { _ = c.Close() }()
				k, err := images.Load(ctx, c, built)
				if err != nil {
					errc <- fmt.Errorf("load images into %s: %w", n.Name, err)
					return
				}
				loaded <- k
				errc <- nil
			}(n)
		}
		var errs []error
		for range nodes {
			if err := <-errc; err != nil {
				errs = append(errs, err)
			}
		}
		close(loaded)
		for k := range loaded {
			if k > 0 {
				u.changed = true
			}
		}
		return errors.Join(errs...)
	})
}
