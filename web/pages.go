package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// modelNames maps model ids to names for sweep lists.
func modelNames(ctx context.Context, db modelLister) map[int64]string {
	names := map[int64]string{}
	if ms, err := db.Models(ctx); err == nil {
		for _, m := range ms {
			names[m.ID] = m.Name
		}
	}
	return names
}

func indexView(ctx context.Context, db interface {
	modelLister
	sweepLister
}, limit int64) (IndexView, error) {
	v := IndexView{MaxUpload: fmtBytes(limit), MaxBytes: limit}
	ms, err := db.Models(ctx)
	if err != nil {
		return v, err
	}
	names := map[int64]string{}
	for _, m := range ms {
		v.Models = append(v.Models, modelRow(m))
		names[m.ID] = m.Name
	}
	ss, err := db.Sweeps(ctx, 0)
	if err != nil {
		return v, err
	}
	for _, s := range ss {
		v.Sweeps = append(v.Sweeps, sweepRow(s, names[s.ModelID]))
	}
	return v, nil
}

func handleIndex(db interface {
	modelLister
	sweepLister
}, limit int64, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := indexView(r.Context(), db, limit)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		render(w, r, http.StatusOK, indexPage(v))
	}
}

func handleUploadForm(db interface {
	modelStore
	modelLister
	sweepLister
}, limit int64, checks *rmChecker, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, _, err := receiveUpload(w, r, db, limit, checks)
		if err != nil {
			status := statusOf(err)
			if status >= 500 {
				log.Error("upload failed", "err", err)
			}
			v, _ := indexView(r.Context(), db, limit)
			v.Error = messageOf(err)
			render(w, r, status, indexPage(v))
			return
		}
		http.Redirect(w, r, "/models/"+itoa(m.ID), http.StatusSeeOther)
	}
}

func handleModelPage(db interface {
	modelGetter
	modelLister
	sweepLister
	pointLister
	conversionLister
}, checks *rmChecker, onlyRM bool, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id, err := idParam(r)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		m, err := db.Model(ctx, id)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		v := ModelView{Model: modelRow(m)}
		if cs, err := db.ConversionsForModel(ctx, id); err == nil && len(cs) > 0 {
			v.Conv = convView(cs[0])
		} else {
			v.ConvRunning = checks.running(id)
		}
		if onlyRM { // the card polls this while the check runs
			render(w, r, http.StatusOK, rmSection(v))
			return
		}
		v.Layers, v.Hist = layerViews(m.Layers)
		v.Masks = maskView(m.Layers)
		ss, err := db.Sweeps(ctx, id)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		for _, s := range ss {
			v.Sweeps = append(v.Sweeps, sweepRow(s, m.Name))
			if v.Latency == nil {
				if ps, err := db.Points(ctx, s.ID); err == nil {
					v.Latency = latencyView(s.ID, ps)
				}
			}
		}
		render(w, r, http.StatusOK, modelPage(v))
	}
}

// latencyView compares the unpruned ResNet and RMNet points' per-layer times.
func latencyView(sweepID int64, ps []store.Point) *LatencyView {
	var res, rmn *store.Point
	for i := range ps {
		if ps[i].Ratio != 0 || len(ps[i].LayerMS) == 0 {
			continue
		}
		switch ps[i].Form {
		case sweep.FormResNet:
			res = &ps[i]
		case sweep.FormRMNet:
			rmn = &ps[i]
		}
	}
	if res == nil || rmn == nil {
		return nil
	}
	side := func(p *store.Point, class string) ([]LatBar, string) {
		labels := make([]string, len(p.LayerMS))
		vals := make([]float64, len(p.LayerMS))
		sum := 0.0
		for i, l := range p.LayerMS {
			labels[i], vals[i] = l.Layer, l.MS
			sum += l.MS
		}
		return bars(labels, vals, fmtMS, class), fmtMS(sum)
	}
	v := &LatencyView{SweepID: sweepID, ResNetP50: fmtMS(res.LatencyMSP50), RMNetP50: fmtMS(rmn.LatencyMSP50)}
	v.ResNet, v.ResNetTotal = side(res, "s1")
	v.RMNet, v.RMNetTotal = side(rmn, "s0")
	if rmn.LatencyMSP50 > 0 {
		v.Speedup = fmt.Sprintf("(RMNet/ResNet %.2f×)", rmn.LatencyMSP50/res.LatencyMSP50)
	}
	return v
}

func handleDeleteForm(db deleteStore, q *Queue, graphs *graphCache, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			err = deleteModel(r.Context(), db, q, graphs, id)
		}
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
}

// newSweepView fills the form from a configuration.
func newSweepView(ctx context.Context, db modelLister, d Deps, modelID int64, cfg sweep.Config, preview string) (NewSweepView, error) {
	v := NewSweepView{ModelID: modelID, Method: cfg.Method, Scope: cfg.Scope, CanFinetune: d.CanFinetune, Preview: preview,
		RMNet: slices.Contains(cfg.Forms, sweep.FormRMNet), ResNet: slices.Contains(cfg.Forms, sweep.FormResNet),
		Ratios: fmtRatios(cfg.Ratios), MinChannels: itoa(cfg.MinChannels), RoundTo: itoa(cfg.RoundTo),
		Epochs: itoa(cfg.FinetuneEpochs), FinetuneLimit: itoa(cfg.FinetuneLimit), TrainCopies: cfg.TrainCopies, Batch: itoa(cfg.Batch), Threads: itoa(cfg.Threads), Limit: itoa(cfg.Limit)}
	v.Ratios = strings.ReplaceAll(v.Ratios, " ", "")
	ms, err := db.Models(ctx)
	if err != nil {
		return v, err
	}
	for _, m := range ms {
		v.Models = append(v.Models, Option{Value: itoa(m.ID), Label: fmt.Sprintf("#%d %s (%s, %s)", m.ID, m.Name, m.Arch, m.InputShape),
			Selected: m.ID == modelID})
	}
	for _, name := range d.Datasets {
		v.Datasets = append(v.Datasets, Option{Value: name, Label: name, Selected: name == cfg.Dataset})
	}
	return v, nil
}

func handleNewSweepPage(db interface {
	modelGetter
	modelLister
}, d Deps, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var id int64
		if s := r.URL.Query().Get("model"); s != "" {
			ids, err := parseIDs("model", []string{s}, 1)
			if err != nil || len(ids) == 0 {
				pageError(w, r, log, errStatus(http.StatusBadRequest, "model: want an id"))
				return
			}
			id = ids[0]
			if _, err := db.Model(ctx, id); err != nil {
				pageError(w, r, log, err)
				return
			}
		}
		cfg := sweep.Config{}
		if slices.Contains(d.Datasets, "mnist") {
			cfg.Dataset = "mnist"
		}
		cfg.Defaults()
		cfg.Limit = 1000
		v, err := newSweepView(ctx, db, d, id, cfg, "0.5")
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		render(w, r, http.StatusOK, newSweepPage(v))
	}
}

// formConfig reads a sweep configuration from the new-sweep form.
func formConfig(r *http.Request) (int64, sweep.Config, error) {
	var cfg sweep.Config
	f := r.Form
	bad := func(format string, a ...any) (int64, sweep.Config, error) {
		return 0, cfg, errStatus(http.StatusUnprocessableEntity, fmt.Sprintf(format, a...))
	}
	modelID, _ := strconv.ParseInt(f.Get("model_id"), 10, 64)
	cfg.Dataset = f.Get("dataset")
	cfg.Method = f.Get("method")
	cfg.Scope = f.Get("scope")
	cfg.Forms = f["forms"]
	if len(cfg.Forms) == 0 && r.Method == http.MethodPost {
		return bad("choose at least one form")
	}
	for _, s := range strings.FieldsFunc(f.Get("ratios"), func(c rune) bool { return c == ',' || c == ' ' || c == ';' }) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad("ratio %q is not a number", s)
		}
		cfg.Ratios = append(cfg.Ratios, v)
	}
	cfg.TrainCopies = f.Get("train_copies") != ""
	ints := []struct {
		name string
		dst  *int
	}{{"min_channels", &cfg.MinChannels}, {"round_to", &cfg.RoundTo}, {"finetune_epochs", &cfg.FinetuneEpochs}, {"finetune_limit", &cfg.FinetuneLimit},
		{"batch", &cfg.Batch}, {"threads", &cfg.Threads}, {"limit", &cfg.Limit}}
	for _, it := range ints {
		s := strings.TrimSpace(f.Get(it.name))
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return bad("%s %q is not a whole number", strings.ReplaceAll(it.name, "_", " "), s)
		}
		*it.dst = n
	}
	return modelID, cfg, nil
}

func handleCreateSweepForm(db interface {
	sweepWriter
	modelLister
}, d Deps, graphs *graphCache, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
		if err := r.ParseForm(); err != nil {
			pageError(w, r, log, errStatus(http.StatusBadRequest, "malformed form"))
			return
		}
		modelID, cfg, err := formConfig(r)
		var s store.Sweep
		if err == nil {
			s, err = createSweep(r.Context(), db, d, graphs, modelID, cfg)
		}
		if err != nil {
			status := statusOf(err)
			if status >= 500 {
				log.Error("create sweep", "err", err)
			}
			cfg.Defaults()
			v, verr := newSweepView(r.Context(), db, d, modelID, cfg, r.Form.Get("preview"))
			if verr != nil {
				pageError(w, r, log, verr)
				return
			}
			v.Error = messageOf(err)
			render(w, r, status, newSweepPage(v))
			return
		}
		http.Redirect(w, r, "/sweeps/"+itoa(s.ID), http.StatusSeeOther)
	}
}

// handleEstimate answers the form's live estimate: params, FLOPs and
// channels of each chosen form at the preview ratio (pruning.EstimateRatios:
// no surgery, no evaluation).
func handleEstimate(graphs *graphCache, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		modelID, cfg, err := formConfig(r)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		if modelID <= 0 {
			render(w, r, http.StatusOK, estimateFragment("—", nil, nil))
			return
		}
		ratio, err := strconv.ParseFloat(r.Form.Get("preview"), 64)
		if err != nil || ratio < 0 || ratio >= 1 {
			pageError(w, r, log, errStatus(http.StatusBadRequest, "preview: want a ratio in [0, 1)"))
			return
		}
		g, _, err := graphs.get(r.Context(), modelID)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		cfg.Defaults()
		if len(r.Form["forms"]) == 0 {
			cfg.Forms = nil
		}
		var rows []EstimateRow
		for _, form := range cfg.Forms {
			row := EstimateRow{Form: form}
			es, err := pruning.EstimateRatios(g, []float64{0, ratio}, pruning.Options{Method: cfg.Method, Scope: cfg.Scope,
				Form: form, MinChannels: cfg.MinChannels, RoundTo: cfg.RoundTo})
			if err != nil {
				row.Err = err.Error()
			} else {
				b, a := es[0], es[1]
				row.Params = fmt.Sprintf("%s of %s (%s)", fmtCount(a.Params), fmtCount(b.Params), fmtDelta(b.Params, a.Params))
				row.FLOPs = fmt.Sprintf("%s of %s (%s)", fmtCount(a.FLOPs), fmtCount(b.FLOPs), fmtDelta(b.FLOPs, a.FLOPs))
				row.Channels = fmt.Sprintf("%d of %d prunable", a.ChannelsAfter, a.ChannelsBefore)
				if b.Params > 0 {
					row.ParamsPct = 100 * float64(a.Params) / float64(b.Params)
				}
				if b.FLOPs > 0 {
					row.FLOPsPct = 100 * float64(a.FLOPs) / float64(b.FLOPs)
				}
			}
			rows = append(rows, row)
		}
		note := sweepNote(modelID, g, cfg) // masktrain_pages.go
		render(w, r, http.StatusOK, estimateFragment(fmtRatio(ratio), rows, &note))
	}
}

// chartStore is what charts need.
type chartStore interface {
	sweepGetter
	pointLister
	modelGetter
}

// loadSeries reads the sweeps' points as chart series.
func loadSeries(ctx context.Context, db chartStore, ids []int64) ([]series, []store.Point, error) {
	var ss []series
	var all []store.Point
	for i, id := range ids {
		s, err := db.Sweep(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		ps, err := db.Points(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		prefix := ""
		if len(ids) > 1 {
			prefix = "#" + itoa(id)
		}
		ss = append(ss, seriesOf(s, ps, prefix, i)...)
		all = append(all, ps...)
	}
	return ss, all, nil
}

// chartView builds the chart and its clickable markers.
func chartView(ss []series, ax axis, overlay bool, base string, q url.Values, page string) (ChartView, map[int64]bool, error) {
	v := ChartView{Empty: true}
	vq := url.Values{}
	for k, vs := range q {
		vq[k] = vs
	}
	vq.Set("x", ax.Key)
	v.SVG = base + ".svg?" + vq.Encode()
	v.PNG = base + ".png?" + vq.Encode()
	v.Axes = axisLinks(page, q, ax.Key)
	n := 0
	for _, s := range ss {
		n += len(s.Points)
	}
	if n == 0 {
		return v, nil, nil
	}
	p, on, err := paretoPlot(ss, ax, overlay)
	if err != nil {
		return v, nil, err
	}
	v.Empty = false
	v.Markers = markers(p, ss, ax, on)
	return v, on, nil
}

func sweepView(ctx context.Context, db chartStore, q *Queue, id int64, x string) (SweepView, error) {
	var v SweepView
	s, err := db.Sweep(ctx, id)
	if err != nil {
		return v, err
	}
	name := ""
	if m, err := db.Model(ctx, s.ModelID); err == nil {
		name = m.Name
	}
	v.Sweep = sweepRow(s, name)
	_, v.Message, _ = q.Progress(id)
	if v.Message == "" {
		switch s.Status {
		case store.StatusQueued:
			v.Message = "waiting for a worker"
		case store.StatusInterrupted:
			v.Message = "the server stopped while this sweep ran: resume it to measure the missing points"
		}
	}
	ax := axisOf(x)
	v.X = ax.Key
	ss, ps, err := loadSeries(ctx, db, []int64{id})
	if err != nil {
		return v, err
	}
	q0 := url.Values{}
	var on map[int64]bool
	v.Chart, on, err = chartView(ss, ax, false, "/sweeps/"+itoa(id)+"/pareto", q0, "/sweeps/"+itoa(id))
	if err != nil {
		return v, err
	}
	for _, p := range ps {
		row := pointRow(p)
		row.Front = on[p.ID]
		v.Points = append(v.Points, row)
	}
	v.Env = envString(ps)
	v.Chart.Note = latencyNote(ps)
	rm := remeasureOf(ctx, db, q, id)
	v.Remeasure = rm.Status
	if rm.Status != "" {
		v.Message = rm.Message
	}
	v.CanRemeasure = rm.Status == "" && len(ps) > 0 && s.Status != store.StatusQueued && s.Status != store.StatusRunning
	return v, nil
}

func handleSweepPage(db chartStore, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		v, err := sweepView(r.Context(), db, q, id, r.URL.Query().Get("x"))
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		render(w, r, http.StatusOK, sweepPage(v))
	}
}

func handleSweepLive(db chartStore, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		v, err := sweepView(r.Context(), db, q, id, r.URL.Query().Get("x"))
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		render(w, r, http.StatusOK, sweepLive(v))
	}
}

func handleCancelForm(db interface {
	sweepGetter
	sweepWriter
}, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			_, err = cancelSweep(r.Context(), db, q, id)
		}
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		http.Redirect(w, r, "/sweeps/"+itoa(id), http.StatusSeeOther)
	}
}

func handleResumeForm(db interface {
	sweepGetter
	sweepWriter
}, q *Queue, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			err = db.ResumeSweep(r.Context(), id)
		}
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		q.Wake()
		http.Redirect(w, r, "/sweeps/"+itoa(id), http.StatusSeeOther)
	}
}

// writeChart renders the series as svg or png.
func writeChart(w http.ResponseWriter, r *http.Request, log *slog.Logger, ss []series, overlay bool, name string) {
	format := r.PathValue("format")
	if format == "" {
		format = "svg"
		if strings.HasSuffix(r.URL.Path, ".png") {
			format = "png"
		}
	}
	ax := axisOf(r.URL.Query().Get("x"))
	p, _, err := paretoPlot(ss, ax, overlay)
	if err != nil {
		apiError(w, r, log, err)
		return
	}
	b, err := renderChart(p, format)
	if err != nil {
		apiError(w, r, log, err)
		return
	}
	ctype := "image/svg+xml"
	if format == "png" {
		ctype = "image/png"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Query().Has("download") {
		attachment(w, name+"-"+ax.Key+"."+format)
	}
	w.Write(b)
}

func handleSweepChart(db chartStore, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		ss, _, err := loadSeries(r.Context(), db, []int64{id})
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		writeChart(w, r, log, ss, false, "sweep-"+itoa(id)+"-pareto")
	}
}

func handleOverlayChart(db chartStore, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ids, err := parseIDs("sweeps", r.URL.Query()["sweeps"], 8)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		ss, _, err := loadSeries(r.Context(), db, ids)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		writeChart(w, r, log, ss, len(ids) > 1, "pareto-"+joinIDs(ids))
	}
}

func handleParetoPage(db interface {
	chartStore
	modelLister
	sweepLister
}, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ids, err := parseIDs("sweeps", r.URL.Query()["sweeps"], 8)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		all, err := db.Sweeps(ctx, 0)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		names := modelNames(ctx, db)
		var v ParetoView
		for _, s := range all {
			v.Choices = append(v.Choices, SweepChoice{Row: sweepRow(s, names[s.ModelID]), Checked: slices.Contains(ids, s.ID)})
		}
		ss, _, err := loadSeries(ctx, db, ids)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		v.Selected = joinIDs(ids)
		q := url.Values{}
		if len(ids) > 0 {
			q.Set("sweeps", v.Selected)
		}
		v.Chart, _, err = chartView(ss, axisOf(r.URL.Query().Get("x")), len(ids) > 1, "/pareto", q, "/pareto")
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		render(w, r, http.StatusOK, paretoPage(v))
	}
}

type compareStore interface {
	chartStore
	PointsByIDs(ctx context.Context, ids []int64) ([]store.Point, error)
}

func handleComparePage(db compareStore, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ids, err := parseIDs("points", r.URL.Query()["points"], 4)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		ps, err := db.PointsByIDs(ctx, ids)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		v := CompareView{IDs: joinIDs(ids)}
		methods := map[int64]string{}
		models := map[int64]string{}
		for _, p := range ps {
			if _, ok := methods[p.SweepID]; !ok {
				if s, err := db.Sweep(ctx, p.SweepID); err == nil {
					methods[p.SweepID] = s.Method
					if m, err := db.Model(ctx, s.ModelID); err == nil {
						models[p.SweepID] = m.Name
					}
				}
			}
			v.Cols = append(v.Cols, CompareCol{Point: pointRow(p), Title: p.Form + " @ " + fmtRatio(p.Ratio),
				Sweep: p.SweepID, Model: models[p.SweepID], Method: methods[p.SweepID]})
		}
		v.Metrics = compareMetrics(ps)
		v.Channels = channelGroups(ps)
		v.Latency = latencyGroups(ps)
		render(w, r, http.StatusOK, comparePage(v))
	}
}

func handlePointPage(db interface {
	chartStore
	pointGetter
	artifactGetter
}, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id, err := idParam(r)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		p, err := db.Point(ctx, id)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		s, err := db.Sweep(ctx, p.SweepID)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		name := ""
		if m, err := db.Model(ctx, s.ModelID); err == nil {
			name = m.Name
		}
		v := PointView{Point: pointRow(p), Sweep: sweepRow(s, name), Method: s.Method + " · " + s.Scope,
			Env: envString([]store.Point{p}), Channels: channelGroups([]store.Point{p}), Latency: latencyGroups([]store.Point{p})}
		if _, err := db.PointArtifact(ctx, id, store.KindRecipe); err == nil {
			v.HasRecipe = true
		}
		if p.Ratio > 0 {
			if ps, err := db.Points(ctx, p.SweepID); err == nil {
				for _, o := range ps {
					if o.Form == p.Form && o.Ratio == 0 {
						v.Compare = "/compare?points=" + itoa(o.ID) + "," + itoa(p.ID)
					}
				}
			}
		}
		render(w, r, http.StatusOK, pointPage(v))
	}
}

// compareMetrics lays out the compared points' metrics side by side, the
// best value of each row marked.
func compareMetrics(ps []store.Point) []MetricRow {
	var rows []MetricRow
	type metric struct {
		name   string
		val    func(p store.Point) float64
		format func(p store.Point) string
		higher bool
	}
	ms := []metric{
		{"top-1", func(p store.Point) float64 { return p.Top1 }, func(p store.Point) string { return fmtPct(p.Top1) }, true},
		{"top-5", func(p store.Point) float64 { return p.Top5 }, func(p store.Point) string { return fmtPct(p.Top5) }, true},
		{"latency p50 (batch 1)", func(p store.Point) float64 { return p.LatencyMSP50 }, func(p store.Point) string { return fmtMS(p.LatencyMSP50) }, false},
		{"latency p90 (batch 1)", func(p store.Point) float64 { return p.LatencyMSP90 }, func(p store.Point) string { return fmtMS(p.LatencyMSP90) }, false},
		{"images/s", func(p store.Point) float64 { return p.ImagesPerS }, func(p store.Point) string { return fmt.Sprintf("%.0f", p.ImagesPerS) }, true},
		{"params", func(p store.Point) float64 { return float64(p.Params) }, func(p store.Point) string { return fmtCount(p.Params) }, false},
		{"FLOPs", func(p store.Point) float64 { return float64(p.FLOPs) }, func(p store.Point) string { return fmtCount(p.FLOPs) }, false},
		{"model size", func(p store.Point) float64 { return float64(p.SizeBytes) }, func(p store.Point) string { return fmtBytes(p.SizeBytes) }, false},
	}
	for _, m := range ms {
		row := MetricRow{Name: m.name, Best: -1}
		for i, p := range ps {
			row.Values = append(row.Values, m.format(p))
			if len(ps) > 1 && (row.Best < 0 || (m.higher && m.val(p) > m.val(ps[row.Best])) || (!m.higher && m.val(p) < m.val(ps[row.Best]))) {
				row.Best = i
			}
		}
		rows = append(rows, row)
	}
	env := MetricRow{Name: "measured on", Best: -1}
	for _, p := range ps {
		env.Values = append(env.Values, fmt.Sprintf("%s · %d threads", p.ISA, p.Threads))
	}
	return append(rows, env)
}

func handleCompareCSV(db compareStore, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ids, err := parseIDs("points", r.URL.Query()["points"], 4)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		ps, err := db.PointsByIDs(r.Context(), ids)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		attachment(w, "compare-"+strings.ReplaceAll(joinIDs(ids), ",", "-")+".csv")
		cw := csv.NewWriter(w)
		head := []string{"metric"}
		for _, p := range ps {
			head = append(head, fmt.Sprintf("point %d (%s @ %s, sweep %d)", p.ID, p.Form, fmtRatio(p.Ratio), p.SweepID))
		}
		cw.Write(head)
		for _, m := range compareMetrics(ps) {
			cw.Write(append([]string{m.Name}, m.Values...))
		}
		cw.Flush()
	}
}

func handleLayersCSV(db modelGetter, log *slog.Logger) http.HandlerFunc {
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
		var rows []layerRow
		json.Unmarshal(m.Layers, &rows)
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		attachment(w, m.Name+"-layers.csv")
		cw := csv.NewWriter(w)
		cw.Write([]string{"layer", "op", "out_shape", "params", "macs", "kernel", "stride", "groups",
			"gamma_min", "gamma_median", "gamma_max", "gamma_near_zero", "gamma_count"})
		g := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
		for _, l := range rows {
			rec := []string{csvSafe(l.Name), string(l.Op), l.Out, itoa(l.Params), itoa(l.MACs), itoa(l.Kernel), itoa(l.Stride), itoa(l.Groups)}
			if st := l.Gamma; st != nil {
				rec = append(rec, g(st.Min), g(st.Median), g(st.Max), itoa(st.NearZero), itoa(st.Count))
			} else {
				rec = append(rec, "", "", "", "", "")
			}
			cw.Write(rec)
		}
		cw.Flush()
	}
}
