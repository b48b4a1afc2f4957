package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
)

// seeded returns an env with the test model, a done sweep with points of
// both forms, and the ids of a ratio-0 point and a pruned point.
func seeded(t *testing.T) (e *testEnv, modelID, sweepID, refPoint, prunedPoint int64) {
	e = newEnv(t, 0)
	modelID = e.mustUpload()
	sweepID = e.createSweep(fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "ratios": [0.3, 0.6]}`, modelID))
	ref := addFakePoint(e.db, sweepID, "resnet", 0, 0)
	addFakePoint(e.db, sweepID, "rmnet", 0, 1)
	pr := addFakePoint(e.db, sweepID, "rmnet", 0.3, 2)
	addFakePoint(e.db, sweepID, "resnet", 0.3, 3)
	if err := e.db.SetSweepStatus(context.Background(), sweepID, store.StatusDone, ""); err != nil {
		t.Fatal(err)
	}
	return e, modelID, sweepID, ref.ID, pr.ID
}

func TestRoutes(t *testing.T) {
	e, m, s, ref, pr := seeded(t)
	id := func(n int64) string { return fmt.Sprint(n) }
	tests := []struct {
		name, target string
		status       int
		ctype        string
		want         []string
	}{
		{"index", "/", 200, "text/html", []string{"resnet20-mnist", "Drop a model file here", "#" + id(s)}},
		{"model", "/models/" + id(m), 200, "text/html", []string{"exact", "BN γ distribution", "layer1.0.conv1", "Per-layer latency"}},
		{"model unknown", "/models/999", 404, "text/html", []string{"not found"}},
		{"model bad id", "/models/abc", 400, "text/html", []string{"positive integer"}},
		{"new sweep", "/sweeps/new?model=" + id(m), 200, "text/html", []string{"Start sweep", `value="mnist"`, `value="fashion-mnist"`}},
		{"new sweep unknown model", "/sweeps/new?model=999", 404, "text/html", nil},
		{"estimate", "/sweeps/estimate?model_id=" + id(m) + "&forms=rmnet&forms=resnet&method=slim&preview=0.5", 200, "text/html", []string{"rmnet", "resnet", "prunable"}},
		{"estimate bad ratio", "/sweeps/estimate?model_id=" + id(m) + "&forms=rmnet&preview=1.5", 400, "text/html", nil},
		{"estimate unknown model", "/sweeps/estimate?model_id=999&forms=rmnet&preview=0.5", 404, "text/html", nil},
		{"sweep", "/sweeps/" + id(s), 200, "text/html", []string{"Pareto chart", `class="pt`, "/points/" + id(pr), "unpruned"}},
		{"sweep flops axis", "/sweeps/" + id(s) + "?x=flops", 200, "text/html", []string{"pareto.svg?x=flops"}},
		{"sweep computed axis", "/sweeps/" + id(s) + "/pareto.svg?x=computed", 200, "image/svg+xml", []string{"computed MACs (M per image, RM copies excluded)"}},
		{"sweep live", "/sweeps/" + id(s) + "/live", 200, "text/html", []string{`id="live"`, `id="points"`}},
		{"sweep unknown", "/sweeps/999", 404, "text/html", nil},
		{"sweep svg", "/sweeps/" + id(s) + "/pareto.svg", 200, "image/svg+xml", []string{"<svg", "rmnet · slim", "resnet · slim"}},
		{"sweep svg params", "/sweeps/" + id(s) + "/pareto.svg?x=params", 200, "image/svg+xml", []string{"params (k)"}},
		{"sweep png", "/sweeps/" + id(s) + "/pareto.png", 200, "image/png", []string{"\x89PNG"}},
		{"sweep chart unknown", "/sweeps/999/pareto.svg", 404, "application/json", []string{`"error"`}},
		{"pareto", "/pareto", 200, "text/html", []string{"Pareto overlay", "No points yet"}},
		{"pareto selected", "/pareto?sweeps=" + id(s), 200, "text/html", []string{`class="pt`, "checked"}},
		{"pareto bad ids", "/pareto?sweeps=x", 400, "text/html", nil},
		{"pareto unknown", "/pareto?sweeps=999", 404, "text/html", nil},
		{"pareto svg", "/pareto.svg?sweeps=" + id(s) + "," + id(s), 200, "image/svg+xml", []string{"#" + id(s) + " rmnet"}},
		{"compare empty", "/compare", 200, "text/html", []string{"Pick 2–4 points"}},
		{"compare", "/compare?points=" + id(ref) + "," + id(pr), 200, "text/html", []string{`id="compare"`, "Channels per layer", "resnet @ 0", "rmnet @ 0.3"}},
		{"compare repeated param", "/compare?points=" + id(ref) + "&points=" + id(pr), 200, "text/html", []string{"rmnet @ 0.3"}},
		{"compare csv", "/compare.csv?points=" + id(ref) + "," + id(pr), 200, "text/csv", []string{`metric,"point`, "top-1,"}},
		{"compare csv unknown", "/compare.csv?points=999", 404, "application/json", nil},
		{"layers csv", "/models/" + id(m) + "/layers.csv", 200, "text/csv", []string{"layer,op,out_shape", "layer1.0.bn1,batchnorm"}},
		{"layers csv unknown", "/models/999/layers.csv", 404, "application/json", nil},
		{"compare too many", "/compare?points=1,2,3,4,5", 400, "text/html", nil},
		{"compare unknown", "/compare?points=" + id(ref) + ",999", 404, "text/html", nil},
		{"point", "/points/" + id(pr), 200, "text/html", []string{"rmnet at ratio 0.3", "recipe", "Compare with unpruned"}},
		{"point unknown", "/points/999", 404, "text/html", nil},
		{"api models", "/api/models", 200, "application/json", []string{`"models"`, `"source_sha256"`, `"flops"`}},
		{"api model", "/api/models/" + id(m), 200, "application/json", []string{`"layers"`, `"conversion"`, `"max_rel_err"`}},
		{"api model unknown", "/api/models/999", 404, "application/json", []string{`"error"`}},
		{"api model bad id", "/api/models/x", 400, "application/json", []string{`"error"`}},
		{"api sweeps", "/api/sweeps", 200, "application/json", []string{`"sweeps"`}},
		{"api sweep", "/api/sweeps/" + id(s), 200, "application/json", []string{`"status": "done"`, `"latency_ms_p50"`, `"images_per_s"`}},
		{"api sweep unknown", "/api/sweeps/999", 404, "application/json", []string{`"error"`}},
		{"api point", "/api/points/" + id(pr), 200, "application/json", []string{`"channels"`}},
		{"api sweep onnx macs", "/api/sweeps/" + id(s), 200, "application/json", []string{`"macs_onnx": 7699999`, `"onnx_export": "copy-aware"`}},
		{"csv", "/api/sweeps/" + id(s) + "/points.csv", 200, "text/csv", []string{"id,sweep_id,form,ratio,params,macs,macs_computed", "rmnet,0.3,189000,21000000,7000000,", ",macs_onnx,onnx_export,latency_ms_p25,latency_ms_p75,latency_rounds,latency_load,latency_unreliable,worker",
			",7699999,copy-aware,0.5,2,5,0.25,,"}},
		{"csv unknown", "/api/sweeps/999/points.csv", 404, "application/json", nil},
		{"onnx", "/api/points/" + id(pr) + "/model?format=onnx", 200, "application/octet-stream", []string{"onnx bytes"}},
		{"onnx default", "/api/points/" + id(pr) + "/model", 200, "application/octet-stream", []string{"onnx bytes"}},
		{"safetensors", "/api/points/" + id(pr) + "/model?format=safetensors", 200, "application/octet-stream", []string{"safetensors bytes"}},
		{"model bad format", "/api/points/" + id(pr) + "/model?format=../../etc/passwd", 400, "application/json", []string{`"error"`}},
		{"model unknown point", "/api/points/999/model?format=onnx", 404, "application/json", nil},
		{"recipe", "/api/points/" + id(pr) + "/recipe", 200, "application/json", []string{"recipe bytes"}},
		{"recipe of reference", "/api/points/" + id(ref) + "/recipe", 404, "application/json", []string{"no recipe"}},
		{"htmx", "/static/vendor/htmx.min.js", 200, "text/javascript", []string{"htmx"}},
		{"css", "/static/app.css", 200, "text/css", []string{".chart"}},
		{"page not found", "/nope", 404, "text/html", []string{"page not found"}},
		{"api not found", "/api/nope", 404, "application/json", []string{`"error"`}},
		{"api method", "/api/models/1/x", 404, "application/json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(http.MethodGet, tt.target, nil)
			if w.Code != tt.status {
				t.Fatalf("GET %s: status %d; want %d: %.300s", tt.target, w.Code, tt.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
				t.Errorf("GET %s: Content-Type %q; want %s…", tt.target, ct, tt.ctype)
			}
			body := w.Body.String()
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("GET %s: body lacks %q: %.600s", tt.target, s, body)
				}
			}
		})
	}
}

func TestDownloadNames(t *testing.T) {
	e, _, _, _, pr := seeded(t)
	w := e.do(http.MethodGet, fmt.Sprintf("/api/points/%d/model?format=onnx", pr), nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d; want 200", w.Code)
	}
	cd := w.Header().Get("Content-Disposition")
	if want := `attachment; filename=resnet20-mnist-rmnet-r0.3.onnx`; cd != want {
		t.Errorf("Content-Disposition %q; want %q", cd, want)
	}
	// A hostile model name stays out of the header.
	if _, err := e.db.Model(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	w = e.do(http.MethodGet, "/api/sweeps/1/points.csv", nil)
	if cd := w.Header().Get("Content-Disposition"); cd != "attachment; filename=sweep-1-points.csv" {
		t.Errorf("csv Content-Disposition %q", cd)
	}
}

func TestUpload(t *testing.T) {
	e := newEnv(t, 0)
	w := e.upload(e.model, "my model.safetensors")
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d; want 201: %s", w.Code, w.Body)
	}
	var m apiModel
	json.Unmarshal(w.Body.Bytes(), &m)
	if m.Name != "my model" || m.Arch != "resnet20" || m.Params == 0 || m.FLOPs == 0 || len(m.SourceSHA256) != 64 {
		t.Errorf("model %+v; want name %q, arch resnet20, params, flops, sha", m, "my model")
	}
	if got := w.Header().Get("Location"); got != fmt.Sprintf("/api/models/%d", m.ID) {
		t.Errorf("Location %q", got)
	}
	fs := files(t, filepath.Join(e.db.ArtifactDir(), "models"))
	if len(fs) != 1 {
		t.Fatalf("model files %v; want 1", fs)
	}
	// The same network again: 200 with the stored model, no second file.
	w = e.upload(e.model, "again.safetensors")
	if w.Code != http.StatusOK {
		t.Fatalf("duplicate upload: status %d; want 200", w.Code)
	}
	var m2 apiModel
	json.Unmarshal(w.Body.Bytes(), &m2)
	if m2.ID != m.ID {
		t.Errorf("duplicate got id %d; want %d", m2.ID, m.ID)
	}
	if fs := files(t, e.db.ArtifactDir()); len(fs) != 1 {
		t.Errorf("files after duplicate %v; want 1", fs)
	}
	// The form upload (no script) redirects to the model page.
	e2 := newEnv(t, 0)
	body, ctype := multipartBody("file", "form.safetensors", e2.model)
	w = e2.do(http.MethodPost, "/models", body, "Content-Type", ctype)
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/models/") {
		t.Errorf("form upload: status %d, Location %q; want 303 to the model page", w.Code, w.Header().Get("Location"))
	}
	// The conversion report is stored in the background.
	e.waitRM(m.ID)
	cs, _ := e.db.ConversionsForModel(context.Background(), m.ID)
	if len(cs) != 1 || cs[0].MaxRelErr > 1e-5 {
		t.Errorf("conversions %+v; want one exact", cs)
	}
}

// The RM check runs after the upload is answered: meanwhile the model page
// and the API say it is running, and the card polls until the report is in.
func TestRMCheckInBackground(t *testing.T) {
	release := make(chan struct{})
	defer func(f func(*nn.Graph, nn.Shape) (store.Conversion, error)) { rmReport = f }(rmReport)
	rmReport = func(g *nn.Graph, in nn.Shape) (store.Conversion, error) {
		<-release
		return convertReport(g, in)
	}
	e := newEnv(t, 0)
	w := e.upload(e.model, "slow.safetensors")
	if w.Code != http.StatusCreated {
		t.Fatalf("upload: status %d %s", w.Code, w.Body)
	}
	var m apiModel
	json.Unmarshal(w.Body.Bytes(), &m)
	page := e.do(http.MethodGet, fmt.Sprintf("/models/%d", m.ID), nil).Body.String()
	if !strings.Contains(page, `id="rm-running"`) || !strings.Contains(page, fmt.Sprintf(`hx-get="/models/%d/rm"`, m.ID)) {
		t.Errorf("model page during the check lacks the polling card")
	}
	if api := e.do(http.MethodGet, fmt.Sprintf("/api/models/%d", m.ID), nil).Body.String(); !strings.Contains(api, `"conversion_running": true`) {
		t.Errorf("API during the check: %s; want conversion_running", api)
	}
	close(release)
	var frag string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		frag = e.do(http.MethodGet, fmt.Sprintf("/models/%d/rm", m.ID), nil).Body.String()
		if strings.Contains(frag, `id="rm-badge"`) {
			break
		}
	}
	if !strings.Contains(frag, `id="rm-badge"`) || !strings.Contains(frag, "exact") || strings.Contains(frag, "<html") {
		t.Errorf("card after the check: %s; want the badge alone", frag)
	}
	if api := e.do(http.MethodGet, fmt.Sprintf("/api/models/%d", m.ID), nil).Body.String(); strings.Contains(api, "conversion_running") || !strings.Contains(api, `"conversion"`) {
		t.Errorf("API after the check: %s", api)
	}
}

// TestUploadRefused: oversize, corrupt, truncated and malformed uploads are
// refused and leave nothing in the database or on disk.
func TestUploadRefused(t *testing.T) {
	model := newEnv(t, 0).model
	tests := []struct {
		name   string
		limit  int64
		body   func() (string, []byte) // content type, body
		status int
		want   string
	}{
		{"oversize", 4096, func() (string, []byte) {
			b, ct := multipartBody("file", "big.safetensors", model)
			buf := new(bytes.Buffer)
			buf.ReadFrom(b)
			return ct, buf.Bytes()
		}, 413, "limit"},
		{"corrupt", 0, func() (string, []byte) {
			b, ct := multipartBody("file", "evil.safetensors", []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"))
			buf := new(bytes.Buffer)
			buf.ReadFrom(b)
			return ct, buf.Bytes()
		}, 422, "evil.safetensors"},
		{"truncated", 0, func() (string, []byte) {
			b, ct := multipartBody("file", "half.safetensors", model[:len(model)/2])
			buf := new(bytes.Buffer)
			buf.ReadFrom(b)
			return ct, buf.Bytes()
		}, 422, "not a usable model file"},
		{"text", 0, func() (string, []byte) {
			b, ct := multipartBody("file", "notes.txt", []byte("hello"))
			buf := new(bytes.Buffer)
			buf.ReadFrom(b)
			return ct, buf.Bytes()
		}, 422, "not a usable model file"},
		{"empty", 0, func() (string, []byte) {
			b, ct := multipartBody("file", "empty.pth", nil)
			buf := new(bytes.Buffer)
			buf.ReadFrom(b)
			return ct, buf.Bytes()
		}, 422, "empty"},
		{"no file field", 0, func() (string, []byte) {
			b, ct := multipartBody("other", "x.pth", []byte("abc"))
			buf := new(bytes.Buffer)
			buf.ReadFrom(b)
			return ct, buf.Bytes()
		}, 400, "field named file"},
		{"not multipart", 0, func() (string, []byte) { return "application/json", []byte(`{}`) }, 400, "multipart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, target := range []string{"/api/models", "/models"} {
				e := newEnv(t, tt.limit)
				ct, body := tt.body()
				w := e.do(http.MethodPost, target, bytes.NewReader(body), "Content-Type", ct)
				if w.Code != tt.status {
					t.Fatalf("POST %s: status %d; want %d: %.300s", target, w.Code, tt.status, w.Body)
				}
				if !strings.Contains(w.Body.String(), tt.want) {
					t.Errorf("POST %s: body lacks %q: %.300s", target, tt.want, w.Body)
				}
				if target == "/api/models" && !strings.Contains(w.Body.String(), `"error"`) {
					t.Errorf("API error is not {\"error\": ...}: %s", w.Body)
				}
				ms, _ := e.db.Models(context.Background())
				if len(ms) != 0 {
					t.Errorf("models stored: %d; want 0", len(ms))
				}
				if fs := files(t, e.db.ArtifactDir()); len(fs) != 0 {
					t.Errorf("files left: %v", fs)
				}
			}
		})
	}
}

func TestCrossOriginPOST(t *testing.T) {
	e, m, s, _, _ := seeded(t)
	tests := []struct {
		method, target string
		header         []string
	}{
		{"POST", "/api/models", []string{"Sec-Fetch-Site", "cross-site"}},
		{"POST", "/api/sweeps", []string{"Sec-Fetch-Site", "cross-site"}},
		{"POST", "/api/sweeps", []string{"Origin", "http://evil.example"}},
		{"DELETE", fmt.Sprintf("/api/models/%d", m), []string{"Sec-Fetch-Site", "cross-site"}},
		{"POST", fmt.Sprintf("/api/sweeps/%d/cancel", s), []string{"Sec-Fetch-Site", "same-site"}},
		{"POST", "/models", []string{"Sec-Fetch-Site", "cross-site"}},
		{"POST", fmt.Sprintf("/models/%d/delete", m), []string{"Origin", "http://evil.example"}},
		{"POST", "/sweeps", []string{"Sec-Fetch-Site", "cross-site"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			w := e.do(tt.method, tt.target, strings.NewReader("{}"), tt.header...)
			if w.Code != http.StatusForbidden {
				t.Fatalf("status %d; want 403", w.Code)
			}
			if !strings.Contains(w.Body.String(), `"error"`) {
				t.Errorf("body %s; want a JSON error", w.Body)
			}
		})
	}
	if _, err := e.db.Model(context.Background(), m); err != nil {
		t.Errorf("model gone after refused cross-origin delete: %v", err)
	}
	// Same-origin browser requests pass.
	w := e.do("DELETE", fmt.Sprintf("/api/models/%d", m), nil, "Sec-Fetch-Site", "same-origin")
	if w.Code != http.StatusNoContent {
		t.Errorf("same-origin delete: status %d; want 204", w.Code)
	}
}

func TestCreateSweepAPI(t *testing.T) {
	e := newEnv(t, 0)
	m := e.mustUpload()
	tests := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"defaults", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist"}`, m), 202, `"status": "queued"`},
		{"everything", fmt.Sprintf(`{"model_id": %d, "dataset": "fashion-mnist", "method": "l1", "scope": "global", "forms": ["rmnet"],
			"ratios": [0.2, 0.4], "min_channels": 2, "round_to": 4, "finetune_epochs": 0, "batch": 8, "threads": 1, "limit": 100}`, m), 202, `"id"`},
		{"no model", `{"dataset": "mnist"}`, 400, "model_id is required"},
		{"no dataset", fmt.Sprintf(`{"model_id": %d}`, m), 400, "dataset is required"},
		{"dataset path", fmt.Sprintf(`{"model_id": %d, "dataset": "/etc/passwd"}`, m), 422, "unknown dataset"},
		{"dataset spec", fmt.Sprintf(`{"model_id": %d, "dataset": "folder:/etc"}`, m), 422, "unknown dataset"},
		{"dataset relative path", fmt.Sprintf(`{"model_id": %d, "dataset": "../../data"}`, m), 422, "unknown dataset"},
		{"unknown model", `{"model_id": 999, "dataset": "mnist"}`, 404, "not found"},
		{"bad ratio", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "ratios": [1.5]}`, m), 422, "ratio"},
		{"bad method", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "method": "magic"}`, m), 422, "method"},
		{"bad form", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "forms": ["vgg"]}`, m), 422, "form"},
		{"finetune unavailable", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "finetune_epochs": 2}`, m), 422, "fine-tuning"},
		{"unknown field", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "path": "/tmp"}`, m), 400, "unknown field"},
		{"malformed", `{"model_id": `, 400, "request body"},
		{"too large", `{"dataset": "` + strings.Repeat("a", 70000) + `"}`, 413, "too large"},
		{"trailing object", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist"}{"model_id": %d}`, m, m), 400, "trailing data"},
		{"trailing garbage", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist"} x`, m), 400, "trailing data"},
		{"trailing number", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist"} 1`, m), 400, "trailing data"},
		{"trailing space", fmt.Sprintf("{\"model_id\": %d, \"dataset\": \"mnist\"}\n \t", m), 202, `"id"`},
		{"min_channels beyond widths", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "min_channels": 1000000}`, m), 422, "min_channels 1000000: the widest layer of resnet20 has 64 channels"},
		{"min_channels at width", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "min_channels": 64}`, m), 422, "want 1…63"},
		{"min_channels below width", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "min_channels": 63}`, m), 202, `"id"`},
		{"round_to beyond widths", fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "round_to": 4096}`, m), 422, "round_to 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(http.MethodPost, "/api/sweeps", strings.NewReader(tt.body), "Content-Type", "application/json")
			if w.Code != tt.status {
				t.Fatalf("status %d; want %d: %s", w.Code, tt.status, w.Body)
			}
			if !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("body %s; want %q", w.Body, tt.want)
			}
		})
	}
	// train_copies is stored and shown.
	tc := e.createSweep(fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "train_copies": true}`, m))
	var got apiSweep
	json.Unmarshal(e.do(http.MethodGet, fmt.Sprintf("/api/sweeps/%d", tc), nil).Body.Bytes(), &got)
	if !got.TrainCopies {
		t.Errorf("sweep %d: train_copies false; want true", tc)
	}
	// The defaults of DESIGN were applied.
	w := e.do(http.MethodGet, "/api/sweeps/1", nil)
	var s apiSweep
	json.Unmarshal(w.Body.Bytes(), &s)
	if s.Method != "slim" || s.Scope != "global" || len(s.Forms) != 2 || len(s.Ratios) != 9 || s.MinChannels != 1 ||
		s.RoundTo != 1 || s.Batch != 32 || s.Threads < 1 || s.Limit != 0 || s.Status != "queued" || s.TrainCopies {
		t.Errorf("defaults: %+v", s)
	}
}

func TestSweepForm(t *testing.T) {
	e := newEnv(t, 0)
	m := e.mustUpload()
	form := url.Values{"model_id": {fmt.Sprint(m)}, "dataset": {"mnist"}, "method": {"slim"}, "forms": {"rmnet", "resnet"},
		"ratios": {"0.3, 0.5,0.7"}, "min_channels": {"1"}, "round_to": {"1"}, "batch": {"16"}, "threads": {"1"}, "limit": {"500"}}
	post := func(v url.Values) *httptest.ResponseRecorder {
		return e.do(http.MethodPost, "/sweeps", strings.NewReader(v.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	}
	w := post(form)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/sweeps/1" {
		t.Fatalf("status %d, Location %q; want 303 to /sweeps/1: %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	s, err := e.db.Sweep(context.Background(), 1)
	if err != nil || len(s.Ratios) != 3 || s.Limit != 500 || s.Batch != 16 || s.TrainCopies {
		t.Errorf("stored sweep %+v, %v", s, err)
	}
	withCopies := url.Values{}
	for k, v := range form {
		withCopies[k] = v
	}
	withCopies.Set("train_copies", "1")
	if w := post(withCopies); w.Code != http.StatusSeeOther {
		t.Fatalf("train_copies: status %d: %s", w.Code, w.Body)
	}
	if s, err := e.db.Sweep(context.Background(), 2); err != nil || !s.TrainCopies {
		t.Errorf("stored sweep train_copies %v, %v; want true", s.TrainCopies, err)
	}
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("dataset", "/etc")
	if w := post(bad); w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "unknown dataset") {
		t.Errorf("bad dataset: status %d; want 422 with the message", w.Code)
	}
	bad.Set("dataset", "mnist")
	bad.Set("ratios", "0.3,abc")
	if w := post(bad); w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "not a number") {
		t.Errorf("bad ratio: status %d; want 422", w.Code)
	}
	bad.Set("ratios", "0.3")
	bad.Del("forms")
	if w := post(bad); w.Code != http.StatusUnprocessableEntity {
		t.Errorf("no forms: status %d; want 422", w.Code)
	}
}

func TestCancelResumeDelete(t *testing.T) {
	e := newEnv(t, 0)
	m := e.mustUpload()
	s := e.createSweep(fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "ratios": [0.5]}`, m))
	post := func(target string) *httptest.ResponseRecorder { return e.do(http.MethodPost, target, nil) }
	if w := post(fmt.Sprintf("/api/sweeps/%d/cancel", s)); w.Code != 200 || !strings.Contains(w.Body.String(), "cancelled") {
		t.Fatalf("cancel queued: status %d: %s", w.Code, w.Body)
	}
	if w := post(fmt.Sprintf("/api/sweeps/%d/cancel", s)); w.Code != http.StatusConflict {
		t.Errorf("cancel cancelled: status %d; want 409", w.Code)
	}
	if w := post(fmt.Sprintf("/api/sweeps/%d/resume", s)); w.Code != http.StatusAccepted {
		t.Errorf("resume: status %d; want 202: %s", w.Code, w.Body)
	}
	if w := post(fmt.Sprintf("/api/sweeps/%d/resume", s)); w.Code != http.StatusConflict {
		t.Errorf("resume queued: status %d; want 409", w.Code)
	}
	if w := post("/api/sweeps/999/cancel"); w.Code != http.StatusNotFound {
		t.Errorf("cancel unknown: status %d; want 404", w.Code)
	}
	if w := post(fmt.Sprintf("/sweeps/%d/cancel", s)); w.Code != http.StatusSeeOther {
		t.Errorf("cancel form: status %d; want 303", w.Code)
	}
	if w := post(fmt.Sprintf("/sweeps/%d/resume", s)); w.Code != http.StatusSeeOther {
		t.Errorf("resume form: status %d; want 303", w.Code)
	}
	addFakePoint(e.db, s, "rmnet", 0.5, 0)
	if n := len(files(t, e.db.ArtifactDir())); n != 4 {
		t.Fatalf("files before delete: %d; want 4 (model + 3 artifacts)", n)
	}
	if w := e.do(http.MethodDelete, fmt.Sprintf("/api/models/%d", m), nil); w.Code != http.StatusNoContent {
		t.Fatalf("delete: status %d; want 204: %s", w.Code, w.Body)
	}
	if fs := files(t, e.db.ArtifactDir()); len(fs) != 0 {
		t.Errorf("files after delete: %v", fs)
	}
	if w := e.do(http.MethodGet, fmt.Sprintf("/api/models/%d", m), nil); w.Code != http.StatusNotFound {
		t.Errorf("get deleted: status %d; want 404", w.Code)
	}
	if w := e.do(http.MethodGet, fmt.Sprintf("/api/sweeps/%d", s), nil); w.Code != http.StatusNotFound {
		t.Errorf("sweep of deleted model: status %d; want 404", w.Code)
	}
	if w := e.do(http.MethodDelete, fmt.Sprintf("/api/models/%d", m), nil); w.Code != http.StatusNotFound {
		t.Errorf("delete again: status %d; want 404", w.Code)
	}
	m2 := e.mustUpload()
	if w := post(fmt.Sprintf("/models/%d/delete", m2)); w.Code != http.StatusSeeOther {
		t.Errorf("delete form: status %d; want 303", w.Code)
	}
}

// TestQueueAndEvents runs a sweep through the queue (fake runner) and reads
// its server-sent events to the end.
func TestQueueAndEvents(t *testing.T) {
	e := newEnv(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.queue.Wait() }()
	e.queue.Start(ctx)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	m := e.mustUpload()
	s := e.createSweep(fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "ratios": [0.2, 0.4, 0.6]}`, m))
	resp, err := http.Get(fmt.Sprintf("%s/api/sweeps/%d/events", srv.URL, s))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := map[string]int{}
	var last string
	sc := bufio.NewScanner(resp.Body)
	deadline := time.AfterFunc(20*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			events[ev]++
			last = ev
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok && last == "end" {
			if !strings.Contains(d, `"status":"done"`) {
				t.Errorf("end event %s; want status done", d)
			}
			break
		}
	}
	if events["end"] != 1 || events["progress"] < 2 || events["point"] < 1 {
		t.Errorf("events %v; want progress updates, points and one end", events)
	}
	w := e.do(http.MethodGet, fmt.Sprintf("/api/sweeps/%d", s), nil)
	var out apiSweep
	json.Unmarshal(w.Body.Bytes(), &out)
	if out.Status != "done" || len(out.Points) != 8 || out.Progress != 1 {
		t.Errorf("sweep after run: status %s, %d points, progress %v; want done, 8, 1", out.Status, len(out.Points), out.Progress)
	}
	if w := e.do(http.MethodGet, "/api/sweeps/999/events", nil); w.Code != http.StatusNotFound {
		t.Errorf("events of unknown sweep: status %d; want 404", w.Code)
	}
}

// TestCancelRunning cancels a sweep the queue is running, and a shutdown
// leaves a running sweep interrupted.
func TestCancelRunning(t *testing.T) {
	e := newEnv(t, 0)
	e.h.(http.Handler).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	ctx, cancel := context.WithCancel(context.Background())
	e.queue.Start(ctx)
	m := e.mustUpload()
	slow := e.createSweep(fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "ratios": [0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9]}`, m))
	waitStatus(t, e.db, slow, store.StatusRunning)
	if w := e.do(http.MethodPost, fmt.Sprintf("/api/sweeps/%d/cancel", slow), nil); w.Code != 200 || !strings.Contains(w.Body.String(), "cancelled") {
		t.Fatalf("cancel running: status %d: %s", w.Code, w.Body)
	}
	second := e.createSweep(fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "ratios": [0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9]}`, m))
	waitStatus(t, e.db, second, store.StatusRunning)
	cancel()
	e.queue.Wait()
	if s, _ := e.db.Sweep(context.Background(), second); s.Status != store.StatusInterrupted {
		t.Errorf("after shutdown: status %s; want interrupted", s.Status)
	}
	w := e.do(http.MethodGet, fmt.Sprintf("/sweeps/%d", second), nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `id="resume"`) {
		t.Errorf("interrupted sweep page: status %d, resume button missing", w.Code)
	}
}

func waitStatus(t *testing.T, db *store.DB, id int64, want store.Status) {
	t.Helper()
	for range 200 {
		if s, err := db.Sweep(context.Background(), id); err == nil && s.Status == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("sweep %d never became %s", id, want)
}

func TestInstallDemoOnce(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	opt := DemoOptions{Model: e.model, Name: "demo", Dataset: "mnist", Ratios: []float64{0.3, 0.5, 0.7}, Limit: 2000,
		FinetuneEpochs: 1, FinetuneLimit: 2000}
	id, created, err := InstallDemo(ctx, e.db, opt)
	if err != nil || !created || id == 0 {
		t.Fatalf("first install: id %d, created %v, err %v", id, created, err)
	}
	s, _ := e.db.Sweep(ctx, id)
	if len(s.Ratios) != 3 || s.Limit != 2000 || s.Dataset != "mnist" || s.FinetuneEpochs != 1 || s.FinetuneLimit != 2000 {
		t.Errorf("demo sweep %+v", s)
	}
	if _, created, err := InstallDemo(ctx, e.db, opt); err != nil || created {
		t.Errorf("second install: created %v, err %v; want false, nil", created, err)
	}
	ss, _ := e.db.Sweeps(ctx, 0)
	ms, _ := e.db.Models(ctx)
	if len(ss) != 1 || len(ms) != 1 {
		t.Errorf("%d sweeps, %d models; want 1, 1", len(ss), len(ms))
	}
}

func TestInside(t *testing.T) {
	dir := filepath.Join(os.TempDir(), "art")
	tests := []struct {
		p  string
		ok bool
	}{
		{"models/a.safetensors", true}, {"../x", false}, {"/etc/passwd", false}, {"", false},
		{filepath.Join(dir, "sweeps/1/a.onnx"), true}, {"sweeps/../../x", false},
	}
	for _, tt := range tests {
		if _, ok := inside(dir, tt.p); ok != tt.ok {
			t.Errorf("inside(%q) = %v; want %v", tt.p, ok, tt.ok)
		}
	}
}

// TestUploadPyTorch: a .pth state dict is accepted with its architecture
// inferred; a hostile pickle is refused and leaves nothing behind.
func TestUploadPyTorch(t *testing.T) {
	tests := []struct {
		file   string
		status int
		want   string
	}{
		{"../testdata/nets/resnet20_cifar.pth", 201, `"arch": "resnet20"`},
		{"../nn/pth/testdata/evil_os_system.pth", 422, "not a usable model file"},
		{"../nn/pth/testdata/evil_eval.pth", 422, "not a usable model file"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			b, err := os.ReadFile(tt.file)
			if err != nil {
				t.Skipf("fixture missing: %v", err)
			}
			e := newEnv(t, 0)
			w := e.upload(b, filepath.Base(tt.file))
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.want) {
				t.Fatalf("status %d: %.300s; want %d with %q", w.Code, w.Body, tt.status, tt.want)
			}
			if tt.status != 201 {
				if ms, _ := e.db.Models(context.Background()); len(ms) != 0 {
					t.Errorf("%d models stored; want 0", len(ms))
				}
				if fs := files(t, e.db.ArtifactDir()); len(fs) != 0 {
					t.Errorf("files left: %v", fs)
				}
			} else if fs := files(t, filepath.Join(e.db.ArtifactDir(), "models")); len(fs) != 1 || filepath.Ext(fs[0]) != ".pth" {
				t.Errorf("stored files %v; want one .pth", fs)
			}
		})
	}
}
