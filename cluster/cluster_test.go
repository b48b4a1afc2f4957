package cluster_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rmprune/rmprune/cluster"
	"github.com/rmprune/rmprune/demo"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// binary is the rmprune binary the worker processes run, built once.
var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

func rmpruneBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rmprune-cluster-test-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "rmprune")
		out, err := exec.Command("go", "build", "-o", binary, "..").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// freePort returns a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// coord is an embedded server and a coordinator on it.
type coord struct {
	srv    *cluster.Server
	nc     *nats.Conn
	c      *cluster.Coordinator
	cancel context.CancelFunc
}

var testPolicy = cluster.Policy{AckWait: 2 * time.Second, MaxDeliver: 4, WorkerTTL: 3 * time.Second}

func startCoord(t *testing.T, db *store.DB, port int, storeDir string, p cluster.Policy) *coord {
	t.Helper()
	srv, err := cluster.StartServer(cluster.ServerOptions{Listen: fmt.Sprintf("127.0.0.1:%d", port), StoreDir: storeDir})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := cluster.Connect(srv.URL(), "test coordinator", "")
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runner := &sweep.Runner{DB: db, BenchTime: 20 * time.Millisecond, Version: "test"}
	c, err := cluster.NewCoordinator(ctx, nc, db, runner, p, nil)
	if err == nil {
		err = c.Start(ctx)
	}
	if err != nil {
		cancel()
		nc.Close()
		srv.Shutdown()
		t.Fatal(err)
	}
	return &coord{srv: srv, nc: nc, c: c, cancel: cancel}
}

func (c *coord) stop() {
	c.cancel()
	c.nc.Close()
	c.srv.Shutdown()
}

// worker is a worker process.
type worker struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startWorker(t *testing.T, url, name string) *worker {
	t.Helper()
	w := &worker{name: name, log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	w.cmd = exec.Command(rmpruneBinary(t), "worker", "--server", url, "--name", name, "--threads", "1",
		"--cache", filepath.Join(t.TempDir(), "cache"))
	w.cmd.Stdout = lockedWriter{w.mu, w.log}
	w.cmd.Stderr = lockedWriter{w.mu, w.log}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.cmd.Process.Signal(syscall.SIGCONT)
		w.cmd.Process.Kill()
		w.cmd.Wait()
		if t.Failed() {
			t.Logf("worker %s log:\n%s", name, w.logText())
		}
	})
	return w
}

func (w *worker) logText() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.String()
}

// addModel stores model file bytes as a model of db.
func addModel(t *testing.T, db *store.DB, name string, data []byte) store.Model {
	t.Helper()
	rel := filepath.Join("models", name)
	if err := os.MkdirAll(filepath.Join(db.ArtifactDir(), "models"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db.ArtifactDir(), rel), data, 0o640); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	m, _, err := db.CreateModel(context.Background(), store.Model{Name: name, Path: rel,
		SourceSHA256: hex.EncodeToString(sum[:]), SizeBytes: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func addSweep(t *testing.T, db *store.DB, modelID int64, cfg sweep.Config) store.Sweep {
	t.Helper()
	cfg.Defaults()
	s, err := db.CreateSweep(context.Background(), cfg.Sweep(modelID))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "rmprune.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// workersKV reads the worker registry.
func workerInfos(t *testing.T, c *coord) map[string]cluster.WorkerInfo {
	ws, err := c.c.Workers(context.Background())
	if err != nil {
		return nil
	}
	out := map[string]cluster.WorkerInfo{}
	for _, w := range ws {
		out[w.Name] = w
	}
	return out
}

func claims(t *testing.T, nc *nats.Conn, pid string) cluster.Claim {
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), cluster.ClaimBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), pid)
	if err != nil {
		return cluster.Claim{}
	}
	var c cluster.Claim
	json.Unmarshal(e.Value(), &c)
	return c
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// busyWorker returns a running worker (not in skip) computing a point.
func busyWorker(c *coord, ws []*worker, skip map[string]bool) (*worker, string) {
	infos, err := c.c.Workers(context.Background())
	if err != nil {
		return nil, ""
	}
	for _, in := range infos {
		if in.Current == "" || skip[in.Name] {
			continue
		}
		for _, w := range ws {
			if w.name == in.Name {
				return w, in.Current
			}
		}
	}
	return nil, ""
}

// TestClusterSweepSurvives runs a sweep over three worker processes while
// one is killed mid-point (SIGKILL), one is paused past AckWait and resumed
// (SIGSTOP/SIGCONT), and the coordinator (with its embedded server) is
// restarted mid-sweep: every point is stored exactly once, measured, and
// the sweep finishes.
func TestClusterSweepSurvives(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs worker processes")
	}
	db := openDB(t)
	port := freePort(t)
	storeDir := filepath.Join(t.TempDir(), "js")
	c := startCoord(t, db, port, storeDir, testPolicy)
	defer func() { c.stop() }()
	url := c.srv.URL()

	var ws []*worker
	for i := 1; i <= 3; i++ {
		ws = append(ws, startWorker(t, url, fmt.Sprintf("w%d", i)))
	}
	m := addModel(t, db, "demo.safetensors", demo.MNIST())
	s := addSweep(t, db, m.ID, sweep.Config{Dataset: "mnist", Ratios: []float64{0.3, 0.6}, Limit: 200, Batch: 8,
		Threads: 1})
	const points = 6

	runDone := make(chan error, 1)
	ctx1, cancel1 := context.WithCancelCause(context.Background())
	go func() { runDone <- c.c.Run(ctx1, s.ID, nil) }()

	stored := func() int {
		ps, _ := db.Points(context.Background(), s.ID)
		return len(ps)
	}
	waitFor(t, 3*time.Minute, "three registered workers", func() bool { return len(workerInfos(t, c)) == 3 })
	waitFor(t, 3*time.Minute, "the first point", func() bool { return stored() >= 1 })

	// SIGKILL a busy worker.
	var killed *worker
	var killedPoint string
	waitFor(t, time.Minute, "a busy worker to kill", func() bool {
		killed, killedPoint = busyWorker(c, ws, nil)
		return killed != nil
	})
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s computing %s", killed.name, killedPoint)

	// SIGSTOP another busy worker past AckWait, then SIGCONT it.
	var paused *worker
	var pausedPoint string
	waitFor(t, 2*time.Minute, "a busy worker to pause", func() bool {
		paused, pausedPoint = busyWorker(c, ws, map[string]bool{killed.name: true})
		return paused != nil || stored() == points
	})
	fenced := false
	if paused != nil {
		paused.cmd.Process.Signal(syscall.SIGSTOP)
		t.Logf("paused %s computing %s", paused.name, pausedPoint)
		// A fresh worker takes the job once AckWait has passed.
		ws = append(ws, startWorker(t, url, "w4"))
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) && stored() < points {
			if cl := claims(t, c.nc, pausedPoint); cl.Worker != "" && cl.Worker != paused.name {
				fenced = true
				t.Logf("%s redelivered to %s (delivery %d)", pausedPoint, cl.Worker, cl.Delivery)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		paused.cmd.Process.Signal(syscall.SIGCONT)
	}

	// Restart the coordinator and its embedded server mid-sweep (if the
	// sweep is not done yet): JetStream's file store keeps jobs, claims and
	// results.
	if stored() < points {
		cancel1(sweep.ErrInterrupted)
		if err := <-runDone; err == nil {
			t.Log("sweep finished before the restart")
		}
		storedBefore := c.c.Stored.Load()
		c.stop()
		c = startCoord(t, db, port, storeDir, testPolicy)
		t.Logf("coordinator restarted after %d stored points (%d by the first)", stored(), storedBefore)
		go func() { runDone <- c.c.Run(context.Background(), s.ID, nil) }()
	} else {
		cancel1(nil)
	}
	select {
	case err := <-runDone:
		if err != nil {
			t.Fatalf("sweep: %v", err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("sweep did not finish in 5 minutes")
	}

	sw, err := db.Sweep(context.Background(), s.ID)
	if err != nil || sw.Status != store.StatusDone {
		t.Fatalf("sweep %+v, %v; want done", sw, err)
	}
	ps, err := db.Points(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != points {
		t.Fatalf("got %d points; want %d", len(ps), points)
	}
	seen := map[string]bool{}
	workers := map[string]bool{}
	for _, p := range ps {
		k := cluster.PointID(s.ID, sweep.Key{Form: p.Form, Ratio: p.Ratio})
		if seen[k] {
			t.Errorf("point %s stored twice", k)
		}
		seen[k] = true
		workers[p.Worker] = true
		if p.Top1 <= 0 || p.ImagesPerS <= 0 || p.CPU == "" || p.Worker == "" {
			t.Errorf("point %s: top-1 %v, images/s %v, cpu %q, worker %q; want all measured", k, p.Top1, p.ImagesPerS, p.CPU, p.Worker)
		}
		arts, err := db.Artifacts(context.Background(), p.ID)
		if err != nil || len(arts) < 2 {
			t.Errorf("point %s: %d artifacts, %v; want ≥ 2", k, len(arts), err)
		}
		if k == killedPoint && p.Worker == killed.name {
			t.Errorf("point %s stored from the killed worker %s", k, killed.name)
		}
		if paused != nil && k == pausedPoint {
			cl := claims(t, c.nc, k)
			if cl.Worker != paused.name && p.Worker == paused.name {
				t.Errorf("point %s stored from paused %s though %s holds it (delivery %d)", k, paused.name, cl.Worker, cl.Delivery)
			}
			t.Logf("paused point %s: stored by %s; claim %s delivery %d", k, p.Worker, cl.Worker, cl.Delivery)
		}
	}
	if len(workers) < 2 {
		t.Errorf("points measured by %v; want at least two workers", workers)
	}
	if cl := claims(t, c.nc, killedPoint); cl.Delivery < 2 {
		t.Errorf("killed point %s: claim %+v; want a redelivery", killedPoint, cl)
	}
	if fenced {
		// The resumed worker finishes its point late: it must drop it.
		waitFor(t, 2*time.Minute, "the paused worker to drop its stale result", func() bool {
			return strings.Contains(paused.logText(), "stale result dropped")
		})
		t.Logf("paused worker: %s", lastLine(paused.logText(), "stale"))
	}
}

func lastLine(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}

// TestClusterBadModelAndStaleResult: a worker that cannot load the model
// reports a clear error, and after MaxDeliver deliveries the sweep fails
// with it; a result of an attempt that no longer holds its point is
// ignored.
func TestClusterBadModelAndStaleResult(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs worker processes")
	}
	db := openDB(t)
	p := testPolicy
	p.MaxDeliver = 2
	c := startCoord(t, db, 0, filepath.Join(t.TempDir(), "js"), p)
	defer c.stop()
	w := startWorker(t, c.srv.URL(), "wbad")
	m := addModel(t, db, "broken.safetensors", []byte("this is not a safetensors file"))
	s := addSweep(t, db, m.ID, sweep.Config{Dataset: "mnist", Forms: []string{"rmnet"}, Ratios: []float64{0.5},
		Limit: 50, Batch: 8, Threads: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := c.c.Run(ctx, s.ID, nil)
	if err == nil {
		t.Fatal("got nil; want the sweep to fail")
	}
	for _, want := range []string{"worker wbad", "cannot load model", "after 2 deliveries"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q; want it to contain %q", err, want)
		}
	}
	sw, _ := db.Sweep(context.Background(), s.ID)
	if sw.Status != store.StatusFailed || !strings.Contains(sw.Error, "cannot load model") {
		t.Errorf("sweep %s %q; want failed with the worker's error", sw.Status, sw.Error)
	}
	if !strings.Contains(w.logText(), "cannot load model") {
		t.Errorf("worker log does not name the problem:\n%s", w.logText())
	}

	// A stale result: claim attempt 2, publish a result of attempt 1.
	js, _ := jetstream.New(c.nc)
	kv, err := js.KeyValue(context.Background(), cluster.ClaimBucket)
	if err != nil {
		t.Fatal(err)
	}
	pid := cluster.PointID(s.ID, sweep.Key{Form: "resnet", Ratio: 0})
	cl, _ := json.Marshal(cluster.Claim{Attempt: cluster.Attempt{Gen: 1, Delivery: 2}, Worker: "w-now"})
	if _, err := kv.Put(context.Background(), pid, cl); err != nil {
		t.Fatal(err)
	}
	res, _ := json.Marshal(cluster.Result{SweepID: s.ID, PointID: pid, Attempt: cluster.Attempt{Gen: 1, Delivery: 1},
		Worker: "w-late", Point: &sweep.PointResult{Point: store.Point{Form: "resnet", Top1: 0.5}}})
	if _, err := js.Publish(context.Background(), cluster.ResultSubject(s.ID), res); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the stale result to be fenced", func() bool { return c.c.Stale.Load() == 1 })
	if ps, _ := db.Points(context.Background(), s.ID); len(ps) != 0 {
		t.Errorf("got %d points; want the stale result ignored", len(ps))
	}
}
