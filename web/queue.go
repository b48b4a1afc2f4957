package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// SweepRunner computes a stored sweep; *sweep.Runner is one.
type SweepRunner interface {
	// Validate checks a configuration (after Defaults) against the runner:
	// known dataset names, fine-tuning support.
	Validate(c *sweep.Config) error
	// Run computes the sweep, leaving it done, failed, cancelled or (when
	// ctx's cause is sweep.ErrInterrupted) interrupted.
	Run(ctx context.Context, sweepID int64, progress func(frac float64, msg string)) error
}

// queueStore is what the queue needs from the store.
type queueStore interface {
	NextJob(ctx context.Context) (store.Job, error)
	SetJobStatus(ctx context.Context, id int64, status store.Status, errText string) error
	Sweep(ctx context.Context, id int64) (store.Sweep, error)
	SetSweepStatus(ctx context.Context, id int64, status store.Status, errText string) error
}

// errCancelled is the cause of a cancel asked for by a user.
var errCancelled = errors.New("cancelled by request")

// Queue runs queued sweeps in the background with a fixed number of workers
// (one by default: on a small machine a sweep's timings must not overlap other
// heavy work). It claims jobs with store.NextJob, so work queued by another
// process sharing the database is run too.
type Queue struct {
	db      queueStore
	runner  SweepRunner
	workers int
	log     *slog.Logger
	wake    chan struct{}
	poll    time.Duration

	mu      sync.Mutex
	running map[int64]*task // by sweep id
	wg      sync.WaitGroup

	// remeasuring are latency re-measures running here, by sweep id (remeasure.go).
	remeasuring map[int64]*task
	// training are mask trainings running here, by training id, and
	// modelCheck what is done with the model one stores (masktrain.go).
	training   map[int64]*trainTask
	modelCheck func(store.Model, *nn.Graph)
}

// task is a sweep running in this process.
type task struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
	frac   float64
	msg    string
}

// NewQueue returns a queue of workers (at least 1) running sweeps with runner.
func NewQueue(db queueStore, runner SweepRunner, workers int, log *slog.Logger) *Queue {
	if workers < 1 {
		workers = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue{db: db, runner: runner, workers: workers, log: log, wake: make(chan struct{}, 1),
		poll: 2 * time.Second, running: map[int64]*task{}}
}

// Start starts the workers. They stop when ctx is done; sweeps still running
// then are left interrupted (resumable). Wait waits for them.
func (q *Queue) Start(ctx context.Context) {
	for range q.workers {
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			q.work(ctx)
		}()
	}
}

// Wait waits until the workers have stopped.
func (q *Queue) Wait() { q.wg.Wait() }

// Wake tells an idle worker that a job was queued.
func (q *Queue) Wake() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue) work(ctx context.Context) {
	for ctx.Err() == nil {
		job, err := q.db.NextJob(ctx)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				q.log.Error("queue: next job", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			case <-time.After(q.poll):
			}
			continue
		}
		if job.Kind == store.JobKindRemeasure {
			q.runRemeasure(ctx, job) // remeasure.go
			continue
		}
		if job.Kind == store.JobKindMaskTrain {
			q.runMaskTrain(ctx, job) // masktrain.go
			continue
		}
		if job.Kind != store.JobKindSweep {
			q.db.SetJobStatus(context.WithoutCancel(ctx), job.ID, store.StatusFailed,
				fmt.Sprintf("unknown job kind %q", job.Kind))
			continue
		}
		q.runSweep(ctx, job.RefID)
	}
}

// runSweep runs one sweep; a server shutdown (ctx done) interrupts it.
func (q *Queue) runSweep(ctx context.Context, id int64) {
	t := &task{msg: "starting"}
	tctx, end := track(q, ctx, &q.running, id, t, t)
	defer end()
	q.log.Info("sweep started", "sweep", id)
	start := time.Now()
	err := q.runner.Run(tctx, id, func(frac float64, msg string) {
		q.mu.Lock()
		t.frac, t.msg = frac, msg
		q.mu.Unlock()
	})
	// A runner that failed before recording an outcome (e.g. stopped before
	// it started) leaves the sweep running: settle it here.
	bg := context.WithoutCancel(ctx)
	if s, serr := q.db.Sweep(bg, id); serr == nil && s.Status == store.StatusRunning {
		st, text := store.StatusFailed, "stopped without a result"
		switch {
		case errors.Is(context.Cause(tctx), sweep.ErrInterrupted):
			st, text = store.StatusInterrupted, "interrupted"
		case tctx.Err() != nil:
			st, text = store.StatusCancelled, "cancelled"
		case err != nil:
			text = err.Error()
		}
		q.db.SetSweepStatus(bg, id, st, text)
	}
	switch {
	case err == nil:
		q.log.Info("sweep done", "sweep", id, "took", time.Since(start).Round(time.Millisecond))
	case tctx.Err() != nil:
		q.log.Info("sweep stopped", "sweep", id, "cause", context.Cause(tctx))
	default:
		q.log.Warn("sweep failed", "sweep", id, "err", err)
	}
}

// Progress returns the last progress report of a sweep running in this
// process.
func (q *Queue) Progress(id int64) (frac float64, msg string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t, ok := q.running[id]
	if !ok {
		return 0, "", false
	}
	return t.frac, t.msg, true
}

// Cancel cancels a sweep running in this process and waits up to timeout for
// it to stop. It reports whether the sweep was running here.
func (q *Queue) Cancel(id int64, timeout time.Duration) bool {
	q.mu.Lock()
	t, ok := q.running[id]
	q.mu.Unlock()
	return ok && t.stop(timeout)
}

// track does the bookkeeping of a job this process runs: v (whose task
// part is t) stands in *tasks under id, guarded by q.mu, until end is
// called; tctx is cancelled through t.cancel by a user and with
// sweep.ErrInterrupted when ctx (the server) ends. end releases tctx,
// removes v and closes t.done.
func track[T any](q *Queue, ctx context.Context, tasks *map[int64]*T, id int64, v *T, t *task) (tctx context.Context, end func()) {
	tctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { cancel(sweep.ErrInterrupted) })
	t.cancel, t.done = cancel, make(chan struct{})
	q.mu.Lock()
	if *tasks == nil {
		*tasks = map[int64]*T{}
	}
	(*tasks)[id] = v
	q.mu.Unlock()
	return tctx, func() {
		stop()
		cancel(nil)
		q.mu.Lock()
		delete(*tasks, id)
		q.mu.Unlock()
		close(t.done)
	}
}

// stop cancels t and waits up to timeout for it to end.
func (t *task) stop(timeout time.Duration) bool {
	t.cancel(errCancelled)
	select {
	case <-t.done:
	case <-time.After(timeout):
	}
	return true
}
