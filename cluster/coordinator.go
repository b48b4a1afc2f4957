package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/internal/version"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// Coordinator runs sweeps on workers: it implements web.SweepRunner, so the
// server's queue, progress stream and pages work as with the in-process
// runner. It alone writes the database.
type Coordinator struct {
	db     *store.DB
	runner *sweep.Runner // validation, data set names, version, limits
	nc     *nats.Conn
	policy Policy
	log    *slog.Logger
	res    *resources

	mu      sync.Mutex
	wake    map[int64]chan struct{} // Run of a sweep waits on it
	failed  map[int64]string        // sweep → the error of a point that failed for good
	lastErr map[string]string       // point id → last error a worker reported

	// Counters (for tests and the protocol-cost report).
	Stored, Stale, Duplicate atomic.Int64
}

// NewCoordinator creates the JetStream resources on nc. runner supplies the
// data set names, limits and version; its Targets is set.
func NewCoordinator(ctx context.Context, nc *nats.Conn, db *store.DB, runner *sweep.Runner, p Policy, log *slog.Logger) (*Coordinator, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	res, err := setup(ctx, js, p, true)
	if err != nil {
		return nil, err
	}
	runner.Targets = true
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Coordinator{db: db, runner: runner, nc: nc, policy: p, log: log, res: res,
		wake: map[int64]chan struct{}{}, failed: map[int64]string{}, lastErr: map[string]string{}}
	if err := c.ensureConsumer(ctx, DefaultTarget); err != nil {
		return nil, err
	}
	return c, nil
}

// ensureConsumer creates the durable jobs consumer of a target.
func (c *Coordinator) ensureConsumer(ctx context.Context, target string) error {
	_, err := c.res.js.CreateOrUpdateConsumer(ctx, JobsStream, jetstream.ConsumerConfig{
		Durable: ConsumerName(target), FilterSubject: "rmprune.jobs." + target + ".>",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: c.policy.AckWait, MaxDeliver: c.policy.MaxDeliver,
		MaxAckPending: 1000, InactiveThreshold: 0,
	})
	if err != nil {
		return fmt.Errorf("cluster: consumer for target %s: %w", target, err)
	}
	return nil
}

// Start consumes results and delivery advisories until ctx is done.
func (c *Coordinator) Start(ctx context.Context) error {
	cons, err := c.res.js.CreateOrUpdateConsumer(ctx, ResultsStream, jetstream.ConsumerConfig{
		Durable: "coordinator", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 2 * time.Minute,
		MaxAckPending: 64,
	})
	if err != nil {
		return fmt.Errorf("cluster: results consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { c.handleResult(ctx, m) })
	if err != nil {
		return fmt.Errorf("cluster: consume results: %w", err)
	}
	sub, err := c.nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+JobsStream+".*", func(m *nats.Msg) {
		c.handleMaxDeliveries(ctx, m.Data)
	})
	if err != nil {
		cc.Stop()
		return fmt.Errorf("cluster: advisories: %w", err)
	}
	go func() {
		<-ctx.Done()
		cc.Stop()
		sub.Unsubscribe()
	}()
	return nil
}

// Validate checks a sweep configuration (the runner's data sets, limits;
// targets allowed).
func (c *Coordinator) Validate(cfg *sweep.Config) error { return c.runner.Validate(cfg) }

// Dataset opens a data set the runner knows by name (the dashboard's
// mask-training jobs run in the coordinator's process).
func (c *Coordinator) Dataset(name string) (*dataset.Dataset, error) { return c.runner.Dataset(name) }

// Workers lists the registered workers, by name.
func (c *Coordinator) Workers(ctx context.Context) ([]WorkerInfo, error) {
	return listWorkers(ctx, c.res.workers)
}

func listWorkers(ctx context.Context, kv jetstream.KeyValue) ([]WorkerInfo, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: workers: %w", err)
	}
	var out []WorkerInfo
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // expired meanwhile
		}
		var w WorkerInfo
		if json.Unmarshal(e.Value(), &w) == nil {
			out = append(out, w)
		}
	}
	return out, nil
}

func (c *Coordinator) notify(sweepID int64) {
	c.mu.Lock()
	ch := c.wake[sweepID]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// handleResult stores the first current result of a point.
func (c *Coordinator) handleResult(ctx context.Context, m jetstream.Msg) {
	var r Result
	if err := json.Unmarshal(m.Data(), &r); err != nil {
		c.log.Warn("cluster: undecodable result dropped", "err", err)
		m.Term()
		return
	}
	claim, _, err := c.res.currentClaim(ctx, r.PointID)
	if err != nil {
		m.NakWithDelay(time.Second)
		return
	}
	if claim.Attempt != r.Attempt {
		// A delivery that is no longer current (a paused or partitioned
		// worker whose job was redelivered): fenced off.
		c.Stale.Add(1)
		c.log.Info("cluster: stale result ignored", "point", r.PointID, "worker", r.Worker,
			"delivery", r.Delivery, "current", claim.Delivery)
		m.Ack()
		return
	}
	if _, err := c.db.Sweep(ctx, r.SweepID); errors.Is(err, store.ErrNotFound) {
		m.Ack()
		return
	} else if err != nil {
		m.NakWithDelay(time.Second)
		return
	}
	if r.Error != "" {
		c.mu.Lock()
		c.lastErr[r.PointID] = r.Error
		if r.Final {
			c.failed[r.SweepID] = fmt.Sprintf("point %s failed after %d deliveries: %s", r.PointID, r.Delivery, r.Error)
		}
		c.mu.Unlock()
		c.log.Warn("cluster: point attempt failed", "point", r.PointID, "worker", r.Worker, "delivery", r.Delivery, "err", r.Error)
		m.Ack()
		c.notify(r.SweepID)
		return
	}
	if r.Point == nil {
		m.Term()
		return
	}
	t0 := time.Now()
	pr := *r.Point
	pr.Files = append([]sweep.File(nil), pr.Files...)
	for i := range pr.Files {
		data, err := c.res.blobs.GetBytes(ctx, pr.Files[i].SHA256)
		if err != nil {
			c.log.Warn("cluster: artifact not readable yet", "point", r.PointID, "sha256", pr.Files[i].SHA256, "err", err)
			m.NakWithDelay(2 * time.Second)
			return
		}
		pr.Files[i].Data = data
	}
	_, created, err := sweep.StoreResult(context.WithoutCancel(ctx), c.db, r.SweepID, &pr, r.Worker)
	if err != nil {
		c.log.Error("cluster: store point", "point", r.PointID, "err", err)
		m.NakWithDelay(2 * time.Second)
		return
	}
	if created {
		c.Stored.Add(1)
	} else {
		c.Duplicate.Add(1)
	}
	md, _ := m.Metadata()
	lag := 0.0
	if md != nil {
		lag = time.Since(md.Timestamp).Seconds() // result published → stored
	}
	c.log.Info("cluster: point stored", "point", r.PointID, "worker", r.Worker, "created", created,
		"compute_s", r.ComputeSec, "upload_s", r.UploadSec, "publish_to_stored_s", lag,
		"store_s", time.Since(t0).Seconds(), "result_bytes", len(m.Data()))
	m.Ack()
	c.notify(r.SweepID)
}

// handleMaxDeliveries fails the point of a job no worker finished in
// MaxDeliver deliveries (workers killed every time).
func (c *Coordinator) handleMaxDeliveries(ctx context.Context, data []byte) {
	var a struct {
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries int    `json:"deliveries"`
	}
	if json.Unmarshal(data, &a) != nil || a.StreamSeq == 0 {
		return
	}
	st, err := c.res.js.Stream(ctx, JobsStream)
	if err != nil {
		return
	}
	raw, err := st.GetMsg(ctx, a.StreamSeq)
	if err != nil {
		return // acknowledged or terminated meanwhile
	}
	var j Job
	if json.Unmarshal(raw.Data, &j) != nil {
		return
	}
	if ps, err := c.db.Points(ctx, j.SweepID); err == nil {
		for _, p := range ps {
			if PointID(j.SweepID, sweep.Key{Form: p.Form, Ratio: store.NormRatio(p.Ratio)}) == j.PointID {
				st.DeleteMsg(ctx, a.StreamSeq) // a duplicate job of a stored point
				return
			}
		}
	}
	c.mu.Lock()
	msg := fmt.Sprintf("point %s: no worker finished it in %d deliveries", j.PointID, a.Deliveries)
	if e := c.lastErr[j.PointID]; e != "" {
		msg += " (last error: " + e + ")"
	}
	if _, ok := c.failed[j.SweepID]; !ok {
		c.failed[j.SweepID] = msg
	}
	c.mu.Unlock()
	st.DeleteMsg(ctx, a.StreamSeq)
	c.notify(j.SweepID)
}

// Run computes sweep sweepID on the workers of its target and leaves it
// done, failed, cancelled or (ctx's cause sweep.ErrInterrupted)
// interrupted, as sweep.Runner.Run does. Points already stored are not
// published again; jobs still queued from an earlier run are kept (publish
// dedup by point id), so a coordinator restarted mid-sweep picks up the
// results its workers published meanwhile.
func (c *Coordinator) Run(ctx context.Context, sweepID int64, progress func(frac float64, msg string)) error {
	s, err := c.db.Sweep(ctx, sweepID)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := c.db.SetSweepStatus(ctx, sweepID, store.StatusRunning, ""); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	err = c.run(ctx, s, progress)
	bg := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		if err := c.db.SetSweepStatus(bg, sweepID, store.StatusDone, ""); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		if progress != nil {
			progress(1, "done")
		}
		return nil
	case ctx.Err() != nil:
		status := store.StatusCancelled
		if errors.Is(context.Cause(ctx), sweep.ErrInterrupted) {
			status = store.StatusInterrupted
		} else {
			c.purge(bg, s)
		}
		if serr := c.db.SetSweepStatus(bg, sweepID, status, ""); serr != nil {
			return fmt.Errorf("cluster: %w (after: %w)", serr, ctx.Err())
		}
		return ctx.Err()
	default:
		c.purge(bg, s)
		if serr := c.db.SetSweepStatus(bg, sweepID, store.StatusFailed, err.Error()); serr != nil {
			return fmt.Errorf("%w (and: %w)", err, serr)
		}
		return err
	}
}

func target(s store.Sweep) string {
	if s.Target == "" {
		return DefaultTarget
	}
	return s.Target
}

// purge drops the sweep's queued jobs (cancelled or failed).
func (c *Coordinator) purge(ctx context.Context, s store.Sweep) {
	if st, err := c.res.js.Stream(ctx, JobsStream); err == nil {
		st.Purge(ctx, jetstream.WithPurgeSubject(JobSubject(target(s), s.ID)))
	}
}

func (c *Coordinator) run(ctx context.Context, s store.Sweep, progress func(float64, string)) error {
	report := func(f float64, msg string) {
		if progress != nil {
			progress(f, msg)
		}
	}
	cfg := sweep.FromSweep(s)
	cfg.Defaults()
	if err := c.runner.Validate(&cfg); err != nil {
		return err
	}
	m, err := c.db.Model(ctx, s.ModelID)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	path := m.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(c.db.ArtifactDir(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cluster: model %d: %w", m.ID, err)
	}
	if g, err := modelio.Load(path, modelio.Options{Arch: m.Arch}); err == nil {
		if err := cfg.Check(g); err != nil {
			return err
		}
	}
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	report(s.Progress, "sending the model to the object store")
	if _, err := c.res.blobs.GetInfo(ctx, sha); err != nil {
		if _, err := c.res.blobs.PutBytes(ctx, sha, data); err != nil {
			return fmt.Errorf("cluster: model %d to the object store: %w", m.ID, err)
		}
	}
	tgt := target(s)
	if err := c.ensureConsumer(ctx, tgt); err != nil {
		return err
	}
	wake := make(chan struct{}, 1)
	c.mu.Lock()
	c.wake[s.ID] = wake
	delete(c.failed, s.ID)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.wake, s.ID)
		c.mu.Unlock()
	}()

	plan := sweep.Plan(&cfg)
	have, err := c.db.Points(ctx, s.ID)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	stored := map[string]bool{}
	for _, p := range have {
		stored[PointID(s.ID, sweep.Key{Form: p.Form, Ratio: store.NormRatio(p.Ratio)})] = true
	}
	ver := c.runner.Version
	if ver == "" {
		ver = version.String()
	}
	gen := time.Now().UnixNano()
	published := 0
	for _, k := range plan {
		pid := PointID(s.ID, k)
		if stored[pid] {
			continue
		}
		j := Job{SweepID: s.ID, PointID: pid, Gen: gen, ModelSHA: sha, ModelExt: filepath.Ext(path),
			ModelArch: m.Arch, Dataset: cfg.Dataset, Calib: c.runner.CalibImages,
			Input: c.runner.PointInput(&cfg, k, ver)}
		b, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		msg := &nats.Msg{Subject: JobSubject(tgt, s.ID), Data: b}
		if _, err := c.res.js.PublishMsg(ctx, msg, jetstream.WithMsgID(pid)); err != nil {
			return fmt.Errorf("cluster: publish %s: %w", pid, err)
		}
		published++
	}
	c.log.Info("cluster: sweep published", "sweep", s.ID, "target", tgt, "points", len(plan), "published", published)

	// Follow the points' progress (reports of the current attempt only).
	prog := map[string]float64{}
	var progMu sync.Mutex
	w, err := c.res.progress.Watch(ctx, fmt.Sprintf("s%d.>", s.ID))
	if err == nil {
		defer w.Stop()
		go func() {
			for e := range w.Updates() {
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				var r ProgressReport
				if json.Unmarshal(e.Value(), &r) != nil {
					continue
				}
				claim, _, err := c.res.currentClaim(ctx, e.Key())
				if err != nil || claim.Attempt != r.Attempt {
					continue // a stale delivery's progress
				}
				progMu.Lock()
				prog[e.Key()] = r.Frac
				progMu.Unlock()
			}
		}()
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var saved time.Time
	last := s.Progress
	for {
		c.mu.Lock()
		failed := c.failed[s.ID]
		c.mu.Unlock()
		if failed != "" {
			return errors.New(failed)
		}
		pts, err := c.db.Points(ctx, s.ID)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("cluster: %w", err)
		}
		done := map[string]bool{}
		for _, p := range pts {
			done[PointID(s.ID, sweep.Key{Form: p.Form, Ratio: store.NormRatio(p.Ratio)})] = true
		}
		n := 0
		partial := 0.0
		progMu.Lock()
		for _, k := range plan {
			pid := PointID(s.ID, k)
			if done[pid] {
				n++
			} else {
				partial += prog[pid]
			}
		}
		progMu.Unlock()
		if n == len(plan) {
			c.db.SetSweepProgress(context.WithoutCancel(ctx), s.ID, 1)
			st := c.nc.Stats()
			c.log.Info("cluster: sweep done", "sweep", s.ID, "points", n, "published", published,
				"coordinator_msgs_in", st.InMsgs, "coordinator_msgs_out", st.OutMsgs,
				"coordinator_bytes_in", st.InBytes, "coordinator_bytes_out", st.OutBytes)
			return nil
		}
		frac := max((float64(n)+partial)/float64(len(plan)), last) // never goes back
		last = frac
		report(frac, fmt.Sprintf("%d of %d points stored (target %s)", n, len(plan), tgt))
		if time.Since(saved) >= time.Second {
			c.db.SetSweepProgress(context.WithoutCancel(ctx), s.ID, frac)
			saved = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-tick.C:
		}
	}
}
