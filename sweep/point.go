package sweep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rmprune/rmprune/bench"
	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/evaluate"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/onnx"
	"github.com/rmprune/rmprune/nn/safetensors"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/rm"
	"github.com/rmprune/rmprune/store"
)

// PointInput is everything computing one point takes besides the model and
// the data set: a plain, JSON-encodable struct (a cluster job carries it),
// so new settings are new fields.
type PointInput struct {
	Form  string  `json:"form"`
	Ratio float64 `json:"ratio"` // 0: the unpruned reference of Form
	// Config is the sweep's configuration, after Defaults.
	Config Config `json:"config"`
	// FinetuneLimit is the number of training images of each fine-tuning
	// epoch actually used (0: all); see Runner.FinetuneLimit.
	FinetuneLimit int `json:"finetune_limit"`
	// BenchTime is the least time of each timing; 0 means DefaultBenchTime.
	BenchTime time.Duration `json:"bench_time"`
	// Version is the rmprune version the ONNX export names as producer.
	Version string `json:"version"`
}

// Key returns the point's key.
func (in PointInput) Key() Key { return Key{in.Form, store.NormRatio(in.Ratio)} }

// File is an artifact of a point, in memory.
type File struct {
	Kind   string `json:"kind"` // store.KindSafetensors, KindONNX, KindRecipe
	Name   string `json:"name"` // file name, e.g. rmnet-r0.3.onnx
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Data   []byte `json:"-"`
}

// PointResult is what computing a point returns: the point to store (ID,
// SweepID, Worker and CreatedAt unset), the timings it came from and its
// artifacts.
type PointResult struct {
	Point store.Point `json:"point"`
	// Latency is the batch-1 timing (percentiles, per-layer times);
	// Throughput the timing at the sweep's batch (Latency when it is 1).
	Latency    *bench.Result `json:"latency"`
	Throughput *bench.Result `json:"throughput"`
	Files      []File        `json:"files"`
}

// Computer computes the points of one model on one data set. It knows no
// database: the in-process Runner and a cluster coordinator store what
// Compute returns. It keeps the model's calibrated form (measured on first
// use) for its next points. Safe for concurrent use, though concurrent points
// time each other.
type Computer struct {
	Model *nn.Graph
	Data  *dataset.Dataset
	// Finetune fine-tunes pruned networks; nil means Train.
	Finetune FinetuneFunc
	// CalibImages is as Runner.CalibImages.
	CalibImages int

	mu  sync.Mutex
	src *nn.Graph
}

// Progress takes a point's progress: a stage (prune, finetune, evaluate,
// bench, save), the fraction of that stage done and a line.
type Progress func(stage string, f float64, msg string)

// source returns the network form rmnet starts from: the model with its
// residual blocks' statistics measured once.
func (c *Computer) source(progress Progress) (*nn.Graph, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src != nil {
		return c.src, nil
	}
	n := calibImages(c.CalibImages, c.Model)
	if n > 0 && progress != nil {
		progress("prune", 0, fmt.Sprintf("measuring block statistics on %d images", n))
	}
	src, _, err := withStats(c.Model, c.Data, n)
	if err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	c.src = src
	return src, nil
}

// build makes the network of point k: the model (resnet@0), its RM
// conversion in BN-kept form (rmnet@0) or a pruning.
func (c *Computer) build(cfg *Config, k Key, progress Progress) (*network, error) {
	switch {
	case k.Ratio == 0 && k.Form == FormResNet:
		return &network{g: c.Model, channels: convChannels(c.Model)}, nil
	case k.Ratio == 0:
		src, err := c.source(progress)
		if err != nil {
			return nil, err
		}
		res, err := rm.Convert(src, rm.Options{KeepBN: true})
		if err != nil {
			return nil, err
		}
		return &network{g: res.Graph, channels: convChannels(res.Graph)}, nil
	}
	ratio := k.Ratio
	src := c.Model
	if k.Form == FormRMNet {
		var err error
		if src, err = c.source(progress); err != nil {
			return nil, err
		}
	}
	res, err := pruning.Prune(src, pruning.Options{Method: cfg.Method, Scope: cfg.Scope, Ratio: &ratio,
		Form: k.Form, MinChannels: cfg.MinChannels, RoundTo: cfg.RoundTo})
	if err != nil {
		return nil, err
	}
	n := &network{g: res.Graph, recipe: res.Recipe}
	for _, l := range res.Report.Layers {
		n.channels = append(n.channels, store.LayerChannels{Layer: l.Name, Before: l.Before, After: l.After})
	}
	return n, nil
}

// Refusal reports whether err is a refusal of the pruning guards —
// pruning.ErrNoStats (a slim ratio on the RMNet form without activation
// statistics) or pruning.ErrDestroyed (a ratio ≤ 0.5 that would keep < 5% of
// the channels) — and gives its reason on one line.
func Refusal(err error) (reason string, ok bool) {
	if err == nil || !(errors.Is(err, pruning.ErrNoStats) || errors.Is(err, pruning.ErrDestroyed)) {
		return "", false
	}
	return oneLine(err.Error()), true
}

// Compute measures one point: prune, [fine-tune], evaluate top-1/top-5 on
// the test split, time batch 1 (latency p50/p90, per layer) and the sweep's
// batch (images/s) on the SIMD engine, and encode the artifacts (our
// safetensors, ONNX and, for pruned points, the recipe JSON). progress may
// be nil. A ratio the pruning guards refuse (see Refusal) is not an error:
// the result is the point with status store.PointRefused, its reason, and no
// measurements or files.
func (c *Computer) Compute(ctx context.Context, in PointInput, progress Progress) (res *PointResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sweep: internal error (a bug): %v", p)
		}
	}()
	if progress == nil {
		progress = func(string, float64, string) {}
	}
	cfg := &in.Config
	k := in.Key()
	progress("prune", 0, "pruning")
	net, err := c.build(cfg, k, progress)
	if reason, ok := Refusal(err); ok {
		// The pruning guards refused this ratio: a result, not a failure,
		// so the rest of the sweep goes on.
		return &PointResult{Point: store.Point{Form: k.Form, Ratio: k.Ratio, Status: store.PointRefused,
			Error: reason, Version: in.Version}}, nil
	}
	if err != nil {
		return nil, err
	}
	if k.Ratio > 0 && cfg.FinetuneEpochs > 0 {
		progress("finetune", 0, "fine-tuning")
		ft := c.Finetune
		if ft == nil {
			ft = Train
		}
		tuned, err := ft(ctx, net.g, c.Data, FinetuneOptions{Epochs: cfg.FinetuneEpochs,
			Limit: in.FinetuneLimit, Batch: cfg.Batch, MaskTrained: c.Model.HasMasks(),
			KeepCopies: in.Form == FormRMNet && !cfg.TrainCopies,
			Threads:    cfg.Threads, Progress: func(f float64) {
				progress("finetune", f, fmt.Sprintf("fine-tuning %.0f%%", 100*f))
			}})
		if err != nil {
			return nil, fmt.Errorf("fine-tune: %w", err)
		}
		tuned.Recipe, tuned.SourceSHA256 = net.g.Recipe, net.g.SourceSHA256
		net.g = tuned
	}
	shape := c.Model.InputShape()
	sum, err := net.g.Summarize(shape)
	if err != nil {
		return nil, err
	}
	progress("evaluate", 0, "evaluating")
	ev, err := evaluate.Run(ctx, net.g, c.Data, c.Data.Test, evaluate.Options{Batch: cfg.Batch, Threads: cfg.Threads,
		Limit: cfg.Limit, Progress: func(done, total int) {
			progress("evaluate", float64(done)/float64(max(total, 1)), fmt.Sprintf("evaluating %d/%d", done, total))
		}})
	if err != nil {
		return nil, err
	}
	progress("bench", 0, "timing batch 1")
	bt := in.BenchTime
	if bt <= 0 {
		bt = DefaultBenchTime
	}
	lat, err := bench.Model(ctx, net.g, bench.Options{Batch: 1, Threads: cfg.Threads, Shape: shape, MinRuns: 5,
		MaxRuns: 2000, MinTime: bt, PerLayer: true})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	thr := lat
	if cfg.Batch > 1 {
		progress("bench", 0.5, fmt.Sprintf("timing batch %d", cfg.Batch))
		if thr, err = bench.Model(ctx, net.g, bench.Options{Batch: cfg.Batch, Threads: cfg.Threads, Shape: shape,
			MinRuns: 5, MaxRuns: 2000, MinTime: bt}); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	progress("save", 0, "encoding artifacts")
	files, err := encodeArtifacts(k, net, shape, in.Version)
	if err != nil {
		return nil, err
	}
	// What ONNX Runtime computes with the downloadable file (the same
	// options as encodeArtifacts).
	ox, err := onnx.Describe(net.g, onnx.Options{Shape: shape})
	if err != nil {
		return nil, err
	}
	p := store.Point{
		Form: k.Form, Ratio: k.Ratio, Channels: net.channels,
		Params: sum.Params, MACs: sum.MACs, MACsComputed: sum.MACs - lat.MACsSaved, FLOPs: sum.FLOPs,
		MACsONNX: ox.MACs, ONNXExport: ox.Form,
		Top1: ev.Top1, Top5: ev.Top5,
		LatencyMSP50: lat.LatencyMsP50, LatencyMSP90: lat.LatencyMsP90, ImagesPerS: thr.ImagesPerS,
		CPU: lat.CPU, ISA: lat.ISA, Threads: lat.Threads, Version: in.Version,
	}
	for _, f := range files {
		if f.Kind == store.KindSafetensors {
			p.SizeBytes = f.Size
		}
	}
	for _, l := range lat.Layers {
		p.LayerMS = append(p.LayerMS, store.LayerLatency{Layer: l.Name, MS: l.Ms})
	}
	return &PointResult{Point: p, Latency: lat, Throughput: thr, Files: files}, nil
}

// encodeArtifacts encodes point k's model files and recipe, in the order
// safetensors, ONNX, recipe.
func encodeArtifacts(k Key, net *network, shape nn.Shape, version string) ([]File, error) {
	base := ArtifactName(k.Form, k.Ratio)
	var files []File
	add := func(kind, name string, enc func(w *bytes.Buffer) error) error {
		var b bytes.Buffer
		if err := enc(&b); err != nil {
			return fmt.Errorf("sweep: encode %s: %w", kind, err)
		}
		sum := sha256.Sum256(b.Bytes())
		files = append(files, File{Kind: kind, Name: name, SHA256: hex.EncodeToString(sum[:]),
			Size: int64(b.Len()), Data: b.Bytes()})
		return nil
	}
	err := add(store.KindSafetensors, base+".safetensors", func(w *bytes.Buffer) error {
		meta, sd, err := modelio.Encode(net.g)
		if err != nil {
			return err
		}
		return safetensors.Write(w, meta, sd)
	})
	if err == nil {
		err = add(store.KindONNX, base+".onnx", func(w *bytes.Buffer) error {
			return onnx.Write(w, net.g, onnx.Options{Shape: shape, ProducerVersion: version})
		})
	}
	if err == nil && net.recipe != nil {
		err = add(store.KindRecipe, base+".recipe.json", func(w *bytes.Buffer) error {
			b, err := json.MarshalIndent(net.recipe, "", "  ")
			if err != nil {
				return err
			}
			w.Write(b)
			return w.WriteByte('\n')
		})
	}
	if err != nil {
		return nil, err
	}
	return files, nil
}
