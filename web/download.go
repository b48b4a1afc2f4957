package web

import (
	"context"
	"encoding/csv"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"

	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// attachment sets a sanitised Content-Disposition file name.
func attachment(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": sweep.SanitizeName(name)}))
}

type downloadStore interface {
	pointGetter
	sweepGetter
	modelGetter
	artifactGetter
}

// serveArtifact sends a point's artifact of the given kind.
func serveArtifact(w http.ResponseWriter, r *http.Request, db downloadStore, id int64, kind, ext, ctype string) error {
	ctx := r.Context()
	p, err := db.Point(ctx, id)
	if err != nil {
		return err
	}
	a, err := db.PointArtifact(ctx, id, kind)
	if err != nil {
		return errStatus(http.StatusNotFound, "point "+itoa(id)+" has no "+kind+" file")
	}
	path, ok := inside(db.ArtifactDir(), a.Path)
	if !ok {
		return errStatus(http.StatusNotFound, "point "+itoa(id)+": "+kind+" file is outside the artifact directory")
	}
	f, err := os.Open(path)
	if err != nil {
		return errStatus(http.StatusNotFound, "point "+itoa(id)+": the "+kind+" file is missing on disk")
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	base := "model"
	if s, err := db.Sweep(ctx, p.SweepID); err == nil {
		if m, err := db.Model(ctx, s.ModelID); err == nil {
			base = m.Name
		}
	}
	attachment(w, base+"-"+sweep.ArtifactName(p.Form, p.Ratio)+ext)
	w.Header().Set("Content-Type", ctype)
	http.ServeContent(w, r, "", st.ModTime(), f)
	return nil
}

func handleDownloadModel(db downloadStore, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		switch f := r.URL.Query().Get("format"); f {
		case "", "onnx":
			err = serveArtifact(w, r, db, id, store.KindONNX, ".onnx", "application/octet-stream")
		case "safetensors":
			err = serveArtifact(w, r, db, id, store.KindSafetensors, ".safetensors", "application/octet-stream")
		default:
			err = errStatus(http.StatusBadRequest, "format "+strconv.Quote(f)+": want onnx or safetensors")
		}
		if err != nil {
			apiError(w, r, log, err)
		}
	}
}

func handleDownloadRecipe(db downloadStore, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			err = serveArtifact(w, r, db, id, store.KindRecipe, ".recipe.json", "application/json")
		}
		if err != nil {
			apiError(w, r, log, err)
		}
	}
}

func handlePointsCSV(db interface {
	sweepGetter
	pointLister
}, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		ps, err := sweepPoints(r.Context(), db, id)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		attachment(w, "sweep-"+itoa(id)+"-points.csv")
		cw := csv.NewWriter(w)
		cw.Write([]string{"id", "sweep_id", "form", "ratio", "params", "macs", "macs_computed", "flops", "size_bytes", "top1", "top5",
			"latency_ms_p50", "latency_ms_p90", "images_per_s", "cpu", "isa", "threads", "version", "macs_onnx", "onnx_export",
			"latency_ms_p25", "latency_ms_p75", "latency_rounds", "latency_load", "latency_unreliable", "worker", "status", "error"})
		g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		for _, p := range ps {
			ox, oxForm := onnxCost(p)
			cw.Write([]string{itoa(p.ID), itoa(p.SweepID), p.Form, g(p.Ratio), itoa(p.Params), itoa(p.MACs), itoa(computedMACs(p)), itoa(p.FLOPs),
				itoa(p.SizeBytes), g(p.Top1), g(p.Top5), g(p.LatencyMSP50), g(p.LatencyMSP90), g(p.ImagesPerS),
				csvSafe(p.CPU), csvSafe(p.ISA), itoa(p.Threads), csvSafe(p.Version), itoa(ox), oxForm,
				g(p.LatencyMSP25), g(p.LatencyMSP75), itoa(p.LatencyRounds), g(p.LatencyLoad), csvSafe(p.LatencyUnreliable), csvSafe(p.Worker), p.Status, csvSafe(p.Error)})
		}
		cw.Flush()
	}
}

// onnxCost is what ONNX Runtime computes with p's ONNX file, and the file's
// form. Points stored before this was recorded have dense files (every ONNX
// export was dense then): their graph MACs.
func onnxCost(p store.Point) (macs int64, form string) {
	if p.MACsONNX > 0 && p.ONNXExport != "" {
		return p.MACsONNX, p.ONNXExport
	}
	return p.MACs, "dense"
}

// csvSafe keeps a text cell from being read as a spreadsheet formula.
func csvSafe(s string) string {
	if s != "" && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@') {
		return "'" + s
	}
	return s
}

// sweepPoints returns a sweep's points, or ErrNotFound for an unknown sweep.
func sweepPoints(ctx context.Context, db interface {
	sweepGetter
	pointLister
}, id int64) ([]store.Point, error) {
	if _, err := db.Sweep(ctx, id); err != nil {
		return nil, err
	}
	return db.Points(ctx, id)
}
