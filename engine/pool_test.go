package engine

import (
	"sync/atomic"
	"testing"
	"time"
)

func spinFor(d time.Duration) {
	t := time.Now()
	for time.Since(t) < d {
	}
}

// The pool runs both halves of a loop at the same time: two 2 ms halves take
// well under 4 ms of wall time.
func TestPoolRunsInParallel(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var seen [2]atomic.Int32
	p.Run(2, func(w, lo, hi int) { seen[w].Add(1) }) // warm up
	best := time.Hour
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		p.Run(2, func(w, lo, hi int) { seen[w].Add(1); spinFor(2 * time.Millisecond) })
		best = min(best, time.Since(t0))
	}
	if seen[0].Load() == 0 || seen[1].Load() == 0 {
		t.Fatalf("workers ran %d and %d times; want both", seen[0].Load(), seen[1].Load())
	}
	t.Logf("two 2 ms halves took %v", best)
	if best > 3500*time.Microsecond {
		t.Errorf("two 2 ms halves took %v; want < 3.5 ms (parallel)", best)
	}
}

func BenchmarkPoolHandoff(b *testing.B) {
	p := NewPool(2)
	defer p.Close()
	fn := func(w, lo, hi int) {}
	for b.Loop() {
		p.Run(2, fn)
	}
}
