package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
	"github.com/rmprune/rmprune/train"
)

// Mask-sparsity training as a dashboard job (DESIGN "Mask-sparsity
// training"): POST /api/models/{id}/masktrain (and the model page's form)
// queue a job of kind store.JobKindMaskTrain that trains the model with the
// RMNet reference code's masks (train.WithMasks, then train.Run with the mask
// penalty and hard threshold), on the queue's one worker, so it never times
// against a sweep. Progress is kept in memory while it runs and in the
// store once a second; the job page polls it. When done the trained network
// is stored as a new model, the source untouched. A server shutdown leaves the
// job interrupted with train's checkpoint beside it; resuming continues from
// that checkpoint, restarting discards it.

// Mask-training defaults: train's (batch 128, wd 5e-4, seed 1) and the first
// stage of the shipped demos' recipe (README "Mask-sparsity training": one
// epoch at lr 0.05, s = 2.5e-3, t = 5e-3, from a trained ResNet).
const (
	DefaultMaskTrainEpochs    = 1
	DefaultMaskTrainLR        = 0.05
	DefaultMaskTrainSparsity  = 2.5e-3
	DefaultMaskTrainThreshold = 5e-3
	// maxLR and maxSparsity bound a request's values (far above any use).
	maxLR       = 10
	maxSparsity = 1
)

// MaskTrainConfig is a mask training's settings, stored with it (so a resumed
// run matches its checkpoint) and returned by the API.
type MaskTrainConfig struct {
	Dataset       string  `json:"dataset"`        // a dataset name the server knows
	Epochs        int     `json:"epochs"`         // passes over the training images
	Limit         int     `json:"limit"`          // training images per epoch (the first N); 0: all
	EvalLimit     int     `json:"eval_limit"`     // test images evaluated after each epoch; 0: all
	LR            float64 `json:"lr"`             // peak learning rate (cosine schedule)
	WD            float64 `json:"wd"`             // weight decay
	Batch         int     `json:"batch"`          // images per step
	MaskSparsity  float64 `json:"mask_sparsity"`  // s: loss + s·Σ|m|
	MaskThreshold float64 `json:"mask_threshold"` // t: |m| ≤ t is set to exactly 0 after every step
	Seed          uint64  `json:"seed"`           // data order and augmentation
	Threads       int     `json:"threads"`
}

// maskTrainRequest is the body of POST /api/models/{id}/masktrain: every
// field optional (nil: the default).
type maskTrainRequest struct {
	Dataset       *string  `json:"dataset"`
	Epochs        *int     `json:"epochs"`
	Limit         *int     `json:"limit"`
	EvalLimit     *int     `json:"eval_limit"`
	LR            *float64 `json:"lr"`
	WD            *float64 `json:"wd"`
	Batch         *int     `json:"batch"`
	MaskSparsity  *float64 `json:"mask_sparsity"`
	MaskThreshold *float64 `json:"mask_threshold"`
	Seed          *uint64  `json:"seed"`
	Threads       *int     `json:"threads"`
}

// config resolves the request's defaults (modelDataset is the model's
// recorded data set, "" when none) and checks its values against the
// server's datasets. Bad values are 400 with one line.
func (r maskTrainRequest) config(modelDataset string, datasets []string) (MaskTrainConfig, error) {
	c := MaskTrainConfig{Epochs: DefaultMaskTrainEpochs, LR: DefaultMaskTrainLR, WD: train.DefaultOptions().WD,
		Batch: train.DefaultOptions().Batch, MaskSparsity: DefaultMaskTrainSparsity, MaskThreshold: DefaultMaskTrainThreshold,
		Seed: 1, Threads: runtime.NumCPU()}
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setF := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.Epochs, r.Epochs)
	set(&c.Limit, r.Limit)
	set(&c.EvalLimit, r.EvalLimit)
	set(&c.Batch, r.Batch)
	set(&c.Threads, r.Threads)
	setF(&c.LR, r.LR)
	setF(&c.WD, r.WD)
	setF(&c.MaskSparsity, r.MaskSparsity)
	setF(&c.MaskThreshold, r.MaskThreshold)
	if r.Seed != nil {
		c.Seed = *r.Seed
	}
	known := strings.Join(datasets, ", ")
	switch {
	case r.Dataset != nil:
		c.Dataset = strings.TrimSpace(*r.Dataset)
		if c.Dataset == "" {
			return c, errStatus(http.StatusBadRequest, "dataset is empty (one of: "+known+")")
		}
		if !slices.Contains(datasets, c.Dataset) {
			return c, errStatus(http.StatusBadRequest, fmt.Sprintf("unknown dataset %q (known: %s)", c.Dataset, known))
		}
	case modelDataset != "" && slices.Contains(datasets, modelDataset):
		c.Dataset = modelDataset
	default:
		return c, errStatus(http.StatusBadRequest, "dataset is required: the model records none this server knows (one of: "+known+")")
	}
	return c, c.validate()
}

// validate checks the bounds (400 with one line).
func (c MaskTrainConfig) validate() error {
	bad := func(format string, a ...any) error {
		return errStatus(http.StatusBadRequest, fmt.Sprintf(format, a...))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Epochs < 1 || c.Epochs > sweep.MaxEpochs:
		return bad("epochs %d: want 1…%d", c.Epochs, sweep.MaxEpochs)
	case c.Limit < 0:
		return bad("limit %d: want ≥ 0 (0: the whole training split)", c.Limit)
	case c.EvalLimit < 0:
		return bad("eval_limit %d: want ≥ 0 (0: the whole test split)", c.EvalLimit)
	case !finite(c.LR) || c.LR <= 0 || c.LR > maxLR:
		return bad("lr %v: want > 0 and ≤ %v", c.LR, maxLR)
	case !finite(c.WD) || c.WD < 0 || c.WD > 1:
		return bad("wd %v: want 0…1", c.WD)
	case c.Batch < 2 || c.Batch > sweep.MaxBatch:
		return bad("batch %d: want 2…%d (BatchNorm needs batch statistics)", c.Batch, sweep.MaxBatch)
	case !finite(c.MaskSparsity) || c.MaskSparsity < 0 || c.MaskSparsity > maxSparsity:
		return bad("mask_sparsity %v: want 0…%v", c.MaskSparsity, maxSparsity)
	case !finite(c.MaskThreshold) || c.MaskThreshold < 0 || c.MaskThreshold >= 1:
		return bad("mask_threshold %v: want ≥ 0 and < 1", c.MaskThreshold)
	case c.Threads < 1 || c.Threads > sweep.MaxThreads:
		return bad("threads %d: want 1…%d", c.Threads, sweep.MaxThreads)
	}
	return nil
}

// maskTrainStore is what queuing and running mask trainings need; *store.DB is one.
type maskTrainStore interface {
	modelStore
	modelGetter
	CreateMaskTraining(ctx context.Context, modelID int64, config json.RawMessage) (store.MaskTraining, error)
	MaskTraining(ctx context.Context, id int64) (store.MaskTraining, error)
	MaskTrainingByJob(ctx context.Context, jobID int64) (store.MaskTraining, error)
	MaskTrainings(ctx context.Context, modelID int64) ([]store.MaskTraining, error)
	SetMaskTrainingLive(ctx context.Context, id int64, live json.RawMessage, progress float64) error
	FinishMaskTraining(ctx context.Context, id, resultModelID int64) error
	ResumeMaskTraining(ctx context.Context, id int64) error
	SetJobStatus(ctx context.Context, id int64, status store.Status, errText string) error
}

// DatasetOpener opens a data set by the name a request gave; *sweep.Runner
// (and the cluster coordinator) is one. A queue whose runner is not one
// fails mask-training jobs.
type DatasetOpener interface {
	Dataset(name string) (*dataset.Dataset, error)
}

// startMaskTrain checks and queues a mask training of model id. 422 for a
// model that cannot take masks (not a ResNet), 409 while another training
// of the model is queued or running.
func startMaskTrain(ctx context.Context, db maskTrainStore, d Deps, graphs *graphCache, id int64, req maskTrainRequest) (store.MaskTraining, error) {
	g, _, err := graphs.get(ctx, id)
	if err != nil {
		return store.MaskTraining{}, err
	}
	cfg, err := req.config(g.Dataset, d.Datasets)
	if err != nil {
		return store.MaskTraining{}, err
	}
	if !g.HasMasks() {
		// A dry run of what the job does first (on a copy: the cache's graph stays as loaded).
		if _, err := nn.AddMasks(g); err != nil {
			return store.MaskTraining{}, errStatus(http.StatusUnprocessableEntity,
				fmt.Sprintf("model %d cannot be mask-trained: %v", id, err))
		}
	}
	ts, err := db.MaskTrainings(ctx, id)
	if err != nil {
		return store.MaskTraining{}, err
	}
	for _, t := range ts {
		if t.Status == store.StatusQueued || t.Status == store.StatusRunning {
			return store.MaskTraining{}, errStatus(http.StatusConflict,
				fmt.Sprintf("model %d already has mask training %d %s (/masktrain/%d)", id, t.ID, t.Status, t.ID))
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return store.MaskTraining{}, err
	}
	t, err := db.CreateMaskTraining(ctx, id, b)
	if err != nil {
		return store.MaskTraining{}, err
	}
	d.Queue.Wake()
	return t, nil
}

// decodeStrict decodes one JSON object (unknown fields refused, nothing
// after it) from a body of at most 64 kB; errors are 400 (413 when too large).
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
			var mbe *http.MaxBytesError
			if errors.As(terr, &mbe) {
				err = terr
			}
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errStatus(http.StatusBadRequest, "request body: "+err.Error())
	}
	return nil
}

// handleAPIMaskTrain is POST /api/models/{id}/masktrain → 202 {id, job_id, status}.
func handleAPIMaskTrain(db maskTrainStore, d Deps, graphs *graphCache, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		var req maskTrainRequest
		if err := decodeStrict(w, r, &req); err != nil {
			apiError(w, r, log, err)
			return
		}
		t, err := startMaskTrain(r.Context(), db, d, graphs, id, req)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		w.Header().Set("Location", "/api/masktrain/"+itoa(t.ID))
		writeJSON(w, http.StatusAccepted, map[string]any{"id": t.ID, "job_id": t.JobID, "status": t.Status})
	}
}

// maskTrainLive is a running training's progress report (GET
// /api/masktrain/{id} "live", the job page).
type maskTrainLive struct {
	Epoch      int            `json:"epoch"` // 1-based epoch being run (or last run)
	Epochs     int            `json:"epochs"`
	Step       int            `json:"step"` // steps done, all epochs
	Steps      int            `json:"steps"`
	Loss       float64        `json:"loss"`      // mean training loss of the epoch so far
	TrainAcc   float64        `json:"train_acc"` // training top-1 of the epoch so far
	TestTop1   *float64       `json:"test_top1,omitempty"`
	ImagesPerS float64        `json:"images_per_s"`
	Masks      []maskKindLive `json:"masks"` // per kind: masks exactly 0
	Message    string         `json:"message"`
}

// maskKindLive counts one kind's masks exactly 0.
type maskKindLive struct {
	Kind  string  `json:"kind"` // stem, inner, reserved, block_out
	Zero  int     `json:"zero"`
	Count int     `json:"count"`
	Share float64 `json:"zero_share"`
}

// apiMaskTraining is GET /api/masktrain/{id}.
type apiMaskTraining struct {
	ID       int64           `json:"id"`
	ModelID  int64           `json:"model_id"`
	JobID    int64           `json:"job_id"`
	Status   string          `json:"status"`
	Progress float64         `json:"progress"`
	Message  string          `json:"message,omitempty"`
	Error    string          `json:"error,omitempty"`
	Config   MaskTrainConfig `json:"config"`
	Live     *maskTrainLive  `json:"live"` // null before the first step
	// ResultModelID is the stored mask-trained model (done only).
	ResultModelID int64     `json:"result_model_id,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// maskTrainState reads training t's progress: from this process's queue
// while it runs here, else as stored.
func maskTrainState(q *Queue, t store.MaskTraining) apiMaskTraining {
	a := apiMaskTraining{ID: t.ID, ModelID: t.ModelID, JobID: t.JobID, Status: string(t.Status), Progress: t.Progress,
		Error: t.Error, ResultModelID: t.ResultModelID, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	json.Unmarshal(t.Config, &a.Config)
	var live maskTrainLive
	if json.Unmarshal(t.Live, &live) == nil && live.Steps > 0 {
		a.Live = &live
	}
	if l, frac, ok := q.trainingLive(t.ID); ok {
		a.Progress, a.Status, a.Message = frac, string(store.StatusRunning), l.Message
		if l.Steps > 0 {
			a.Live = &l
		}
	}
	switch {
	case a.Message != "":
	case a.Live != nil && a.Status == string(store.StatusRunning):
		a.Message = a.Live.Message
	case a.Status == string(store.StatusQueued):
		a.Message = "waiting for the queue (one job at a time)"
	case a.Status == string(store.StatusInterrupted):
		a.Message = "the server stopped while this ran: resume it to continue from its checkpoint"
	}
	return a
}

func handleAPIMaskTraining(db maskTrainStore, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		t, err := db.MaskTraining(r.Context(), id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusOK, maskTrainState(q, t))
	}
}

// handleAPIMaskTrainings is GET /api/masktrain[?model=ID], newest first.
func handleAPIMaskTrainings(db maskTrainStore, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		modelID, err := modelQuery(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		ts, err := db.MaskTrainings(r.Context(), modelID)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		out := []apiMaskTraining{}
		for _, t := range ts {
			out = append(out, maskTrainState(q, t))
		}
		writeJSON(w, http.StatusOK, map[string]any{"trainings": out})
	}
}

// cancelMaskTrain stops a queued or running training. Its checkpoint stays:
// resume continues from it.
func cancelMaskTrain(ctx context.Context, db maskTrainStore, q *Queue, id int64) (store.MaskTraining, error) {
	t, err := db.MaskTraining(ctx, id)
	if err != nil {
		return t, err
	}
	switch t.Status {
	case store.StatusRunning:
		if !q.cancelTraining(id, 30*time.Second) {
			return t, errStatus(http.StatusConflict, fmt.Sprintf("mask training %d is running in another process", id))
		}
	case store.StatusQueued:
		if err := db.SetJobStatus(ctx, t.JobID, store.StatusCancelled, "cancelled"); err != nil {
			return t, err
		}
		q.cancelTraining(id, 30*time.Second) // claimed meanwhile
	default:
		return t, errStatus(http.StatusConflict, fmt.Sprintf("mask training %d is %s", id, t.Status))
	}
	return db.MaskTraining(ctx, id)
}

// resumeMaskTrain queues an interrupted, failed or cancelled training again:
// from its checkpoint, or from the start (restart) with the checkpoint removed.
func resumeMaskTrain(ctx context.Context, db maskTrainStore, q *Queue, id int64, restart bool) error {
	t, err := db.MaskTraining(ctx, id)
	if err != nil {
		return err
	}
	if t.Status == store.StatusQueued || t.Status == store.StatusRunning || t.Status == store.StatusDone {
		return errStatus(http.StatusConflict, fmt.Sprintf("mask training %d is %s", id, t.Status))
	}
	if restart {
		os.RemoveAll(filepath.Join(db.ArtifactDir(), maskTrainDir(id)))
		if err := db.SetMaskTrainingLive(ctx, id, json.RawMessage(`{}`), 0); err != nil {
			return err
		}
	}
	if err := db.ResumeMaskTraining(ctx, id); err != nil {
		return err
	}
	q.Wake()
	return nil
}

func handleAPIMaskTrainCancel(db maskTrainStore, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		t, err := cancelMaskTrain(r.Context(), db, q, id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": t.ID, "status": t.Status})
	}
}

func handleAPIMaskTrainResume(db maskTrainStore, q *Queue, restart bool, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			err = resumeMaskTrain(r.Context(), db, q, id, restart)
		}
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "status": store.StatusQueued})
	}
}

// maskTrainDir holds a training's checkpoint (train's model file and resume
// state), relative to the artifact directory; removed when the model is stored.
func maskTrainDir(id int64) string { return filepath.Join("masktrain", strconv.FormatInt(id, 10)) }

// trainTask is a mask training running in this process.
type trainTask struct {
	task
	live maskTrainLive
}

// trainingLive returns the progress of training id when it runs here.
func (q *Queue) trainingLive(id int64) (maskTrainLive, float64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t, ok := q.training[id]
	if !ok {
		return maskTrainLive{}, 0, false
	}
	l := t.live
	l.Masks = slices.Clone(l.Masks)
	return l, t.frac, true
}

// cancelTraining cancels training id running here and waits up to timeout
// for it to stop. It reports whether it was running here.
func (q *Queue) cancelTraining(id int64, timeout time.Duration) bool {
	q.mu.Lock()
	t, ok := q.training[id]
	q.mu.Unlock()
	return ok && t.stop(timeout)
}

// setModelCheck sets what is done with a model a training stored (the RM
// equivalence check, as for uploads).
func (q *Queue) setModelCheck(check func(store.Model, *nn.Graph)) {
	q.mu.Lock()
	q.modelCheck = check
	q.mu.Unlock()
}

// collapseError ends a training whose masks cut the input off the output.
type collapseError struct{ msg string }

func (e *collapseError) Error() string { return e.msg }

// collapsed names the first mask layer that is exactly 0 on every channel
// where that makes the output independent of the input — the stem's mask or
// a block's mask2 (every image then gives the same logits) — or "".
func collapsed(g *nn.Graph, kinds map[string]string) string {
	for _, n := range g.Nodes {
		if n.Op != nn.OpMask || (kinds[n.Name] != nn.MaskStem && kinds[n.Name] != nn.MaskBlockOut) {
			continue
		}
		m := n.P("weight")
		if len(m) > 0 && !slices.ContainsFunc(m, func(v float32) bool { return v != 0 }) {
			return n.Name
		}
	}
	return ""
}

// maskCounts counts g's masks exactly 0 per kind (in nn.MaskKinds order).
func maskCounts(g *nn.Graph, kinds map[string]string) []maskKindLive {
	by := map[string]*maskKindLive{}
	for _, n := range g.Nodes {
		if n.Op != nn.OpMask {
			continue
		}
		k := kinds[n.Name]
		c := by[k]
		if c == nil {
			c = &maskKindLive{Kind: k}
			by[k] = c
		}
		for _, v := range n.P("weight") {
			c.Count++
			if v == 0 {
				c.Zero++
			}
		}
	}
	var out []maskKindLive
	for _, k := range nn.MaskKinds {
		if c := by[k]; c != nil {
			c.Share = float64(c.Zero) / float64(max(c.Count, 1))
			out = append(out, *c)
		}
	}
	return out
}

// finite replaces NaN and ±Inf (which JSON cannot carry) by 0.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// oneLine joins an error message's lines.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// resultName names the stored model after its source.
func resultName(src string) string {
	const suffix = " (mask-trained)"
	r := []rune(cleanName(src))
	if len(r) > 80-len(suffix) {
		r = r[:80-len(suffix)]
	}
	return string(r) + suffix
}

// runMaskTrain runs a claimed mask-training job. A server shutdown (ctx
// done) interrupts it: train writes its checkpoint, and the job is left
// interrupted (resumable).
func (q *Queue) runMaskTrain(ctx context.Context, job store.Job) {
	bg := context.WithoutCancel(ctx)
	fail := func(text string) {
		if err := q.db.SetJobStatus(bg, job.ID, store.StatusFailed, oneLine(text)); err != nil {
			q.log.Error("queue: mask training status", "job", job.ID, "err", err)
		}
	}
	db, ok := q.db.(maskTrainStore)
	if !ok {
		fail("this server cannot run mask training")
		return
	}
	mt, err := db.MaskTrainingByJob(bg, job.ID)
	if err != nil {
		fail(err.Error())
		return
	}
	t := &trainTask{task: task{msg: "starting"}}
	t.live.Message = "loading the model and data"
	tctx, end := track(q, ctx, &q.training, mt.ID, t, &t.task)
	defer end()
	q.mu.Lock()
	check := q.modelCheck
	q.mu.Unlock()
	q.log.Info("mask training started", "training", mt.ID, "model", mt.ModelID)
	res, err := q.maskTrain(tctx, db, mt, t, check)
	// Keep the last report (the step a checkpoint was written at).
	q.mu.Lock()
	last, frac := t.live, t.frac
	q.mu.Unlock()
	if last.Steps > 0 {
		if b, merr := json.Marshal(last); merr == nil {
			db.SetMaskTrainingLive(bg, mt.ID, b, frac)
		}
	}
	st, text := store.StatusDone, ""
	var ce *collapseError
	switch cause := context.Cause(tctx); {
	case err == nil:
	case errors.As(cause, &ce):
		st, text = store.StatusFailed, ce.msg
	case errors.As(err, &ce):
		st, text = store.StatusFailed, ce.msg
	case errors.Is(cause, sweep.ErrInterrupted):
		st, text = store.StatusInterrupted, "interrupted"
	case tctx.Err() != nil:
		st, text = store.StatusCancelled, "cancelled"
	default:
		st, text = store.StatusFailed, err.Error()
	}
	if st == store.StatusDone {
		if err := db.FinishMaskTraining(bg, mt.ID, res.ID); err != nil {
			st, text = store.StatusFailed, err.Error()
		} else {
			os.RemoveAll(filepath.Join(db.ArtifactDir(), maskTrainDir(mt.ID)))
			q.log.Info("mask training done", "training", mt.ID, "model", res.ID)
			return
		}
	}
	q.log.Info("mask training stopped", "training", mt.ID, "status", st, "reason", text)
	if err := q.db.SetJobStatus(bg, job.ID, st, oneLine(text)); err != nil {
		q.log.Error("queue: mask training status", "job", job.ID, "err", err)
	}
}

// maskTrain trains training mt's model and stores the result as a new
// model, which it returns.
func (q *Queue) maskTrain(ctx context.Context, db maskTrainStore, mt store.MaskTraining, t *trainTask, check func(store.Model, *nn.Graph)) (store.Model, error) {
	var cfg MaskTrainConfig
	if err := json.Unmarshal(mt.Config, &cfg); err != nil {
		return store.Model{}, fmt.Errorf("mask training %d: bad stored config: %w", mt.ID, err)
	}
	opener, ok := q.runner.(DatasetOpener)
	if !ok {
		return store.Model{}, errors.New("this server cannot open data sets for training")
	}
	src, err := db.Model(ctx, mt.ModelID)
	if err != nil {
		return store.Model{}, err
	}
	path, ok := inside(db.ArtifactDir(), src.Path)
	if !ok {
		return store.Model{}, fmt.Errorf("model %d: file outside the artifact directory", src.ID)
	}
	g, err := safeLoad(path)
	if err != nil && src.Arch != "" {
		g, err = safeLoadArch(path, src.Arch)
	}
	if err != nil {
		return store.Model{}, fmt.Errorf("model %d: %w", src.ID, err)
	}
	if g, err = train.WithMasks(g); err != nil {
		return store.Model{}, err
	}
	d, err := opener.Dataset(cfg.Dataset)
	if err != nil {
		return store.Model{}, fmt.Errorf("data set %s: %w", cfg.Dataset, err)
	}
	if _, err := train.CheckData(g, d); err != nil {
		return store.Model{}, err
	}
	kinds := map[string]string{}
	for _, n := range g.Nodes {
		if n.Op == nn.OpMask {
			kinds[n.Name] = nn.MaskKind(g, n)
		}
	}
	dir := filepath.Join(db.ArtifactDir(), maskTrainDir(mt.ID))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return store.Model{}, err
	}
	out := filepath.Join(dir, "model.safetensors")
	opt := train.DefaultOptions()
	opt.Epochs, opt.Limit, opt.EvalLimit, opt.LR, opt.WD, opt.Batch = cfg.Epochs, cfg.Limit, cfg.EvalLimit, cfg.LR, cfg.WD, cfg.Batch
	opt.MaskSparsity, opt.MaskThreshold, opt.Seed, opt.Threads, opt.Out = cfg.MaskSparsity, cfg.MaskThreshold, cfg.Seed, cfg.Threads, out
	if _, err := os.Stat(train.StatePath(out)); err == nil {
		opt.Resume = true // an interrupted or cancelled run's checkpoint
	}
	var saved time.Time
	var top1 *float64
	opt.Progress = func(p train.Progress) {
		l := maskTrainLive{Epoch: p.Epoch + 1, Epochs: p.Epochs, Step: p.Step, Steps: p.Steps, Loss: finite(p.Loss),
			TrainAcc: finite(p.Acc), ImagesPerS: finite(p.ImagesPerS), Masks: maskCounts(g, kinds)}
		if p.EpochDone && !math.IsNaN(p.Top1) {
			v := p.Top1
			top1 = &v
		}
		l.TestTop1 = top1
		var zero, count int
		for _, k := range l.Masks {
			zero, count = zero+k.Zero, count+k.Count
		}
		l.Message = fmt.Sprintf("epoch %d/%d · step %d/%d · loss %.4f · train acc %.1f%% · %d/%d masks exactly 0",
			l.Epoch, l.Epochs, l.Step, l.Steps, l.Loss, 100*l.TrainAcc, zero, count)
		if p.EpochDone {
			l.Message = fmt.Sprintf("epoch %d/%d done · test top-1 %s · %d/%d masks exactly 0", l.Epoch, l.Epochs, fmtTop1(top1), zero, count)
			if name := collapsed(g, kinds); name != "" {
				q.collapse(t, name)
			}
		}
		frac := 0.0
		if p.Steps > 0 {
			frac = min(float64(p.Step)/float64(p.Steps), 1) * 0.99 // the rest is storing the model
		}
		q.mu.Lock()
		t.live, t.frac, t.msg = l, frac, l.Message
		q.mu.Unlock()
		if p.EpochDone || time.Since(saved) >= time.Second {
			if b, err := json.Marshal(l); err == nil {
				db.SetMaskTrainingLive(context.WithoutCancel(ctx), mt.ID, b, frac) // advisory
			}
			saved = time.Now()
		}
	}
	rep, err := train.Run(ctx, g, d, opt)
	if err != nil {
		return store.Model{}, err
	}
	if name := collapsed(g, kinds); name != "" {
		return store.Model{}, collapseErr(name)
	}
	// Store the trained file as a new model (validated and summarised as an
	// upload is); the source model is untouched.
	q.mu.Lock()
	t.live.Message, t.msg = "storing the mask-trained model", "storing the mask-trained model"
	q.mu.Unlock()
	f, err := os.Open(out)
	if err != nil {
		return store.Model{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return store.Model{}, err
	}
	m, _, err := addModel(context.WithoutCancel(ctx), db, f, "masktrain.safetensors", resultName(src.Name), fi.Size(), check)
	if err != nil {
		return store.Model{}, fmt.Errorf("store the trained model: %w", err)
	}
	q.log.Info("mask training stored its model", "training", mt.ID, "model", m.ID, "test_top1", fmtTop1(rep.Top1), "seconds", rep.Seconds)
	return m, nil
}

// collapseErr is the failure of a training whose mask layer name is all 0.
func collapseErr(name string) *collapseError {
	return &collapseError{fmt.Sprintf("collapse: every mask of %s is exactly 0, so the output no longer depends on the input (lower mask_sparsity or mask_threshold)", name)}
}

// collapse stops task t's training as collapsed at mask layer name.
func (q *Queue) collapse(t *trainTask, name string) { t.cancel(collapseErr(name)) }

// fmtTop1 writes an optional accuracy.
func fmtTop1(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmtPct(*v)
}
