package sweep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rmprune/rmprune/internal/atomicfile"
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

// WriteFiles writes a point's artifacts into sweep sweepID's directory under
// root (a store's ArtifactDir), each atomically, and describes them (paths
// relative to root). On error nothing it wrote is left.
func WriteFiles(root string, sweepID int64, files []File) (map[string]store.Artifact, error) {
	rel := SweepDir(sweepID)
	if err := os.MkdirAll(filepath.Join(root, rel), 0o750); err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	out := map[string]store.Artifact{}
	for _, f := range files {
		if f.Name != SanitizeName(f.Name) {
			removeFiles(root, out)
			return nil, fmt.Errorf("sweep: artifact name %q is not a plain file name", f.Name)
		}
		sum := sha256.Sum256(f.Data)
		if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
			removeFiles(root, out)
			return nil, fmt.Errorf("sweep: artifact %s: sha256 %s, want %s", f.Name, got, f.SHA256)
		}
		relPath := filepath.Join(rel, f.Name)
		if err := atomicfile.Write(filepath.Join(root, relPath), func(w io.Writer) error {
			_, err := w.Write(f.Data)
			return err
		}); err != nil {
			removeFiles(root, out)
			return nil, fmt.Errorf("sweep: write %s: %w", f.Kind, err)
		}
		out[f.Kind] = store.Artifact{Kind: f.Kind, Path: relPath, SizeBytes: int64(len(f.Data)), SHA256: f.SHA256}
	}
	return out, nil
}

// StoreResult stores a computed point of sweep sweepID in db, its
// artifacts written under db.ArtifactDir(). A point the store already holds
// wins: created is false and the stored point is returned (its artifacts
// are written only when it has none). worker names who computed it ("" in
// process).
func StoreResult(ctx context.Context, db *store.DB, sweepID int64, res *PointResult, worker string) (stored store.Point, created bool, err error) {
	p := res.Point
	p.SweepID, p.Worker = sweepID, worker
	files, err := WriteFiles(db.ArtifactDir(), sweepID, res.Files)
	if err != nil {
		return store.Point{}, false, err
	}
	stored, created, err = db.AddPoint(ctx, p)
	if err != nil {
		removeFiles(db.ArtifactDir(), files)
		return store.Point{}, false, fmt.Errorf("sweep: %w", err)
	}
	if !created {
		// Another runner stored this point meanwhile; keep its files if it
		// has them, else ours.
		have, err := db.Artifacts(ctx, stored.ID)
		if err == nil && len(have) > 0 {
			return stored, false, nil
		}
	}
	if err := addArtifacts(ctx, db, stored.ID, files); err != nil {
		return store.Point{}, false, err
	}
	return stored, created, nil
}

// addArtifacts records files as the point's artifacts, in a fixed order.
func addArtifacts(ctx context.Context, db *store.DB, pointID int64, files map[string]store.Artifact) error {
	for _, kind := range []string{store.KindSafetensors, store.KindONNX, store.KindRecipe} {
		a, ok := files[kind]
		if !ok {
			continue
		}
		a.PointID = pointID
		if _, _, err := db.AddArtifact(ctx, a); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
	}
	return nil
}
