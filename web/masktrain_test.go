package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
	"github.com/rmprune/rmprune/sweep"
	"github.com/rmprune/rmprune/train"
)

var (
	tinyOnce           sync.Once
	tinyNet, tinyPlain []byte
	tinyErr            error
)

// tinyModels returns a random ResNet-20 for 1×28×28, 10 classes, without
// masks and without a recorded data set, and its RM conversion (a plain
// net: no blocks to put masks in), as our safetensors files.
func tinyModels(t *testing.T) (resnet, plain []byte) {
	t.Helper()
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "masktrain")
		if err != nil {
			tinyErr = err
			return
		}
		defer os.RemoveAll(dir)
		g, err := nn.Build("resnet20", 1, 10, 7)
		if err != nil {
			tinyErr = err
			return
		}
		g.Input = [3]int{1, 28, 28}
		res, err := rm.Convert(g, rm.Options{})
		if err != nil {
			tinyErr = err
			return
		}
		for i, gg := range []*nn.Graph{g, res.Graph} {
			p := filepath.Join(dir, fmt.Sprintf("%d.safetensors", i))
			if tinyErr = modelio.SaveSafetensors(p, gg); tinyErr != nil {
				return
			}
			b, err := os.ReadFile(p)
			if err != nil {
				tinyErr = err
				return
			}
			if i == 0 {
				tinyNet = b
			} else {
				tinyPlain = b
			}
		}
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyNet, tinyPlain
}

// uploadBytes uploads a model file and returns its id.
func (e *testEnv) uploadBytes(data []byte, name string) int64 {
	e.t.Helper()
	w := e.upload(data, name)
	if w.Code != http.StatusCreated && w.Code != http.StatusOK {
		e.t.Fatalf("upload %s: status %d: %s", name, w.Code, w.Body)
	}
	var m apiModel
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		e.t.Fatal(err)
	}
	return m.ID
}

// postJSON posts body and decodes the answer into out (when not nil).
func (e *testEnv) postJSON(path, body string, out any) int {
	e.t.Helper()
	w := e.do(http.MethodPost, path, strings.NewReader(body), "Content-Type", "application/json")
	if out != nil {
		json.Unmarshal(w.Body.Bytes(), out)
	}
	return w.Code
}

// training reads GET /api/masktrain/{id}.
func (e *testEnv) training(id int64) apiMaskTraining {
	e.t.Helper()
	w := e.do(http.MethodGet, "/api/masktrain/"+itoa(id), nil)
	if w.Code != http.StatusOK {
		e.t.Fatalf("GET /api/masktrain/%d: status %d: %s", id, w.Code, w.Body)
	}
	var a apiMaskTraining
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// waitTraining polls until training id satisfies ok (or fails the test).
func (e *testEnv) waitTraining(id int64, what string, timeout time.Duration, ok func(apiMaskTraining) bool) apiMaskTraining {
	e.t.Helper()
	var a apiMaskTraining
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if a = e.training(id); ok(a) {
			return a
		}
	}
	e.t.Fatalf("mask training %d: not %s within %v; last %+v", id, what, timeout, a)
	return a
}

// startQueue runs e's queue until the test ends.
func (e *testEnv) startQueue() {
	ctx, stop := context.WithCancel(context.Background())
	e.queue.Start(ctx)
	e.t.Cleanup(func() { stop(); e.queue.Wait() })
}

const tinyTrain = `"dataset": "mnist", "epochs": 1, "limit": 64, "eval_limit": 50, "batch": 32, "threads": 1`

func TestMaskTrainRequests(t *testing.T) {
	e := newEnv(t, 0)
	net, plain := tinyModels(t)
	id := e.uploadBytes(net, "tiny.safetensors")
	pid := e.uploadBytes(plain, "plain.safetensors")
	path := "/api/models/" + itoa(id) + "/masktrain"
	for _, tt := range []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"dataset required", path, `{}`, 400, "dataset is required"},
		{"unknown dataset", path, `{"dataset": "cifar10"}`, 400, `unknown dataset "cifar10"`},
		{"epochs 0", path, `{"dataset": "mnist", "epochs": 0}`, 400, "epochs 0: want 1…1000"},
		{"batch too large", path, `{"dataset": "mnist", "batch": 5000}`, 400, "batch 5000: want 2…4096"},
		{"batch 1", path, `{"dataset": "mnist", "batch": 1}`, 400, "batch 1"},
		{"negative lr", path, `{"dataset": "mnist", "lr": -0.1}`, 400, "lr -0.1"},
		{"threshold 1", path, `{"dataset": "mnist", "mask_threshold": 1}`, 400, "mask_threshold 1"},
		{"negative sparsity", path, `{"dataset": "mnist", "mask_sparsity": -1}`, 400, "mask_sparsity -1"},
		{"negative limit", path, `{"dataset": "mnist", "limit": -5}`, 400, "limit -5"},
		{"threads", path, `{"dataset": "mnist", "threads": 1000}`, 400, "threads 1000"},
		{"negative seed", path, `{"dataset": "mnist", "seed": -1}`, 400, "request body"},
		{"unknown field", path, `{"dataset": "mnist", "momentum": 0.5}`, 400, `unknown field "momentum"`},
		{"trailing data", path, `{"dataset": "mnist"} {}`, 400, "trailing data"},
		{"not a ResNet", "/api/models/" + itoa(pid) + "/masktrain", `{"dataset": "mnist"}`, 422, "cannot be mask-trained"},
		{"no such model", "/api/models/999/masktrain", `{"dataset": "mnist"}`, 404, "not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out map[string]string
			if got := e.postJSON(tt.path, tt.body, &out); got != tt.status {
				t.Fatalf("status %d (%v); want %d", got, out, tt.status)
			}
			if !strings.Contains(out["error"], tt.msg) || strings.Contains(out["error"], "\n") {
				t.Errorf("error %q; want one line containing %q", out["error"], tt.msg)
			}
		})
	}
	if ts, _ := e.db.MaskTrainings(context.Background(), 0); len(ts) != 0 {
		t.Errorf("%d trainings stored by refused requests; want 0", len(ts))
	}

	// Accepted: 202 with the job; defaults filled in; a second one for the
	// same model waits its turn (409).
	var acc struct {
		ID     int64
		JobID  int64 `json:"job_id"`
		Status string
	}
	if got := e.postJSON(path, `{"dataset": "fashion-mnist", "epochs": 2}`, &acc); got != http.StatusAccepted {
		t.Fatalf("status %d; want 202", got)
	}
	if acc.ID == 0 || acc.JobID == 0 || acc.Status != "queued" {
		t.Errorf("answer %+v; want an id, a job id and status queued", acc)
	}
	a := e.training(acc.ID)
	want := MaskTrainConfig{Dataset: "fashion-mnist", Epochs: 2, LR: DefaultMaskTrainLR, WD: 5e-4, Batch: 128,
		MaskSparsity: DefaultMaskTrainSparsity, MaskThreshold: DefaultMaskTrainThreshold, Seed: 1, Threads: a.Config.Threads}
	if a.Config != want || a.Config.Threads < 1 || a.Status != "queued" || a.Live != nil || a.ModelID != id {
		t.Errorf("stored %+v; want config %+v, queued, no live progress", a, want)
	}
	var conflict map[string]string
	if got := e.postJSON(path, `{"dataset": "mnist"}`, &conflict); got != http.StatusConflict {
		t.Errorf("second training while one is queued: status %d (%v); want 409", got, conflict)
	}
	// Cancel while queued; then it can be restarted.
	if got := e.postJSON("/api/masktrain/"+itoa(acc.ID)+"/cancel", ``, nil); got != http.StatusOK {
		t.Errorf("cancel queued: status %d; want 200", got)
	}
	if a := e.training(acc.ID); a.Status != "cancelled" {
		t.Errorf("after cancel: status %s; want cancelled", a.Status)
	}
	if got := e.postJSON("/api/masktrain/"+itoa(acc.ID)+"/cancel", ``, nil); got != http.StatusConflict {
		t.Errorf("cancel twice: status %d; want 409", got)
	}
	if got := e.postJSON("/api/masktrain/"+itoa(acc.ID)+"/restart", ``, nil); got != http.StatusAccepted {
		t.Errorf("restart: status %d; want 202", got)
	}
	if got := e.postJSON("/api/masktrain/"+itoa(acc.ID)+"/resume", ``, nil); got != http.StatusConflict {
		t.Errorf("resume a queued training: status %d; want 409", got)
	}
	if w := e.do(http.MethodGet, "/api/masktrain/77", nil); w.Code != http.StatusNotFound {
		t.Errorf("GET an unknown training: status %d; want 404", w.Code)
	}
	// The list, and the model page's card (form + list).
	w := e.do(http.MethodGet, "/api/masktrain?model="+itoa(id), nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"trainings"`) {
		t.Errorf("GET /api/masktrain: status %d: %s", w.Code, w.Body)
	}
	w = e.do(http.MethodGet, "/models/"+itoa(id)+"/masktrain", nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `id="masktrain-form"`) || !strings.Contains(w.Body.String(), "/masktrain/"+itoa(acc.ID)) {
		t.Errorf("model card: status %d; want the form and the training listed", w.Code)
	}
	w = e.do(http.MethodGet, "/models/"+itoa(pid)+"/masktrain", nil)
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `id="masktrain-form"`) || !strings.Contains(w.Body.String(), "cannot be mask-trained") {
		t.Errorf("plain model's card: status %d; want no form and the reason", w.Code)
	}
}

// TestMaskTrainRuns trains a tiny ResNet for real: the result is a new model
// with masks, the data set and running statistics; the source is untouched.
func TestMaskTrainRuns(t *testing.T) {
	e := newEnv(t, 0)
	net, _ := tinyModels(t)
	id := e.uploadBytes(net, "tiny.safetensors")
	src, _ := e.db.Model(context.Background(), id)
	srcFile, err := os.ReadFile(filepath.Join(e.db.ArtifactDir(), src.Path))
	if err != nil {
		t.Fatal(err)
	}

	// Through the model page's form.
	form := url.Values{"dataset": {"mnist"}, "epochs": {"1"}, "limit": {"64"}, "eval_limit": {"50"}, "batch": {"32"},
		"lr": {"0.05"}, "mask_sparsity": {"0.001"}, "mask_threshold": {"0.001"}, "seed": {"3"}}
	w := e.do(http.MethodPost, "/models/"+itoa(id)+"/masktrain", strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/masktrain/") {
		t.Fatalf("form: status %d location %q; want 303 to the job page", w.Code, w.Header().Get("Location"))
	}
	tid, _ := parseIDs("id", []string{strings.TrimPrefix(w.Header().Get("Location"), "/masktrain/")}, 1)
	if w := e.do(http.MethodGet, "/masktrain/"+itoa(tid[0]), nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `hx-trigger="every 1s"`) {
		t.Errorf("job page while queued: status %d; want 200 and a polling live part", w.Code)
	}
	e.startQueue()
	a := e.waitTraining(tid[0], "done", 2*time.Minute, func(a apiMaskTraining) bool {
		if a.Status == "failed" {
			t.Fatalf("training failed: %s", a.Error)
		}
		return a.Status == "done"
	})
	if a.Progress != 1 || a.ResultModelID == 0 || a.ResultModelID == id || a.Config.Seed != 3 {
		t.Fatalf("done: %+v; want progress 1 and a new result model", a)
	}
	l := a.Live
	if l == nil || l.Steps != 2 || l.Step != 2 || l.Epoch != 1 || l.Epochs != 1 || l.Loss <= 0 || l.TestTop1 == nil || len(l.Masks) != 4 {
		t.Fatalf("live %+v; want 2 of 2 steps of epoch 1/1, a loss, a test top-1 and 4 mask kinds", l)
	}
	for _, k := range l.Masks {
		if k.Count == 0 || k.Zero < 0 || k.Zero > k.Count {
			t.Errorf("mask kind %+v: want a count and 0 ≤ zero ≤ count", k)
		}
	}

	// The new model: listed, named after its source, with masks, the data
	// set and the running statistics the trainer records.
	w = e.do(http.MethodGet, "/api/models/"+itoa(a.ResultModelID), nil)
	var m apiModelDetail
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &m) != nil {
		t.Fatalf("GET result model: status %d: %s", w.Code, w.Body)
	}
	if m.Name != "tiny (mask-trained)" || !m.Masks || m.MasksCount == 0 || m.MaskStats == nil || m.SweepFinetuneLR != sweep.MaskTrainedFinetuneLR {
		t.Errorf("result model %q masks %v (%d of %d zero) finetune lr %v; want \"tiny (mask-trained)\" with mask stats and lr %v",
			m.Name, m.Masks, m.MasksZero, m.MasksCount, m.SweepFinetuneLR, sweep.MaskTrainedFinetuneLR)
	}
	stored, err := e.db.Model(context.Background(), a.ResultModelID)
	if err != nil {
		t.Fatal(err)
	}
	g, err := modelio.Load(filepath.Join(e.db.ArtifactDir(), stored.Path), modelio.Options{})
	if err != nil {
		t.Fatalf("result file does not load: %v", err)
	}
	stats := 0
	for _, n := range g.Nodes {
		if n.P("act_mean") != nil && n.P("act_var") != nil {
			stats++
		}
	}
	if !g.HasMasks() || g.Dataset != "mnist" || stats == 0 {
		t.Errorf("result file: masks %v, dataset %q, %d nodes with running statistics; want masks, mnist, running1/running2", g.HasMasks(), g.Dataset, stats)
	}
	if list := e.do(http.MethodGet, "/api/models", nil); !strings.Contains(list.Body.String(), "tiny (mask-trained)") {
		t.Errorf("models list lacks the result: %s", list.Body)
	}
	// The source is untouched.
	after, err := os.ReadFile(filepath.Join(e.db.ArtifactDir(), src.Path))
	if err != nil || string(after) != string(srcFile) {
		t.Errorf("source model file changed (%v)", err)
	}
	if w := e.do(http.MethodGet, "/api/models/"+itoa(id), nil); !strings.Contains(w.Body.String(), `"masks": false`) {
		t.Errorf("source model now reports masks: %s", w.Body)
	}
	// The job page links the result; the checkpoint is gone.
	w = e.do(http.MethodGet, "/masktrain/"+itoa(tid[0]), nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `href="/models/`+itoa(a.ResultModelID)+`"`) || strings.Contains(w.Body.String(), `hx-trigger="every 1s"`) {
		t.Errorf("job page when done: status %d; want the result's link and no polling", w.Code)
	}
	if _, err := os.Stat(filepath.Join(e.db.ArtifactDir(), maskTrainDir(tid[0]))); !os.IsNotExist(err) {
		t.Errorf("checkpoint directory left after the model was stored (%v)", err)
	}
	// The sweep form's note says what each model is.
	for _, tt := range []struct {
		id   int64
		want string
	}{{a.ResultModelID, "mask-trained:"}, {id, "consider"}} {
		w := e.do(http.MethodGet, "/sweeps/estimate?model_id="+itoa(tt.id)+"&preview=0.5&forms=rmnet&finetune_epochs=1&finetune_limit=2000", nil)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), tt.want) || !strings.Contains(w.Body.String(), "same fine-tuning budget") {
			t.Errorf("estimate of model %d: status %d; want %q and the budget: %s", tt.id, w.Code, tt.want, w.Body)
		}
	}
}

// TestMaskTrainInterruptCancelResume: a server shutdown leaves the job
// interrupted with its checkpoint; resuming on a new queue continues it;
// a cancel stops it; a collapse fails it with its reason.
func TestMaskTrainInterruptCancelResume(t *testing.T) {
	e := newEnv(t, 0)
	net, _ := tinyModels(t)
	id := e.uploadBytes(net, "tiny.safetensors")
	var acc struct{ ID int64 }
	// 32 steps: long enough to stop in the middle.
	if got := e.postJSON("/api/models/"+itoa(id)+"/masktrain", `{"dataset": "mnist", "epochs": 1, "limit": 1024, "eval_limit": 50, "batch": 32, "threads": 1}`, &acc); got != http.StatusAccepted {
		t.Fatalf("status %d; want 202", got)
	}
	qctx, stop := context.WithCancel(context.Background())
	e.queue.Start(qctx)
	e.waitTraining(acc.ID, "running with progress", time.Minute, func(a apiMaskTraining) bool {
		return a.Status == "running" && a.Live != nil && a.Live.Step >= 3
	})
	stop() // the server shuts down
	e.queue.Wait()
	a := e.training(acc.ID)
	if a.Status != "interrupted" || a.Live == nil || a.Live.Step < 3 || a.Live.Step >= a.Live.Steps {
		t.Fatalf("after shutdown: status %s live %+v; want interrupted part-way", a.Status, a.Live)
	}
	state := train.StatePath(filepath.Join(e.db.ArtifactDir(), maskTrainDir(acc.ID), "model.safetensors"))
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no checkpoint state after the shutdown: %v", err)
	}
	stoppedAt := a.Live.Step

	// A new server (queue) on the same database resumes from the checkpoint.
	e2 := &testEnv{t: t, db: e.db}
	e2.queue = NewQueue(e.db, &fakeRunner{real: &sweep.Runner{DB: e.db, NoFinetune: true}, db: e.db}, 1, nil)
	e2.h = NewServer(Deps{DB: e.db, Runner: &fakeRunner{real: &sweep.Runner{DB: e.db, NoFinetune: true}, db: e.db}, Queue: e2.queue, Datasets: []string{"mnist", "fashion-mnist"}})
	if got := e2.postJSON("/api/masktrain/"+itoa(acc.ID)+"/resume", ``, nil); got != http.StatusAccepted {
		t.Fatalf("resume: status %d; want 202", got)
	}
	// The first step reported after the checkpoint's: a resumed run goes
	// on from it, a fresh one would start again at 1.
	e2.startQueue()
	next := e2.waitTraining(acc.ID, "running again", time.Minute, func(a apiMaskTraining) bool {
		return a.Status == "running" && a.Live != nil && a.Live.Step != stoppedAt
	})
	if next.Live.Step <= stoppedAt {
		t.Errorf("resumed run reported step %d first; want past the checkpoint's %d", next.Live.Step, stoppedAt)
	}
	// Cancel it while it runs: cancelled, checkpoint kept.
	var cancelled struct{ Status string }
	if got := e2.postJSON("/api/masktrain/"+itoa(acc.ID)+"/cancel", ``, &cancelled); got != http.StatusOK || cancelled.Status != "cancelled" {
		t.Fatalf("cancel running: status %d %+v; want 200 cancelled", got, cancelled)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("no checkpoint after a cancel: %v", err)
	}
	// Resume once more and let it finish.
	if got := e2.postJSON("/api/masktrain/"+itoa(acc.ID)+"/resume", ``, nil); got != http.StatusAccepted {
		t.Fatalf("resume after cancel: status %d; want 202", got)
	}
	e2.queue.Wake()
	done := e2.waitTraining(acc.ID, "done", 2*time.Minute, func(a apiMaskTraining) bool {
		if a.Status == "failed" {
			t.Fatalf("failed: %s", a.Error)
		}
		return a.Status == "done"
	})
	if done.ResultModelID == 0 || done.Live == nil || done.Live.Step != done.Live.Steps {
		t.Errorf("done %+v; want a result after all steps", done)
	}

	// A penalty that zeroes every mask at once collapses the network: the
	// job fails with a one-line reason (shown on the page).
	var col struct{ ID int64 }
	if got := e2.postJSON("/api/models/"+itoa(id)+"/masktrain", `{`+tinyTrain+`, "limit": 128, "lr": 0.1, "mask_sparsity": 1, "mask_threshold": 0.999}`, &col); got != http.StatusAccepted {
		t.Fatalf("collapse run: status %d; want 202", got)
	}
	f := e2.waitTraining(col.ID, "failed", 2*time.Minute, func(a apiMaskTraining) bool { return a.Status == "failed" || a.Status == "done" })
	if f.Status != "failed" || !strings.Contains(f.Error, "collapse: every mask of") || strings.Contains(f.Error, "\n") || f.ResultModelID != 0 {
		t.Errorf("collapse run: status %s error %q result %d; want failed with the collapse reason and no model", f.Status, f.Error, f.ResultModelID)
	}
	if w := e2.do(http.MethodGet, "/masktrain/"+itoa(col.ID), nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `id="mt-error"`) {
		t.Errorf("job page of a failed run: status %d; want the reason shown", w.Code)
	}
	if ms, _ := e.db.Models(context.Background()); len(ms) != 2 {
		t.Errorf("%d models; want 2 (the source and one result)", len(ms))
	}
}

func TestCollapsed(t *testing.T) {
	g, err := nn.Build("resnet20", 1, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	if g, err = nn.AddMasks(g); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, n := range g.Nodes {
		if n.Op == nn.OpMask {
			kinds[n.Name] = nn.MaskKind(g, n)
		}
	}
	zero := func(name string, keep int) *nn.Graph {
		c := g.Clone()
		m := c.Node(name).P("weight")
		for i := range m {
			if i != keep {
				m[i] = 0
			}
		}
		return c
	}
	for _, tt := range []struct {
		name string
		g    *nn.Graph
		want string
	}{
		{"fresh", g, ""},
		{"stem all zero", zero("mask1", -1), "mask1"},
		{"stem one left", zero("mask1", 3), ""},
		{"block output all zero", zero("layer2.1.mask2", -1), "layer2.1.mask2"},
		{"inner all zero (the shortcut still carries)", zero("layer2.1.mask1", -1), ""},
		{"reserved all zero (the branch still carries)", zero("layer2.1.mask_res.0", -1), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := collapsed(tt.g, kinds); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

// TestMaskTrainBadData: a data set that does not fit the model fails the
// job with a one-line reason on its page; no model is stored.
func TestMaskTrainBadData(t *testing.T) {
	e := newEnv(t, 0)
	g, err := nn.Build("resnet20", 3, 10, 7) // 3×32×32 input: not MNIST's 1×28×28
	if err != nil {
		t.Fatal(err)
	}
	g.Input = [3]int{3, 32, 32}
	p := filepath.Join(t.TempDir(), "rgb.safetensors")
	if err := modelio.SaveSafetensors(p, g); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	id := e.uploadBytes(b, "rgb.safetensors")
	var acc struct{ ID int64 }
	if got := e.postJSON("/api/models/"+itoa(id)+"/masktrain", `{`+tinyTrain+`}`, &acc); got != http.StatusAccepted {
		t.Fatalf("status %d; want 202 (the data are checked by the job)", got)
	}
	e.startQueue()
	a := e.waitTraining(acc.ID, "finished", time.Minute, func(a apiMaskTraining) bool { return a.Status == "failed" || a.Status == "done" })
	if a.Status != "failed" || !strings.Contains(a.Error, "does not match the mnist images") || strings.Contains(a.Error, "\n") {
		t.Errorf("status %s error %q; want failed with one line naming the mismatch", a.Status, a.Error)
	}
	w := e.do(http.MethodGet, "/masktrain/"+itoa(acc.ID), nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "does not match the mnist images") || !strings.Contains(w.Body.String(), `id="mt-restart"`) {
		t.Errorf("job page: status %d; want the reason and a restart button", w.Code)
	}
	if ms, _ := e.db.Models(context.Background()); len(ms) != 1 {
		t.Errorf("%d models; want only the source", len(ms))
	}
}
