package images

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/moby/client"
)

// Engine is what loading needs from an engine client.
type Engine interface {
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
	ImageLoad(ctx context.Context, input io.Reader, loadOpts ...client.ImageLoadOption) (client.ImageLoadResult, error)
	ImageRemove(ctx context.Context, imageID string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
}

// Missing returns the images the engine does not hold at their current key.
func Missing(ctx context.Context, e Engine, images []Built) ([]Built, error) {
	res, err := e.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return nil, err
	}
	have := map[string]string{} // ref -> key
	for _, im := range res.Items {
		for _, t := range im.RepoTags {
			have[t] = im.Labels[LabelKey]
		}
	}
	var out []Built
	for _, b := range images {
		if have[b.Ref] != b.Key {
			out = append(out, b)
		}
	}
	return out, nil
}

// Load loads the images into the engine in one `docker load` (docker save format:
// shared layers are sent once), then removes the lab images left untagged (the
// earlier builds the new ones replaced), which would otherwise pile up with every
// rebuild, hundreds of MB per engine; one a container still uses is left for a later
// load. It returns the number of images loaded.
func Load(ctx context.Context, e Engine, images []Built) (int, error) {
	missing, err := Missing(ctx, e, images)
	if err != nil {
		return 0, err
	}
	if len(missing) > 0 {
		if err := load(ctx, e, missing); err != nil {
			return 0, err
		}
	}
	// Listed after the load: an untagged image the load tags again is not stale.
	res, err := e.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("dangling", "true").Add("label", LabelKey)})
	if err != nil {
		return 0, err
	}
	for _, im := range res.Items {
		// Without force the engine refuses an image a container uses.
		_, _ = e.ImageRemove(ctx, im.ID, client.ImageRemoveOptions{PruneChildren: true})
	}
	return len(missing), nil
}

func load(ctx context.Context, e Engine, missing []Built) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeBundle(pw, missing)) }()
	resp, err := e.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		pr.CloseWithError(err)
		return err
	}
	defer func() { _ = resp.Close() }()
	// The answer is a JSON message stream; an error is in an "error" field.
	dec := json.NewDecoder(resp)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("docker load: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("docker load: %s", msg.Error)
		}
	}
	return nil
}

// writeBundle writes a docker-save tarball: manifest.json, one config per image and
// each distinct layer once.
func writeBundle(w io.Writer, images []Built) error {
	tw := tar.NewWriter(w)
	type manifestEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []manifestEntry
	written := map[string]bool{}
	for _, b := range images {
		sum := sha256.Sum256(b.config)
		cfgName := hex.EncodeToString(sum[:]) + ".json"
		if err := writeBytes(tw, cfgName, b.config); err != nil {
			return err
		}
		layerDir := strings.TrimPrefix(b.DiffID, "sha256:")
		layerName := layerDir + "/layer.tar"
		if !written[layerName] {
			written[layerName] = true
			f, err := os.Open(b.Layer)
			if err != nil {
				return err
			}
			fi, err := f.Stat()
			if err != nil {
				_ = f.Close()
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: layerDir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
				_ = f.Close()
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: layerName, Typeflag: tar.TypeReg, Mode: 0o644, Size: fi.Size(), ModTime: epoch}); err != nil {
				_ = f.Close()
				return err
			}
			_, err = io.Copy(tw, f)
			_ = f.Close()
			if err != nil {
				return err
			}
		}
		manifest = append(manifest, manifestEntry{Config: cfgName, RepoTags: []string{b.Ref}, Layers: []string{layerName}})
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := writeBytes(tw, "manifest.json", mb); err != nil {
		return err
	}
	return tw.Close()
}

func writeBytes(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}
