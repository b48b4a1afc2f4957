package sweep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn/onnx"
	"github.com/rmprune/rmprune/store"
)

// ArtifactName returns the file name (without extension) of a point's
// artifacts: "<form>-r<ratio>", e.g. "rmnet-r0.3", reduced to the characters
// [a-z0-9._-] so that it is safe on every file system and in a download's
// Content-Disposition.
func ArtifactName(form string, ratio float64) string {
	return SanitizeName(form + "-r" + formatRatio(store.NormRatio(ratio)))
}

// SanitizeName lowers s and replaces every character outside [a-z0-9._-] by
// "_"; leading dots are dropped and an empty result becomes "file".
func SanitizeName(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.TrimLeft(b.String(), ".")
	if len(out) > 100 {
		out = out[:100]
	}
	if out == "" {
		out = "file"
	}
	return out
}

// SweepDir is the directory, relative to the store's ArtifactDir, that holds
// a sweep's artifacts.
func SweepDir(sweepID int64) string {
	return filepath.Join("sweeps", strconv.FormatInt(sweepID, 10))
}

// writeArtifacts writes point k's model files and recipe into the sweep's
// directory and describes them (paths relative to the artifact directory).
func (j *job) writeArtifacts(k Key, net *network) (map[string]store.Artifact, error) {
	root := j.r.DB.ArtifactDir()
	rel := SweepDir(j.s.ID)
	if err := os.MkdirAll(filepath.Join(root, rel), 0o750); err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	base := filepath.Join(rel, ArtifactName(k.Form, k.Ratio))
	files := map[string]store.Artifact{}
	write := func(kind, relPath string, save func(path string) error) error {
		path := filepath.Join(root, relPath)
		if err := save(path); err != nil {
			os.Remove(path)
			return fmt.Errorf("sweep: write %s: %w", kind, err)
		}
		a, err := describe(root, relPath)
		if err != nil {
			return err
		}
		a.Kind = kind
		files[kind] = a
		return nil
	}
	err := write(store.KindSafetensors, base+".safetensors", func(path string) error {
		return modelio.SaveSafetensors(path, net.g)
	})
	if err == nil {
		err = write(store.KindONNX, base+".onnx", func(path string) error {
			return onnx.WriteFile(path, net.g, onnx.Options{Shape: j.g.InputShape(), ProducerVersion: j.version})
		})
	}
	if err == nil && net.recipe != nil {
		err = write(store.KindRecipe, base+".recipe.json", func(path string) error {
			b, err := json.MarshalIndent(net.recipe, "", "  ")
			if err != nil {
				return err
			}
			return os.WriteFile(path, append(b, '\n'), 0o640)
		})
	}
	if err != nil {
		removeFiles(root, files)
		return nil, err
	}
	return files, nil
}

// describe measures the size and SHA-256 of root/rel.
func describe(root, rel string) (store.Artifact, error) {
	f, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		return store.Artifact{}, fmt.Errorf("sweep: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return store.Artifact{}, fmt.Errorf("sweep: read %s: %w", rel, err)
	}
	return store.Artifact{Path: rel, SizeBytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// addArtifacts records files as the point's artifacts, in a fixed order.
func (j *job) addArtifacts(ctx context.Context, pointID int64, files map[string]store.Artifact) error {
	for _, kind := range []string{store.KindSafetensors, store.KindONNX, store.KindRecipe} {
		a, ok := files[kind]
		if !ok {
			continue
		}
		a.PointID = pointID
		if _, _, err := j.r.DB.AddArtifact(ctx, a); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
	}
	return nil
}
