package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/demo"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// fakeRunner validates like the real runner but "measures" instantly:
// it stores the plan's points with small artifact files.
type fakeRunner struct {
	real  *sweep.Runner
	db    *store.DB
	delay time.Duration
}

func (f *fakeRunner) Validate(c *sweep.Config) error { return f.real.Validate(c) }

// Dataset opens real data sets (mask-training jobs train for real).
func (f *fakeRunner) Dataset(name string) (*dataset.Dataset, error) { return f.real.Dataset(name) }

func (f *fakeRunner) Run(ctx context.Context, id int64, progress func(float64, string)) error {
	s, err := f.db.Sweep(ctx, id)
	if err != nil {
		return err
	}
	if err := f.db.SetSweepStatus(ctx, id, store.StatusRunning, ""); err != nil {
		return err
	}
	cfg := sweep.FromSweep(s)
	cfg.Defaults()
	plan := sweep.Plan(&cfg)
	for i, k := range plan {
		select {
		case <-ctx.Done():
			st := store.StatusCancelled
			if context.Cause(ctx) == sweep.ErrInterrupted {
				st = store.StatusInterrupted
			}
			f.db.SetSweepStatus(context.WithoutCancel(ctx), id, st, "stopped")
			return ctx.Err()
		case <-time.After(f.delay):
		}
		addFakePoint(f.db, id, k.Form, k.Ratio, i)
		progress(float64(i+1)/float64(len(plan)), k.String())
		f.db.SetSweepProgress(ctx, id, float64(i+1)/float64(len(plan)))
	}
	return f.db.SetSweepStatus(ctx, id, store.StatusDone, "")
}

// addFakePoint stores a plausible point with its artifacts.
func addFakePoint(db *store.DB, sweepID int64, form string, ratio float64, i int) store.Point {
	ctx := context.Background()
	p, _, err := db.AddPoint(ctx, store.Point{SweepID: sweepID, Form: form, Ratio: ratio,
		Channels: []store.LayerChannels{{Layer: "conv1", Before: 16, After: 16 - int(10*ratio)}, {Layer: "layer1.0.conv1", Before: 16, After: 8}},
		Params:   int64(270000 * (1 - ratio)), MACs: int64(3e7 * (1 - ratio)), MACsComputed: int64(map[string]float64{"rmnet": 1e7, "resnet": 3e7}[form] * (1 - ratio)),
		MACsONNX: int64(map[string]float64{"rmnet": 1.1e7, "resnet": 3e7}[form] * (1 - ratio)), ONNXExport: map[string]string{"rmnet": "copy-aware", "resnet": "dense"}[form], FLOPs: int64(6e7 * (1 - ratio)), SizeBytes: 1000,
		Top1: 0.99 - ratio/10, Top5: 1, LatencyMSP50: 1.5 - ratio, LatencyMSP90: 1.7 - ratio, ImagesPerS: 500 + float64(i),
		LayerMS: []store.LayerLatency{{Layer: "conv1", MS: 0.1}, {Layer: "layer1.0.conv1", MS: 0.2}},
		CPU:     "test cpu", ISA: "generic", Threads: 1, Version: "test"})
	if err != nil {
		panic(err)
	}
	err = db.SetPointLatency(ctx, []store.PointLatency{{PointID: p.ID, P25: 0.5, P50: p.LatencyMSP50, P75: 2,
		P90: p.LatencyMSP90, Rounds: 5, Load: 0.25}})
	if err != nil {
		panic(err)
	}
	dir := filepath.Join(db.ArtifactDir(), sweep.SweepDir(sweepID))
	os.MkdirAll(dir, 0o750)
	kinds := []string{store.KindSafetensors, store.KindONNX}
	if ratio > 0 {
		kinds = append(kinds, store.KindRecipe)
	}
	for _, kind := range kinds {
		rel := filepath.Join(sweep.SweepDir(sweepID), fmt.Sprintf("%s.%s", sweep.ArtifactName(form, ratio), kind))
		os.WriteFile(filepath.Join(db.ArtifactDir(), rel), []byte(kind+" bytes"), 0o600)
		if _, _, err := db.AddArtifact(ctx, store.Artifact{PointID: p.ID, Kind: kind, Path: rel, SizeBytes: int64(len(kind) + 6),
			SHA256: strings.Repeat("a", 64)}); err != nil {
			panic(err)
		}
	}
	return p
}

type testEnv struct {
	t     *testing.T
	db    *store.DB
	h     http.Handler
	queue *Queue
	model []byte
}

// newEnv opens a store in a temp dir and builds the server (queue not started).
func newEnv(t *testing.T, maxUpload int64) *testEnv {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "rmprune.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	runner := &fakeRunner{real: &sweep.Runner{DB: db, NoFinetune: true}, db: db, delay: 20 * time.Millisecond}
	q := NewQueue(db, runner, 1, nil)
	h := NewServer(Deps{DB: db, Runner: runner, Queue: q, Datasets: []string{"mnist", "fashion-mnist"}, MaxUpload: maxUpload})
	return &testEnv{t: t, db: db, h: h, queue: q, model: demo.MNIST()}
}

// do runs one request and returns the recorder.
func (e *testEnv) do(method, target string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, target, body)
	req.Host = "127.0.0.1:8080"
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], "Host") {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// multipartBody builds an upload body with a file field.
func multipartBody(field, filename string, data []byte) (io.Reader, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile(field, filename)
	fw.Write(data)
	mw.Close()
	return &buf, mw.FormDataContentType()
}

// upload posts the model file to the API.
func (e *testEnv) upload(data []byte, filename string) *httptest.ResponseRecorder {
	body, ctype := multipartBody("file", filename, data)
	return e.do(http.MethodPost, "/api/models", body, "Content-Type", ctype)
}

// mustUpload uploads the test model and returns its id.
func (e *testEnv) mustUpload() int64 {
	e.t.Helper()
	w := e.upload(e.model, "resnet20-mnist.safetensors")
	if w.Code != http.StatusCreated && w.Code != http.StatusOK {
		e.t.Fatalf("upload: status %d: %s", w.Code, w.Body)
	}
	var m apiModel
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		e.t.Fatal(err)
	}
	e.waitRM(m.ID)
	return m.ID
}

// waitRM waits for the background RM check of model id to be stored.
func (e *testEnv) waitRM(id int64) {
	e.t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cs, _ := e.db.ConversionsForModel(context.Background(), id); len(cs) > 0 {
			return
		}
	}
	e.t.Fatalf("model %d: the RM check was not stored within 30 s", id)
}

// createSweep posts a sweep and returns its id.
func (e *testEnv) createSweep(body string) int64 {
	e.t.Helper()
	w := e.do(http.MethodPost, "/api/sweeps", strings.NewReader(body), "Content-Type", "application/json")
	if w.Code != http.StatusAccepted {
		e.t.Fatalf("create sweep: status %d: %s", w.Code, w.Body)
	}
	var out struct{ ID int64 }
	json.Unmarshal(w.Body.Bytes(), &out)
	return out.ID
}

// files lists the regular files under dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}
