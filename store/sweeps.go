package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Status is the state of a sweep or a job.
type Status string

// The statuses. A sweep or job starts queued, runs, and ends done, failed or
// cancelled; interrupted means the process died while it ran (see
// MarkInterrupted) and it can be resumed.
const (
	StatusQueued      Status = "queued"
	StatusRunning     Status = "running"
	StatusDone        Status = "done"
	StatusFailed      Status = "failed"
	StatusCancelled   Status = "cancelled"
	StatusInterrupted Status = "interrupted"
)

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusQueued, StatusRunning, StatusDone, StatusFailed, StatusCancelled, StatusInterrupted:
		return true
	}
	return false
}

// Finished reports whether s is an end state (done, failed or cancelled).
// Interrupted is not: the work can go on.
func (s Status) Finished() bool {
	return s == StatusDone || s == StatusFailed || s == StatusCancelled
}

// JobKindSweep is the kind of the job that CreateSweep queues for a sweep.
const JobKindSweep = "sweep"

// Sweep is a stored pruning sweep: its settings (DESIGN, POST /api/sweeps)
// and its progress. The store applies no defaults: the caller resolves them.
type Sweep struct {
	ID             int64     `json:"id"`
	ModelID        int64     `json:"model_id"`
	Dataset        string    `json:"dataset"` // a dataset name the server knows, never a path
	Method         string    `json:"method"`  // slim | l1
	Scope          string    `json:"scope"`   // global | uniform
	Forms          []string  `json:"forms"`   // rmnet, resnet
	Ratios         []float64 `json:"ratios"`
	MinChannels    int       `json:"min_channels"`
	RoundTo        int       `json:"round_to"`
	FinetuneEpochs int       `json:"finetune_epochs"`
	FinetuneLimit  int       `json:"finetune_limit"` // training images per fine-tuning epoch; 0 = all
	TrainCopies    bool      `json:"train_copies"`   // form rmnet: fine-tuning trains RM's copy filters too
	Batch          int       `json:"batch"`
	Threads        int       `json:"threads"`
	Limit          int       `json:"limit"`  // images evaluated; 0 = the whole test split
	Target         string    `json:"target"` // cluster worker target ("" = the default)
	Status         Status    `json:"status"`
	Progress       float64   `json:"progress"` // 0..1
	Error          string    `json:"error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	StartedAt      time.Time `json:"started_at"`  // zero until first running
	FinishedAt     time.Time `json:"finished_at"` // zero until done, failed or cancelled
}

const sweepCols = `id, model_id, dataset, method, scope, forms, ratios, min_channels, round_to,
	finetune_epochs, finetune_limit, train_copies, batch, threads, eval_limit, target, status, progress, error, created_at, started_at, finished_at`

func scanSweep(s scanner) (Sweep, error) {
	var w Sweep
	var forms, ratios string
	var created, started, finished sql.NullString
	err := s.Scan(&w.ID, &w.ModelID, &w.Dataset, &w.Method, &w.Scope, &forms, &ratios, &w.MinChannels,
		&w.RoundTo, &w.FinetuneEpochs, &w.FinetuneLimit, &w.TrainCopies, &w.Batch, &w.Threads, &w.Limit, &w.Target, &w.Status, &w.Progress, &w.Error,
		&created, &started, &finished)
	if err != nil {
		return Sweep{}, err
	}
	if err := json.Unmarshal([]byte(forms), &w.Forms); err != nil {
		return Sweep{}, fmt.Errorf("sweep %d: forms: %w", w.ID, err)
	}
	if err := json.Unmarshal([]byte(ratios), &w.Ratios); err != nil {
		return Sweep{}, fmt.Errorf("sweep %d: ratios: %w", w.ID, err)
	}
	for _, t := range []struct {
		dst *time.Time
		src sql.NullString
	}{{&w.CreatedAt, created}, {&w.StartedAt, started}, {&w.FinishedAt, finished}} {
		if *t.dst, err = parseTime(t.src); err != nil {
			return Sweep{}, err
		}
	}
	return w, nil
}

// NormRatio rounds a pruning ratio to 6 decimals, the precision the store
// keeps, so that 0.1+0.2 and 0.3 name the same point.
func NormRatio(r float64) float64 { return math.Round(r*1e6) / 1e6 }

// CreateSweep stores s as a queued sweep of its model, and queues its job
// (kind JobKindSweep, RefID the sweep id), in one transaction. Status,
// progress and times in s are ignored; ratios are rounded with NormRatio.
// ErrNotFound when the model does not exist.
func (db *DB) CreateSweep(ctx context.Context, s Sweep) (Sweep, error) {
	op := fmt.Sprintf("create sweep for model %d", s.ModelID)
	if len(s.Forms) == 0 || len(s.Ratios) == 0 {
		return Sweep{}, wrap(op, fmt.Errorf("%w: a sweep needs at least one form and one ratio", ErrInvalid))
	}
	ratios := make([]float64, len(s.Ratios))
	for i, r := range s.Ratios {
		if err := checkFraction("ratio", r); err != nil {
			return Sweep{}, wrap(op, err)
		}
		ratios[i] = NormRatio(r)
	}
	forms, err := json.Marshal(s.Forms)
	if err != nil {
		return Sweep{}, wrap(op, err)
	}
	rj, err := json.Marshal(ratios)
	if err != nil {
		return Sweep{}, wrap(op, err)
	}
	var stored Sweep
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "models", s.ModelID); err != nil {
			return err
		}
		now := db.nowText()
		stored, err = scanSweep(tx.QueryRowContext(ctx, `INSERT INTO sweeps (model_id, dataset, method, scope,
			forms, ratios, min_channels, round_to, finetune_epochs, finetune_limit, train_copies, batch, threads, eval_limit, target, status, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?) RETURNING `+sweepCols,
			s.ModelID, s.Dataset, s.Method, s.Scope, string(forms), string(rj), s.MinChannels, s.RoundTo,
			s.FinetuneEpochs, s.FinetuneLimit, s.TrainCopies, s.Batch, s.Threads, s.Limit, s.Target, now))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO jobs (kind, ref_id, status, created_at, updated_at)
			VALUES (?, ?, 'queued', ?, ?)`, JobKindSweep, stored.ID, now, now)
		return err
	})
	if err != nil {
		return Sweep{}, wrap(op, err)
	}
	return stored, nil
}

// Sweep returns the sweep with the given id, or ErrNotFound.
func (db *DB) Sweep(ctx context.Context, id int64) (Sweep, error) {
	s, err := scanSweep(db.db.QueryRowContext(ctx, `SELECT `+sweepCols+` FROM sweeps WHERE id = ?`, id))
	if err != nil {
		return Sweep{}, wrap(fmt.Sprintf("sweep %d", id), err)
	}
	return s, nil
}

// Sweeps returns the sweeps of a model, or of all models when modelID is 0,
// newest first.
func (db *DB) Sweeps(ctx context.Context, modelID int64) ([]Sweep, error) {
	q, args := `SELECT `+sweepCols+` FROM sweeps ORDER BY id DESC`, []any(nil)
	if modelID != 0 {
		q, args = `SELECT `+sweepCols+` FROM sweeps WHERE model_id = ? ORDER BY id DESC`, []any{modelID}
	}
	return db.querySweeps(ctx, "sweeps", q, args...)
}

// ResumableSweeps returns the interrupted sweeps, oldest first: the work a
// restarted server offers to resume (see ResumeSweep).
func (db *DB) ResumableSweeps(ctx context.Context) ([]Sweep, error) {
	return db.querySweeps(ctx, "resumable sweeps",
		`SELECT `+sweepCols+` FROM sweeps WHERE status = 'interrupted' ORDER BY id`)
}

func (db *DB) querySweeps(ctx context.Context, op, q string, args ...any) ([]Sweep, error) {
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ss []Sweep
	for rows.Next() {
		s, err := scanSweep(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ss = append(ss, s)
	}
	return ss, wrap(op, rows.Err())
}

// SetSweepStatus sets the status and error text of a sweep and of its jobs in
// one transaction. Running sets started_at the first time; done, failed and
// cancelled set finished_at (and done sets progress to 1); queued and running
// clear finished_at. ErrNotFound when there is no such sweep.
func (db *DB) SetSweepStatus(ctx context.Context, id int64, status Status, errText string) error {
	op := fmt.Sprintf("set sweep %d status %s", id, status)
	if !status.Valid() {
		return wrap(op, fmt.Errorf("%w: unknown status %q", ErrInvalid, status))
	}
	return wrap(op, db.tx(ctx, func(tx *sql.Tx) error {
		return db.setStatus(ctx, tx, id, status, errText)
	}))
}

// setStatus updates sweep id and its jobs.
func (db *DB) setStatus(ctx context.Context, tx *sql.Tx, id int64, status Status, errText string) error {
	now := db.nowText()
	res, err := tx.ExecContext(ctx, `UPDATE sweeps SET status = ?1, error = ?2,
		started_at  = CASE WHEN ?1 = 'running' THEN coalesce(started_at, ?3) ELSE started_at END,
		finished_at = CASE WHEN ?1 IN ('done', 'failed', 'cancelled') THEN ?3
		                   WHEN ?1 IN ('queued', 'running') THEN NULL ELSE finished_at END,
		progress    = CASE WHEN ?1 = 'done' THEN 1 ELSE progress END
		WHERE id = ?4`, string(status), errText, now, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrNotFound
	}
	_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = ?1, error = ?2, updated_at = ?3,
		progress = CASE WHEN ?1 = 'done' THEN 1 ELSE progress END
		WHERE kind = ?4 AND ref_id = ?5`, string(status), errText, now, JobKindSweep, id)
	return err
}

// SetSweepProgress sets the progress (0..1) of a sweep and of its jobs.
// ErrNotFound when there is no such sweep.
func (db *DB) SetSweepProgress(ctx context.Context, id int64, progress float64) error {
	op := fmt.Sprintf("set sweep %d progress", id)
	if err := checkFraction("progress", progress); err != nil {
		return wrap(op, err)
	}
	return wrap(op, db.updateWithJobProgress(ctx, `UPDATE sweeps SET progress = ? WHERE id = ?`, progress,
		JobKindSweep, id, progress))
}

// updateWithJobProgress runs stmt (an UPDATE of row id taking value and id)
// and sets the progress of row id's jobs of the given kind, in one
// transaction. ErrNotFound when stmt changes no row.
func (db *DB) updateWithJobProgress(ctx context.Context, stmt string, value any, kind string, id int64, progress float64) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, stmt, value, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET progress = ?, updated_at = ? WHERE kind = ? AND ref_id = ?`,
			progress, db.nowText(), kind, id)
		return err
	})
}

// ResumeSweep queues an interrupted, failed or cancelled sweep (and its jobs)
// again, clearing its error; the points it already has stay, and AddPoint's
// unique key lets the runner skip them. ErrNotFound when there is no such
// sweep, ErrConflict when it is queued, running or done.
func (db *DB) ResumeSweep(ctx context.Context, id int64) error {
	op := fmt.Sprintf("resume sweep %d", id)
	return wrap(op, db.tx(ctx, func(tx *sql.Tx) error {
		var st Status
		if err := tx.QueryRowContext(ctx, `SELECT status FROM sweeps WHERE id = ?`, id).Scan(&st); err != nil {
			return err
		}
		switch st {
		case StatusInterrupted, StatusFailed, StatusCancelled:
		default:
			return fmt.Errorf("status %s: %w", st, ErrConflict)
		}
		return db.setStatus(ctx, tx, id, StatusQueued, "")
	}))
}

// MarkInterrupted is for start-up, before any job runs: every sweep and job
// still marked running belonged to a process that died, so it becomes
// interrupted (resumable). Queued work stays queued for NextJob. It returns
// the number of sweeps marked.
func (db *DB) MarkInterrupted(ctx context.Context) (int64, error) {
	var n int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		now := db.nowText()
		res, err := tx.ExecContext(ctx, `UPDATE sweeps SET status = 'interrupted' WHERE status = 'running'`)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = 'interrupted', updated_at = ? WHERE status = 'running'`, now)
		return err
	})
	if err != nil {
		return 0, wrap("mark interrupted", err)
	}
	return n, nil
}
