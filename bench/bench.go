// Package bench is rmprune's timing protocol: warm-up, then the median and
// p90 of repeated runs, reported with the machine it ran on (CPU model, ISA
// path, threads, batch).
package bench

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/nn"
)

// Warmup is the number of untimed runs before measuring.
const Warmup = 3

// CPUModel reads the CPU model name (Linux), or GOARCH elsewhere.
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// Stats are order statistics of repeated timings.
type Stats struct {
	Runs          int     `json:"runs"`
	MedianMs      float64 `json:"median_ms"`
	P90Ms         float64 `json:"p90_ms"`
	MinMs         float64 `json:"min_ms"`
	TotalDuration float64 `json:"-"`
}

// Time runs fn Warmup times, then at least minRuns times and for at least
// minTime (whichever is longer, capped at maxRuns), and returns the stats.
func Time(ctx context.Context, minRuns, maxRuns int, minTime time.Duration, fn func() error) (Stats, error) {
	for i := 0; i < Warmup; i++ {
		if err := fn(); err != nil {
			return Stats{}, err
		}
	}
	var ms []float64
	start := time.Now()
	for len(ms) < maxRuns && (len(ms) < minRuns || time.Since(start) < minTime) {
		if err := ctx.Err(); err != nil {
			return Stats{}, err
		}
		t := time.Now()
		if err := fn(); err != nil {
			return Stats{}, err
		}
		ms = append(ms, float64(time.Since(t).Nanoseconds())/1e6)
	}
	return Summarize(ms, time.Since(start)), nil
}

// Summarize computes the order statistics of timings in milliseconds (at
// least one) that took total altogether; the median and p90 interpolate
// linearly between ranks. Every timing the project quotes goes through it.
func Summarize(ms []float64, total time.Duration) Stats {
	s := slices.Clone(ms)
	slices.Sort(s)
	return Stats{Runs: len(s), MedianMs: quantile(s, 0.5), P90Ms: quantile(s, 0.9), MinMs: s[0], TotalDuration: total.Seconds()}
}

// quantile of sorted data with linear interpolation.
func quantile(s []float64, q float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	f := pos - float64(i)
	return s[i]*(1-f) + s[i+1]*f
}

// Options configure a model benchmark.
type Options struct {
	Batch    int
	Threads  int
	Shape    nn.Shape // default: the graph's input shape
	MinRuns  int      // default 10
	MaxRuns  int      // default 1000
	MinTime  time.Duration
	PerLayer bool
	Dense    bool // turn off the engine's RM shortcuts (comparison)
	Winograd engine.WinogradMode
}

// Result is one model measurement (DESIGN's bench JSON keys).
type Result struct {
	ImagesPerS   float64            `json:"images_per_s"`
	LatencyMsP50 float64            `json:"latency_ms_p50"`
	LatencyMsP90 float64            `json:"latency_ms_p90"`
	Batch        int                `json:"batch"`
	Threads      int                `json:"threads"`
	ISA          string             `json:"isa"`
	CPU          string             `json:"cpu"`
	Runs         int                `json:"runs"`
	Shape        string             `json:"shape"`
	SplitConvs   int                `json:"split_convs"` // convs run with the Dirac/identity shortcut
	MACsSaved    int64              `json:"macs_saved"`  // dense MACs per image the shortcut avoids
	Algorithms   map[string]int     `json:"algorithms"`  // conv steps per algorithm at this batch
	Layers       []engine.LayerTime `json:"layers,omitempty"`
}

// Model compiles g on the SIMD engine and times batches of random input.
func Model(ctx context.Context, g *nn.Graph, opt Options) (*Result, error) {
	if opt.Batch < 1 {
		opt.Batch = 1
	}
	if opt.Threads < 1 {
		opt.Threads = runtime.NumCPU()
	}
	if opt.MinRuns < 5 {
		opt.MinRuns = 10
	}
	if opt.MaxRuns < opt.MinRuns {
		opt.MaxRuns = max(1000, opt.MinRuns)
	}
	if opt.MinTime == 0 {
		opt.MinTime = time.Second
	}
	if opt.Shape == (nn.Shape{}) {
		opt.Shape = g.InputShape()
	}
	e, err := engine.Compile(g, engine.Options{Threads: opt.Threads, MaxBatch: opt.Batch, Shape: opt.Shape, Dense: opt.Dense, Winograd: opt.Winograd})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, opt.Batch*opt.Shape.Numel())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	run := func() error { _, err := e.Run(x, opt.Batch); return err }
	st, err := Time(ctx, opt.MinRuns, opt.MaxRuns, opt.MinTime, run)
	if err != nil {
		return nil, err
	}
	r := &Result{
		ImagesPerS: float64(opt.Batch) / (st.MedianMs / 1e3), LatencyMsP50: st.MedianMs, LatencyMsP90: st.P90Ms,
		Batch: opt.Batch, Threads: opt.Threads, ISA: e.ISA(), CPU: CPUModel(), Runs: st.Runs, Shape: opt.Shape.String(),
	}
	r.SplitConvs, r.MACsSaved = e.SplitConvs()
	r.Algorithms = e.Algorithms(opt.Threads > 1 && opt.Batch >= opt.Threads)
	if opt.PerLayer {
		e.Profile = true
		for i := 0; i < max(5, opt.MinRuns); i++ {
			if err := run(); err != nil {
				return nil, err
			}
		}
		r.Layers = e.LayerTimes()
	}
	return r, nil
}
