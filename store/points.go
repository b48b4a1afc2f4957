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

// LayerChannels is one layer's channel count before and after pruning.
type LayerChannels struct {
	Layer  string `json:"layer"`
	Before int    `json:"before"`
	After  int    `json:"after"`
}

// LayerLatency is one layer's measured time at batch 1.
type LayerLatency struct {
	Layer string  `json:"layer"`
	MS    float64 `json:"ms"`
}

// Point is one measured (form, ratio) of a sweep. Ratio 0 is the unpruned
// reference of its form.
type Point struct {
	ID           int64           `json:"id"`
	SweepID      int64           `json:"sweep_id"`
	Form         string          `json:"form"` // rmnet | resnet
	Ratio        float64         `json:"ratio"`
	Channels     []LayerChannels `json:"channels,omitempty"`
	Params       int64           `json:"params"`
	MACs         int64           `json:"macs"`
	MACsComputed int64           `json:"macs_computed"` // what the engine computes (RM copies are not MACs); 0: unknown
	MACsONNX     int64           `json:"macs_onnx"`     // what ONNX Runtime computes with the point's ONNX file; 0: unknown
	ONNXExport   string          `json:"onnx_export"`   // that file's form: copy-aware or dense; "": unknown
	FLOPs        int64           `json:"flops"`
	SizeBytes    int64           `json:"size_bytes"` // pruned model file size; 0 if unknown
	Top1         float64         `json:"top1"`
	Top5         float64         `json:"top5"`
	LatencyMSP50 float64         `json:"latency_ms_p50"` // batch 1
	LatencyMSP90 float64         `json:"latency_ms_p90"` // batch 1
	ImagesPerS   float64         `json:"images_per_s"`   // at the sweep's batch
	LayerMS      []LayerLatency  `json:"layer_ms,omitempty"`
	// From the interleaved latency pass (see PointLatency); zero when the
	// point was only timed alone (LatencyRounds 0).
	LatencyMSP25      float64 `json:"latency_ms_p25"`
	LatencyMSP75      float64 `json:"latency_ms_p75"`
	LatencyRounds     int     `json:"latency_rounds"`
	LatencyLoad       float64 `json:"latency_load"`
	LatencyUnreliable string  `json:"latency_unreliable,omitempty"` // why the figure is not to be trusted; "" when it is
	// The environment the point was measured in.
	CPU     string `json:"cpu"`
	ISA     string `json:"isa"`
	Threads int    `json:"threads"`
	Version string `json:"version"` // rmprune binary version
	Worker  string `json:"worker"`  // the cluster worker that measured it; "" in process
	// Status is PointDone, or PointRefused for a point the pruning guards
	// refused (Error says why; its measurements are 0 and it has no files).
	Status    string    `json:"status"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Point statuses.
const (
	PointDone    = "done"
	PointRefused = "refused"
)

// Refused reports whether the pruning guards refused the point.
func (p Point) Refused() bool { return p.Status == PointRefused }

const pointCols = `id, sweep_id, form, ratio, channels, params, macs, macs_computed, flops, size_bytes, top1, top5,
	latency_ms_p50, latency_ms_p90, images_per_s, layer_ms, cpu, isa, threads, version, created_at, macs_onnx, onnx_export,
	latency_ms_p25, latency_ms_p75, latency_rounds, latency_load, latency_unreliable, worker, status, error`

func scanPoint(s scanner) (Point, error) {
	var p Point
	var channels, layerMS string
	var created sql.NullString
	err := s.Scan(&p.ID, &p.SweepID, &p.Form, &p.Ratio, &channels, &p.Params, &p.MACs, &p.MACsComputed, &p.FLOPs, &p.SizeBytes,
		&p.Top1, &p.Top5, &p.LatencyMSP50, &p.LatencyMSP90, &p.ImagesPerS, &layerMS, &p.CPU, &p.ISA,
		&p.Threads, &p.Version, &created, &p.MACsONNX, &p.ONNXExport,
		&p.LatencyMSP25, &p.LatencyMSP75, &p.LatencyRounds, &p.LatencyLoad, &p.LatencyUnreliable, &p.Worker,
		&p.Status, &p.Error)
	if err != nil {
		return Point{}, err
	}
	if err := json.Unmarshal([]byte(channels), &p.Channels); err != nil {
		return Point{}, fmt.Errorf("point %d: channels: %w", p.ID, err)
	}
	if err := json.Unmarshal([]byte(layerMS), &p.LayerMS); err != nil {
		return Point{}, fmt.Errorf("point %d: layer_ms: %w", p.ID, err)
	}
	if p.CreatedAt, err = parseTime(created); err != nil {
		return Point{}, err
	}
	return p, nil
}

// jsonList marshals a slice, storing nil as [].
func jsonList[T any](v []T) (string, error) {
	if v == nil {
		return "[]", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// AddPoint stores p (its ID and CreatedAt are ignored; Ratio is rounded with
// NormRatio) and returns the stored row with created = true. It is idempotent
// on (sweep, form, ratio): when that point exists nothing is written and the
// stored point is returned with created = false, so a resumed sweep may
// re-add points safely. ErrNotFound when the sweep does not exist. Status
// "" is PointDone; a PointRefused point needs its reason in Error.
func (db *DB) AddPoint(ctx context.Context, p Point) (stored Point, created bool, err error) {
	op := fmt.Sprintf("add point %s@%g to sweep %d", p.Form, p.Ratio, p.SweepID)
	p.Ratio = NormRatio(p.Ratio)
	switch p.Status {
	case "":
		p.Status = PointDone
	case PointDone:
	case PointRefused:
		if strings.TrimSpace(p.Error) == "" {
			return Point{}, false, wrap(op, fmt.Errorf("%w: a refused point needs its reason", ErrInvalid))
		}
	default:
		return Point{}, false, wrap(op, fmt.Errorf("%w: point status %q (want %s or %s)", ErrInvalid, p.Status, PointDone, PointRefused))
	}
	for _, v := range []struct {
		name string
		v    float64
		frac bool
	}{
		{"ratio", p.Ratio, true}, {"top1", p.Top1, true}, {"top5", p.Top5, true},
		{"latency_ms_p50", p.LatencyMSP50, false}, {"latency_ms_p90", p.LatencyMSP90, false},
		{"images_per_s", p.ImagesPerS, false},
	} {
		check := checkFinite
		if v.frac {
			check = checkFraction
		}
		if err := check(v.name, v.v); err != nil {
			return Point{}, false, wrap(op, err)
		}
	}
	for _, l := range p.LayerMS {
		if err := checkFinite("layer_ms "+l.Layer, l.MS); err != nil {
			return Point{}, false, wrap(op, err)
		}
	}
	channels, err := jsonList(p.Channels)
	if err != nil {
		return Point{}, false, wrap(op, err)
	}
	layerMS, err := jsonList(p.LayerMS)
	if err != nil {
		return Point{}, false, wrap(op, err)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "sweeps", p.SweepID); err != nil {
			return err
		}
		stored, err = scanPoint(tx.QueryRowContext(ctx, `INSERT INTO points (sweep_id, form, ratio, channels,
			params, macs, macs_computed, flops, size_bytes, top1, top5, latency_ms_p50, latency_ms_p90, images_per_s,
			layer_ms, cpu, isa, threads, version, created_at, macs_onnx, onnx_export, worker, status, error)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (sweep_id, form, ratio) DO NOTHING RETURNING `+pointCols,
			p.SweepID, p.Form, p.Ratio, channels, p.Params, p.MACs, p.MACsComputed, p.FLOPs, p.SizeBytes, p.Top1, p.Top5,
			p.LatencyMSP50, p.LatencyMSP90, p.ImagesPerS, layerMS, p.CPU, p.ISA, p.Threads, p.Version,
			db.nowText(), p.MACsONNX, p.ONNXExport, p.Worker, p.Status, p.Error))
		if errors.Is(err, sql.ErrNoRows) {
			stored, err = scanPoint(tx.QueryRowContext(ctx, `SELECT `+pointCols+` FROM points
				WHERE sweep_id = ? AND form = ? AND ratio = ?`, p.SweepID, p.Form, p.Ratio))
			return err
		}
		created = err == nil
		return err
	})
	if err != nil {
		return Point{}, false, wrap(op, err)
	}
	return stored, created, nil
}

// Points returns the points of a sweep ordered by form, then ratio (empty, not
// ErrNotFound, for an unknown sweep).
func (db *DB) Points(ctx context.Context, sweepID int64) ([]Point, error) {
	op := fmt.Sprintf("points of sweep %d", sweepID)
	rows, err := db.db.QueryContext(ctx, `SELECT `+pointCols+` FROM points WHERE sweep_id = ?
		ORDER BY form, ratio`, sweepID)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ps []Point
	for rows.Next() {
		p, err := scanPoint(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ps = append(ps, p)
	}
	return ps, wrap(op, rows.Err())
}

// Point returns the point with the given id, or ErrNotFound.
func (db *DB) Point(ctx context.Context, id int64) (Point, error) {
	p, err := scanPoint(db.db.QueryRowContext(ctx, `SELECT `+pointCols+` FROM points WHERE id = ?`, id))
	if err != nil {
		return Point{}, wrap(fmt.Sprintf("point %d", id), err)
	}
	return p, nil
}

// PointsByIDs returns the points with the given ids in the order asked (the
// compare page's order); a repeated id is returned twice. ErrNotFound, naming
// the first missing id, when any is missing.
func (db *DB) PointsByIDs(ctx context.Context, ids []int64) ([]Point, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := db.db.QueryContext(ctx, `SELECT `+pointCols+` FROM points WHERE id IN (`+
		placeholders(len(ids))+`)`, args...)
	if err != nil {
		return nil, wrap("points by ids", err)
	}
	defer rows.Close()
	byID := make(map[int64]Point, len(ids))
	for rows.Next() {
		p, err := scanPoint(rows)
		if err != nil {
			return nil, wrap("points by ids", err)
		}
		byID[p.ID] = p
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("points by ids", err)
	}
	ps := make([]Point, len(ids))
	for i, id := range ids {
		p, ok := byID[id]
		if !ok {
			return nil, wrap(fmt.Sprintf("point %d", id), ErrNotFound)
		}
		ps[i] = p
	}
	return ps, nil
}

// Artifact kinds.
const (
	KindONNX        = "onnx"
	KindSafetensors = "safetensors"
	KindRecipe      = "recipe"
)

// Artifact is a file derived from a point (or from a model): a pruned model
// or a recipe. Exactly one of PointID and ModelID is non-zero.
type Artifact struct {
	ID        int64     `json:"id"`
	PointID   int64     `json:"point_id,omitempty"`
	ModelID   int64     `json:"model_id,omitempty"`
	Kind      string    `json:"kind"` // KindONNX, KindSafetensors or KindRecipe
	Path      string    `json:"-"`    // as the caller stored it; never sent to clients
	SizeBytes int64     `json:"size_bytes"`
	SHA256    string    `json:"sha256"` // hex, lower case
	CreatedAt time.Time `json:"created_at"`
}

const artifactCols = `id, coalesce(point_id, 0), coalesce(model_id, 0), kind, path, size_bytes, sha256, created_at`

func scanArtifact(s scanner) (Artifact, error) {
	var a Artifact
	var created sql.NullString
	err := s.Scan(&a.ID, &a.PointID, &a.ModelID, &a.Kind, &a.Path, &a.SizeBytes, &a.SHA256, &created)
	if err != nil {
		return Artifact{}, err
	}
	if a.CreatedAt, err = parseTime(created); err != nil {
		return Artifact{}, err
	}
	return a, nil
}

// nullID stores 0 as NULL.
func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// AddArtifact stores a (its ID and CreatedAt are ignored) and returns the
// stored row with created = true. A point has at most one artifact of each
// kind: when it exists, nothing is written and the stored artifact is
// returned with created = false (the caller drops its own file). ErrNotFound
// when the point or model does not exist; ErrInvalid unless exactly one of
// PointID and ModelID is set.
func (db *DB) AddArtifact(ctx context.Context, a Artifact) (stored Artifact, created bool, err error) {
	op := fmt.Sprintf("add %s artifact", a.Kind)
	if (a.PointID == 0) == (a.ModelID == 0) {
		return Artifact{}, false, wrap(op, fmt.Errorf("%w: set exactly one of point and model", ErrInvalid))
	}
	a.SHA256 = strings.ToLower(a.SHA256)
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if a.PointID != 0 {
			err = exists(ctx, tx, "points", a.PointID)
		} else {
			err = exists(ctx, tx, "models", a.ModelID)
		}
		if err != nil {
			return err
		}
		stored, err = scanArtifact(tx.QueryRowContext(ctx, `INSERT INTO artifacts (point_id, model_id, kind,
			path, size_bytes, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (point_id, kind) DO NOTHING RETURNING `+artifactCols,
			nullID(a.PointID), nullID(a.ModelID), a.Kind, a.Path, a.SizeBytes, a.SHA256, db.nowText()))
		if errors.Is(err, sql.ErrNoRows) {
			stored, err = scanArtifact(tx.QueryRowContext(ctx, `SELECT `+artifactCols+` FROM artifacts
				WHERE point_id = ? AND kind = ?`, a.PointID, a.Kind))
			return err
		}
		created = err == nil
		return err
	})
	if err != nil {
		return Artifact{}, false, wrap(op, err)
	}
	return stored, created, nil
}

// Artifacts returns the artifacts of a point, oldest first.
func (db *DB) Artifacts(ctx context.Context, pointID int64) ([]Artifact, error) {
	return db.queryArtifacts(ctx, fmt.Sprintf("artifacts of point %d", pointID),
		`SELECT `+artifactCols+` FROM artifacts WHERE point_id = ? ORDER BY id`, pointID)
}

// ModelArtifacts returns the artifacts of a model (not of its points), oldest first.
func (db *DB) ModelArtifacts(ctx context.Context, modelID int64) ([]Artifact, error) {
	return db.queryArtifacts(ctx, fmt.Sprintf("artifacts of model %d", modelID),
		`SELECT `+artifactCols+` FROM artifacts WHERE model_id = ? ORDER BY id`, modelID)
}

// PointArtifact returns the point's artifact of the given kind, or ErrNotFound.
func (db *DB) PointArtifact(ctx context.Context, pointID int64, kind string) (Artifact, error) {
	a, err := scanArtifact(db.db.QueryRowContext(ctx, `SELECT `+artifactCols+` FROM artifacts
		WHERE point_id = ? AND kind = ?`, pointID, kind))
	if err != nil {
		return Artifact{}, wrap(fmt.Sprintf("%s artifact of point %d", kind, pointID), err)
	}
	return a, nil
}

func (db *DB) queryArtifacts(ctx context.Context, op, q string, args ...any) ([]Artifact, error) {
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var as []Artifact
	for rows.Next() {
		a, err := scanArtifact(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		as = append(as, a)
	}
	return as, wrap(op, rows.Err())
}
