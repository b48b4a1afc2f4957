package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// JobKindMaskTrain is the kind of the job that mask-sparsity trains a model
// (DESIGN "Mask-sparsity training"); its RefID is a mask_trainings row.
const JobKindMaskTrain = "masktrain"

// MaskTraining is a mask-sparsity training of a model run as a dashboard
// job: its fixed settings, its last progress report and, when done, the
// model it stored. Status, Progress and Error are its job's.
type MaskTraining struct {
	ID       int64   `json:"id"`
	ModelID  int64   `json:"model_id"` // the source model (never modified)
	JobID    int64   `json:"job_id"`
	Status   Status  `json:"status"`
	Progress float64 `json:"progress"` // 0..1
	Error    string  `json:"error,omitempty"`
	// Config holds the settings (a JSON object, the caller's schema); Live
	// the last progress report (JSON, "{}" before the first).
	Config json.RawMessage `json:"config"`
	Live   json.RawMessage `json:"live"`
	// ResultModelID is the model the run stored (0 until done, or when that
	// model was deleted).
	ResultModelID int64     `json:"result_model_id,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"` // the job's last change
}

const maskTrainingSelect = `SELECT t.id, t.model_id, j.id, j.status, j.progress, j.error, t.config, t.live,
	coalesce(t.result_model_id, 0), t.created_at, j.updated_at
	FROM mask_trainings t JOIN jobs j ON j.kind = 'masktrain' AND j.ref_id = t.id`

func scanMaskTraining(s scanner) (MaskTraining, error) {
	var m MaskTraining
	var cfg, live string
	var created, updated sql.NullString
	err := s.Scan(&m.ID, &m.ModelID, &m.JobID, &m.Status, &m.Progress, &m.Error, &cfg, &live,
		&m.ResultModelID, &created, &updated)
	if err != nil {
		return MaskTraining{}, err
	}
	m.Config, m.Live = json.RawMessage(cfg), json.RawMessage(live)
	if m.CreatedAt, err = parseTime(created); err != nil {
		return MaskTraining{}, err
	}
	if m.UpdatedAt, err = parseTime(updated); err != nil {
		return MaskTraining{}, err
	}
	return m, nil
}

// CreateMaskTraining stores a queued mask training of model modelID with the
// given settings (a JSON object) and its job, in one transaction.
// ErrNotFound when the model does not exist; ErrInvalid for a config that is
// not a JSON object.
func (db *DB) CreateMaskTraining(ctx context.Context, modelID int64, config json.RawMessage) (MaskTraining, error) {
	op := fmt.Sprintf("create mask training of model %d", modelID)
	var obj map[string]any
	if json.Unmarshal(config, &obj) != nil || obj == nil {
		return MaskTraining{}, wrap(op, fmt.Errorf("%w: config is not a JSON object", ErrInvalid))
	}
	var id int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "models", modelID); err != nil {
			return err
		}
		now := db.nowText()
		if err := tx.QueryRowContext(ctx, `INSERT INTO mask_trainings (model_id, config, created_at)
			VALUES (?, ?, ?) RETURNING id`, modelID, string(config), now).Scan(&id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO jobs (kind, ref_id, status, created_at, updated_at)
			VALUES (?, ?, 'queued', ?, ?)`, JobKindMaskTrain, id, now, now)
		return err
	})
	if err != nil {
		return MaskTraining{}, wrap(op, err)
	}
	return db.MaskTraining(ctx, id)
}

// MaskTraining returns the mask training with the given id, or ErrNotFound.
func (db *DB) MaskTraining(ctx context.Context, id int64) (MaskTraining, error) {
	m, err := scanMaskTraining(db.db.QueryRowContext(ctx, maskTrainingSelect+` WHERE t.id = ?`, id))
	if err != nil {
		return MaskTraining{}, wrap(fmt.Sprintf("mask training %d", id), err)
	}
	return m, nil
}

// MaskTrainingByJob returns the mask training a job runs, or ErrNotFound.
func (db *DB) MaskTrainingByJob(ctx context.Context, jobID int64) (MaskTraining, error) {
	m, err := scanMaskTraining(db.db.QueryRowContext(ctx, maskTrainingSelect+` WHERE j.id = ?`, jobID))
	if err != nil {
		return MaskTraining{}, wrap(fmt.Sprintf("mask training of job %d", jobID), err)
	}
	return m, nil
}

// MaskTrainings returns the mask trainings of model modelID (of every model
// when 0), newest first.
func (db *DB) MaskTrainings(ctx context.Context, modelID int64) ([]MaskTraining, error) {
	op := "mask trainings"
	q, args := maskTrainingSelect+` ORDER BY t.id DESC`, []any{}
	if modelID != 0 {
		op = fmt.Sprintf("mask trainings of model %d", modelID)
		q, args = maskTrainingSelect+` WHERE t.model_id = ? ORDER BY t.id DESC`, []any{modelID}
	}
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ms []MaskTraining
	for rows.Next() {
		m, err := scanMaskTraining(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ms = append(ms, m)
	}
	return ms, wrap(op, rows.Err())
}

// SetMaskTrainingLive stores a running training's progress report (JSON)
// and its job's progress (0..1). ErrNotFound when there is no such training.
func (db *DB) SetMaskTrainingLive(ctx context.Context, id int64, live json.RawMessage, progress float64) error {
	op := fmt.Sprintf("set mask training %d progress", id)
	if err := checkFraction("progress", progress); err != nil {
		return wrap(op, err)
	}
	text, err := rawJSON("live", live, "{}")
	if err != nil {
		return wrap(op, err)
	}
	return wrap(op, db.updateWithJobProgress(ctx, `UPDATE mask_trainings SET live = ? WHERE id = ?`, text,
		JobKindMaskTrain, id, progress))
}

// FinishMaskTraining records the model a training stored and marks its job
// done, in one transaction. ErrNotFound when the training or the model does
// not exist.
func (db *DB) FinishMaskTraining(ctx context.Context, id, resultModelID int64) error {
	op := fmt.Sprintf("finish mask training %d", id)
	return wrap(op, db.tx(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "models", resultModelID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE mask_trainings SET result_model_id = ? WHERE id = ?`, resultModelID, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("mask training %d: %w", id, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = 'done', progress = 1, error = '', updated_at = ?
			WHERE kind = ? AND ref_id = ?`, db.nowText(), JobKindMaskTrain, id)
		return err
	}))
}

// ResumeMaskTraining queues an interrupted, failed or cancelled training
// again, clearing its error. ErrNotFound when there is no such training,
// ErrConflict when it is queued, running or done.
func (db *DB) ResumeMaskTraining(ctx context.Context, id int64) error {
	op := fmt.Sprintf("resume mask training %d", id)
	return wrap(op, db.tx(ctx, func(tx *sql.Tx) error {
		var st Status
		err := tx.QueryRowContext(ctx, `SELECT status FROM jobs WHERE kind = ? AND ref_id = ?`, JobKindMaskTrain, id).Scan(&st)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mask training %d: %w", id, ErrNotFound)
		} else if err != nil {
			return err
		}
		switch st {
		case StatusInterrupted, StatusFailed, StatusCancelled:
		default:
			return fmt.Errorf("status %s: %w", st, ErrConflict)
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = 'queued', error = '', updated_at = ?
			WHERE kind = ? AND ref_id = ?`, db.nowText(), JobKindMaskTrain, id)
		return err
	}))
}
