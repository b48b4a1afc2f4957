package engine

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func spinFor(d time.Duration) {
	t := time.Now()
	for time.Since(t) < d {
	}
}

// The pool runs both halves of a loop at the same time: each half waits until
// the other has started, which can only finish if they overlap (a pool that
// ran them one after the other would deadlock; the timeout catches that
// without timing anything).
func TestPoolRunsInParallel(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	done := make(chan bool, 1)
	go func() {
		var started [2]atomic.Bool
		var failed atomic.Bool
		p.Run(2, func(w, lo, hi int) {
			started[w].Store(true)
			deadline := time.Now().Add(20 * time.Second)
			for !started[1-w].Load() {
				if time.Now().After(deadline) {
					failed.Store(true)
					return
				}
				runtime.Gosched()
			}
		})
		done <- !failed.Load()
	}()
	if !<-done {
		t.Fatal("the two halves of a 2-way loop never ran at the same time")
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
