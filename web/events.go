package web

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/rmprune/rmprune/store"
)

// sseEvent is the data of a "progress" event.
type sseEvent struct {
	Status   string  `json:"status"`
	Progress float64 `json:"progress"`
	Message  string  `json:"message,omitempty"`
	Error    string  `json:"error,omitempty"`
	Points   int     `json:"points"`
	// A latency re-measure of the sweep: "queued" or "running" while one is
	// pending, with its progress (remeasure.go).
	Remeasure         string  `json:"remeasure,omitempty"`
	RemeasureProgress float64 `json:"remeasure_progress,omitempty"`
}

// handleEvents streams a sweep's progress as server-sent events:
// "progress" {status, progress, message, points} whenever it changes,
// "point" {a point} for every new point, and "end" when the sweep stops
// (done, failed, cancelled or interrupted) and no latency re-measure of it
// is pending (during one, "progress" carries remeasure and
// remeasure_progress). It reads the store, so sweeps run
// by another process (`rmprune sweep`) stream too.
func handleEvents(db interface {
	sweepGetter
	pointLister
}, q *Queue, log *slog.Logger) http.HandlerFunc {
	const tick, keepAlive, maxLife = 400 * time.Millisecond, 15 * time.Second, 6 * time.Hour
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		ctx := r.Context()
		s, err := db.Sweep(ctx, id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		send := func(event string, v any) bool {
			b, _ := json.Marshal(v)
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		seen := map[int64]bool{}
		var last sseEvent
		first := true
		lastWrite := time.Now()
		t := time.NewTicker(tick)
		defer t.Stop()
		deadline := time.Now().Add(maxLife)
		for {
			ps, err := db.Points(ctx, id)
			if err != nil {
				return
			}
			for _, p := range ps {
				if !seen[p.ID] {
					seen[p.ID] = true
					if !first && !send("point", toAPIPoint(p)) {
						return
					}
				}
			}
			_, msg, _ := q.Progress(id)
			rm := remeasureOf(ctx, db, q, id)
			if rm.Status != "" {
				msg = rm.Message
			}
			ev := sseEvent{Status: string(s.Status), Progress: s.Progress, Message: msg, Error: s.Error, Points: len(ps),
				Remeasure: rm.Status, RemeasureProgress: rm.Progress}
			if first || ev != last {
				if !send("progress", ev) {
					return
				}
				last, first, lastWrite = ev, false, time.Now()
			}
			if (s.Status.Finished() || s.Status == store.StatusInterrupted) && rm.Status == "" || time.Now().After(deadline) {
				send("end", ev)
				return
			}
			if time.Since(lastWrite) > keepAlive {
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
					return
				}
				lastWrite = time.Now()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if s, err = db.Sweep(ctx, id); err != nil {
				send("end", sseEvent{Status: "deleted"})
				return
			}
		}
	}
}
