package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// DefaultMaxUpload is the default model upload limit.
const DefaultMaxUpload = 512 << 20

// modelsDir is where model files live, relative to the artifact directory.
const modelsDir = "models"

// modelStore is what registering a model needs.
type modelStore interface {
	ArtifactDir() string
	ModelBySHA(ctx context.Context, sha string) (store.Model, error)
	CreateModel(ctx context.Context, m store.Model) (store.Model, bool, error)
	CreateConversion(ctx context.Context, c store.Conversion) (store.Conversion, error)
	DeleteModel(ctx context.Context, id int64) ([]string, error)
}

// layerRow is one stored row of a model's architecture table: nn's layer
// summary plus the BN layers' |γ| values for the histogram.
type layerRow struct {
	nn.LayerInfo
	GammaAbs []float32 `json:"gamma_abs,omitempty"`
	// A mask node's kind and values (mask-trained models).
	MaskKind   string    `json:"mask_kind,omitempty"`
	MaskValues []float32 `json:"mask_values,omitempty"`
}

// modelExts are the file extensions kept for uploaded models.
var modelExts = map[string]bool{".safetensors": true, ".pth": true, ".pt": true, ".ckpt": true, ".bin": true, ".tar": true}

// addModel streams src (at most limit bytes) into a temporary file in the
// artifact directory, validates it with modelio.Load, and stores it. A file
// that is too large, unreadable or not a model is refused and leaves nothing
// behind: no row, no file. A network already stored (same source hash) is
// returned with created = false.
//
// check, when not nil, is given a newly stored network with residual blocks
// for the RM equivalence check.
func addModel(ctx context.Context, db modelStore, src io.Reader, filename, name string, limit int64, check func(store.Model, *nn.Graph)) (m store.Model, created bool, err error) {
	dir := db.ArtifactDir()
	ext := strings.ToLower(filepath.Ext(filename))
	if !modelExts[ext] {
		ext = ""
	}
	tmp, err := os.CreateTemp(dir, uploadPattern+ext)
	if err != nil {
		return store.Model{}, false, fmt.Errorf("upload: %w", err)
	}
	tmpPath := tmp.Name()
	keep := ""
	defer func() {
		if keep != tmpPath {
			os.Remove(tmpPath)
		}
	}()
	n, err := io.Copy(tmp, io.LimitReader(src, limit+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return store.Model{}, false, errStatus(http.StatusRequestEntityTooLarge,
				fmt.Sprintf("%s: larger than the upload limit of %s", filename, fmtBytes(limit)))
		}
		return store.Model{}, false, errStatus(http.StatusBadRequest, fmt.Sprintf("%s: upload failed: %v", filename, err))
	}
	if n > limit {
		return store.Model{}, false, errStatus(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("%s: larger than the upload limit of %s", filename, fmtBytes(limit)))
	}
	if n == 0 {
		return store.Model{}, false, errStatus(http.StatusUnprocessableEntity, filename+": the file is empty")
	}
	g, err := safeLoad(tmpPath)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), tmpPath, filename)
		return store.Model{}, false, errStatus(http.StatusUnprocessableEntity, "not a usable model file: "+msg)
	}
	in := g.InputShape()
	sum, err := safeSummarize(g, in)
	if err != nil {
		return store.Model{}, false, errStatus(http.StatusUnprocessableEntity, filename+": "+err.Error())
	}
	sha := g.SourceSHA256
	if g.Recipe != "" || !isHex64(sha) {
		sha = nn.SourceSHA256(g.StateDict())
	}
	if old, err := db.ModelBySHA(ctx, sha); err == nil {
		return old, false, nil
	}
	if ext == "" {
		ext = sniffExt(tmpPath)
	}
	rel := filepath.Join(modelsDir, sha[:16]+ext)
	final := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return store.Model{}, false, fmt.Errorf("upload: %w", err)
	}
	if err := os.Rename(tmpPath, final); err != nil {
		return store.Model{}, false, fmt.Errorf("upload: %w", err)
	}
	keep = tmpPath
	rows := make([]layerRow, len(sum.Layers))
	for i, l := range sum.Layers {
		rows[i].LayerInfo = l
		if l.Op == nn.OpBatchNorm {
			if nd := g.Node(l.Name); nd != nil {
				for _, v := range nd.P("weight") {
					rows[i].GammaAbs = append(rows[i].GammaAbs, float32(math.Abs(float64(v))))
				}
			}
		}
		if l.Op == nn.OpMask {
			if nd := g.Node(l.Name); nd != nil {
				rows[i].MaskKind = nn.MaskKind(g, nd)
				rows[i].MaskValues = nd.P("weight")
			}
		}
	}
	layers, err := json.Marshal(rows)
	if err != nil {
		os.Remove(final)
		return store.Model{}, false, fmt.Errorf("upload: %w", err)
	}
	if name = cleanName(name); name == "" {
		name = cleanName(strings.TrimSuffix(filepath.Base(filename), filepath.Ext(filename)))
	}
	if name == "" {
		name = "model"
	}
	m, created, err = db.CreateModel(ctx, store.Model{
		Name: name, Arch: g.Arch, Params: sum.Params, MACs: sum.MACs, FLOPs: sum.FLOPs, SourceSHA256: sha,
		Path: rel, SizeBytes: n, InputShape: in.String(), Classes: g.Classes, Layers: layers,
	})
	if err != nil || !created {
		os.Remove(final)
		return m, false, err
	}
	if g.HasResidual() && check != nil {
		check(m, g)
	}
	return m, true, nil
}

// uploadPattern names the temporary files of uploads in progress.
const uploadPattern = ".upload-*"

// RemoveStaleUploads deletes the partial uploads a crashed or killed server
// left in the artifact directory dir. Call it at start-up, once the listener
// is bound (one server per database, as for interrupted sweeps). It returns
// the number of files removed and their bytes.
func RemoveStaleUploads(dir string) (n int, bytes int64, err error) {
	paths, err := filepath.Glob(filepath.Join(dir, uploadPattern))
	if err != nil {
		return 0, 0, fmt.Errorf("upload: %w", err)
	}
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := os.Remove(p); err != nil {
			return n, bytes, fmt.Errorf("upload: remove stale %s: %w", p, err)
		}
		n++
		bytes += fi.Size()
	}
	return n, bytes, nil
}

// convertReport applies RM (folded deploy form) and measures the
// equivalence on a random batch with the reference forward. Networks above
// blockwiseAbove parameters are checked one group of blocks at a time
// (convertReportBlockwise), which gives the same report without holding the
// whole dense RMNet.
func convertReport(g *nn.Graph, in nn.Shape) (store.Conversion, error) {
	if paramFloats(g) > blockwiseAbove {
		return convertReportBlockwise(g, in)
	}
	return convertReportWhole(g, in)
}

// convertReportWhole is convertReport on the whole network at once.
func convertReportWhole(g *nn.Graph, in nn.Shape) (c store.Conversion, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rm: %v", r)
		}
	}()
	res, err := rm.Convert(g, rm.Options{})
	if err != nil {
		return c, err
	}
	rep, err := rm.Compare(g, res.Graph, rm.RandomInput(2, in, 1))
	if err != nil {
		return c, err
	}
	src := "folded (needs no statistics)"
	return store.Conversion{Form: "rmnet", MaxAbsErr: rep.MaxAbsErr, MaxRelErr: rep.MaxRelErr,
		ParamsSource: rep.ParamsBefore, ParamsBefore: rep.ParamsBefore, ParamsAfter: rep.ParamsAfter,
		MACsBefore: rep.MACsBefore, MACsAfter: rep.MACsAfter, FLOPsBefore: rep.FLOPsBefore, FLOPsAfter: rep.FLOPsAfter,
		ChannelsBefore: int64(rep.ChannelsBefore), ChannelsAfter: int64(rep.ChannelsAfter), StatsSource: src}, nil
}

// safeLoad is modelio.Load that turns a loader panic on a hostile file into an error.
func safeLoad(path string) (g *nn.Graph, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, fmt.Errorf("%s: malformed model file (%v)", path, r)
		}
	}()
	return modelio.Load(path, modelio.Options{})
}

// safeLoadArch is safeLoad with an architecture override.
func safeLoadArch(path, arch string) (g *nn.Graph, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, fmt.Errorf("%s: malformed model file (%v)", path, r)
		}
	}()
	return modelio.Load(path, modelio.Options{Arch: arch})
}

func safeSummarize(g *nn.Graph, in nn.Shape) (s *nn.Summary, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("malformed network (%v)", r)
		}
	}()
	return g.Summarize(in)
}

// sniffExt names a model file's format by its first bytes.
func sniffExt(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ".bin"
	}
	defer f.Close()
	head := make([]byte, 9)
	n, _ := io.ReadFull(f, head)
	switch {
	case n >= 2 && (bytes.HasPrefix(head, []byte("PK")) || head[0] == 0x80):
		return ".pth"
	case n == 9 && head[8] == '{':
		return ".safetensors"
	}
	return ".bin"
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// cleanName keeps a display name printable and short.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 80 {
		s = string(r[:80])
	}
	return s
}

// removeModelFiles deletes the files of a deleted model (paths relative to
// the artifact directory; anything that would leave it is ignored) and the
// emptied sweep directories.
func removeModelFiles(dir string, paths []string, sweepIDs []int64) {
	for _, p := range paths {
		if full, ok := inside(dir, p); ok {
			os.Remove(full)
		}
	}
	for _, id := range sweepIDs {
		os.Remove(filepath.Join(dir, sweep.SweepDir(id))) // only when empty
	}
}

// inside resolves a stored path against dir and refuses one outside it.
func inside(dir, p string) (string, bool) {
	if p == "" {
		return "", false
	}
	if filepath.IsAbs(p) {
		rel, err := filepath.Rel(dir, p)
		if err != nil || !filepath.IsLocal(rel) {
			return "", false
		}
		return p, true
	}
	if !filepath.IsLocal(p) {
		return "", false
	}
	return filepath.Join(dir, p), true
}

// DemoOptions describe the demo installed into a new database.
type DemoOptions struct {
	Model   []byte // the model file
	Name    string // its display name
	Dataset string // the demo sweep's dataset name
	Ratios  []float64
	Limit   int // test images evaluated
	// FinetuneEpochs and FinetuneLimit give every pruned point a short
	// fine-tune (0 epochs: none).
	FinetuneEpochs, FinetuneLimit int
}

// InstallDemo registers the demo model and queues the small demo sweep, once
// per database: later calls (later starts) do nothing and return created =
// false.
func InstallDemo(ctx context.Context, db *store.DB, opt DemoOptions) (sweepID int64, created bool, err error) {
	if _, err := db.Meta(ctx, store.MetaDemoInstalled); err == nil {
		return 0, false, nil
	}
	// The embedded demo is small: check it now, before its sweep is queued.
	check := func(m store.Model, g *nn.Graph) { storeRMCheck(ctx, db, convertReport, m, g) }
	m, _, err := addModel(ctx, db, bytes.NewReader(opt.Model), "demo.safetensors", opt.Name, int64(len(opt.Model)), check)
	if err != nil {
		return 0, false, fmt.Errorf("demo: %w", err)
	}
	first, err := db.SetMetaIfAbsent(ctx, store.MetaDemoInstalled, fmt.Sprint(m.ID))
	if err != nil || !first {
		return 0, false, err
	}
	cfg := sweep.Config{Dataset: opt.Dataset, Ratios: opt.Ratios, Limit: opt.Limit,
		FinetuneEpochs: opt.FinetuneEpochs, FinetuneLimit: opt.FinetuneLimit}
	cfg.Defaults()
	s, err := db.CreateSweep(ctx, cfg.Sweep(m.ID))
	if err != nil {
		return 0, false, fmt.Errorf("demo: %w", err)
	}
	return s.ID, true, nil
}
