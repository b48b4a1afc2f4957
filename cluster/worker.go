package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rmprune/rmprune/bench"
	"github.com/rmprune/rmprune/evaluate"
	"github.com/rmprune/rmprune/kernels"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/sweep"
)

// WorkerOptions configure a worker.
type WorkerOptions struct {
	Name   string // unique among the workers; default: host name and pid
	Target string // "" = DefaultTarget
	// Threads replaces the sweep's thread count (the coordinator's default
	// is its own core count); 0: min(sweep's, this machine's cores).
	Threads int
	// Datasets maps extra dataset names to dataset.Open specs on this machine.
	Datasets map[string]string
	// CacheDir keeps downloaded models by SHA-256.
	CacheDir string
	// Finetune replaces sweep.Train (tests).
	Finetune sweep.FinetuneFunc
	Log      *slog.Logger
}

// Worker computes points, one at a time. It never opens a database.
type Worker struct {
	opt  WorkerOptions
	nc   *nats.Conn
	res  *resources
	cpu  string
	data sweep.Runner // opens (and keeps) data sets by name

	mu      sync.Mutex
	current string
	compKey string
	comp    *sweep.Computer
}

// RunWorker registers the worker and computes jobs until ctx is done. It
// waits for the coordinator's streams and its target's consumer to exist.
func RunWorker(ctx context.Context, nc *nats.Conn, opt WorkerOptions) error {
	if opt.Target == "" {
		opt.Target = DefaultTarget
	}
	if !sweep.TargetPattern.MatchString(opt.Target) {
		return fmt.Errorf("cluster: target %q: use at most 32 lower-case letters, digits, '_' and '-'", opt.Target)
	}
	if opt.Name == "" {
		host, _ := os.Hostname()
		opt.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		opt.CacheDir = filepath.Join(dir, "rmprune", "worker")
	}
	w := &Worker{opt: opt, nc: nc, cpu: bench.CPUModel()}
	w.data.Datasets = opt.Datasets
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	var cons jetstream.Consumer
	for waited := false; ; waited = true {
		if w.res == nil {
			w.res, err = setup(ctx, js, Policy{}, false)
		}
		if err == nil {
			cons, err = js.Consumer(ctx, JobsStream, ConsumerName(opt.Target))
			if err == nil {
				break
			}
		}
		if !waited {
			opt.Log.Info("waiting for the coordinator's streams", "target", opt.Target, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	info := cons.CachedInfo()
	ackWait, maxDeliver := info.Config.AckWait, info.Config.MaxDeliver
	opt.Log.Info("worker ready", "name", opt.Name, "target", opt.Target, "ack_wait", ackWait, "max_deliver", maxDeliver)
	go w.register(ctx)
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			opt.Log.Warn("fetch", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for m := range batch.Messages() {
			w.handle(ctx, m, ackWait, maxDeliver)
		}
	}
	return nil
}

// register keeps the worker's registry entry fresh.
func (w *Worker) register(ctx context.Context) {
	ttl := 30 * time.Second
	if st, err := w.res.workers.Status(ctx); err == nil && st.TTL() > 0 {
		ttl = st.TTL()
	}
	t := time.NewTicker(max(ttl/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		w.putInfo(ctx)
		select {
		case <-ctx.Done():
			w.res.workers.Delete(context.WithoutCancel(ctx), w.opt.Name)
			return
		case <-t.C:
		}
	}
}

func (w *Worker) putInfo(ctx context.Context) {
	w.mu.Lock()
	info := WorkerInfo{Name: w.opt.Name, Target: w.opt.Target, CPU: w.cpu, ISA: kernels.ISA(),
		Threads: w.threads(0), Current: w.current, LastSeen: time.Now().UTC()}
	w.mu.Unlock()
	b, _ := json.Marshal(info)
	w.res.workers.Put(ctx, w.opt.Name, b)
}

// threads is the thread count for a sweep asking for n (0: unknown).
func (w *Worker) threads(n int) int {
	if w.opt.Threads > 0 {
		return w.opt.Threads
	}
	if n <= 0 {
		return runtime.NumCPU()
	}
	return min(n, runtime.NumCPU())
}

func (w *Worker) setCurrent(ctx context.Context, pid string) {
	w.mu.Lock()
	w.current = pid
	w.mu.Unlock()
	w.putInfo(ctx)
}

// claim makes att the current attempt of the point, unless a later attempt
// holds it (then this delivery is stale: false).
func (w *Worker) claim(ctx context.Context, pid string, att Attempt) (bool, error) {
	for range 10 {
		cur, rev, err := w.res.currentClaim(ctx, pid)
		if err != nil {
			return false, err
		}
		if rev != 0 && !cur.Attempt.Less(att) {
			return cur.Attempt == att && cur.Worker == w.opt.Name, nil
		}
		b, _ := json.Marshal(Claim{Attempt: att, Worker: w.opt.Name})
		if rev == 0 {
			_, err = w.res.claims.Create(ctx, pid, b)
		} else {
			_, err = w.res.claims.Update(ctx, pid, b, rev)
		}
		if err == nil {
			return true, nil
		}
	}
	return false, fmt.Errorf("cluster: claim %s: contended", pid)
}

// current reports whether att still is the point's current attempt.
func (w *Worker) isCurrent(ctx context.Context, pid string, att Attempt) bool {
	cur, _, err := w.res.currentClaim(ctx, pid)
	return err == nil && cur.Attempt == att
}

// Where each stage of a point lies within it, for progress.
var stageSpan = map[string][2]float64{
	"prune": {0, 0.05}, "finetune": {0.05, 0.6}, "evaluate": {0.6, 0.75}, "bench": {0.75, 0.95}, "save": {0.95, 1},
}

func (w *Worker) handle(ctx context.Context, m jetstream.Msg, ackWait time.Duration, maxDeliver int) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	var j Job
	if err := json.Unmarshal(m.Data(), &j); err != nil {
		w.opt.Log.Warn("undecodable job terminated", "err", err)
		m.Term()
		return
	}
	att := Attempt{Gen: j.Gen, Delivery: md.NumDelivered}
	log := w.opt.Log.With("point", j.PointID, "delivery", att.Delivery)
	ok, err := w.claim(ctx, j.PointID, att)
	if err != nil {
		log.Warn("claim", "err", err)
		m.NakWithDelay(time.Second)
		return
	}
	if !ok {
		if cur, _, err := w.res.currentClaim(ctx, j.PointID); err == nil && cur.Gen > att.Gen {
			// A job published again (a newer generation) supersedes this one.
			log.Info("superseded job dropped (a newer publication holds the point)")
			m.TermWithReason("superseded")
			return
		}
		log.Info("stale delivery skipped (a later attempt holds the point)")
		return
	}
	start := time.Now()
	w.setCurrent(ctx, j.PointID)
	defer w.setCurrent(context.WithoutCancel(ctx), "")

	// Heartbeats keep the delivery ours while the point is computed.
	hbCtx, stopHB := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(max(ackWait/4, 50*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				m.InProgress()
			}
		}
	}()
	var lastProg time.Time
	progress := func(stage string, f float64, msg string) {
		if time.Since(lastProg) < time.Second {
			return
		}
		lastProg = time.Now()
		if !w.isCurrent(ctx, j.PointID, att) {
			return
		}
		sp := stageSpan[stage]
		frac := sp[0] + (sp[1]-sp[0])*min(max(f, 0), 1)
		b, _ := json.Marshal(ProgressReport{Attempt: att, Worker: w.opt.Name, Frac: frac, Msg: msg})
		w.res.progress.Put(ctx, j.PointID, b)
	}
	pr, err := w.compute(ctx, &j, progress)
	stopHB()
	if ctx.Err() != nil {
		// Stopping: hand the job back at once.
		m.Nak()
		return
	}
	if !w.isCurrent(ctx, j.PointID, att) {
		log.Info("stale result dropped (the job was redelivered meanwhile)")
		return
	}
	r := Result{SweepID: j.SweepID, PointID: j.PointID, Attempt: att, Worker: w.opt.Name,
		ComputeSec: time.Since(start).Seconds()}
	if err != nil {
		r.Error = fmt.Sprintf("worker %s: %v", w.opt.Name, err)
		r.Final = maxDeliver > 0 && int(att.Delivery) >= maxDeliver
		log.Warn("point failed", "err", r.Error, "final", r.Final)
	} else {
		up := time.Now()
		for _, f := range pr.Files {
			if _, err := w.res.blobs.GetInfo(ctx, f.SHA256); err == nil {
				continue
			}
			if _, err := w.res.blobs.PutBytes(ctx, f.SHA256, f.Data); err != nil {
				log.Warn("artifact upload", "err", err)
				m.NakWithDelay(time.Second)
				return
			}
		}
		r.Point = pr
		r.UploadSec = time.Since(up).Seconds()
	}
	b, err := json.Marshal(r)
	if err != nil {
		m.Term()
		return
	}
	id := fmt.Sprintf("%s@%d.%d", j.PointID, att.Gen, att.Delivery)
	if _, err := w.res.js.PublishMsg(ctx, &nats.Msg{Subject: ResultSubject(j.SweepID), Data: b},
		jetstream.WithMsgID(id)); err != nil {
		log.Warn("publish result", "err", err)
		m.NakWithDelay(time.Second)
		return
	}
	switch {
	case r.Error == "":
		m.DoubleAck(ctx)
		st := w.nc.Stats() // cumulative, this connection
		log.Info("point done", "seconds", r.ComputeSec, "upload_s", r.UploadSec, "result_bytes", len(b),
			"conn_msgs_out", st.OutMsgs, "conn_bytes_out", st.OutBytes, "conn_msgs_in", st.InMsgs, "conn_bytes_in", st.InBytes)
	case r.Final:
		m.TermWithReason("failed: " + r.Error)
	default:
		m.NakWithDelay(time.Second)
	}
}

// compute runs the point step of a job.
func (w *Worker) compute(ctx context.Context, j *Job, progress sweep.Progress) (*sweep.PointResult, error) {
	comp, err := w.computer(ctx, j)
	if err != nil {
		return nil, err
	}
	in := j.Input
	in.Config.Threads = w.threads(in.Config.Threads)
	return comp.Compute(ctx, in, progress)
}

// computer returns the sweep.Computer of the job's model and data set,
// keeping the last one (its calibrated model) for the next job.
func (w *Worker) computer(ctx context.Context, j *Job) (*sweep.Computer, error) {
	key := fmt.Sprintf("%s|%s|%d", j.ModelSHA, j.Dataset, j.Calib)
	w.mu.Lock()
	comp := w.comp
	same := w.compKey == key
	w.mu.Unlock()
	if same {
		return comp, nil
	}
	g, err := w.model(ctx, j)
	if err != nil {
		return nil, err
	}
	d, err := w.data.Dataset(j.Dataset)
	if err != nil {
		return nil, err
	}
	if d.Test == nil || d.Test.Len() == 0 {
		return nil, fmt.Errorf("dataset %s has no test split", j.Dataset)
	}
	if err := evaluate.CheckCompatible(g, d); err != nil {
		return nil, fmt.Errorf("model %s on %s: %w", short(j.ModelSHA), j.Dataset, err)
	}
	comp = &sweep.Computer{Model: g, Data: d, Finetune: w.opt.Finetune, CalibImages: j.Calib}
	w.mu.Lock()
	w.comp, w.compKey = comp, key
	w.mu.Unlock()
	return comp, nil
}

func short(sha string) string { return sha[:min(len(sha), 12)] }

// model loads the job's model, from the cache or the object store.
func (w *Worker) model(ctx context.Context, j *Job) (*nn.Graph, error) {
	if len(j.ModelSHA) != 64 {
		return nil, fmt.Errorf("model sha256 %q is malformed", j.ModelSHA)
	}
	ext := filepath.Ext("x" + j.ModelExt)
	if ext != j.ModelExt || len(ext) > 16 {
		return nil, fmt.Errorf("model file extension %q is malformed", j.ModelExt)
	}
	dir := filepath.Join(w.opt.CacheDir, "models")
	path := filepath.Join(dir, j.ModelSHA+ext)
	if _, err := os.Stat(path); err != nil {
		data, err := w.res.blobs.GetBytes(ctx, j.ModelSHA)
		if err != nil {
			return nil, fmt.Errorf("model %s from the object store: %w", short(j.ModelSHA), err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != j.ModelSHA {
			return nil, fmt.Errorf("model %s: object store bytes do not match their sha256", short(j.ModelSHA))
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, err
		}
		tmp := path + ".tmp" + fmt.Sprint(os.Getpid())
		if err := os.WriteFile(tmp, data, 0o640); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return nil, err
		}
	}
	g, err := modelio.Load(path, modelio.Options{})
	if err != nil && j.ModelArch != "" {
		if g2, err2 := modelio.Load(path, modelio.Options{Arch: j.ModelArch}); err2 == nil {
			g, err = g2, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot load model %s: %w", short(j.ModelSHA), err)
	}
	return g, nil
}
