package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Job is a unit of background work: a queue row with status and progress.
// A sweep's job (Kind JobKindSweep) mirrors its sweep: the sweep methods
// update it, and SetJobStatus, SetJobProgress and NextJob update the sweep.
type Job struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	RefID     int64     `json:"ref_id"` // the row worked on: a sweep id for JobKindSweep
	Status    Status    `json:"status"`
	Progress  float64   `json:"progress"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

const jobCols = `id, kind, ref_id, status, progress, error, created_at, updated_at`

func scanJob(s scanner) (Job, error) {
	var j Job
	var created, updated sql.NullString
	err := s.Scan(&j.ID, &j.Kind, &j.RefID, &j.Status, &j.Progress, &j.Error, &created, &updated)
	if err != nil {
		return Job{}, err
	}
	if j.CreatedAt, err = parseTime(created); err != nil {
		return Job{}, err
	}
	if j.UpdatedAt, err = parseTime(updated); err != nil {
		return Job{}, err
	}
	return j, nil
}

// CreateJob queues a job of the given kind on row refID. Sweeps get theirs
// from CreateSweep; use this for other kinds of work.
func (db *DB) CreateJob(ctx context.Context, kind string, refID int64) (Job, error) {
	now := db.nowText()
	j, err := scanJob(db.db.QueryRowContext(ctx, `INSERT INTO jobs (kind, ref_id, status, created_at, updated_at)
		VALUES (?, ?, 'queued', ?, ?) RETURNING `+jobCols, kind, refID, now, now))
	if err != nil {
		return Job{}, wrap(fmt.Sprintf("create %s job for %d", kind, refID), err)
	}
	return j, nil
}

// Job returns the job with the given id, or ErrNotFound.
func (db *DB) Job(ctx context.Context, id int64) (Job, error) {
	j, err := scanJob(db.db.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if err != nil {
		return Job{}, wrap(fmt.Sprintf("job %d", id), err)
	}
	return j, nil
}

// Jobs returns the jobs with any of the given statuses (all jobs when none
// is given), oldest first: queue order.
func (db *DB) Jobs(ctx context.Context, statuses ...Status) ([]Job, error) {
	q := `SELECT ` + jobCols + ` FROM jobs ORDER BY id`
	args := make([]any, len(statuses))
	for i, s := range statuses {
		args[i] = string(s)
	}
	if len(statuses) > 0 {
		q = `SELECT ` + jobCols + ` FROM jobs WHERE status IN (` + placeholders(len(statuses)) + `) ORDER BY id`
	}
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("jobs", err)
	}
	defer rows.Close()
	var js []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, wrap("jobs", err)
		}
		js = append(js, j)
	}
	return js, wrap("jobs", rows.Err())
}

// NextJob claims the oldest queued job: it becomes running (and so does its
// sweep, for a sweep job) and is returned. ErrNotFound when nothing is
// queued. Claiming is atomic, so two runners never get the same job.
func (db *DB) NextJob(ctx context.Context) (Job, error) {
	var j Job
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		j, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET status = 'running', updated_at = ?
			WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1)
			RETURNING `+jobCols, db.nowText()))
		if err != nil {
			return err
		}
		if j.Kind == JobKindSweep {
			return db.setStatus(ctx, tx, j.RefID, StatusRunning, "")
		}
		return nil
	})
	if err != nil {
		return Job{}, wrap("next job", err)
	}
	return j, nil
}

// SetJobStatus sets a job's status and error text; for a sweep job it sets
// the sweep's too (see SetSweepStatus). ErrNotFound when there is no such job.
func (db *DB) SetJobStatus(ctx context.Context, id int64, status Status, errText string) error {
	op := fmt.Sprintf("set job %d status %s", id, status)
	if !status.Valid() {
		return wrap(op, fmt.Errorf("%w: unknown status %q", ErrInvalid, status))
	}
	return wrap(op, db.tx(ctx, func(tx *sql.Tx) error {
		var kind string
		var ref int64
		if err := tx.QueryRowContext(ctx, `SELECT kind, ref_id FROM jobs WHERE id = ?`, id).Scan(&kind, &ref); err != nil {
			return err
		}
		if kind == JobKindSweep {
			return db.setStatus(ctx, tx, ref, status, errText)
		}
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?1, error = ?2, updated_at = ?3,
			progress = CASE WHEN ?1 = 'done' THEN 1 ELSE progress END WHERE id = ?4`,
			string(status), errText, db.nowText(), id)
		return err
	}))
}

// SetJobProgress sets a job's progress (0..1); for a sweep job, the sweep's too.
// ErrNotFound when there is no such job.
func (db *DB) SetJobProgress(ctx context.Context, id int64, progress float64) error {
	op := fmt.Sprintf("set job %d progress", id)
	if err := checkFraction("progress", progress); err != nil {
		return wrap(op, err)
	}
	return wrap(op, db.tx(ctx, func(tx *sql.Tx) error {
		var kind string
		var ref int64
		if err := tx.QueryRowContext(ctx, `SELECT kind, ref_id FROM jobs WHERE id = ?`, id).Scan(&kind, &ref); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?`,
			progress, db.nowText(), id); err != nil {
			return err
		}
		if kind == JobKindSweep {
			_, err := tx.ExecContext(ctx, `UPDATE sweeps SET progress = ? WHERE id = ?`, progress, ref)
			return err
		}
		return nil
	}))
}
