//go:build ort

package ort

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Timing summarises repeated runs of one workload.
type Timing struct {
	Runs   []time.Duration // every timed run, in order
	Median time.Duration
	P90    time.Duration // nearest-rank 90th percentile
	Min    time.Duration
	Mean   time.Duration
}

// Measure calls f warmup times untimed, then runs times timed, and
// summarises the timed runs. It needs runs ≥ 1 (the protocol quotes medians
// over ≥ 5 runs after ≥ 3 warm-up runs); the first error stops it.
func Measure(warmup, runs int, f func() error) (Timing, error) {
	if runs < 1 || warmup < 0 {
		return Timing{}, fmt.Errorf("ort: measure %d runs after %d warm-up runs", runs, warmup)
	}
	for range warmup {
		if err := f(); err != nil {
			return Timing{}, err
		}
	}
	d := make([]time.Duration, runs)
	for i := range d {
		t0 := time.Now()
		if err := f(); err != nil {
			return Timing{}, err
		}
		d[i] = time.Since(t0)
	}
	return Summarize(d), nil
}

// Summarize computes the statistics of durations (at least one).
func Summarize(d []time.Duration) Timing {
	s := slices.Clone(d)
	slices.Sort(s)
	n := len(s)
	t := Timing{Runs: slices.Clone(d), Min: s[0]}
	if n%2 == 1 {
		t.Median = s[n/2]
	} else {
		t.Median = (s[n/2-1] + s[n/2]) / 2
	}
	t.P90 = s[int(math.Ceil(0.9*float64(n)))-1]
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	t.Mean = sum / time.Duration(n)
	return t
}

// PerSecond is items (images) per second at the median: batch / median.
func (t Timing) PerSecond(batch int) float64 {
	if t.Median <= 0 {
		return 0
	}
	return float64(batch) / t.Median.Seconds()
}
