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

// Every chunk runs exactly once per loop, with its own worker index, also
// when the caller takes the chunks of workers the scheduler has not run (one
// P: the caller usually gets there first).
func TestPoolChunksOnceEach(t *testing.T) {
	for _, procs := range []int{1, 2} {
		prev := runtime.GOMAXPROCS(procs)
		p := NewPool(3)
		for i := 0; i < 2000; i++ {
			var hits [9]atomic.Int32
			p.Run(9, func(w, lo, hi int) {
				if wantLo, wantHi := chunk(9, 3, w); lo != wantLo || hi != wantHi {
					t.Errorf("worker %d got [%d,%d); want [%d,%d)", w, lo, hi, wantLo, wantHi)
				}
				for j := lo; j < hi; j++ {
					hits[j].Add(1)
				}
			})
			for j := range hits {
				if h := hits[j].Load(); h != 1 {
					t.Fatalf("GOMAXPROCS %d, loop %d: index %d ran %d times; want 1", procs, i, j, h)
				}
			}
		}
		p.Close()
		runtime.GOMAXPROCS(prev)
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
