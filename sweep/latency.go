package sweep

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rmprune/rmprune/bench"
	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
)

// LatencyOptions configure the interleaved latency pass (MeasureLatency).
// Zero fields take the defaults given.
type LatencyOptions struct {
	// Skip turns the pass off: points keep the latency timed alone.
	Skip bool
	// Rounds through all the models; default 15.
	Rounds int
	// Warmup untimed runs start each model's block in a round (they also
	// let the previous model's spinning workers park); default 2, and at
	// least Settle of time.
	Warmup int
	Settle time.Duration // default 2 ms
	// MinRuns timed runs per block, and at least BlockTime of them (at most
	// MaxRuns); defaults 5, the runner's BenchTime/30, 200.
	MinRuns   int
	BlockTime time.Duration
	MaxRuns   int
	// MaxSpread flags a point whose round medians' (p75−p25)/p50 exceeds it;
	// default 0.10.
	MaxSpread float64
	// MaxLoad flags a point whose timed blocks saw other work wait for a CPU
	// more than this share of the time (see bench.CPUWait); default 0.10.
	MaxLoad float64
	// MaxTime ends the pass after the round that crosses it (but not before
	// MinRounds rounds), and 2×MaxTime even within a round (a model not
	// timed at all then gets Rounds 0 and keeps its figure); the points are
	// flagged: on a host this busy the figures are not to be trusted anyway.
	// Default 3 minutes.
	MaxTime   time.Duration
	MinRounds int // default 3
}

// withDefaults fills the zero fields; benchTime is the runner's.
func (o LatencyOptions) withDefaults(benchTime time.Duration) LatencyOptions {
	if o.Rounds <= 0 {
		o.Rounds = 15
	}
	if o.Warmup <= 0 {
		o.Warmup = 2
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Millisecond
	}
	if o.MinRuns <= 0 {
		o.MinRuns = 5
	}
	if o.BlockTime <= 0 {
		o.BlockTime = benchTime / 30
	}
	if o.MaxRuns < o.MinRuns {
		o.MaxRuns = max(200, o.MinRuns)
	}
	if o.MaxSpread <= 0 {
		o.MaxSpread = 0.10
	}
	if o.MaxLoad <= 0 {
		o.MaxLoad = 0.10
	}
	if o.MaxTime <= 0 {
		o.MaxTime = 3 * time.Minute
	}
	if o.MinRounds <= 0 {
		o.MinRounds = 3
	}
	return o
}

// LatencyStat is one model's batch-1 latency from an interleaved pass, in
// milliseconds: P25/P50/P75 are the quartiles of its round medians (P50 is
// the median of round medians), P90 and Min are over all its timed runs.
type LatencyStat struct {
	P25, P50, P75 float64
	P90, Min      float64
	Rounds, Runs  int
	// Load is the CPU wait other work had during this model's timed blocks,
	// as a share of their wall time (bench.CPUWait).
	Load float64
	// Unreliable says why the figure should not be trusted; "" when it can be.
	Unreliable string
}

// Spread is (P75−P25)/P50, the relative spread between rounds.
func (s LatencyStat) Spread() float64 {
	if s.P50 <= 0 {
		return 0
	}
	return (s.P75 - s.P25) / s.P50
}

// clock is where a pass reads the time: the wall clock (monotonic) in
// MeasureLatency, a fake one in tests. now returns the time since some
// fixed start; wait the cumulative seconds other work has waited for a CPU.
type clock struct {
	now  func() time.Duration
	wait func() float64
}

// wallClock is the clock of real measurements.
func wallClock() clock {
	start := time.Now()
	return clock{now: func() time.Duration { return time.Since(start) }, wait: bench.CPUWait}
}

// interleave times runs[i] (one batch-1 inference of model i) in
// opt.Rounds rounds. Each round visits every model once, in an order
// shuffled per round with a fixed seed (so no model always follows the same
// neighbour or sits at the same place), and times a block of runs of it
// after opt.Warmup untimed ones. A model's figure is the median of its
// round medians; the quartiles of the round medians are its spread.
// progress, when not nil, gets the fraction of blocks done.
func interleave(ctx context.Context, runs []func() error, opt LatencyOptions, c clock, progress func(frac float64)) ([]LatencyStat, error) {
	n := len(runs)
	out := make([]LatencyStat, n)
	if n == 0 {
		return out, nil
	}
	roundMed := make([][]float64, n) // per model, its median in each round
	all := make([][]float64, n)      // per model, every timed run
	wallSec := make([]float64, n)
	waitSec := make([]float64, n)
	rng := rand.New(rand.NewPCG(1, 2))
	order := make([]int, n)
	block := make([]float64, 0, opt.MaxRuns)
	passStart := c.now()
	cut := false
	for r := range opt.Rounds {
		if opt.MaxTime > 0 && r >= opt.MinRounds && c.now()-passStart >= opt.MaxTime {
			cut = true
			break
		}
		for i := range order {
			order[i] = i
		}
		rng.Shuffle(n, func(a, b int) { order[a], order[b] = order[b], order[a] })
		for pos, i := range order {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if opt.MaxTime > 0 && c.now()-passStart >= 2*opt.MaxTime {
				cut = true // a host this busy: stop even mid-round
				break
			}
			start := c.now()
			for w := 0; w < opt.Warmup || c.now()-start < opt.Settle; w++ {
				if err := runs[i](); err != nil {
					return nil, err
				}
			}
			block = block[:0]
			w0 := c.wait()
			t0 := c.now()
			for len(block) < opt.MaxRuns && (len(block) < opt.MinRuns || c.now()-t0 < opt.BlockTime) {
				s := c.now()
				if err := runs[i](); err != nil {
					return nil, err
				}
				block = append(block, float64(c.now()-s)/float64(time.Millisecond))
			}
			wallSec[i] += (c.now() - t0).Seconds()
			waitSec[i] += max(c.wait()-w0, 0)
			roundMed[i] = append(roundMed[i], bench.Summarize(block, 0).MedianMs)
			all[i] = append(all[i], block...)
			if progress != nil {
				progress(float64(r*n+pos+1) / float64(opt.Rounds*n))
			}
		}
		if cut {
			break
		}
	}
	for i := range out {
		if len(roundMed[i]) == 0 {
			continue // never timed (the pass was stopped): Rounds 0
		}
		q := quartiles(roundMed[i])
		st := bench.Summarize(all[i], 0)
		s := LatencyStat{P25: q[0], P50: q[1], P75: q[2], P90: max(st.P90Ms, q[1]), Min: st.MinMs,
			Rounds: len(roundMed[i]), Runs: st.Runs}
		if wallSec[i] > 0 {
			s.Load = waitSec[i] / wallSec[i]
		}
		s.Unreliable = judge(s, opt)
		if cut {
			why := fmt.Sprintf("pass cut short after %d of %d rounds (over %v): the host is too busy", s.Rounds, opt.Rounds, opt.MaxTime)
			s.Unreliable = strings.Join(slices.DeleteFunc([]string{why, s.Unreliable}, func(x string) bool { return x == "" }), "; ")
		}
		out[i] = s
	}
	return out, nil
}

// quartiles returns the 25th, 50th and 75th percentiles of xs (linear
// interpolation between ranks, as bench.Summarize).
func quartiles(xs []float64) [3]float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 {
		pos := p * float64(len(s)-1)
		i := int(pos)
		if i+1 >= len(s) {
			return s[len(s)-1]
		}
		f := pos - float64(i)
		return s[i]*(1-f) + s[i+1]*f
	}
	return [3]float64{q(0.25), q(0.5), q(0.75)}
}

// judge says why a stat should not be trusted ("" when it can be).
func judge(s LatencyStat, opt LatencyOptions) string {
	var why []string
	if s.Rounds < min(3, opt.Rounds) {
		why = append(why, fmt.Sprintf("only %d rounds", s.Rounds))
	}
	if sp := s.Spread(); sp > opt.MaxSpread {
		why = append(why, fmt.Sprintf("rounds spread %.0f%% of the median (p25–p75)", 100*sp))
	}
	if s.Load > opt.MaxLoad {
		why = append(why, fmt.Sprintf("CPU busy: other work waited %.0f%% of the time", 100*s.Load))
	}
	return strings.Join(why, "; ")
}

// MeasureLatency times the graphs at batch 1 on the SIMD engine with the
// given threads, all compiled at once and timed in one interleaved pass
// (see LatencyOptions), and returns one stat per graph. benchTime scales
// the default block time (Runner.BenchTime). progress, when not nil, gets
// the fraction done.
func MeasureLatency(ctx context.Context, gs []*nn.Graph, threads int, opt LatencyOptions, benchTime time.Duration, progress func(frac float64)) ([]LatencyStat, error) {
	if benchTime <= 0 {
		benchTime = DefaultBenchTime
	}
	opt = opt.withDefaults(benchTime)
	runs := make([]func() error, len(gs))
	for i, g := range gs {
		in := g.InputShape()
		e, err := engine.Compile(g, engine.Options{Threads: threads, MaxBatch: 1, Shape: in})
		if err != nil {
			return nil, fmt.Errorf("compile model %d: %w", i, err)
		}
		defer e.Close()
		x := make([]float32, in.Numel())
		rng := rand.New(rand.NewPCG(1, 2))
		for j := range x {
			x[j] = float32(rng.NormFloat64())
		}
		runs[i] = func() error { _, err := e.Run(x, 1); return err }
	}
	return interleave(ctx, runs, opt, wallClock(), progress)
}

// errNoPoints is returned by Remeasure for a sweep without measurable points.
var errNoPoints = errors.New("no points with a stored model to measure")

// measureSweep re-times every point of sweep s that has its safetensors
// artifact in one interleaved pass and stores the figures. progress, when
// not nil, gets the fraction of the pass done and a line.
func (r *Runner) measureSweep(ctx context.Context, s store.Sweep, progress func(frac float64, msg string)) error {
	cfg := FromSweep(s)
	cfg.Defaults()
	ps, err := r.DB.Points(ctx, s.ID)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	// Points whose pruning left the same network (the residual-constrained
	// form of a mask-trained model removes exactly its zero-mask channels at
	// several ratios) are timed once and share the figures: latency depends
	// on the network's shapes, and two timings of one network would draw
	// their noise as a difference.
	type netKey struct {
		form, channels string
		params, macs   int64
	}
	timed := map[netKey]int{} // → index into gs
	var gs []*nn.Graph
	var ids [][]int64 // per timed model, the points it stands for
	for _, p := range ps {
		if p.Status == store.PointRefused {
			continue // no network
		}
		k := netKey{p.Form, fmt.Sprint(p.Channels), p.Params, p.MACsComputed}
		if i, ok := timed[k]; ok {
			ids[i] = append(ids[i], p.ID)
			continue
		}
		a, err := r.DB.PointArtifact(ctx, p.ID, store.KindSafetensors)
		if errors.Is(err, store.ErrNotFound) {
			continue // e.g. a fine-tuned point whose files were lost
		} else if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		path := a.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(r.DB.ArtifactDir(), path)
		}
		g, err := modelio.Load(path, modelio.Options{})
		if err != nil {
			return fmt.Errorf("sweep: point %s@%s: %w", p.Form, formatRatio(p.Ratio), err)
		}
		timed[k] = len(gs)
		gs = append(gs, g)
		ids = append(ids, []int64{p.ID})
	}
	if len(gs) == 0 {
		return fmt.Errorf("sweep: %d: %w", s.ID, errNoPoints)
	}
	report := func(frac float64) {
		if progress != nil {
			progress(frac, fmt.Sprintf("timing %d models interleaved, %.0f%%", len(gs), 100*frac))
		}
	}
	report(0)
	stats, err := MeasureLatency(ctx, gs, cfg.Threads, r.Latency, r.BenchTime, report)
	if err != nil {
		return fmt.Errorf("sweep: latency pass: %w", err)
	}
	ls := make([]store.PointLatency, 0, len(stats))
	for i, st := range stats {
		if st.Rounds == 0 {
			continue // not timed: keep its figure
		}
		for _, id := range ids[i] {
			ls = append(ls, store.PointLatency{PointID: id, P25: st.P25, P50: st.P50, P75: st.P75, P90: st.P90,
				Rounds: st.Rounds, Load: st.Load, Unreliable: st.Unreliable})
		}
	}
	if err := r.DB.SetPointLatency(context.WithoutCancel(ctx), ls); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}

// latencyPass is the last step of a sweep: all its points, the unpruned
// references included, timed together (measureSweep).
func (j *job) latencyPass(ctx context.Context) error {
	if j.r.Latency.Skip {
		return nil
	}
	err := j.r.measureSweep(ctx, j.s, func(_ float64, msg string) { j.report(j.frac, "latency: "+msg) })
	if errors.Is(err, errNoPoints) {
		return nil
	}
	return err
}

// Remeasure re-times the stored points of a finished sweep in one
// interleaved latency pass and stores the new figures (all at once: a
// cancelled pass changes nothing). The sweep's status is left as it is.
// progress, when not nil, gets the fraction done (0..1) and a line.
func (r *Runner) Remeasure(ctx context.Context, sweepID int64, progress func(frac float64, msg string)) error {
	if r.DB == nil {
		return errors.New("sweep: runner has no database")
	}
	s, err := r.DB.Sweep(ctx, sweepID)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if s.Status == store.StatusQueued || s.Status == store.StatusRunning {
		return fmt.Errorf("sweep: %w: sweep %d is %s; its latency pass runs at its end", ErrConfig, s.ID, s.Status)
	}
	if err := r.measureSweep(ctx, s, progress); err != nil {
		return err
	}
	if progress != nil {
		progress(1, "done")
	}
	return nil
}
