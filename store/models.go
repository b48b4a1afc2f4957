package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Model is a stored network.
type Model struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Arch   string `json:"arch"`
	Params int64  `json:"params"`
	MACs   int64  `json:"macs"`
	FLOPs  int64  `json:"flops"`
	// SourceSHA256 identifies the network: the hex SHA-256 of its own
	// parameters and running statistics (DESIGN, "Model file of our own"),
	// lower case. It is unique: CreateModel with a known hash returns the
	// stored model. For a pruned file, hash its own weights, not the
	// source_sha256 it carries in its metadata.
	SourceSHA256 string `json:"source_sha256"`
	// Path is the model file, as the caller stored it (preferably relative
	// to ArtifactDir). Never sent to clients.
	Path       string          `json:"-"`
	SizeBytes  int64           `json:"size_bytes"`
	InputShape string          `json:"input_shape"` // "CxHxW"
	Classes    int             `json:"classes"`
	Layers     json.RawMessage `json:"layers,omitempty"` // architecture table (JSON); nil is stored as []
	CreatedAt  time.Time       `json:"created_at"`
}

const modelCols = `id, name, arch, params, macs, flops, source_sha256, path, size_bytes,
	input_shape, classes, layers, created_at`

func scanModel(s scanner) (Model, error) {
	var m Model
	var layers string
	var created sql.NullString
	err := s.Scan(&m.ID, &m.Name, &m.Arch, &m.Params, &m.MACs, &m.FLOPs, &m.SourceSHA256, &m.Path,
		&m.SizeBytes, &m.InputShape, &m.Classes, &layers, &created)
	if err != nil {
		return Model{}, err
	}
	m.Layers = json.RawMessage(layers)
	if m.CreatedAt, err = parseTime(created); err != nil {
		return Model{}, err
	}
	return m, nil
}

// rawJSON returns the text to store for a raw JSON column: def when empty.
func rawJSON(name string, b json.RawMessage, def string) (string, error) {
	if len(b) == 0 {
		return def, nil
	}
	if !json.Valid(b) {
		return "", fmt.Errorf("%w: %s is not valid JSON", ErrInvalid, name)
	}
	return string(b), nil
}

// CreateModel stores m (its ID and CreatedAt are ignored) and returns the
// stored row with created = true. When a model with the same SourceSHA256 is
// already stored, nothing is written and that model is returned with created
// = false: the caller then drops its own copy of the file.
func (db *DB) CreateModel(ctx context.Context, m Model) (stored Model, created bool, err error) {
	m.SourceSHA256 = strings.ToLower(m.SourceSHA256)
	layers, err := rawJSON("layers", m.Layers, "[]")
	if err != nil {
		return Model{}, false, wrap("create model", err)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO models (name, arch, params, macs, flops,
			source_sha256, path, size_bytes, input_shape, classes, layers, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (source_sha256) DO NOTHING RETURNING id`,
			m.Name, m.Arch, m.Params, m.MACs, m.FLOPs, m.SourceSHA256, m.Path, m.SizeBytes,
			m.InputShape, m.Classes, layers, db.nowText()).Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			stored, err = scanModel(tx.QueryRowContext(ctx,
				`SELECT `+modelCols+` FROM models WHERE source_sha256 = ?`, m.SourceSHA256))
			return err
		case err != nil:
			return err
		}
		created = true
		stored, err = scanModel(tx.QueryRowContext(ctx, `SELECT `+modelCols+` FROM models WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return Model{}, false, wrap("create model "+m.Name, err)
	}
	return stored, created, nil
}

// Model returns the model with the given id, or ErrNotFound.
func (db *DB) Model(ctx context.Context, id int64) (Model, error) {
	m, err := scanModel(db.db.QueryRowContext(ctx, `SELECT `+modelCols+` FROM models WHERE id = ?`, id))
	if err != nil {
		return Model{}, wrap(fmt.Sprintf("model %d", id), err)
	}
	return m, nil
}

// ModelBySHA returns the model with the given source hash (any case), or ErrNotFound.
func (db *DB) ModelBySHA(ctx context.Context, sha256 string) (Model, error) {
	m, err := scanModel(db.db.QueryRowContext(ctx, `SELECT `+modelCols+` FROM models WHERE source_sha256 = ?`,
		strings.ToLower(sha256)))
	if err != nil {
		return Model{}, wrap("model with sha256 "+sha256, err)
	}
	return m, nil
}

// Models returns every model, newest first.
func (db *DB) Models(ctx context.Context) ([]Model, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+modelCols+` FROM models ORDER BY id DESC`)
	if err != nil {
		return nil, wrap("models", err)
	}
	defer rows.Close()
	var ms []Model
	for rows.Next() {
		m, err := scanModel(rows)
		if err != nil {
			return nil, wrap("models", err)
		}
		ms = append(ms, m)
	}
	return ms, wrap("models", rows.Err())
}

// DeleteModel deletes the model with its conversions, sweeps, points, jobs and
// artifact rows in one transaction, and returns the file paths those rows
// named (the model file first, then the artifacts) for the caller to remove.
// Stop the model's running sweeps first. ErrNotFound when there is no such model.
func (db *DB) DeleteModel(ctx context.Context, id int64) (paths []string, err error) {
	op := fmt.Sprintf("delete model %d", id)
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var path string
		if err := tx.QueryRowContext(ctx, `SELECT path FROM models WHERE id = ?`, id).Scan(&path); err != nil {
			return err
		}
		paths = append(paths, path)
		rows, err := tx.QueryContext(ctx, `SELECT a.path FROM artifacts a WHERE a.model_id = ?
			UNION ALL
			SELECT a.path FROM artifacts a
				JOIN points p ON p.id = a.point_id
				JOIN sweeps s ON s.id = p.sweep_id
			WHERE s.model_id = ?`, id, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				return err
			}
			paths = append(paths, p)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// Foreign keys cascade to conversions, sweeps, points and artifacts;
		// the sweeps_delete_jobs trigger removes the sweeps' jobs.
		_, err = tx.ExecContext(ctx, `DELETE FROM models WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	return paths, nil
}

// Conversion is a stored RM conversion report of a model (DESIGN, `convert --json`).
type Conversion struct {
	ID             int64   `json:"id"`
	ModelID        int64   `json:"model_id"`
	Form           string  `json:"form"`
	MaxAbsErr      float64 `json:"max_abs_err"`
	MaxRelErr      float64 `json:"max_rel_err"`
	ParamsSource   int64   `json:"params_source"`
	ParamsBefore   int64   `json:"params_before"`
	ParamsAfter    int64   `json:"params_after"`
	MACsBefore     int64   `json:"macs_before"`
	MACsAfter      int64   `json:"macs_after"`
	FLOPsBefore    int64   `json:"flops_before"`
	FLOPsAfter     int64   `json:"flops_after"`
	ChannelsBefore int64   `json:"channels_before"`
	ChannelsAfter  int64   `json:"channels_after"`
	// StatsSource says where the reserved channels' BN statistics came from
	// (calibration data, the checkpoint, or the fallback).
	StatsSource string          `json:"stats_source"`
	Layers      json.RawMessage `json:"layers,omitempty"` // per-layer report (JSON); nil is stored as []
	CreatedAt   time.Time       `json:"created_at"`
}

const conversionCols = `id, model_id, form, max_abs_err, max_rel_err, params_source,
	params_before, params_after, macs_before, macs_after, flops_before, flops_after,
	channels_before, channels_after, stats_source, layers, created_at`

func scanConversion(s scanner) (Conversion, error) {
	var c Conversion
	var layers string
	var created sql.NullString
	err := s.Scan(&c.ID, &c.ModelID, &c.Form, &c.MaxAbsErr, &c.MaxRelErr, &c.ParamsSource,
		&c.ParamsBefore, &c.ParamsAfter, &c.MACsBefore, &c.MACsAfter, &c.FLOPsBefore, &c.FLOPsAfter,
		&c.ChannelsBefore, &c.ChannelsAfter, &c.StatsSource, &layers, &created)
	if err != nil {
		return Conversion{}, err
	}
	c.Layers = json.RawMessage(layers)
	if c.CreatedAt, err = parseTime(created); err != nil {
		return Conversion{}, err
	}
	return c, nil
}

// CreateConversion stores c for its model (ErrNotFound when the model does not
// exist) and returns the stored row.
func (db *DB) CreateConversion(ctx context.Context, c Conversion) (Conversion, error) {
	op := fmt.Sprintf("create conversion for model %d", c.ModelID)
	for _, v := range []struct {
		name string
		v    float64
	}{{"max_abs_err", c.MaxAbsErr}, {"max_rel_err", c.MaxRelErr}} {
		if err := checkFinite(v.name, v.v); err != nil {
			return Conversion{}, wrap(op, err)
		}
	}
	layers, err := rawJSON("layers", c.Layers, "[]")
	if err != nil {
		return Conversion{}, wrap(op, err)
	}
	var stored Conversion
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "models", c.ModelID); err != nil {
			return err
		}
		stored, err = scanConversion(tx.QueryRowContext(ctx, `INSERT INTO conversions (model_id, form,
			max_abs_err, max_rel_err, params_source, params_before, params_after, macs_before, macs_after,
			flops_before, flops_after, channels_before, channels_after, stats_source, layers, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+conversionCols,
			c.ModelID, c.Form, c.MaxAbsErr, c.MaxRelErr, c.ParamsSource, c.ParamsBefore, c.ParamsAfter,
			c.MACsBefore, c.MACsAfter, c.FLOPsBefore, c.FLOPsAfter, c.ChannelsBefore, c.ChannelsAfter,
			c.StatsSource, layers, db.nowText()))
		return err
	})
	if err != nil {
		return Conversion{}, wrap(op, err)
	}
	return stored, nil
}

// ConversionsForModel returns the model's conversion reports, newest first
// (empty, not ErrNotFound, for an unknown model).
func (db *DB) ConversionsForModel(ctx context.Context, modelID int64) ([]Conversion, error) {
	op := fmt.Sprintf("conversions of model %d", modelID)
	rows, err := db.db.QueryContext(ctx, `SELECT `+conversionCols+` FROM conversions
		WHERE model_id = ? ORDER BY id DESC`, modelID)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var cs []Conversion
	for rows.Next() {
		c, err := scanConversion(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		cs = append(cs, c)
	}
	return cs, wrap(op, rows.Err())
}

// exists returns a "<table> <id>: not found" error when the row is missing.
// table is one of our own constant names, never input.
func exists(ctx context.Context, tx *sql.Tx, table string, id int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+table+` WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %d: %w", strings.TrimSuffix(table, "s"), id, ErrNotFound)
	}
	return err
}
