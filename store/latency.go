package store

import (
	"context"
	"database/sql"
	"fmt"
)

// JobKindRemeasure is the kind of a job that re-times a sweep's points in one
// interleaved latency pass; its RefID is the sweep id.
const JobKindRemeasure = "remeasure"

// PointLatency is a point's batch-1 latency from an interleaved pass:
// P25/P50/P75 are quartiles of the round medians, P90 the 90th percentile of
// all timed runs, Rounds the number of rounds, Load the share of the timed
// wall time during which other work waited for a CPU, and Unreliable the
// reason the figure should not be trusted ("" when it can be).
type PointLatency struct {
	PointID       int64
	P25, P50, P75 float64
	P90           float64
	Rounds        int
	Load          float64
	Unreliable    string
}

// SetPointLatency stores the latency figures of several points in one
// transaction: all are written or none. ErrNotFound names the first missing
// point; ErrInvalid a non-finite or negative figure or quartiles out of order.
func (db *DB) SetPointLatency(ctx context.Context, ls []PointLatency) error {
	const op = "set point latency"
	for _, l := range ls {
		for _, v := range []struct {
			name string
			v    float64
		}{{"latency_ms_p25", l.P25}, {"latency_ms_p50", l.P50}, {"latency_ms_p75", l.P75},
			{"latency_ms_p90", l.P90}, {"latency_load", l.Load}} {
			if err := checkFinite(v.name, v.v); err != nil {
				return wrap(fmt.Sprintf("%s of point %d", op, l.PointID), err)
			}
			if v.v < 0 {
				return wrap(fmt.Sprintf("%s of point %d", op, l.PointID), fmt.Errorf("%w: %s = %v < 0", ErrInvalid, v.name, v.v))
			}
		}
		if l.P25 > l.P50 || l.P50 > l.P75 || l.Rounds < 0 {
			return wrap(fmt.Sprintf("%s of point %d", op, l.PointID),
				fmt.Errorf("%w: want p25 ≤ p50 ≤ p75 and rounds ≥ 0, got %v, %v, %v and %d", ErrInvalid, l.P25, l.P50, l.P75, l.Rounds))
		}
	}
	return wrap(op, db.tx(ctx, func(tx *sql.Tx) error {
		for _, l := range ls {
			res, err := tx.ExecContext(ctx, `UPDATE points SET latency_ms_p25 = ?, latency_ms_p50 = ?,
				latency_ms_p75 = ?, latency_ms_p90 = ?, latency_rounds = ?, latency_load = ?, latency_unreliable = ?
				WHERE id = ?`, l.P25, l.P50, l.P75, l.P90, l.Rounds, l.Load, l.Unreliable, l.PointID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return fmt.Errorf("point %d: %w", l.PointID, ErrNotFound)
			}
		}
		return nil
	}))
}

// ActiveJob returns the oldest queued or running job of the given kind on row
// refID, or ErrNotFound.
func (db *DB) ActiveJob(ctx context.Context, kind string, refID int64) (Job, error) {
	j, err := scanJob(db.db.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs
		WHERE kind = ? AND ref_id = ? AND status IN ('queued', 'running') ORDER BY id LIMIT 1`, kind, refID))
	if err != nil {
		return Job{}, wrap(fmt.Sprintf("active %s job of %d", kind, refID), err)
	}
	return j, nil
}
