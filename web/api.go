package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// Small interfaces the handlers need; *store.DB has them all.
type (
	modelGetter interface {
		Model(ctx context.Context, id int64) (store.Model, error)
	}
	modelLister interface {
		Models(ctx context.Context) ([]store.Model, error)
	}
	sweepGetter interface {
		Sweep(ctx context.Context, id int64) (store.Sweep, error)
	}
	sweepLister interface {
		Sweeps(ctx context.Context, modelID int64) ([]store.Sweep, error)
	}
	pointLister interface {
		Points(ctx context.Context, sweepID int64) ([]store.Point, error)
	}
	pointGetter interface {
		Point(ctx context.Context, id int64) (store.Point, error)
	}
	conversionLister interface {
		ConversionsForModel(ctx context.Context, modelID int64) ([]store.Conversion, error)
	}
	artifactGetter interface {
		ArtifactDir() string
		PointArtifact(ctx context.Context, pointID int64, kind string) (store.Artifact, error)
	}
	sweepWriter interface {
		CreateSweep(ctx context.Context, s store.Sweep) (store.Sweep, error)
		SetSweepStatus(ctx context.Context, id int64, status store.Status, errText string) error
		ResumeSweep(ctx context.Context, id int64) error
	}
)

// apiModel is a model in the JSON API.
type apiModel struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	Arch         string    `json:"arch"`
	Params       int64     `json:"params"`
	MACs         int64     `json:"macs"`
	FLOPs        int64     `json:"flops"`
	SourceSHA256 string    `json:"source_sha256"`
	SizeBytes    int64     `json:"size_bytes"`
	InputShape   string    `json:"input_shape"`
	Classes      int       `json:"classes"`
	CreatedAt    time.Time `json:"created_at"`
	// Masks: a mask-trained model (mask nodes); MaskZeroShares gives per
	// kind (stem, inner, reserved, block_out) the share of exactly-zero masks.
	Masks          bool               `json:"masks"`
	MaskZeroShares map[string]float64 `json:"mask_zero_shares,omitempty"`
	// MasksZero of MasksCount masks are exactly 0 (all kinds).
	MasksZero  int `json:"masks_zero,omitempty"`
	MasksCount int `json:"masks_count,omitempty"`
	// SweepFinetuneLR is the peak learning rate a sweep fine-tunes this
	// model's pruned points with, both forms alike (sweep.MaskTrainedFinetuneLR
	// for a mask-trained model, else sweep.FinetuneLR).
	SweepFinetuneLR float64 `json:"sweep_finetune_lr"`
}

func toAPIModel(m store.Model) apiModel {
	a := apiModel{ID: m.ID, Name: m.Name, Arch: m.Arch, Params: m.Params, MACs: m.MACs, FLOPs: m.FLOPs,
		SourceSHA256: m.SourceSHA256, SizeBytes: m.SizeBytes, InputShape: m.InputShape, Classes: m.Classes,
		CreatedAt: m.CreatedAt}
	var r *nn.MaskReport
	if a.Masks, r = maskReport(m.Layers); r != nil {
		a.MaskZeroShares = r.ZeroShares()
		for _, k := range r.Kinds {
			a.MasksZero, a.MasksCount = a.MasksZero+k.Zero, a.MasksCount+k.Count
		}
	}
	a.SweepFinetuneLR = sweep.FinetuneLR
	if a.Masks {
		a.SweepFinetuneLR = sweep.MaskTrainedFinetuneLR
	}
	return a
}

// apiModelDetail is GET /api/models/{id}.
type apiModelDetail struct {
	apiModel
	Layers     []nn.LayerInfo    `json:"layers"`
	MaskStats  *nn.MaskReport    `json:"mask_stats,omitempty"` // mask-trained models: per kind and per mask layer
	Conversion *store.Conversion `json:"conversion,omitempty"`
	// ConversionRunning: the RM equivalence check of a new upload is still running.
	ConversionRunning bool `json:"conversion_running,omitempty"`
}

// apiPoint is a point in the JSON API.
type apiPoint struct {
	ID           int64   `json:"id"`
	Form         string  `json:"form"`
	Ratio        float64 `json:"ratio"`
	Params       int64   `json:"params"`
	MACs         int64   `json:"macs"`
	MACsComputed int64   `json:"macs_computed"` // what the engine computes: RM's copy channels are copies
	MACsONNX     int64   `json:"macs_onnx"`     // what ONNX Runtime computes with the point's ONNX file
	ONNXExport   string  `json:"onnx_export"`   // that file's form: copy-aware or dense
	FLOPs        int64   `json:"flops"`
	SizeBytes    int64   `json:"size_bytes"`
	Top1         float64 `json:"top1"`
	Top5         float64 `json:"top5"`
	LatencyMSP50 float64 `json:"latency_ms_p50"`
	LatencyMSP90 float64 `json:"latency_ms_p90"`
	ImagesPerS   float64 `json:"images_per_s"`
	apiLatency
	Worker string `json:"worker"` // the cluster worker that measured it; "" in process
	CPU    string `json:"cpu"`    // the CPU it was measured on
	// Status is "done", or "refused" when the pruning guards refused the
	// ratio (Error says why; the point has no measurements or files).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func toAPIPoint(p store.Point) apiPoint {
	ox, oxForm := onnxCost(p)
	return apiPoint{ID: p.ID, Form: p.Form, Ratio: p.Ratio, Params: p.Params, MACs: p.MACs, MACsComputed: computedMACs(p), FLOPs: p.FLOPs,
		MACsONNX: ox, ONNXExport: oxForm, SizeBytes: p.SizeBytes, Top1: p.Top1, Top5: p.Top5, LatencyMSP50: p.LatencyMSP50,
		LatencyMSP90: p.LatencyMSP90, ImagesPerS: p.ImagesPerS, apiLatency: toAPILatency(p), Worker: p.Worker, CPU: p.CPU,
		Status: p.Status, Error: p.Error}
}

// apiSweep is GET /api/sweeps/{id}.
type apiSweep struct {
	ID             int64      `json:"id"`
	ModelID        int64      `json:"model_id"`
	Status         string     `json:"status"`
	Progress       float64    `json:"progress"`
	Message        string     `json:"message,omitempty"`
	Error          string     `json:"error,omitempty"`
	Dataset        string     `json:"dataset"`
	Method         string     `json:"method"`
	Scope          string     `json:"scope"`
	Forms          []string   `json:"forms"`
	Ratios         []float64  `json:"ratios"`
	MinChannels    int        `json:"min_channels"`
	RoundTo        int        `json:"round_to"`
	FinetuneEpochs int        `json:"finetune_epochs"`
	FinetuneLimit  int        `json:"finetune_limit"`
	TrainCopies    bool       `json:"train_copies"`
	Batch          int        `json:"batch"`
	Threads        int        `json:"threads"`
	Limit          int        `json:"limit"`
	Target         string     `json:"target"`
	CreatedAt      time.Time  `json:"created_at"`
	Points         []apiPoint `json:"points"`
	Remeasure      string     `json:"remeasure,omitempty"` // "queued" or "running" while a latency re-measure is pending
}

func toAPISweep(s store.Sweep, ps []store.Point, msg string) apiSweep {
	out := apiSweep{ID: s.ID, ModelID: s.ModelID, Status: string(s.Status), Progress: s.Progress, Message: msg,
		Error: s.Error, Dataset: s.Dataset, Method: s.Method, Scope: s.Scope, Forms: s.Forms, Ratios: s.Ratios,
		MinChannels: s.MinChannels, RoundTo: s.RoundTo, FinetuneEpochs: s.FinetuneEpochs, FinetuneLimit: s.FinetuneLimit, TrainCopies: s.TrainCopies, Batch: s.Batch,
		Threads: s.Threads, Limit: s.Limit, Target: s.Target, CreatedAt: s.CreatedAt, Points: []apiPoint{}}
	for _, p := range ps {
		out.Points = append(out.Points, toAPIPoint(p))
	}
	return out
}

// idParam reads the {id} URL parameter.
func idParam(r *http.Request) (int64, error) {
	s := chi.URLParam(r, "id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, errStatus(http.StatusBadRequest, fmt.Sprintf("id %q: want a positive integer", s))
	}
	return id, nil
}

// parseIDs reads ids given as repeated values and/or comma-separated lists.
func parseIDs(name string, values []string, maxN int) ([]int64, error) {
	var ids []int64
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil || id <= 0 {
				return nil, errStatus(http.StatusBadRequest, fmt.Sprintf("%s: %q is not an id", name, s))
			}
			ids = append(ids, id)
		}
	}
	if len(ids) > maxN {
		return nil, errStatus(http.StatusBadRequest, fmt.Sprintf("%s: at most %d ids", name, maxN))
	}
	return ids, nil
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = itoa(id)
	}
	return strings.Join(s, ",")
}

func handleAPIModels(db modelLister, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ms, err := db.Models(r.Context())
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		out := []apiModel{}
		for _, m := range ms {
			out = append(out, toAPIModel(m))
		}
		writeJSON(w, http.StatusOK, map[string]any{"models": out})
	}
}

func handleAPIModel(db interface {
	modelGetter
	conversionLister
}, checks *rmChecker, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		m, err := db.Model(r.Context(), id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		out := apiModelDetail{apiModel: toAPIModel(m), Layers: []nn.LayerInfo{}}
		var rows []layerRow
		json.Unmarshal(m.Layers, &rows)
		for _, l := range rows {
			out.Layers = append(out.Layers, l.LayerInfo)
		}
		_, out.MaskStats = maskReport(m.Layers)
		if cs, err := db.ConversionsForModel(r.Context(), id); err == nil && len(cs) > 0 {
			c := cs[0]
			c.Layers = nil
			out.Conversion = &c
		}
		out.ConversionRunning = out.Conversion == nil && checks.running(id)
		writeJSON(w, http.StatusOK, out)
	}
}

// receiveUpload streams the multipart field "file" into addModel. An
// optional field "name" before it names the model.
func receiveUpload(w http.ResponseWriter, r *http.Request, db modelStore, limit int64, checks *rmChecker) (store.Model, bool, error) {
	const slack = 1 << 20 // multipart headers and the name field
	if r.ContentLength > limit+slack {
		return store.Model{}, false, errStatus(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("upload of %s is larger than the limit of %s", fmtBytes(r.ContentLength), fmtBytes(limit)))
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+slack)
	mr, err := r.MultipartReader()
	if err != nil {
		return store.Model{}, false, errStatus(http.StatusBadRequest, "want a multipart/form-data body with a field named file")
	}
	name := ""
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return store.Model{}, false, errStatus(http.StatusBadRequest, "no field named file in the upload")
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return store.Model{}, false, errStatus(http.StatusRequestEntityTooLarge, "upload larger than the limit of "+fmtBytes(limit))
			}
			return store.Model{}, false, errStatus(http.StatusBadRequest, "malformed multipart body: "+err.Error())
		}
		switch part.FormName() {
		case "name":
			b, _ := io.ReadAll(io.LimitReader(part, 512))
			name = string(b)
		case "file":
			filename := part.FileName()
			if filename == "" {
				filename = "upload"
			}
			return addModel(r.Context(), db, part, filename, name, limit, checks.start)
		}
		part.Close()
	}
}

func handleAPIUpload(db modelStore, limit int64, checks *rmChecker, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, created, err := receiveUpload(w, r, db, limit, checks)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		status := http.StatusCreated
		if !created {
			status = http.StatusOK // the same network was stored before
		}
		w.Header().Set("Location", "/api/models/"+itoa(m.ID))
		writeJSON(w, status, toAPIModel(m))
	}
}

// deleteStore is what deleting a model needs.
type deleteStore interface {
	modelGetter
	sweepLister
	ArtifactDir() string
	DeleteModel(ctx context.Context, id int64) ([]string, error)
	MaskTrainings(ctx context.Context, modelID int64) ([]store.MaskTraining, error)
}

// deleteModel stops the model's running sweeps, deletes its rows and files.
func deleteModel(ctx context.Context, db deleteStore, q *Queue, graphs *graphCache, id int64) error {
	if _, err := db.Model(ctx, id); err != nil {
		return err
	}
	ss, err := db.Sweeps(ctx, id)
	if err != nil {
		return err
	}
	ids := make([]int64, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
		if s.Status == store.StatusRunning {
			q.Cancel(s.ID, 30*time.Second)
		}
	}
	// Its mask trainings go with it (their checkpoints too); the models
	// they stored stay.
	ts, err := db.MaskTrainings(ctx, id)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Status == store.StatusRunning {
			q.cancelTraining(t.ID, 30*time.Second)
		}
	}
	paths, err := db.DeleteModel(ctx, id)
	if err != nil {
		return err
	}
	for _, t := range ts {
		os.RemoveAll(filepath.Join(db.ArtifactDir(), maskTrainDir(t.ID)))
	}
	removeModelFiles(db.ArtifactDir(), paths, ids)
	graphs.drop(id)
	return nil
}

func handleAPIDeleteModel(db deleteStore, q *Queue, graphs *graphCache, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			err = deleteModel(r.Context(), db, q, graphs, id)
		}
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// sweepRequest is the body of POST /api/sweeps.
type sweepRequest struct {
	ModelID int64 `json:"model_id"`
	sweep.Config
}

// createSweep resolves defaults, validates the request (the dataset must be
// a name the runner knows) and queues the sweep.
func createSweep(ctx context.Context, db sweepWriter, d Deps, graphs *graphCache, modelID int64, cfg sweep.Config) (store.Sweep, error) {
	if modelID <= 0 {
		return store.Sweep{}, errStatus(http.StatusBadRequest, "model_id is required")
	}
	if strings.TrimSpace(cfg.Dataset) == "" {
		return store.Sweep{}, errStatus(http.StatusBadRequest, "dataset is required (one of: "+strings.Join(d.Datasets, ", ")+")")
	}
	cfg.Defaults()
	if err := d.Runner.Validate(&cfg); err != nil {
		return store.Sweep{}, err
	}
	g, _, err := graphs.get(ctx, modelID)
	if err != nil {
		return store.Sweep{}, err
	}
	if err := cfg.Check(g); err != nil {
		return store.Sweep{}, err
	}
	s, err := db.CreateSweep(ctx, cfg.Sweep(modelID))
	if err != nil {
		return store.Sweep{}, err
	}
	d.Queue.Wake()
	return s, nil
}

func handleAPICreateSweep(db sweepWriter, d Deps, graphs *graphCache, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req sweepRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		err := dec.Decode(&req)
		if err == nil {
			// One JSON object and nothing after it.
			if _, terr := dec.Token(); terr != io.EOF {
				err = errors.New("trailing data after the JSON object")
				if terr != nil && !errors.Is(terr, io.ErrUnexpectedEOF) {
					var mbe *http.MaxBytesError
					if errors.As(terr, &mbe) {
						err = terr
					}
				}
			}
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) {
				err = errStatus(http.StatusBadRequest, "request body: "+err.Error())
			}
			apiError(w, r, log, err)
			return
		}
		s, err := createSweep(r.Context(), db, d, graphs, req.ModelID, req.Config)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		w.Header().Set("Location", "/api/sweeps/"+itoa(s.ID))
		writeJSON(w, http.StatusAccepted, map[string]any{"id": s.ID, "status": s.Status})
	}
}

// modelQuery reads the optional ?model=ID filter of a list route (0: none).
func modelQuery(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("model")
	if v == "" {
		return 0, nil
	}
	ids, err := parseIDs("model", []string{v}, 1)
	if err != nil || len(ids) != 1 {
		return 0, errStatus(http.StatusBadRequest, "model: want an id")
	}
	return ids[0], nil
}

func handleAPISweeps(db sweepLister, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		modelID, err := modelQuery(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		ss, err := db.Sweeps(r.Context(), modelID)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		out := []apiSweep{}
		for _, s := range ss {
			a := toAPISweep(s, nil, "")
			a.Points = nil
			out = append(out, a)
		}
		writeJSON(w, http.StatusOK, map[string]any{"sweeps": out})
	}
}

func handleAPISweep(db interface {
	sweepGetter
	pointLister
}, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		s, err := db.Sweep(r.Context(), id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		ps, err := db.Points(r.Context(), id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		_, msg, _ := q.Progress(id)
		out := toAPISweep(s, ps, msg)
		if rm := remeasureOf(r.Context(), db, q, id); rm.Status != "" { // remeasure.go
			out.Remeasure, out.Message = rm.Status, rm.Message
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func handleAPIPoint(db pointGetter, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		p, err := db.Point(r.Context(), id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	}
}

// cancelSweep stops a queued or running sweep.
func cancelSweep(ctx context.Context, db interface {
	sweepGetter
	sweepWriter
}, q *Queue, id int64) (store.Sweep, error) {
	s, err := db.Sweep(ctx, id)
	if err != nil {
		return s, err
	}
	switch s.Status {
	case store.StatusRunning:
		if !q.Cancel(id, 15*time.Second) {
			return s, errStatus(http.StatusConflict, fmt.Sprintf("sweep %d is running in another process", id))
		}
	case store.StatusQueued:
		if err := db.SetSweepStatus(ctx, id, store.StatusCancelled, "cancelled"); err != nil {
			return s, err
		}
		q.Cancel(id, 15*time.Second) // claimed meanwhile
	default:
		return s, errStatus(http.StatusConflict, fmt.Sprintf("sweep %d is %s", id, s.Status))
	}
	return db.Sweep(ctx, id)
}

func handleAPICancel(db interface {
	sweepGetter
	sweepWriter
}, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		s, err := cancelSweep(r.Context(), db, q, id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": s.ID, "status": s.Status})
	}
}

func handleAPIResume(db interface {
	sweepGetter
	sweepWriter
}, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			err = db.ResumeSweep(r.Context(), id)
		}
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		q.Wake()
		writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "status": store.StatusQueued})
	}
}
