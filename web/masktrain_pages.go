package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// MaskTrainCardView is the model page's mask-training card.
type MaskTrainCardView struct {
	ModelID                                                        int64
	Why                                                            string // why this model cannot be mask-trained ("" when it can)
	HasMasks                                                       bool
	Datasets                                                       []Option
	Epochs, Limit, EvalLimit, LR, Batch, Sparsity, Threshold, Seed string
	Trainings                                                      []MaskTrainRow
}

// MaskTrainRow is a training in the model page's list.
type MaskTrainRow struct {
	ID, ResultID                        int64
	Status, Progress, Settings, Created string
}

// KV is a labelled value.
type KV struct{ Label, Value string }

// MaskTrainView is a training's job page.
type MaskTrainView struct {
	ID, ModelID       int64
	ModelName         string
	Status            string
	Progress          float64
	ProgressPct       string
	Message, Error    string
	Settings          []KV
	Live              *MaskTrainLiveView
	ResultID          int64
	ResultName        string
	Active, Resumable bool
}

// MaskTrainLiveView is the live part of the job page.
type MaskTrainLiveView struct {
	Epoch, Step, Loss, TrainAcc, TestTop1, IPS string
	Masks                                      []MaskLiveRow
}

// MaskLiveRow is one kind's masks exactly 0.
type MaskLiveRow struct{ Kind, Zero, Pct, Width string }

// SweepModelNote is the sweep form's line on the chosen model.
type SweepModelNote struct {
	ModelID     int64
	Masked      bool
	Zero, Count string
	CanMask     bool
	LR          string // the peak lr a sweep fine-tunes this model's pruned points with
	Budget      string // the fine-tuning both forms get
}

func boolAttr(b bool) string { return strconv.FormatBool(b) }

// settingsText writes a configuration briefly.
func settingsText(c MaskTrainConfig) string {
	limit := "all"
	if c.Limit > 0 {
		limit = itoa(c.Limit)
	}
	return fmt.Sprintf("%s · %d epoch(s) × %s images · lr %g · s %g · t %g", c.Dataset, c.Epochs, limit, c.LR, c.MaskSparsity, c.MaskThreshold)
}

// maskTrainable says why g cannot be mask-trained ("" when it can).
func maskTrainable(g *nn.Graph) string {
	if g.HasMasks() {
		return ""
	}
	if _, err := nn.AddMasks(g); err != nil {
		return "This model cannot be mask-trained: " + err.Error()
	}
	return ""
}

// handleMaskTrainCard renders the model page's mask-training card (GET /models/{id}/masktrain).
func handleMaskTrainCard(db maskTrainStore, d Deps, graphs *graphCache, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id, err := idParam(r)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		g, _, err := graphs.get(ctx, id)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		def, _ := maskTrainRequest{}.config(g.Dataset, d.Datasets)
		v := MaskTrainCardView{ModelID: id, Why: maskTrainable(g), HasMasks: g.HasMasks(),
			Epochs: itoa(def.Epochs), Limit: itoa(def.Limit), EvalLimit: itoa(def.EvalLimit),
			LR: strconv.FormatFloat(def.LR, 'g', -1, 64), Batch: itoa(def.Batch),
			Sparsity: strconv.FormatFloat(def.MaskSparsity, 'g', -1, 64), Threshold: strconv.FormatFloat(def.MaskThreshold, 'g', -1, 64),
			Seed: strconv.FormatUint(def.Seed, 10)}
		for _, name := range d.Datasets {
			v.Datasets = append(v.Datasets, Option{Value: name, Label: name, Selected: name == def.Dataset})
		}
		ts, err := db.MaskTrainings(ctx, id)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		for _, t := range ts {
			a := maskTrainState(q, t)
			v.Trainings = append(v.Trainings, MaskTrainRow{ID: t.ID, ResultID: t.ResultModelID, Status: a.Status,
				Progress: fmt.Sprintf("%.0f%%", 100*a.Progress), Settings: settingsText(a.Config), Created: fmtTime(t.CreatedAt)})
		}
		render(w, r, http.StatusOK, maskTrainCard(v))
	}
}

// formMaskTrainRequest reads the card's form: empty fields take the defaults.
func formMaskTrainRequest(r *http.Request) (maskTrainRequest, error) {
	var req maskTrainRequest
	f := r.Form
	get := func(name string) (string, bool) {
		s := strings.TrimSpace(f.Get(name))
		return s, s != ""
	}
	if s, ok := get("dataset"); ok {
		req.Dataset = &s
	}
	for _, it := range []struct {
		name string
		dst  **int
	}{{"epochs", &req.Epochs}, {"limit", &req.Limit}, {"eval_limit", &req.EvalLimit}, {"batch", &req.Batch}, {"threads", &req.Threads}} {
		if s, ok := get(it.name); ok {
			n, err := strconv.Atoi(s)
			if err != nil {
				return req, errStatus(http.StatusBadRequest, fmt.Sprintf("%s %q is not a whole number", strings.ReplaceAll(it.name, "_", " "), s))
			}
			*it.dst = &n
		}
	}
	for _, it := range []struct {
		name string
		dst  **float64
	}{{"lr", &req.LR}, {"wd", &req.WD}, {"mask_sparsity", &req.MaskSparsity}, {"mask_threshold", &req.MaskThreshold}} {
		if s, ok := get(it.name); ok {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return req, errStatus(http.StatusBadRequest, fmt.Sprintf("%s %q is not a number", strings.ReplaceAll(it.name, "_", " "), s))
			}
			*it.dst = &v
		}
	}
	if s, ok := get("seed"); ok {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return req, errStatus(http.StatusBadRequest, fmt.Sprintf("seed %q is not a whole number ≥ 0", s))
		}
		req.Seed = &v
	}
	return req, nil
}

// handleMaskTrainForm is the card's form (POST /models/{id}/masktrain).
func handleMaskTrainForm(db maskTrainStore, d Deps, graphs *graphCache, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
		id, err := idParam(r)
		if err == nil {
			if perr := r.ParseForm(); perr != nil {
				err = errStatus(http.StatusBadRequest, "malformed form")
			}
		}
		var req maskTrainRequest
		if err == nil {
			req, err = formMaskTrainRequest(r)
		}
		var t store.MaskTraining
		if err == nil {
			t, err = startMaskTrain(r.Context(), db, d, graphs, id, req)
		}
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		http.Redirect(w, r, "/masktrain/"+itoa(t.ID), http.StatusSeeOther)
	}
}

// maskTrainView builds the job page of training id.
func maskTrainView(ctx context.Context, db maskTrainStore, q *Queue, id int64) (MaskTrainView, error) {
	t, err := db.MaskTraining(ctx, id)
	if err != nil {
		return MaskTrainView{}, err
	}
	a := maskTrainState(q, t)
	st := store.Status(a.Status)
	v := MaskTrainView{ID: t.ID, ModelID: t.ModelID, Status: a.Status, Progress: a.Progress,
		ProgressPct: fmt.Sprintf("%.1f%%", 100*a.Progress), Message: a.Message, Error: a.Error, ResultID: a.ResultModelID,
		Active: st == store.StatusQueued || st == store.StatusRunning, Resumable: st == store.StatusInterrupted || st == store.StatusFailed || st == store.StatusCancelled}
	if m, err := db.Model(ctx, t.ModelID); err == nil {
		v.ModelName = m.Name
	}
	if v.ResultID != 0 {
		if m, err := db.Model(ctx, v.ResultID); err == nil {
			v.ResultName = m.Name
		}
	}
	c := a.Config
	limit, evalLimit := "all", "all"
	if c.Limit > 0 {
		limit = itoa(c.Limit)
	}
	if c.EvalLimit > 0 {
		evalLimit = itoa(c.EvalLimit)
	}
	g := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	v.Settings = []KV{{"dataset", c.Dataset}, {"epochs", itoa(c.Epochs)}, {"images per epoch", limit}, {"test images", evalLimit},
		{"lr", g(c.LR)}, {"batch", itoa(c.Batch)}, {"mask sparsity", g(c.MaskSparsity)}, {"mask threshold", g(c.MaskThreshold)},
		{"seed", strconv.FormatUint(c.Seed, 10)}}
	if l := a.Live; l != nil {
		lv := &MaskTrainLiveView{Epoch: fmt.Sprintf("%d / %d", l.Epoch, l.Epochs), Step: fmt.Sprintf("%d / %d", l.Step, l.Steps),
			Loss: fmt.Sprintf("%.4f", l.Loss), TrainAcc: fmtPct(l.TrainAcc), TestTop1: fmtTop1(l.TestTop1),
			IPS: fmt.Sprintf("%.0f", l.ImagesPerS)}
		for _, m := range l.Masks {
			pct := fmt.Sprintf("%.1f%%", 100*m.Share)
			lv.Masks = append(lv.Masks, MaskLiveRow{Kind: m.Kind, Zero: fmt.Sprintf("%d / %d", m.Zero, m.Count), Pct: pct, Width: pct})
		}
		v.Live = lv
	}
	return v, nil
}

func handleMaskTrainPage(db maskTrainStore, q *Queue, live bool, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		v, err := maskTrainView(r.Context(), db, q, id)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		if live {
			render(w, r, http.StatusOK, maskTrainLiveFragment(v))
			return
		}
		render(w, r, http.StatusOK, maskTrainPage(v))
	}
}

// handleMaskTrainAction is the job page's cancel, resume and restart buttons.
func handleMaskTrainAction(db maskTrainStore, q *Queue, action string, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			switch action {
			case "cancel":
				_, err = cancelMaskTrain(r.Context(), db, q, id)
			case "resume":
				err = resumeMaskTrain(r.Context(), db, q, id, false)
			case "restart":
				err = resumeMaskTrain(r.Context(), db, q, id, true)
			}
		}
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		http.Redirect(w, r, "/masktrain/"+itoa(id), http.StatusSeeOther)
	}
}

// sweepModelNote describes model g on the sweep form: mask-trained or not,
// and the fine-tuning budget both forms get under cfg.
func sweepNote(id int64, g *nn.Graph, cfg sweep.Config) SweepModelNote {
	n := SweepModelNote{ModelID: id, Masked: g.HasMasks(), LR: strconv.FormatFloat(sweep.FinetuneLR, 'g', -1, 64)}
	if n.Masked {
		n.LR = strconv.FormatFloat(sweep.MaskTrainedFinetuneLR, 'g', -1, 64)
		zero, count := 0, 0
		if r := nn.MaskSummary(g); r != nil {
			for _, k := range r.Kinds {
				zero, count = zero+k.Zero, count+k.Count
			}
		}
		n.Zero, n.Count = itoa(zero), itoa(count)
	} else {
		n.CanMask = g.HasResidual() // the card says precisely (nn.AddMasks copies the network: not on every keystroke)
	}
	switch {
	case cfg.FinetuneEpochs <= 0:
		n.Budget = "No fine-tuning (0 epochs): both forms are measured as pruned."
	default:
		images := "the whole training split"
		if cfg.FinetuneLimit > 0 {
			images = fmt.Sprintf("the first %d training images", cfg.FinetuneLimit)
		}
		copies := "RM's copies stay copies, as the ResNet's identity shortcuts do"
		if cfg.TrainCopies {
			copies = "the RMNet form also trains RM's copy filters"
		}
		n.Budget = fmt.Sprintf("Both forms get the same fine-tuning budget: every pruned point, RMNet and ResNet alike, %d epoch(s) over %s at lr %s; %s (the unpruned references are not fine-tuned).",
			cfg.FinetuneEpochs, images, n.LR, copies)
	}
	return n
}
