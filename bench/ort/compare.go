//go:build ort

package ort

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/rmprune/rmprune/bench"
	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/onnx"
)

// Side is one runtime's measurement in a comparison.
type Side struct {
	ImagesPerS   float64 `json:"images_per_s"`
	LatencyMsP50 float64 `json:"latency_ms_p50"`
	LatencyMsP90 float64 `json:"latency_ms_p90"`
}

// Comparison is rmprune's engine against ONNX Runtime on the same exported
// model, input, batch and threads, timed in alternating blocks of runs.
type Comparison struct {
	Engine     Side    `json:"engine"`
	ORT        Side    `json:"onnxruntime"`
	Ratio      float64 `json:"ratio"` // ORT median / engine median: > 1 means the engine is faster
	MaxRelErr  float64 `json:"max_rel_err"`
	Batch      int     `json:"batch"`
	Threads    int     `json:"threads"`
	Runs       int     `json:"runs"`
	ISA        string  `json:"isa"`
	CPU        string  `json:"cpu"`
	ORTVersion string  `json:"ort_version"`
	Shape      string  `json:"shape"`
}

// Compare exports g to ONNX, loads it in ONNX Runtime with opt.Threads
// intra-op threads, compiles it on the engine, checks both agree, then times
// them in alternating blocks of runs after warm-up (bench.Warmup runs each).
func Compare(ctx context.Context, g *nn.Graph, opt bench.Options) (*Comparison, error) {
	if opt.Batch < 1 {
		opt.Batch = 1
	}
	if opt.Threads < 1 {
		opt.Threads = 1
	}
	if opt.Shape == (nn.Shape{}) {
		opt.Shape = g.InputShape()
	}
	if opt.MinRuns < 5 {
		opt.MinRuns = 20
	}
	if opt.MinTime == 0 {
		opt.MinTime = 2 * time.Second
	}
	dir, err := os.MkdirTemp("", "rmprune-ort-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.onnx")
	if err := writeONNX(path, g, opt.Shape); err != nil {
		return nil, err
	}
	s, err := Open(path, opt.Threads)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	r, err := s.NewRunner(opt.Batch)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	e, err := engine.Compile(g, engine.Options{Threads: opt.Threads, MaxBatch: opt.Batch, Shape: opt.Shape, Dense: opt.Dense, Winograd: opt.Winograd})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	x := r.Input()
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	runEngine := func() error { _, err := e.Run(x, opt.Batch); return err }
	if err := r.Run(); err != nil {
		return nil, err
	}
	got, err := e.Run(x, opt.Batch)
	if err != nil {
		return nil, err
	}
	c := &Comparison{Batch: opt.Batch, Threads: opt.Threads, ISA: e.ISA(), CPU: bench.CPUModel(), Shape: opt.Shape.String()}
	c.MaxRelErr, _ = nn.RelError(got, r.Output())
	if _, c.ORTVersion, err = Library(); err != nil {
		return nil, err
	}
	for i := 0; i < bench.Warmup; i++ {
		if err := runEngine(); err != nil {
			return nil, err
		}
		if err := r.Run(); err != nil {
			return nil, err
		}
	}
	// Alternate blocks of runs rather than single runs: both runtimes keep
	// their worker threads spinning for a while after a run, and single-run
	// alternation would make each pay for the other's spinning. For the same
	// reason the first runs of every block (its first tenth of the block
	// time, at least one run) are not counted, on both sides.
	var te, to []float64 // milliseconds
	blockTime := max(opt.MinTime/8, 20*time.Millisecond)
	measure := func(run func() error, into *[]float64) error {
		t0 := time.Now()
		for n := 0; ; n++ {
			t := time.Now()
			if err := run(); err != nil {
				return err
			}
			if n > 0 && t.Sub(t0) >= blockTime/10 {
				*into = append(*into, ms(time.Since(t)))
			}
			if time.Since(t0) >= blockTime && n >= 2 {
				return nil
			}
		}
	}
	start := time.Now()
	for len(te) < opt.MinRuns || len(to) < opt.MinRuns || time.Since(start) < opt.MinTime {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := measure(runEngine, &te); err != nil {
			return nil, err
		}
		if err := measure(r.Run, &to); err != nil {
			return nil, err
		}
		if len(te) >= 100000 {
			break
		}
	}
	side := func(d []float64) Side {
		t := bench.Summarize(d, 0)
		return Side{ImagesPerS: float64(opt.Batch) / (t.MedianMs / 1e3), LatencyMsP50: t.MedianMs, LatencyMsP90: t.P90Ms}
	}
	c.Engine, c.ORT, c.Runs = side(te), side(to), len(te)
	c.Ratio = c.Engine.ImagesPerS / c.ORT.ImagesPerS
	if c.MaxRelErr > 1e-4 {
		return c, fmt.Errorf("ort: engine and ONNX Runtime disagree: rel error %.3g > 1e-4", c.MaxRelErr)
	}
	return c, nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func writeONNX(path string, g *nn.Graph, s nn.Shape) error {
	return onnx.WriteFile(path, g, onnx.Options{Shape: s})
}
