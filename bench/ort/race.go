//go:build ort

package ort

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/rmprune/rmprune/bench"
)

// Entry is one ONNX model in a [Race].
type Entry struct {
	Name string
	Path string
}

// Race loads every model in ONNX Runtime with threads intra-op threads and
// times them side by side at the given batch: after warm-up, blocks of runs
// alternate between the models (round robin) until each has minRuns runs
// and minTime has passed; the first tenth of each block is not counted (see
// [Compare]). All models must take the same input shape; they run on the same
// random input. The result holds one Side per entry, in order.
func Race(ctx context.Context, entries []Entry, batch, threads, minRuns int, minTime time.Duration) ([]Side, error) {
	paths := make([]string, len(entries))
	for i, e := range entries {
		paths[i] = e.Path
	}
	runners, closeAll, err := OpenRunners(paths, threads, batch)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	for range bench.Warmup {
		for _, r := range runners {
			if err := r.Run(); err != nil {
				return nil, err
			}
		}
	}
	times := make([][]float64, len(entries))
	blockTime := max(minTime/time.Duration(4*len(entries)), 20*time.Millisecond)
	enough := func() bool {
		for _, t := range times {
			if len(t) < minRuns {
				return false
			}
		}
		return true
	}
	start := time.Now()
	for !enough() || time.Since(start) < minTime {
		for i, r := range runners {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t0 := time.Now()
			for n := 0; ; n++ {
				t := time.Now()
				if err := r.Run(); err != nil {
					return nil, err
				}
				if n > 0 && t.Sub(t0) >= blockTime/10 {
					times[i] = append(times[i], ms(time.Since(t)))
				}
				if time.Since(t0) >= blockTime && n >= 2 {
					break
				}
			}
		}
	}
	out := make([]Side, len(entries))
	for i, t := range times {
		s := bench.Summarize(t, 0)
		out[i] = Side{ImagesPerS: float64(batch) / (s.MedianMs / 1e3), LatencyMsP50: s.MedianMs, LatencyMsP90: s.P90Ms}
	}
	return out, nil
}

// OpenRunners opens each model file with threads intra-op threads and a
// runner for batch images, all reading the same random input (seeded, so
// every comparison times the same data). closeAll releases them.
func OpenRunners(paths []string, threads, batch int) (runners []*Runner, closeAll func(), err error) {
	var closers []func()
	cleanup := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	for i, p := range paths {
		s, err := Open(p, threads)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, func() { s.Close() })
		r, err := s.NewRunner(batch)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, func() { r.Close() })
		if i > 0 && len(r.Input()) != len(runners[0].Input()) {
			return nil, nil, fmt.Errorf("ort: %s takes %d input values, %s %d", p, len(r.Input()), paths[0], len(runners[0].Input()))
		}
		runners = append(runners, r)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	x := runners[0].Input()
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, r := range runners[1:] {
		copy(r.Input(), x)
	}
	return runners, cleanup, nil
}
