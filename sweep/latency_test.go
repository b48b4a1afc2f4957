package sweep

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
)

// fakeRuns are models whose runs advance a fake clock: the k-th call of
// model i takes dur(i, k) and adds waitShare[i] of that to the CPU wait.
type fakeRuns struct {
	now   time.Duration
	wait  float64
	calls []int // model of every call, in order
	count []int // calls per model
	dur   func(i, k int) time.Duration
	share []float64
}

func (f *fakeRuns) runs(n int) []func() error {
	f.count = make([]int, n)
	if f.share == nil {
		f.share = make([]float64, n)
	}
	rs := make([]func() error, n)
	for i := range rs {
		rs[i] = func() error {
			d := f.dur(i, f.count[i])
			f.count[i]++
			f.calls = append(f.calls, i)
			f.now += d
			f.wait += f.share[i] * d.Seconds()
			return nil
		}
	}
	return rs
}

func (f *fakeRuns) clock() clock {
	return clock{now: func() time.Duration { return f.now }, wait: func() float64 { return f.wait }}
}

// median of xs (a copy is sorted), computed here independently of bench.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func TestInterleaveOrdersAndAggregates(t *testing.T) {
	const n, rounds, warmup, runs = 4, 7, 2, 5
	opt := LatencyOptions{Rounds: rounds, Warmup: warmup, Settle: time.Nanosecond, MinRuns: runs, MaxRuns: runs,
		BlockTime: time.Nanosecond, MaxSpread: 0.10, MaxLoad: 0.10}
	// Model i takes (i+1) ms; its k-th call adds a wobble that depends on k,
	// so round medians differ. Model 2 waits for the CPU 30% of the time;
	// model 3 is 40% slower in every other block (a noisy point).
	base := func(i, k int) float64 { return float64(i+1) * (1 + 0.01*float64(k%3)) }
	dur := func(i, k int) time.Duration {
		ms := base(i, k)
		if i == 3 && (k/(warmup+runs))%2 == 1 {
			ms *= 1.4
		}
		return time.Duration(ms * float64(time.Millisecond))
	}
	f := &fakeRuns{dur: dur, share: []float64{0, 0, 0.3, 0}}
	var fracs []float64
	got, err := interleave(context.Background(), f.runs(n), opt, f.clock(), func(fr float64) { fracs = append(fracs, fr) })
	if err != nil {
		t.Fatal(err)
	}

	// Order: blocks of warmup+runs calls of one model; each round visits
	// every model once; not every round in the same order.
	blk := warmup + runs
	if len(f.calls) != n*rounds*blk {
		t.Fatalf("got %d calls; want %d", len(f.calls), n*rounds*blk)
	}
	var orders [][]int
	for r := range rounds {
		var order []int
		for b := range n {
			start := (r*n + b) * blk
			m := f.calls[start]
			for _, c := range f.calls[start : start+blk] {
				if c != m {
					t.Fatalf("round %d block %d: calls %v; want one model", r, b, f.calls[start:start+blk])
				}
			}
			order = append(order, m)
		}
		if s := slices.Sorted(slices.Values(order)); !slices.Equal(s, []int{0, 1, 2, 3}) {
			t.Fatalf("round %d visits %v; want each model once", r, order)
		}
		orders = append(orders, order)
	}
	same := true
	for _, o := range orders[1:] {
		same = same && slices.Equal(o, orders[0])
	}
	if same {
		t.Errorf("every round in the order %v; want shuffled orders", orders[0])
	}
	if len(fracs) != n*rounds || fracs[len(fracs)-1] != 1 || !slices.IsSorted(fracs) {
		t.Errorf("progress %v; want %d non-decreasing fractions ending at 1", fracs, n*rounds)
	}

	// Aggregation: the median of the round medians, the quartiles of the
	// round medians, p90 and min over all timed runs.
	for i := range n {
		var meds, all []float64
		for b := range rounds {
			var blockMS []float64
			for k := b*blk + warmup; k < (b+1)*blk; k++ {
				blockMS = append(blockMS, float64(dur(i, k))/float64(time.Millisecond))
			}
			meds = append(meds, median(blockMS))
			all = append(all, blockMS...)
		}
		q := quartiles(meds)
		s := got[i]
		if math.Abs(s.P50-median(meds)) > 1e-9 || s.P25 != q[0] || s.P75 != q[2] || s.P25 > s.P50 || s.P50 > s.P75 {
			t.Errorf("model %d: got p25/p50/p75 %v/%v/%v; want %v/%v/%v", i, s.P25, s.P50, s.P75, q[0], median(meds), q[2])
		}
		if s.Min != slices.Min(all) || s.Runs != rounds*runs || s.Rounds != rounds || s.P90 < s.P50 {
			t.Errorf("model %d: got min %v runs %d rounds %d p90 %v; want min %v, %d runs, %d rounds, p90 ≥ p50",
				i, s.Min, s.Runs, s.Rounds, s.P90, slices.Min(all), rounds*runs, rounds)
		}
	}

	// Flags: model 2 for the load it saw, model 3 for its spread; 0 and 1
	// are clean.
	tests := []struct {
		i    int
		want string // "" or a substring of the reason
	}{{0, ""}, {1, ""}, {2, "CPU busy"}, {3, "spread"}}
	for _, tt := range tests {
		s := got[tt.i]
		if tt.want == "" && s.Unreliable != "" || tt.want != "" && !strings.Contains(s.Unreliable, tt.want) {
			t.Errorf("model %d: got unreliable %q (load %.2f, spread %.2f); want %q", tt.i, s.Unreliable, s.Load, s.Spread(), tt.want)
		}
	}
	if math.Abs(got[2].Load-0.3) > 1e-9 || got[0].Load != 0 {
		t.Errorf("got loads %v and %v; want 0.3 and 0", got[2].Load, got[0].Load)
	}
}

func TestInterleaveBlockLength(t *testing.T) {
	// A block runs at least MinRuns and at least BlockTime, at most MaxRuns.
	tests := []struct {
		name      string
		minRuns   int
		maxRuns   int
		blockTime time.Duration
		want      int
	}{
		{"min runs", 3, 100, time.Millisecond, 3},
		{"block time", 3, 100, 10 * time.Millisecond, 10},
		{"max runs", 3, 6, 10 * time.Millisecond, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRuns{dur: func(i, k int) time.Duration { return time.Millisecond }}
			opt := LatencyOptions{Rounds: 2, Warmup: 1, Settle: time.Nanosecond, MinRuns: tt.minRuns, MaxRuns: tt.maxRuns,
				BlockTime: tt.blockTime, MaxSpread: 0.1, MaxLoad: 0.1}
			got, err := interleave(context.Background(), f.runs(1), opt, f.clock(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got[0].Runs != 2*tt.want {
				t.Errorf("got %d timed runs; want %d", got[0].Runs, 2*tt.want)
			}
		})
	}
}

func TestInterleaveErrorsAndCancel(t *testing.T) {
	opt := LatencyOptions{}.withDefaults(30 * time.Millisecond)
	boom := errors.New("boom")
	if _, err := interleave(context.Background(), []func() error{func() error { return boom }}, opt, wallClock(), nil); !errors.Is(err, boom) {
		t.Errorf("got %v; want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := interleave(ctx, []func() error{func() error { return nil }}, opt, wallClock(), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v; want context.Canceled", err)
	}
}

// TestMeasureLatency runs the real path (engines, wall clock, CPU wait) on
// two small nets and checks the shape of the result, not the times.
func TestMeasureLatency(t *testing.T) {
	var gs []*nn.Graph
	for _, seed := range []uint64{1, 2} {
		g, err := nn.Build("resnet20", 1, 10, seed)
		if err != nil {
			t.Fatal(err)
		}
		g.Input = [3]int{1, 16, 16}
		gs = append(gs, g)
	}
	opt := LatencyOptions{Rounds: 3, MinRuns: 2, Settle: time.Microsecond}
	got, err := MeasureLatency(context.Background(), gs, 2, opt, 3*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d stats; want 2", len(got))
	}
	for i, s := range got {
		if s.Rounds != 3 || s.Runs < 6 || s.Min <= 0 || s.P25 < s.Min || s.P25 > s.P50 || s.P50 > s.P75 || s.P90 < s.P50 || s.Load < 0 {
			t.Errorf("model %d: got %+v; want 3 rounds, ≥ 6 runs, min ≤ p25 ≤ p50 ≤ p75, p90 ≥ p50, load ≥ 0", i, s)
		}
	}
}

// TestRemeasure: a finished sweep's points carry the interleaved figures
// (the runner's pass), and Remeasure re-times them; a running sweep is
// refused.
func TestRemeasure(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.sweep(t, Config{Dataset: "mnist", Forms: []string{FormRMNet}, Ratios: []float64{0.5}, Limit: 50, Batch: 8})
	r := f.runner()
	r.Latency = LatencyOptions{Rounds: 4, MinRuns: 2}
	if err := r.Run(ctx, s.ID, nil); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		ps, err := f.db.Points(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 3 {
			t.Fatalf("%s: got %d points; want 3", when, len(ps))
		}
		for _, p := range ps {
			if p.LatencyRounds != 4 || p.LatencyMSP25 <= 0 || p.LatencyMSP25 > p.LatencyMSP50 || p.LatencyMSP75 < p.LatencyMSP50 {
				t.Errorf("%s: %s@%v: rounds %d p25/p50/p75 %v/%v/%v; want 4 rounds and ordered quartiles", when,
					p.Form, p.Ratio, p.LatencyRounds, p.LatencyMSP25, p.LatencyMSP50, p.LatencyMSP75)
			}
		}
	}
	check("after Run")
	r.Latency.Rounds = 5
	var last float64
	if err := r.Remeasure(ctx, s.ID, func(frac float64, msg string) { last = frac }); err != nil {
		t.Fatal(err)
	}
	if last != 1 {
		t.Errorf("last progress %v; want 1", last)
	}
	ps, err := f.db.Points(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.LatencyRounds != 5 {
			t.Errorf("after Remeasure: %s@%v has %d rounds; want 5", p.Form, p.Ratio, p.LatencyRounds)
		}
	}
	if got, _ := f.db.Sweep(ctx, s.ID); got.Status != store.StatusDone {
		t.Errorf("after Remeasure the sweep is %s; want done (unchanged)", got.Status)
	}

	queued := f.sweep(t, Config{Dataset: "mnist", Ratios: []float64{0.5}})
	if err := r.Remeasure(ctx, queued.ID, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("queued sweep: got %v; want ErrConfig", err)
	}
	if err := r.Remeasure(ctx, 999, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing sweep: got %v; want ErrNotFound", err)
	}
}

func TestInterleaveCutShort(t *testing.T) {
	// Every run takes 1 s of fake time: a 10 s budget ends the pass after the
	// round that crosses it, never before MinRounds, and flags every point.
	tests := []struct {
		name      string
		maxTime   time.Duration
		minRounds int
		want      int
	}{
		{"budget", 10 * time.Second, 1, 2},     // 2 models × (1 warm-up + 2 runs) = 6 s a round
		{"min rounds", 10 * time.Second, 3, 3}, // over budget after round 2, but 3 rounds at least (under 2× the budget)
		{"no limit", 0, 1, 6},                  // MaxTime 0: all rounds
		{"roomy", 10 * time.Minute, 1, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRuns{dur: func(i, k int) time.Duration { return time.Second }}
			opt := LatencyOptions{Rounds: 6, Warmup: 1, Settle: time.Nanosecond, MinRuns: 2, MaxRuns: 2, BlockTime: time.Nanosecond,
				MaxSpread: 0.1, MaxLoad: 0.1, MaxTime: tt.maxTime, MinRounds: tt.minRounds}
			got, err := interleave(context.Background(), f.runs(2), opt, f.clock(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range got {
				cut := strings.Contains(s.Unreliable, "cut short")
				if s.Rounds != tt.want || cut != (tt.want < 6) {
					t.Errorf("model %d: got %d rounds, unreliable %q; want %d rounds, cut short %v", i, s.Rounds, s.Unreliable, tt.want, tt.want < 6)
				}
			}
		})
	}
}

func TestInterleaveHardStop(t *testing.T) {
	// Blocks of 3 s: at 2×MaxTime = 4 s the pass stops within the first
	// round, before the third model's block: it keeps Rounds 0.
	f := &fakeRuns{dur: func(i, k int) time.Duration { return time.Second }}
	opt := LatencyOptions{Rounds: 6, Warmup: 1, Settle: time.Nanosecond, MinRuns: 2, MaxRuns: 2, BlockTime: time.Nanosecond,
		MaxSpread: 0.1, MaxLoad: 0.1, MaxTime: 2 * time.Second, MinRounds: 4}
	got, err := interleave(context.Background(), f.runs(3), opt, f.clock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var rounds []int
	for _, s := range got {
		rounds = append(rounds, s.Rounds)
		if s.Rounds > 0 && !strings.Contains(s.Unreliable, "cut short") {
			t.Errorf("timed model: unreliable %q; want cut short", s.Unreliable)
		}
	}
	if slices.Sort(rounds); !slices.Equal(rounds, []int{0, 1, 1}) {
		t.Errorf("got rounds %v; want two models timed once and one never", rounds)
	}
}

// Two ratios that leave the same network are timed once and share their
// figures: the chart must not draw two timings of one network as a
// difference.
func TestLatencyPassSameNetwork(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.sweep(t, Config{Dataset: "mnist", Forms: []string{FormResNet}, Ratios: []float64{0.5, 0.5001, 0.7}, Limit: 50, Batch: 8})
	r := f.runner()
	r.Latency = LatencyOptions{Rounds: 4, MinRuns: 2}
	if err := r.Run(ctx, s.ID, nil); err != nil {
		t.Fatal(err)
	}
	ps, err := f.db.Points(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	by := map[float64]store.Point{}
	for _, p := range ps {
		by[p.Ratio] = p
	}
	a, b, c := by[0.5], by[0.5001], by[0.7]
	if a.Params != b.Params || a.MACsComputed != b.MACsComputed || fmt.Sprint(a.Channels) != fmt.Sprint(b.Channels) {
		t.Fatalf("ratios 0.5 and 0.5001 gave different networks (%d vs %d params); the test needs the same", a.Params, b.Params)
	}
	if a.LatencyMSP50 != b.LatencyMSP50 || a.LatencyMSP25 != b.LatencyMSP25 || a.LatencyMSP75 != b.LatencyMSP75 || a.LatencyRounds != 4 || b.LatencyRounds != 4 {
		t.Errorf("same network: p25/p50/p75 %v/%v/%v (%d rounds) vs %v/%v/%v (%d rounds); want one timing shared",
			a.LatencyMSP25, a.LatencyMSP50, a.LatencyMSP75, a.LatencyRounds, b.LatencyMSP25, b.LatencyMSP50, b.LatencyMSP75, b.LatencyRounds)
	}
	if c.Params == a.Params || c.LatencyRounds != 4 || c.LatencyMSP50 == a.LatencyMSP50 {
		t.Errorf("ratio 0.7: %d params, %d rounds, p50 %v (0.5: %v); want a network and a timing of its own", c.Params, c.LatencyRounds, c.LatencyMSP50, a.LatencyMSP50)
	}
}
