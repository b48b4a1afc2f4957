package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is a persistent set of worker goroutines that run one parallel loop at
// a time. Hand-offs spin briefly before parking, so back-to-back layers of a
// batch-1 inference do not pay a scheduler wake-up each.
//
// A loop's range is cut into one chunk per worker. [Pool.Run] calls fn once
// per chunk with the chunk's index as the worker: chunk w is claimed (one
// compare-and-swap) by worker w or, once the caller has finished its own
// chunk, by the caller, which runs it as worker w — so per-worker slots
// (partial sums reduced in worker order) stay deterministic. [Pool.RunShared]
// cuts every chunk into up to maxPieces pieces: worker w runs the pieces of
// chunk w first, in order (so a layer-parallel inference keeps each core on
// the same rows from layer to layer), then takes the pieces still unclaimed
// in the other chunks, each with its own worker index. A worker the Go
// scheduler or the OS has not run yet (a busy process, a shared machine) then
// holds up a loop by at most the piece it has claimed, not its whole chunk.
type Pool struct {
	workers int
	fn      func(worker, lo, hi int)
	n       int
	shared  bool // the current loop runs pieces as their runner (RunShared)
	epoch   atomic.Uint64
	pending atomic.Int64 // pieces of the current loop not yet finished
	next    []paddedCounter
	wake    []chan struct{}
	parked  []atomic.Bool
	done    chan struct{}
	stop    atomic.Bool
	wg      sync.WaitGroup
}

// paddedCounter is the claim counter of one chunk, on its own cache line:
// epoch<<(2·pieceBits) | pieces<<pieceBits | the next unclaimed piece. The
// piece count lives in the counter so that a worker still looking at the
// previous loop never reads the loop's length, which the caller may be
// rewriting for the next one.
type paddedCounter struct {
	v atomic.Uint64
	_ [56]byte
}

const (
	maxPieces = 4
	pieceBits = 8
)

// spinIters bounds how long the caller spins for its workers before
// parking; spinTime how long a worker spins for the next loop. A parked
// worker costs the next layer a futex wake-up (tens of µs, more than a
// small layer), so a worker spins by time, not by a count that runs out
// quickly once the OS has descheduled it for a while.
const (
	spinIters = 200000
	spinTime  = 2 * time.Millisecond
)

// NewPool starts workers−1 goroutines (the caller is worker 0).
func NewPool(workers int) *Pool {
	if workers < 1 {
		workers = 1
	}
	p := &Pool{workers: workers, wake: make([]chan struct{}, workers), parked: make([]atomic.Bool, workers),
		next: make([]paddedCounter, workers), done: make(chan struct{}, 1)}
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

// pieces is the number of pieces chunk c of a loop over n is cut into.
func (p *Pool) pieces(n, c int, shared bool) int {
	lo, hi := chunk(n, p.workers, c)
	if !shared {
		return min(hi-lo, 1)
	}
	return min(hi-lo, maxPieces)
}

// work runs, as worker w, the unclaimed pieces of loop epoch e: chunk w's
// first, then the other chunks'.
func (p *Pool) work(w int, e uint64) {
	for i := range p.workers {
		c := (w + i) % p.workers
		ctr := &p.next[c].v
		for {
			v := ctr.Load()
			k, np := int(v&(1<<pieceBits-1)), int(v>>pieceBits&(1<<pieceBits-1))
			if v>>(2*pieceBits) != e || k >= np {
				break
			}
			if !ctr.CompareAndSwap(v, v+1) {
				continue
			}
			// Claimed: the loop is live until this piece is done.
			lo, hi := chunk(p.n, p.workers, c)
			a, b := chunk(hi-lo, np, k)
			if p.shared {
				p.fn(w, lo+a, lo+b)
			} else {
				p.fn(c, lo, hi) // the whole chunk, as its worker
			}
			if p.pending.Add(-1) == 0 && w != 0 {
				select {
				case p.done <- struct{}{}:
				default:
				}
			}
		}
	}
}

func (p *Pool) loop(w int) {
	defer p.wg.Done()
	seen := uint64(0)
	for {
		spins := 0
		var since time.Time
		for p.epoch.Load() == seen {
			if p.stop.Load() {
				return
			}
			spins++
			if spins%2048 != 0 {
				continue
			}
			runtime.Gosched()
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) < spinTime {
				continue
			}
			p.parked[w].Store(true)
			if p.epoch.Load() != seen || p.stop.Load() { // re-check after announcing
				p.parked[w].Store(false)
				continue
			}
			<-p.wake[w]
			spins, since = 0, time.Time{}
		}
		seen = p.epoch.Load()
		if p.stop.Load() {
			return
		}
		p.work(w, seen)
	}
}

// Run calls fn(w, lo, hi) once for every worker w whose chunk [lo, hi) of
// [0, n) is not empty and returns when all are done. It has the shape of
// kernels.ParallelFunc. Run is not reentrant: one loop at a time.
func (p *Pool) Run(n int, fn func(worker, lo, hi int)) { p.run(n, fn, false) }

// RunShared calls fn(worker, lo, hi) over disjoint sub-ranges covering
// [0, n), up to maxPieces per chunk, and returns when all are done; a worker
// may get several sub-ranges, never two at once. It has the shape of
// kernels.ParallelFunc, for work that does not keep per-worker results.
func (p *Pool) RunShared(n int, fn func(worker, lo, hi int)) { p.run(n, fn, true) }

func (p *Pool) run(n int, fn func(worker, lo, hi int), shared bool) {
	if p.workers == 1 || n <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	p.fn, p.n, p.shared = fn, n, shared
	total := 0
	for c := range p.workers {
		total += p.pieces(n, c, shared)
	}
	p.pending.Store(int64(total))
	e := p.epoch.Load() + 1
	for c := range p.workers {
		p.next[c].v.Store(e<<(2*pieceBits) | uint64(p.pieces(n, c, shared))<<pieceBits)
	}
	p.epoch.Store(e)
	for w := 1; w < p.workers; w++ {
		if p.parked[w].Load() {
			p.parked[w].Store(false)
			select {
			case p.wake[w] <- struct{}{}:
			default:
			}
		}
	}
	p.work(0, e)
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
