package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool is a persistent set of worker goroutines that run one parallel loop at
// a time. Hand-offs spin briefly before parking, so back-to-back layers of a
// batch-1 inference do not pay a scheduler wake-up each. Chunk w of a loop is
// claimed (one compare-and-swap) by worker w or, once the caller has finished
// its own chunk, by the caller: a worker the Go scheduler has not run yet (a
// busy process, an oversubscribed machine) never holds up a layer — the caller
// runs its chunk instead, as worker w, so per-worker scratch stays exclusive.
type Pool struct {
	workers int
	fn      func(worker, lo, hi int)
	n       int
	epoch   atomic.Uint64
	pending atomic.Int64
	wake    []chan struct{}
	parked  []atomic.Bool
	claimed []atomic.Uint64 // epoch for which chunk w was last claimed
	done    chan struct{}
	stop    atomic.Bool
	wg      sync.WaitGroup
}

// spinIters bounds how long a worker spins for the next job before parking.
const spinIters = 200000

// NewPool starts workers−1 goroutines (the caller is worker 0).
func NewPool(workers int) *Pool {
	if workers < 1 {
		workers = 1
	}
	p := &Pool{workers: workers, wake: make([]chan struct{}, workers), parked: make([]atomic.Bool, workers), claimed: make([]atomic.Uint64, workers), done: make(chan struct{}, 1)}
	for w := 1; w < workers; w++ {
		p.wake[w] = make(chan struct{}, 1)
		p.wg.Add(1)
		go p.loop(w)
	}
	return p
}

// Workers is the number of workers including the caller.
func (p *Pool) Workers() int { return p.workers }

func chunk(n, parts, i int) (lo, hi int) {
	return n * i / parts, n * (i + 1) / parts
}

func (p *Pool) loop(w int) {
	defer p.wg.Done()
	seen := uint64(0)
	for {
		spins := 0
		for p.epoch.Load() == seen {
			if p.stop.Load() {
				return
			}
			spins++
			if spins < spinIters {
				if spins%2048 == 0 {
					runtime.Gosched()
				}
				continue
			}
			p.parked[w].Store(true)
			if p.epoch.Load() != seen || p.stop.Load() { // re-check after announcing
				p.parked[w].Store(false)
				continue
			}
			<-p.wake[w]
			spins = 0
		}
		seen = p.epoch.Load()
		if p.stop.Load() {
			return
		}
		if !p.claimed[w].CompareAndSwap(seen-1, seen) {
			continue // the caller took this chunk (or this epoch is over)
		}
		if lo, hi := chunk(p.n, p.workers, w); lo < hi {
			p.fn(w, lo, hi)
		}
		if p.pending.Add(-1) == 0 {
			select {
			case p.done <- struct{}{}:
			default:
			}
		}
	}
}

// Run calls fn(worker, lo, hi) over disjoint sub-ranges covering [0, n) and
// returns when all are done. It has the shape of kernels.ParallelFunc. Run is
// not reentrant: one loop at a time.
func (p *Pool) Run(n int, fn func(worker, lo, hi int)) {
	if p.workers == 1 || n <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	p.fn, p.n = fn, n
	p.pending.Store(int64(p.workers - 1))
	e := p.epoch.Add(1)
	for w := 1; w < p.workers; w++ {
		if p.parked[w].Load() {
			p.parked[w].Store(false)
			select {
			case p.wake[w] <- struct{}{}:
			default:
			}
		}
	}
	if lo, hi := chunk(n, p.workers, 0); lo < hi {
		fn(0, lo, hi)
	}
	// Run the chunks of workers that have not started yet.
	for w := 1; w < p.workers; w++ {
		if p.claimed[w].CompareAndSwap(e-1, e) {
			if lo, hi := chunk(n, p.workers, w); lo < hi {
				fn(w, lo, hi)
			}
			p.pending.Add(-1)
		}
	}
	spins := 0
	for p.pending.Load() != 0 {
		spins++
		if spins < spinIters {
			if spins%2048 == 0 {
				runtime.Gosched()
			}
			continue
		}
		<-p.done
		spins = 0
	}
	select { // drain a late completion signal
	case <-p.done:
	default:
	}
	p.fn = nil
}

// Close stops the workers.
func (p *Pool) Close() {
	p.stop.Store(true)
	for w := 1; w < p.workers; w++ {
		select {
		case p.wake[w] <- struct{}{}:
		default:
		}
	}
	p.wg.Wait()
}
