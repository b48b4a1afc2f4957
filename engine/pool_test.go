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

// Every index runs exactly once per loop, each call with a valid worker
// index that no other running call holds, also when one worker takes the
// chunks or pieces of workers the scheduler has not run (one P: the caller
// usually gets there first), for loops shorter and longer than the pieces.
// Run gives every worker exactly its chunk, whoever runs it.
func TestPoolIndicesOnceEach(t *testing.T) {
	for _, shared := range []bool{false, true} {
		for _, procs := range []int{1, 2} {
			prev := runtime.GOMAXPROCS(procs)
			p := NewPool(3)
			run := p.Run
			if shared {
				run = p.RunShared
			}
			for i := 0; i < 2000; i++ {
				n := 2 + i%37
				hits := make([]atomic.Int32, n)
				var busy [3]atomic.Bool
				run(n, func(w, lo, hi int) {
					if w < 0 || w >= 3 || lo >= hi || lo < 0 || hi > n {
						t.Errorf("call worker %d [%d,%d) in a loop of %d", w, lo, hi, n)
						return
					}
					if wantLo, wantHi := chunk(n, 3, w); !shared && (lo != wantLo || hi != wantHi) {
						t.Errorf("worker %d got [%d,%d); want [%d,%d)", w, lo, hi, wantLo, wantHi)
					}
					if busy[w].Swap(true) {
						t.Errorf("worker %d runs two calls at once", w)
					}
					for j := lo; j < hi; j++ {
						hits[j].Add(1)
					}
					busy[w].Store(false)
				})
				for j := range hits {
					if h := hits[j].Load(); h != 1 {
						t.Fatalf("shared %v, GOMAXPROCS %d, loop %d of %d: index %d ran %d times; want 1", shared, procs, i, n, j, h)
					}
				}
			}
			p.Close()
			runtime.GOMAXPROCS(prev)
		}
	}
}

// With RunShared each worker starts with the first piece of its own chunk (the two first
// calls wait for each other, so both workers run), as layer-parallel
// inference relies on for cache locality.
func TestPoolOwnChunkFirst(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	for range 50 {
		var started [2]atomic.Bool
		var first [2][2]int
		p.RunShared(8, func(w, lo, hi int) {
			if !started[w].Swap(true) {
				first[w] = [2]int{lo, hi}
			}
			deadline := time.Now().Add(20 * time.Second)
			for !started[1-w].Load() && time.Now().Before(deadline) {
				runtime.Gosched()
			}
		})
		for w, want := range [][2]int{{0, 1}, {4, 5}} {
			if first[w] != want {
				t.Fatalf("worker %d began with [%d,%d); want [%d,%d)", w, first[w][0], first[w][1], want[0], want[1])
			}
		}
	}
}

// A batch-1 style loop of many small layers while other goroutines of the
// process keep both Ps busy (a dashboard under load).
func BenchmarkPoolBusyProcess(b *testing.B) {
	stop := make(chan struct{})
	for range 8 {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
					spinFor(50 * time.Microsecond)
					runtime.Gosched()
				}
			}
		}()
	}
	defer close(stop)
	p := NewPool(2)
	defer p.Close()
	fn := func(w, lo, hi int) { spinFor(10 * time.Microsecond) }
	for b.Loop() {
		for range 60 {
			p.Run(2, fn)
		}
	}
}
