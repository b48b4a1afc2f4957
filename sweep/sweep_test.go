package sweep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/onnx"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/rm"
	"github.com/rmprune/rmprune/store"
)

// fixture is a database holding a random-weight resnet20 for 1-channel
// 10-class images, registered as a model.
type fixture struct {
	db    *store.DB
	model store.Model
	g     *nn.Graph
}

var (
	netOnce sync.Once
	netPath string
	netErr  error
)

// testNet writes nn.Build("resnet20", 1, 10, 7) once per test binary.
func testNet(t *testing.T) string {
	t.Helper()
	netOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sweeptest")
		if err != nil {
			netErr = err
			return
		}
		g, err := nn.Build("resnet20", 1, 10, 7)
		if err != nil {
			netErr = err
			return
		}
		g.Input = [3]int{1, 28, 28}
		netPath = filepath.Join(dir, "resnet20.safetensors")
		netErr = modelio.SaveSafetensors(netPath, g)
	})
	if netErr != nil {
		t.Fatal(netErr)
	}
	return netPath
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "rmprune.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	src := testNet(t)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db.ArtifactDir(), "model.safetensors"), b, 0o640); err != nil {
		t.Fatal(err)
	}
	g, err := modelio.Load(src, modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := g.Summarize(g.InputShape())
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := db.CreateModel(ctx, store.Model{Name: "resnet20", Arch: g.Arch, Params: sum.Params, MACs: sum.MACs,
		FLOPs: sum.FLOPs, SourceSHA256: nn.SourceSHA256(g.StateDict()), Path: "model.safetensors",
		SizeBytes: int64(len(b)), InputShape: g.InputShape().String(), Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, model: m, g: g}
}

func (f *fixture) sweep(t *testing.T, cfg Config) store.Sweep {
	t.Helper()
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := f.db.CreateSweep(context.Background(), cfg.Sweep(f.model.ID))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	mnistOnce sync.Once
	mnist     *dataset.Dataset
)

// runner returns a Runner on f's database with short timings and the
// smallest calibration batch (the reference forward is slow; without
// statistics a slim ratio on the RMNet form is refused). MNIST is read once per test
// binary and handed to every runner as its last data set.
func (f *fixture) runner() *Runner {
	r := &Runner{DB: f.db, BenchTime: 20 * time.Millisecond, Version: "test", CalibImages: MinCalibImages}
	mnistOnce.Do(func() { mnist, _ = dataset.Open("mnist") })
	if mnist != nil {
		r.lastSpec, r.lastData = "mnist", mnist
	}
	return r
}

func TestRun(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.sweep(t, Config{Dataset: "mnist", Ratios: []float64{0.2, 0.5, 0.8}, Limit: 200, Batch: 16})
	r := f.runner()
	var fracs []float64
	var stored []store.Point
	r.OnPoint = func(p store.Point) { stored = append(stored, p) }
	if err := r.Run(ctx, s.ID, func(frac float64, msg string) { fracs = append(fracs, frac) }); err != nil {
		t.Fatal(err)
	}

	got, err := f.db.Sweep(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusDone || got.Progress != 1 || got.Error != "" {
		t.Errorf("sweep status %s progress %v error %q; want done 1 \"\"", got.Status, got.Progress, got.Error)
	}
	if len(fracs) == 0 || fracs[len(fracs)-1] != 1 || !slices.IsSorted(fracs) {
		t.Errorf("progress fractions %v: want non-decreasing, ending at 1", fracs)
	}
	ps, err := f.db.Points(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 8 || len(stored) != 8 {
		t.Fatalf("got %d points stored (%d reported); want 8 (2 references + 2 forms × 3 ratios)", len(ps), len(stored))
	}
	byKey := map[Key]store.Point{}
	for _, p := range ps {
		byKey[Key{p.Form, p.Ratio}] = p
	}
	for _, form := range []string{FormRMNet, FormResNet} {
		prev := int64(-1)
		for i, ratio := range []float64{0, 0.2, 0.5, 0.8} {
			p, ok := byKey[Key{form, ratio}]
			if !ok {
				t.Fatalf("no point %s@%v", form, ratio)
			}
			if i > 0 && p.Params >= prev {
				t.Errorf("%s@%v: params %d; want fewer than at the previous ratio (%d)", form, ratio, p.Params, prev)
			}
			prev = p.Params
			if p.Top1 < 0 || p.Top1 > 1 || p.Top5 < p.Top1 {
				t.Errorf("%s@%v: top1 %v top5 %v", form, ratio, p.Top1, p.Top5)
			}
			if p.LatencyMSP50 <= 0 || p.LatencyMSP90 < p.LatencyMSP50 || p.ImagesPerS <= 0 {
				t.Errorf("%s@%v: latency p50 %v p90 %v images/s %v", form, ratio, p.LatencyMSP50, p.LatencyMSP90, p.ImagesPerS)
			}
			if p.CPU == "" || p.ISA == "" || p.Threads != s.Threads || p.Version != "test" {
				t.Errorf("%s@%v: env cpu %q isa %q threads %d version %q", form, ratio, p.CPU, p.ISA, p.Threads, p.Version)
			}
			if len(p.Channels) == 0 || len(p.LayerMS) == 0 || p.FLOPs != 2*p.MACs || p.SizeBytes <= 0 {
				t.Errorf("%s@%v: %d channel rows, %d layer times, flops %d macs %d size %d", form, ratio,
					len(p.Channels), len(p.LayerMS), p.FLOPs, p.MACs, p.SizeBytes)
			}
			// RM's copy channels are not computed as MACs; the ResNet has none.
			if (form == "rmnet" && (p.MACsComputed <= 0 || p.MACsComputed >= p.MACs)) || (form == "resnet" && p.MACsComputed != p.MACs) {
				t.Errorf("%s@%v: macs_computed %d, macs %d", form, ratio, p.MACsComputed, p.MACs)
			}
			// Nor by ONNX Runtime with the copy-aware file.
			if (form == "rmnet" && (p.ONNXExport != "copy-aware" || p.MACsONNX <= 0 || p.MACsONNX >= p.MACs)) ||
				(form == "resnet" && (p.ONNXExport != "dense" || p.MACsONNX != p.MACs)) {
				t.Errorf("%s@%v: onnx_export %q, macs_onnx %d, macs %d", form, ratio, p.ONNXExport, p.MACsONNX, p.MACs)
			}
			if ratio > 0 {
				removed := 0
				for _, c := range p.Channels {
					removed += c.Before - c.After
				}
				if removed <= 0 {
					t.Errorf("%s@%v: channels before/after show nothing removed", form, ratio)
				}
			}
			checkArtifacts(t, f, p, ratio > 0)
		}
	}
	// The unpruned references: the model as loaded, and RM (exact) of it.
	res, rmn := byKey[Key{FormResNet, 0}], byKey[Key{FormRMNet, 0}]
	if res.Top1 != rmn.Top1 || res.Top5 != rmn.Top5 {
		t.Errorf("rmnet@0 top1/top5 %v/%v; want resnet@0's %v/%v (RM is exact)", rmn.Top1, rmn.Top5, res.Top1, res.Top5)
	}
	sum, err := f.g.Summarize(f.g.InputShape())
	if err != nil {
		t.Fatal(err)
	}
	if res.Params != sum.Params || res.MACs != sum.MACs {
		t.Errorf("resnet@0 params %d macs %d; want the model's %d %d", res.Params, res.MACs, sum.Params, sum.MACs)
	}
	if rmn.Params <= res.Params {
		t.Errorf("rmnet@0 params %d; want more than resnet@0's %d (reserved channels)", rmn.Params, res.Params)
	}

	// A second Run of a done sweep measures nothing.
	stored = nil
	if err := r.Run(ctx, s.ID, nil); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 0 {
		t.Errorf("second run measured %d points; want 0", len(stored))
	}
}

// checkArtifacts checks that p's files exist with the stored size and hash
// and load back.
func checkArtifacts(t *testing.T, f *fixture, p store.Point, pruned bool) {
	t.Helper()
	as, err := f.db.Artifacts(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]store.Artifact{}
	for _, a := range as {
		kinds[a.Kind] = a
		if filepath.IsAbs(a.Path) || filepath.Clean(a.Path) != a.Path || a.Path[0] == '.' {
			t.Errorf("%s@%v %s: stored path %q; want a clean path relative to the artifact directory", p.Form, p.Ratio, a.Kind, a.Path)
		}
		b, err := os.ReadFile(filepath.Join(f.db.ArtifactDir(), a.Path))
		if err != nil {
			t.Errorf("%s@%v: %v", p.Form, p.Ratio, err)
			continue
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != a.SizeBytes || hex.EncodeToString(sum[:]) != a.SHA256 || len(b) == 0 {
			t.Errorf("%s@%v %s: file of %d bytes, sha %x; stored %d bytes, sha %s", p.Form, p.Ratio, a.Kind,
				len(b), sum[:4], a.SizeBytes, a.SHA256)
		}
	}
	want := []string{store.KindSafetensors, store.KindONNX}
	if pruned {
		want = append(want, store.KindRecipe)
	}
	if len(kinds) != len(want) {
		t.Errorf("%s@%v: artifacts %v; want %v", p.Form, p.Ratio, as, want)
	}
	path := func(kind string) string { return filepath.Join(f.db.ArtifactDir(), kinds[kind].Path) }
	if _, ok := kinds[store.KindSafetensors]; ok {
		g, err := modelio.Load(path(store.KindSafetensors), modelio.Options{})
		if err != nil {
			t.Errorf("%s@%v: safetensors does not load: %v", p.Form, p.Ratio, err)
		} else if sum, err := g.Summarize(f.g.InputShape()); err != nil || sum.Params != p.Params {
			t.Errorf("%s@%v: loaded safetensors has %v params (%v); want %d", p.Form, p.Ratio, sum, err, p.Params)
		} else if pruned && g.Recipe == "" {
			t.Errorf("%s@%v: pruned safetensors carries no recipe", p.Form, p.Ratio)
		}
	}
	if _, ok := kinds[store.KindONNX]; ok {
		if _, err := onnx.ReadFile(path(store.KindONNX)); err != nil {
			t.Errorf("%s@%v: onnx does not decode: %v", p.Form, p.Ratio, err)
		}
	}
	if _, ok := kinds[store.KindRecipe]; ok {
		b, err := os.ReadFile(path(store.KindRecipe))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := pruning.ParseRecipe(b)
		if err != nil {
			t.Errorf("%s@%v: recipe: %v", p.Form, p.Ratio, err)
		} else if rec.Form != p.Form || rec.Ratio == nil || store.NormRatio(*rec.Ratio) != p.Ratio {
			t.Errorf("%s@%v: recipe form %s ratio %v", p.Form, p.Ratio, rec.Form, rec.Ratio)
		}
	}
}

func TestResumeAfterCancel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.sweep(t, Config{Dataset: "mnist", Forms: []string{FormRMNet}, Ratios: []float64{0.3, 0.6}, Limit: 100})
	r := f.runner()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := 0
	r.OnPoint = func(store.Point) {
		if first++; first == 2 {
			cancel()
		}
	}
	err := r.Run(cctx, s.ID, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v; want context.Canceled", err)
	}
	got, _ := f.db.Sweep(ctx, s.ID)
	if got.Status != store.StatusCancelled {
		t.Errorf("status %s; want cancelled", got.Status)
	}
	ps, _ := f.db.Points(ctx, s.ID)
	if len(ps) != 2 {
		t.Fatalf("%d points stored after cancel; want 2", len(ps))
	}
	if got.Progress < 0.5 || got.Progress >= 1 {
		t.Errorf("progress after 2 of 4 points %v; want in [0.5, 1)", got.Progress)
	}

	if err := f.db.ResumeSweep(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	var again []Key
	r.OnPoint = func(p store.Point) { again = append(again, Key{p.Form, p.Ratio}) }
	if err := r.Run(ctx, s.ID, nil); err != nil {
		t.Fatal(err)
	}
	want := []Key{{FormRMNet, 0.3}, {FormRMNet, 0.6}}
	if !slices.Equal(again, want) {
		t.Errorf("resumed run measured %v; want only the missing %v", again, want)
	}
	ps, _ = f.db.Points(ctx, s.ID)
	got, _ = f.db.Sweep(ctx, s.ID)
	if len(ps) != 4 || got.Status != store.StatusDone {
		t.Errorf("after resume: %d points, status %s; want 4, done", len(ps), got.Status)
	}
}

func TestInterruptedCause(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.sweep(t, Config{Dataset: "mnist", Forms: []string{FormRMNet}, Ratios: []float64{0.5}, Limit: 50})
	r := f.runner()
	cctx, cancel := context.WithCancelCause(ctx)
	r.OnPoint = func(store.Point) { cancel(ErrInterrupted) }
	if err := r.Run(cctx, s.ID, nil); err == nil {
		t.Fatal("Run returned nil after cancellation")
	}
	got, _ := f.db.Sweep(ctx, s.ID)
	if got.Status != store.StatusInterrupted {
		t.Errorf("status %s; want interrupted", got.Status)
	}
	rs, _ := f.db.ResumableSweeps(ctx)
	if len(rs) != 1 || rs[0].ID != s.ID {
		t.Errorf("resumable sweeps %v; want sweep %d", rs, s.ID)
	}
}

func TestFinetuneHook(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg := Config{Dataset: "mnist", Forms: []string{FormResNet}, Ratios: []float64{0.5}, Limit: 50, FinetuneEpochs: 2, FinetuneLimit: 700}
	cfg.Defaults()

	// With fine-tuning switched off the configuration is refused, and a
	// stored sweep that asks for it fails with that message.
	r := f.runner()
	r.NoFinetune = true
	if err := r.Validate(&cfg); !errors.Is(err, ErrFinetuneUnavailable) || !errors.Is(err, ErrConfig) {
		t.Errorf("Validate: %v; want ErrFinetuneUnavailable and ErrConfig", err)
	}
	s := f.sweep(t, cfg)
	if err := r.Run(ctx, s.ID, nil); !errors.Is(err, ErrFinetuneUnavailable) {
		t.Errorf("Run: %v; want ErrFinetuneUnavailable", err)
	}
	got, _ := f.db.Sweep(ctx, s.ID)
	if got.Status != store.StatusFailed || got.Error == "" {
		t.Errorf("status %s error %q; want failed with a message", got.Status, got.Error)
	}

	// With one, it runs for the pruned points only, with the sweep's epochs.
	r.NoFinetune = false
	var calls []int
	r.Finetune = func(ctx context.Context, g *nn.Graph, d *dataset.Dataset, opt FinetuneOptions) (*nn.Graph, error) {
		calls = append(calls, opt.Epochs)
		if opt.Limit != 700 {
			t.Errorf("fine-tune limit %d; want the sweep's 700", opt.Limit)
		}
		opt.Progress(0.5)
		return g.Clone(), nil
	}
	if err := f.db.ResumeSweep(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx, s.ID, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(calls, []int{2}) {
		t.Errorf("fine-tune calls %v; want one with 2 epochs", calls)
	}
	ps, _ := f.db.Points(ctx, s.ID)
	if len(ps) != 3 {
		t.Errorf("%d points; want 3", len(ps))
	}
}

func TestRunFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("model file missing", func(t *testing.T) {
		f := newFixture(t)
		s := f.sweep(t, Config{Dataset: "mnist", Ratios: []float64{0.5}, Limit: 10})
		os.Remove(filepath.Join(f.db.ArtifactDir(), "model.safetensors"))
		if err := f.runner().Run(ctx, s.ID, nil); err == nil {
			t.Fatal("Run succeeded without a model file")
		}
		got, _ := f.db.Sweep(ctx, s.ID)
		if got.Status != store.StatusFailed || got.Error == "" {
			t.Errorf("status %s error %q; want failed with a message", got.Status, got.Error)
		}
	})
	t.Run("unknown dataset", func(t *testing.T) {
		f := newFixture(t)
		s := f.sweep(t, Config{Dataset: "imagenet", Ratios: []float64{0.5}})
		err := f.runner().Run(ctx, s.ID, nil)
		if !errors.Is(err, ErrConfig) {
			t.Errorf("Run: %v; want ErrConfig", err)
		}
		got, _ := f.db.Sweep(ctx, s.ID)
		if got.Status != store.StatusFailed {
			t.Errorf("status %s; want failed", got.Status)
		}
	})
	t.Run("no such sweep", func(t *testing.T) {
		f := newFixture(t)
		if err := f.runner().Run(ctx, 99, nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Run: %v; want store.ErrNotFound", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Dataset: "mnist"}, true},
		{"l1", Config{Dataset: "mnist", Method: "L1"}, true},
		{"no dataset", Config{}, false},
		{"unknown method", Config{Dataset: "mnist", Method: "random"}, false},
		{"unknown scope", Config{Dataset: "mnist", Scope: "local"}, false},
		{"unknown form", Config{Dataset: "mnist", Forms: []string{"vgg"}}, false},
		{"form twice", Config{Dataset: "mnist", Forms: []string{"rmnet", "rmnet"}}, false},
		{"ratio 1", Config{Dataset: "mnist", Ratios: []float64{0.5, 1}}, false},
		{"negative ratio", Config{Dataset: "mnist", Ratios: []float64{-0.1}}, false},
		{"ratio 0", Config{Dataset: "mnist", Ratios: []float64{0, 0.5}}, true},
		{"too many ratios", Config{Dataset: "mnist", Ratios: make([]float64, MaxRatios+1)}, false},
		{"negative min channels", Config{Dataset: "mnist", MinChannels: -1}, false},
		{"negative round to", Config{Dataset: "mnist", RoundTo: -8}, false},
		{"negative epochs", Config{Dataset: "mnist", FinetuneEpochs: -1}, false},
		{"negative fine-tune limit", Config{Dataset: "mnist", FinetuneLimit: -1}, false},
		{"negative batch", Config{Dataset: "mnist", Batch: -1}, false},
		{"huge batch", Config{Dataset: "mnist", Batch: MaxBatch + 1}, false},
		{"negative threads", Config{Dataset: "mnist", Threads: -2}, false},
		{"negative limit", Config{Dataset: "mnist", Limit: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.Defaults()
			err := c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v; want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Config{Dataset: "mnist", Method: "l1"}
	c.Defaults()
	if c.Scope != "uniform" || c.MinChannels != 1 || c.RoundTo != 1 || c.Batch != 32 || c.Threads < 1 ||
		c.Limit != 0 || c.FinetuneEpochs != 0 || !slices.Equal(c.Forms, []string{FormRMNet, FormResNet}) ||
		len(c.Ratios) != 9 || store.NormRatio(c.Ratios[2]) != 0.3 {
		t.Errorf("l1 defaults: %+v", c)
	}
	c = Config{Dataset: "mnist"}
	c.Defaults()
	if c.Method != MethodSlim || c.Scope != "global" {
		t.Errorf("default method/scope %s/%s; want slim/global", c.Method, c.Scope)
	}
	// The store keeps what the config says, and it comes back unchanged.
	back := FromSweep(c.Sweep(1))
	back.Defaults()
	if !slices.Equal(back.Forms, c.Forms) || !slices.Equal(back.Ratios, c.Ratios) || back.Method != c.Method ||
		back.Batch != c.Batch || back.Threads != c.Threads {
		t.Errorf("FromSweep(Sweep) = %+v; want %+v", back, c)
	}
	c.Ratios = []float64{0.5, 0, 0.1 + 0.2, 0.3, 0.5}
	if got := c.PointRatios(); !slices.Equal(got, []float64{0.3, 0.5}) {
		t.Errorf("PointRatios = %v; want [0.3 0.5]", got)
	}
	if got := Plan(&Config{Forms: []string{FormRMNet}, Ratios: []float64{0.5}}); !slices.Equal(got,
		[]Key{{FormResNet, 0}, {FormRMNet, 0}, {FormRMNet, 0.5}}) {
		t.Errorf("Plan = %v", got)
	}
}

func TestCheckNeedsResidual(t *testing.T) {
	res, err := rm.Convert(testGraph(t), rm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Dataset: "mnist"}
	c.Defaults()
	if err := c.Check(res.Graph); !errors.Is(err, ErrConfig) {
		t.Errorf("Check(plain net) with form resnet = %v; want ErrConfig", err)
	}
	c.Forms = []string{FormRMNet}
	if err := c.Check(res.Graph); err != nil {
		t.Errorf("Check(plain net) with form rmnet = %v; want nil", err)
	}
	c.Forms = []string{FormResNet}
	if err := c.Check(testGraph(t)); err != nil {
		t.Errorf("Check(resnet20) = %v; want nil", err)
	}
}

func TestCheckGuardsWithinWidths(t *testing.T) {
	g := testGraph(t) // resnet20: widest conv 64 channels
	tests := []struct {
		minChannels, roundTo int
		ok                   bool
	}{
		{1, 1, true}, {63, 1, true}, {1, 63, true}, {64, 1, false}, {1000000, 1, false}, {1, 64, false}, {1, 4096, false},
	}
	for _, tt := range tests {
		c := Config{Dataset: "mnist", MinChannels: tt.minChannels, RoundTo: tt.roundTo}
		c.Defaults()
		err := c.Check(g)
		if (err == nil) != tt.ok || err != nil && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "64 channels")) {
			t.Errorf("min_channels %d round_to %d: got %v; want ok=%v (ErrConfig naming the width)", tt.minChannels, tt.roundTo, err, tt.ok)
		}
	}
}

func testGraph(t *testing.T) *nn.Graph {
	g, err := modelio.Load(testNet(t), modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestDatasets(t *testing.T) {
	r := &Runner{Datasets: map[string]string{"digits": "mnist"}}
	for name, want := range map[string]string{"mnist": "mnist", "fashion-mnist": "fashion-mnist", "digits": "mnist"} {
		if got, err := r.DatasetSpec(name); err != nil || got != want {
			t.Errorf("DatasetSpec(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"", "/etc/passwd", "cifar10:/tmp", "imagenet"} {
		if _, err := r.DatasetSpec(name); !errors.Is(err, ErrConfig) {
			t.Errorf("DatasetSpec(%q): %v; want ErrConfig", name, err)
		}
	}
}

func TestArtifactName(t *testing.T) {
	tests := []struct {
		form  string
		ratio float64
		want  string
	}{
		{"rmnet", 0.3, "rmnet-r0.3"},
		{"resnet", 0, "resnet-r0"},
		{"rmnet", 0.1 + 0.2, "rmnet-r0.3"},
		{"../../etc", 0.5, "_.._etc-r0.5"},
		{"A B/c", 0.125, "a_b_c-r0.125"},
	}
	for _, tt := range tests {
		if got := ArtifactName(tt.form, tt.ratio); got != tt.want {
			t.Errorf("ArtifactName(%q, %v) = %q; want %q", tt.form, tt.ratio, got, tt.want)
		}
	}
}

func TestTrainFinetune(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.sweep(t, Config{Dataset: "mnist", Forms: []string{FormRMNet}, Ratios: []float64{0.5}, Limit: 50,
		FinetuneEpochs: 1})
	r := f.runner()
	r.FinetuneLimit = 256 // two steps of batch 128
	var fracs []float64
	if err := r.Run(ctx, s.ID, func(frac float64, msg string) { fracs = append(fracs, frac) }); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(fracs) {
		t.Errorf("progress %v; want non-decreasing", fracs)
	}
	ps, err := f.db.Points(ctx, s.ID)
	if err != nil || len(ps) != 3 {
		t.Fatalf("points %v, %v; want 3", ps, err)
	}
	a, err := f.db.PointArtifact(ctx, ps[len(ps)-1].ID, store.KindSafetensors)
	if err != nil {
		t.Fatal(err)
	}
	tuned, err := modelio.Load(filepath.Join(f.db.ArtifactDir(), a.Path), modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ratio := 0.5
	src, _, err := withStats(f.g, r.lastData, r.CalibImages) // as the sweep measured them
	if err != nil {
		t.Fatal(err)
	}
	plain, err := pruning.Prune(src, pruning.Options{Method: MethodSlim, Ratio: &ratio, Form: FormRMNet, MinChannels: 1, RoundTo: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tuned.Recipe != plain.Graph.Recipe {
		t.Errorf("fine-tuned model's recipe differs from the pruning's")
	}
	if nn.SourceSHA256(tuned.StateDict()) == nn.SourceSHA256(plain.Graph.StateDict()) {
		t.Errorf("fine-tuned weights equal the untuned pruned weights")
	}
}

func TestCalibration(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.sweep(t, Config{Dataset: "mnist", Forms: []string{FormRMNet}, Ratios: []float64{0.5}, Limit: 50})
	r := f.runner()
	r.CalibImages = 8
	if err := r.Run(ctx, s.ID, nil); err != nil {
		t.Fatal(err)
	}
	ps, err := f.db.Points(ctx, s.ID)
	if err != nil || len(ps) != 3 {
		t.Fatalf("points %v, %v; want 3", ps, err)
	}
	load := func(p store.Point, kind string) []byte {
		a, err := f.db.PointArtifact(ctx, p.ID, kind)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(f.db.ArtifactDir(), a.Path))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var pruned, resnet store.Point
	for _, p := range ps {
		switch {
		case p.Form == FormRMNet && p.Ratio == 0.5:
			pruned = p
		case p.Form == FormResNet:
			resnet = p
		}
	}
	rec, err := pruning.ParseRecipe(load(pruned, store.KindRecipe))
	if err != nil {
		t.Fatal(err)
	}
	// Measured statistics reach pruning as the checkpoint's (act_mean/act_var).
	if rec.StatsSource != rm.SourceCheckpoint {
		t.Errorf("recipe stats_source %q; want %q (measured block statistics)", rec.StatsSource, rm.SourceCheckpoint)
	}
	if rec.SourceSHA256 != nn.SourceSHA256(f.g.StateDict()) {
		t.Errorf("recipe source_sha256 %s; want the loaded model's tensors' hash", rec.SourceSHA256)
	}
	// The ResNet reference is the model as loaded, without the statistics.
	a, _ := f.db.PointArtifact(ctx, resnet.ID, store.KindSafetensors)
	g, err := modelio.Load(filepath.Join(f.db.ArtifactDir(), a.Path), modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		if n.P("act_mean") != nil {
			t.Errorf("resnet@0 model has act_mean on %s; want the model as loaded", n.Name)
		}
	}
	if nn.SourceSHA256(g.StateDict()) != nn.SourceSHA256(f.g.StateDict()) {
		t.Errorf("resnet@0 model's tensors differ from the loaded model's")
	}
}

func TestCalibImages(t *testing.T) {
	g := testGraph(t)
	sum, err := g.Summarize(g.InputShape())
	if err != nil {
		t.Fatal(err)
	}
	auto := min(int(CalibMACs/float64(sum.MACs)), MaxCalibImages)
	tests := []struct {
		set, want int
	}{{-1, 0}, {5, 5}, {0, auto}}
	for _, tt := range tests {
		if got := (&Runner{CalibImages: tt.set}).calibImages(g); got != tt.want {
			t.Errorf("CalibImages %d: %d images; want %d", tt.set, got, tt.want)
		}
	}
	big, err := nn.Build("resnet50", 3, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := (&Runner{}).calibImages(big); got != MinCalibImages {
		t.Errorf("resnet50: %d calibration images; want %d (over the budget: the least)", got, MinCalibImages)
	}
}

func TestStoredPointsKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.sweep(t, Config{Dataset: "mnist", Forms: []string{FormResNet}, Ratios: []float64{0.5}, Limit: 50})
	// A point stored before (by a process that died before its artifacts).
	old, _, err := f.db.AddPoint(ctx, store.Point{SweepID: s.ID, Form: FormResNet, Ratio: 0, Params: 1, Top1: 0.123})
	if err != nil {
		t.Fatal(err)
	}
	r := f.runner()
	var measured []Key
	r.OnPoint = func(p store.Point) { measured = append(measured, Key{p.Form, p.Ratio}) }
	if err := r.Run(ctx, s.ID, nil); err != nil {
		t.Fatal(err)
	}
	if want := []Key{{FormRMNet, 0}, {FormResNet, 0.5}}; !slices.Equal(measured, want) {
		t.Errorf("measured %v; want %v (resnet@0 was stored)", measured, want)
	}
	p, err := f.db.Point(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Top1 != 0.123 || p.Params != 1 {
		t.Errorf("stored point changed to top1 %v params %d; want it kept", p.Top1, p.Params)
	}
	as, err := f.db.Artifacts(ctx, old.ID)
	if err != nil || len(as) != 2 {
		t.Errorf("stored point's artifacts %v, %v; want its 2 missing files written", as, err)
	}
}

func TestPanicFails(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.sweep(t, Config{Dataset: "mnist", Forms: []string{FormResNet}, Ratios: []float64{0.5}, Limit: 20,
		FinetuneEpochs: 1})
	r := f.runner()
	r.Finetune = func(context.Context, *nn.Graph, *dataset.Dataset, FinetuneOptions) (*nn.Graph, error) {
		panic("boom")
	}
	if err := r.Run(ctx, s.ID, nil); err == nil {
		t.Fatal("Run returned nil after a panic")
	}
	got, _ := f.db.Sweep(ctx, s.ID)
	if got.Status != store.StatusFailed || got.Error == "" {
		t.Errorf("status %s error %q; want failed with a message", got.Status, got.Error)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if netPath != "" {
		os.RemoveAll(filepath.Dir(netPath))
	}
	os.Exit(code)
}

// Form rmnet fine-tunes with RM's copies frozen (as the ResNet keeps its
// identity shortcuts), unless the sweep asks to train them.
func TestFinetuneKeepsCopies(t *testing.T) {
	for _, trainCopies := range []bool{false, true} {
		f := newFixture(t)
		ctx := context.Background()
		s := f.sweep(t, Config{Dataset: "mnist", Ratios: []float64{0.5}, Limit: 50, FinetuneEpochs: 1, FinetuneLimit: 100, TrainCopies: trainCopies})
		if s.TrainCopies != trainCopies {
			t.Fatalf("stored sweep train_copies %v; want %v", s.TrainCopies, trainCopies)
		}
		r := f.runner()
		got := map[string]bool{}
		r.Finetune = func(ctx context.Context, g *nn.Graph, d *dataset.Dataset, opt FinetuneOptions) (*nn.Graph, error) {
			form := FormRMNet
			if slices.ContainsFunc(g.Nodes, func(n *nn.Node) bool { return n.Op == nn.OpAdd }) {
				form = FormResNet
			}
			got[form] = opt.KeepCopies
			return g.Clone(), nil
		}
		if err := r.Run(ctx, s.ID, nil); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{FormRMNet: !trainCopies, FormResNet: false}
		if !maps.Equal(got, want) {
			t.Errorf("train_copies %v: keep copies per form %v; want %v", trainCopies, got, want)
		}
	}
}

// Train with KeepCopies leaves RM's Dirac rows (the reserved channels'
// one-weight filters) exactly as they were; without, training moves them.
func TestTrainKeepCopies(t *testing.T) {
	f := newFixture(t)
	f.runner() // loads mnist
	if mnist == nil {
		t.Skip("mnist not available")
	}
	ratio := 0.3
	res, err := pruning.Prune(f.g, pruning.Options{Method: pruning.L1, Ratio: &ratio})
	if err != nil {
		t.Fatal(err)
	}
	dirac := func(g *nn.Graph) map[string][]float32 {
		rows := map[string][]float32{}
		for _, n := range g.Nodes {
			if n.Op != nn.OpConv {
				continue
			}
			w := n.P("weight")
			per := len(w) / n.Out
			for o := range n.Out {
				row := w[o*per : (o+1)*per]
				if len(row)-countZeros(row) == 1 {
					rows[fmt.Sprintf("%s/%d", n.Name, o)] = slices.Clone(row)
				}
			}
		}
		return rows
	}
	before := dirac(res.Graph)
	if len(before) == 0 {
		t.Fatal("the pruned RMNet has no Dirac rows: the test checks nothing")
	}
	for _, keep := range []bool{true, false} {
		tuned, err := Train(context.Background(), res.Graph, mnist, FinetuneOptions{Epochs: 1, Limit: 256, Threads: 2, KeepCopies: keep})
		if err != nil {
			t.Fatal(err)
		}
		moved := 0
		for key, row := range before {
			name, o, _ := strings.Cut(key, "/")
			n := tuned.Node(name)
			per := len(n.P("weight")) / n.Out
			i, _ := strconv.Atoi(o)
			if !slices.Equal(row, n.P("weight")[i*per:(i+1)*per]) {
				moved++
			}
		}
		if keep && moved > 0 {
			t.Errorf("KeepCopies: %d of %d Dirac rows changed", moved, len(before))
		}
		if !keep && moved == 0 {
			t.Errorf("without KeepCopies no Dirac row changed: the check cannot fail")
		}
	}
}

func countZeros(v []float32) int {
	n := 0
	for _, x := range v {
		if x == 0 {
			n++
		}
	}
	return n
}
