package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/evaluate"
	"github.com/rmprune/rmprune/internal/version"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

func cmdSweep(e *env, args []string) error {
	f := newFlags(e, "sweep", "--model M --data DATASET --method slim|l1 --ratios 0.1,0.3,... [--scope global|uniform] "+
		"[--form rmnet,resnet] [--min-channels K] [--round-to N] [--finetune-epochs E] [--finetune-limit N] [--train-copies] [--batch N] [--threads N] "+
		"[--limit N] [--db PATH] [--json]",
		"Prune the model at each ratio (RMNet and the ResNet baseline), measure top-1/top-5, latency and\n"+
			"images/s of every point and the unpruned references, and store them with the pruned models in the\n"+
			"workbench database (the dashboard shows the sweep).\nDATASET: "+dataset.Specs+" (a dashboard resumes sweeps on\n"+
			strings.Join(datasetNames(), " and ")+", and on the names it was started with --dataset NAME=SPEC)")
	f.modelFlags()
	data := f.String("data", "", "data set: "+dataset.Specs)
	method := f.String("method", sweep.MethodSlim, "pruning criterion: slim (BN scales) or l1 (filter norms)")
	ratios := f.String("ratios", "", "comma-separated pruning ratios in [0,1) (default 0.1,0.2,…,0.9)")
	scope := f.String("scope", "", "global or uniform (default: slim → global, l1 → uniform)")
	forms := f.String("form", sweep.FormRMNet+","+sweep.FormResNet, "forms to prune: rmnet, resnet or both")
	minCh := f.Int("min-channels", 1, "fewest channels a layer keeps")
	roundTo := f.Int("round-to", 1, "keep a multiple of N channels per layer")
	epochs := f.Int("finetune-epochs", 0, "fine-tune each pruned network for E epochs")
	ftLimit := f.Int("finetune-limit", 0, "fine-tune on the first N training images per epoch (0: all)")
	trainCopies := f.Bool("train-copies", false, "form rmnet: fine-tuning also trains RM's copy filters (default: they stay copies, as the ResNet's identity does)")
	batch := f.Int("batch", 32, "batch for evaluation and images/s")
	limit := f.Int("limit", 0, "evaluate only the first N test images (0: all)")
	dbPath := f.String("db", "", "database file (default "+store.DefaultPath(e.getenv)+")")
	if err := f.parse(args); err != nil || helpAsked(args) {
		return err
	}
	return f.fail(func() error {
		if f.model == "" {
			return errors.New("--model is required")
		}
		if *data == "" {
			return fmt.Errorf("--data is required (%s)", dataset.Specs)
		}
		cfg := sweep.Config{Dataset: *data, Method: *method, Scope: *scope, MinChannels: *minCh, RoundTo: *roundTo,
			FinetuneEpochs: *epochs, FinetuneLimit: *ftLimit, TrainCopies: *trainCopies, Batch: *batch, Threads: f.threads, Limit: *limit}
		for _, s := range strings.Split(*forms, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cfg.Forms = append(cfg.Forms, strings.ToLower(s))
			}
		}
		if *ratios != "" {
			for _, s := range strings.Split(*ratios, ",") {
				v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
				if err != nil || math.IsNaN(v) {
					return fmt.Errorf("--ratios: %q is not a number", s)
				}
				cfg.Ratios = append(cfg.Ratios, v)
			}
		}
		// Guards of 0 mean "not given" to Defaults; refuse them here.
		if *minCh < 1 || *roundTo < 1 || *batch < 1 || f.threads < 1 {
			return errors.New("--min-channels, --round-to, --batch and --threads must be ≥ 1")
		}
		cfg.Defaults()
		runner := &sweep.Runner{Version: version.String()}
		if _, err := runner.DatasetSpec(*data); err != nil {
			// A spec the user typed (e.g. cifar10:DIR) names itself: the
			// terminal user may read files, unlike a web request.
			runner.Datasets = map[string]string{*data: *data}
		}
		if err := runner.Validate(&cfg); err != nil {
			return err
		}
		g, err := f.loadModel()
		if err != nil {
			return err
		}
		if err := cfg.Check(g); err != nil {
			return fmt.Errorf("%s: %w", f.model, err)
		}
		d, err := runner.Dataset(cfg.Dataset) // kept by the runner for the sweep
		if err != nil {
			return err
		}
		if err := evaluate.CheckCompatible(g, d); err != nil {
			return fmt.Errorf("%s on %s: %w", f.model, cfg.Dataset, err)
		}
		path := *dbPath
		if path == "" {
			path = store.DefaultPath(e.getenv)
		}
		db, err := store.Open(e.ctx, path)
		if err != nil {
			return err
		}
		defer db.Close()
		runner.DB = db
		m, err := registerModel(e.ctx, db, f.model, g, f.mean != "" || f.std != "")
		if err != nil {
			return err
		}
		s, err := db.CreateSweep(e.ctx, cfg.Sweep(m.ID))
		if err != nil {
			return err
		}
		// Claim it at once, so that a dashboard on the same database does
		// not pick the queued job up too.
		if err := db.SetSweepStatus(e.ctx, s.ID, store.StatusRunning, ""); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "sweep %d: model %d (%s), %s %s on %s, forms %s, ratios %s, database %s\n",
			s.ID, m.ID, m.Name, cfg.Method, cfg.Scope, cfg.Dataset, strings.Join(cfg.Forms, ","), formatRatios(cfg.PointRatios()), path)
		bar := progressbar.NewOptions(1000,
			progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("sweep"),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(true),
		)
		runErr := runner.Run(e.ctx, s.ID, func(frac float64, msg string) {
			bar.Describe(fmt.Sprintf("%-40.40s", msg))
			bar.Set(int(math.Round(1000 * frac)))
		})
		bar.Finish()
		bg := context.WithoutCancel(e.ctx)
		if runErr != nil {
			done, _ := db.Points(bg, s.ID)
			if e.ctx.Err() != nil {
				return fmt.Errorf("sweep %d cancelled with %d of %d points stored (resume it from the dashboard)",
					s.ID, len(done), len(sweep.Plan(&cfg)))
			}
			return fmt.Errorf("sweep %d failed: %w", s.ID, runErr)
		}
		final, err := db.Sweep(bg, s.ID)
		if err != nil {
			return err
		}
		points, err := db.Points(bg, s.ID)
		if err != nil {
			return err
		}
		rep := sweepReport{ID: s.ID, ModelID: m.ID, Status: final.Status, Progress: final.Progress,
			Database: path, Points: []sweepPoint{}}
		for _, p := range points {
			sp := sweepPoint{ID: p.ID, Form: p.Form, Ratio: p.Ratio, Params: p.Params, MACs: p.MACs, FLOPs: p.FLOPs,
				Top1: p.Top1, Top5: p.Top5, LatencyMSP50: p.LatencyMSP50, LatencyMSP90: p.LatencyMSP90,
				ImagesPerS: p.ImagesPerS, SizeBytes: p.SizeBytes, Artifacts: map[string]string{},
				LatencyMSP25: p.LatencyMSP25, LatencyMSP75: p.LatencyMSP75, LatencyRounds: p.LatencyRounds,
				LatencyUnreliable: p.LatencyUnreliable != "", LatencyNote: p.LatencyUnreliable, Status: p.Status, Error: p.Error}
			arts, err := db.Artifacts(bg, p.ID)
			if err != nil {
				return err
			}
			for _, a := range arts {
				sp.Artifacts[a.Kind] = filepath.Join(db.ArtifactDir(), a.Path)
			}
			rep.Points = append(rep.Points, sp)
		}
		return f.report(rep, func(w io.Writer) { printSweep(w, &rep, points) })
	}())
}

// sweepReport is `sweep --json`: DESIGN's {id, status, points}, plus where things are.
type sweepReport struct {
	ID       int64        `json:"id"`
	ModelID  int64        `json:"model_id"`
	Status   store.Status `json:"status"`
	Progress float64      `json:"progress"`
	Database string       `json:"database"`
	Points   []sweepPoint `json:"points"`
}

type sweepPoint struct {
	ID           int64             `json:"id"`
	Form         string            `json:"form"`
	Ratio        float64           `json:"ratio"`
	Params       int64             `json:"params"`
	MACs         int64             `json:"macs"`
	FLOPs        int64             `json:"flops"`
	Top1         float64           `json:"top1"`
	Top5         float64           `json:"top5"`
	LatencyMSP50 float64           `json:"latency_ms_p50"` // batch 1
	LatencyMSP90 float64           `json:"latency_ms_p90"` // batch 1
	ImagesPerS   float64           `json:"images_per_s"`   // at the sweep batch
	SizeBytes    int64             `json:"size_bytes"`
	Artifacts    map[string]string `json:"artifacts"` // kind → file

	// The interleaved latency pass (sweep/latency.go): quartiles of round medians.
	LatencyMSP25      float64 `json:"latency_ms_p25"`
	LatencyMSP75      float64 `json:"latency_ms_p75"`
	LatencyRounds     int     `json:"latency_rounds"`
	LatencyUnreliable bool    `json:"latency_unreliable"`
	LatencyNote       string  `json:"latency_note,omitempty"`
	// Status is "done", or "refused" by the pruning guards (Error says why).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func printSweep(w io.Writer, r *sweepReport, points []store.Point) {
	fmt.Fprintf(w, "sweep %d %s (model %d, database %s)\n", r.ID, r.Status, r.ModelID, r.Database)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "form\tratio\tparams\tMFLOPs\ttop-1\ttop-5\tp50 ms\tp90 ms\timages/s\t")
	var refused []string
	for _, p := range r.Points {
		if p.Status == store.PointRefused {
			fmt.Fprintf(tw, "%s\t%.2f\trefused\t\t\t\t\t\t\t\n", p.Form, p.Ratio)
			refused = append(refused, fmt.Sprintf("refused %s@%g: %s", p.Form, p.Ratio, p.Error))
			continue
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%d\t%.2f\t%.2f%%\t%.2f%%\t%.3f\t%.3f\t%.0f\t\n", p.Form, p.Ratio, p.Params,
			float64(p.FLOPs)/1e6, 100*p.Top1, 100*p.Top5, p.LatencyMSP50, p.LatencyMSP90, p.ImagesPerS)
	}
	tw.Flush()
	for _, line := range refused {
		fmt.Fprintln(w, line)
	}
	if len(points) > 0 {
		fmt.Fprintf(w, "measured on %s (%s), %d threads, rmprune %s\n", points[0].CPU, points[0].ISA,
			points[0].Threads, points[0].Version)
	}
}

// datasetNames lists the data set names every runner knows.
func datasetNames() []string { return slices.Sorted(maps.Keys(sweep.BuiltinDatasets)) }

// registerModel stores the model file (a copy in the artifact directory) and
// its description in db, or returns the model already stored with the same
// tensors. source_sha256 is the hash of the network's own tensors: a pruned
// file carries its source's hash in its metadata, so it is hashed afresh.
func registerModel(ctx context.Context, db *store.DB, file string, g *nn.Graph, rewrite bool) (store.Model, error) {
	sha := g.SourceSHA256
	if sha == "" || g.Recipe != "" {
		sha = nn.SourceSHA256(g.StateDict())
	}
	base := filepath.Base(file)
	ext := filepath.Ext(base)
	if rewrite { // --mean/--std given: store our own file, which carries them
		ext = ".safetensors"
	}
	rel := filepath.Join("models", sweep.SanitizeName(sha[:12]+"-"+strings.TrimSuffix(base, filepath.Ext(base))+ext))
	save := func(rel string) (int64, error) {
		dst := filepath.Join(db.ArtifactDir(), rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
			return 0, err
		}
		if rewrite {
			if err := modelio.SaveSafetensors(dst, g); err != nil {
				return 0, err
			}
		} else if err := copyFile(dst, file); err != nil {
			return 0, err
		}
		fi, err := os.Stat(dst)
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	if m, err := db.ModelBySHA(ctx, sha); err == nil {
		p := m.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(db.ArtifactDir(), p)
		}
		if _, err := os.Stat(p); err != nil { // the stored copy is gone: restore it
			if _, err := save(m.Path); err != nil {
				return store.Model{}, fmt.Errorf("restore model file %s: %w", p, err)
			}
		}
		return m, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Model{}, err
	}
	sum, err := g.Summarize(g.InputShape())
	if err != nil {
		return store.Model{}, fmt.Errorf("%s: %w", file, err)
	}
	size, err := save(rel)
	if err != nil {
		return store.Model{}, fmt.Errorf("copy %s into %s: %w", file, db.ArtifactDir(), err)
	}
	layers, err := json.Marshal(sum.Layers)
	if err != nil {
		return store.Model{}, err
	}
	name := strings.TrimSuffix(base, filepath.Ext(base))
	if name == "" {
		name = "model"
	}
	m, created, err := db.CreateModel(ctx, store.Model{Name: name, Arch: g.Arch, Params: sum.Params, MACs: sum.MACs,
		FLOPs: sum.FLOPs, SourceSHA256: sha, Path: rel, SizeBytes: size, InputShape: g.InputShape().String(),
		Classes: g.Classes, Layers: layers})
	if err != nil {
		os.Remove(filepath.Join(db.ArtifactDir(), rel))
		return store.Model{}, err
	}
	if !created && m.Path != rel { // stored meanwhile by another process
		os.Remove(filepath.Join(db.ArtifactDir(), rel))
	}
	return m, nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".part"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

func formatRatios(rs []float64) string {
	ss := make([]string, len(rs))
	for i, r := range rs {
		ss[i] = strconv.FormatFloat(r, 'f', -1, 64)
	}
	return strings.Join(ss, ",")
}
