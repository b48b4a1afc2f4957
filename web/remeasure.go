package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// Re-measuring a sweep's latency on demand: POST /api/sweeps/{id}/remeasure
// (and the sweep page's button) queue a job of kind store.JobKindRemeasure;
// the queue's workers run it like a sweep, one job at a time, so it never
// times points while a sweep computes; progress goes out over the sweep's
// SSE stream.

// Remeasurer re-times a finished sweep's points; *sweep.Runner is one. A
// queue whose runner is not one fails remeasure jobs.
type Remeasurer interface {
	Remeasure(ctx context.Context, sweepID int64, progress func(frac float64, msg string)) error
}

// remeasureStore is what queuing a re-measure needs.
type remeasureStore interface {
	sweepGetter
	pointLister
	CreateJob(ctx context.Context, kind string, refID int64) (store.Job, error)
	ActiveJob(ctx context.Context, kind string, refID int64) (store.Job, error)
}

// startRemeasure queues a re-measure of sweep id, or returns the one already
// queued or running. 409 while the sweep itself is queued or running (its
// own latency pass ends it) and for a sweep without points.
func startRemeasure(ctx context.Context, db remeasureStore, q *Queue, id int64) (store.Job, error) {
	s, err := db.Sweep(ctx, id)
	if err != nil {
		return store.Job{}, err
	}
	if s.Status == store.StatusQueued || s.Status == store.StatusRunning {
		return store.Job{}, errStatus(http.StatusConflict,
			fmt.Sprintf("sweep %d is %s: its points are timed together when it ends", id, s.Status))
	}
	ps, err := db.Points(ctx, id)
	if err != nil {
		return store.Job{}, err
	}
	if len(ps) == 0 {
		return store.Job{}, errStatus(http.StatusConflict, fmt.Sprintf("sweep %d has no points to measure", id))
	}
	if j, err := db.ActiveJob(ctx, store.JobKindRemeasure, id); err == nil {
		return j, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Job{}, err
	}
	j, err := db.CreateJob(ctx, store.JobKindRemeasure, id)
	if err != nil {
		return store.Job{}, err
	}
	q.Wake()
	return j, nil
}

// handleAPIRemeasure is POST /api/sweeps/{id}/remeasure → 202 {id, job_id, status}.
func handleAPIRemeasure(db remeasureStore, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		j, err := startRemeasure(r.Context(), db, q, id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "job_id": j.ID, "status": j.Status})
	}
}

// handleRemeasureForm is the sweep page's "Re-measure latency" button.
func handleRemeasureForm(db remeasureStore, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			_, err = startRemeasure(r.Context(), db, q, id)
		}
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		http.Redirect(w, r, "/sweeps/"+itoa(id), http.StatusSeeOther)
	}
}

// jobProgressSetter saves a job's progress; *store.DB is one.
type jobProgressSetter interface {
	SetJobProgress(ctx context.Context, id int64, progress float64) error
}

// runRemeasure runs a claimed remeasure job; a server shutdown (ctx done)
// interrupts it, leaving the stored figures as they were.
func (q *Queue) runRemeasure(ctx context.Context, job store.Job) {
	bg := context.WithoutCancel(ctx)
	rm, ok := q.runner.(Remeasurer)
	if !ok {
		q.db.SetJobStatus(bg, job.ID, store.StatusFailed, "this server cannot re-measure latency")
		return
	}
	id := job.RefID
	t := &task{msg: "re-measuring latency"}
	tctx, end := track(q, ctx, &q.remeasuring, id, t, t)
	defer end()
	ps, _ := q.db.(jobProgressSetter)
	var saved time.Time
	q.log.Info("latency re-measure started", "sweep", id)
	err := rm.Remeasure(tctx, id, func(frac float64, msg string) {
		q.mu.Lock()
		t.frac, t.msg = frac, "re-measuring latency: "+msg
		q.mu.Unlock()
		if ps != nil && time.Since(saved) > 500*time.Millisecond {
			ps.SetJobProgress(bg, job.ID, min(max(frac, 0), 1))
			saved = time.Now()
		}
	})
	st, text := store.StatusDone, ""
	switch {
	case errors.Is(context.Cause(tctx), sweep.ErrInterrupted):
		st, text = store.StatusInterrupted, "interrupted"
	case tctx.Err() != nil:
		st, text = store.StatusCancelled, "cancelled"
	case err != nil:
		st, text = store.StatusFailed, err.Error()
		q.log.Warn("latency re-measure failed", "sweep", id, "err", err)
	}
	if err := q.db.SetJobStatus(bg, job.ID, st, text); err != nil {
		q.log.Error("queue: remeasure job status", "job", job.ID, "err", err)
	}
}

// remeasureState is a sweep's pending re-measure: status "" (none),
// "queued" or "running", its progress and message.
type remeasureState struct {
	Status   string
	Progress float64
	Message  string
}

// activeJober finds queued or running jobs; *store.DB is one.
type activeJober interface {
	ActiveJob(ctx context.Context, kind string, refID int64) (store.Job, error)
}

// remeasureOf reads sweep id's pending re-measure from this process's queue,
// else from the store (a job queued, or run by another process).
func remeasureOf(ctx context.Context, db any, q *Queue, id int64) remeasureState {
	q.mu.Lock()
	t, ok := q.remeasuring[id]
	var st remeasureState
	if ok {
		st = remeasureState{Status: string(store.StatusRunning), Progress: t.frac, Message: t.msg}
	}
	q.mu.Unlock()
	if ok {
		return st
	}
	aj, ok := db.(activeJober)
	if !ok {
		return st
	}
	j, err := aj.ActiveJob(ctx, store.JobKindRemeasure, id)
	if err != nil {
		return st
	}
	st = remeasureState{Status: string(j.Status), Progress: j.Progress, Message: "latency re-measure " + string(j.Status)}
	if j.Status == store.StatusQueued {
		st.Message = "latency re-measure waiting for a worker"
	}
	return st
}
