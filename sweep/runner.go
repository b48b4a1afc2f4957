package sweep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/evaluate"
	"github.com/rmprune/rmprune/internal/version"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/train"
)

// DefaultBenchTime is the least time each timing of a point runs for (after
// warm-up, and at least bench's minimum number of runs): short, because a
// sweep times many networks on a small machine.
const DefaultBenchTime = 300 * time.Millisecond

// ErrInterrupted, given as the cause of the context's cancellation
// (context.WithCancelCause), makes Run leave the sweep "interrupted" —
// resumable, as after a crash — instead of "cancelled". A server shutting
// down uses it.
var ErrInterrupted = errors.New("sweep: interrupted")

// ErrFinetuneUnavailable is wrapped (with ErrConfig) in the error for a sweep
// with finetune_epochs > 0 when the runner's fine-tuning is switched off
// (NoFinetune).
var ErrFinetuneUnavailable = errors.New("fine-tuning is not available here (finetune_epochs must be 0)")

// BuiltinDatasets are the dataset names every runner knows, with their specs.
// Read only.
var BuiltinDatasets = map[string]string{"mnist": "mnist", "fashion-mnist": "fashion-mnist"}

// FinetuneOptions are passed to a Runner's Finetune function.
type FinetuneOptions struct {
	Epochs  int
	Limit   int // train on the first Limit training images; 0: all (Runner.FinetuneLimit)
	Batch   int // the sweep's batch; the function may use its own training batch instead
	Threads int
	// MaskTrained says the pruned network comes from a mask-trained model:
	// its BatchNorm scales carry the folded masks (γ·m, often ≪ 1), so the
	// same step size is a far larger relative step than in training and Train
	// fine-tunes at MaskTrainedFinetuneLR instead.
	MaskTrained bool
	// KeepCopies freezes RM's copy structure (train.Options.KeepCopies): form
	// rmnet unless the sweep's train_copies is set.
	KeepCopies bool
	// Progress, when not nil, takes the fraction of the fine-tuning done (0..1).
	Progress func(frac float64)
}

// FinetuneFunc fine-tunes a pruned network (form rmnet: the BN-kept plain
// net; form resnet: the smaller ResNet) on d's training split and returns the
// tuned network. It must not modify g, and should stop with ctx's error when
// ctx is cancelled.
type FinetuneFunc func(ctx context.Context, g *nn.Graph, d *dataset.Dataset, opt FinetuneOptions) (*nn.Graph, error)

// Runner computes sweeps stored in DB. Set its fields before the first Run
// and do not change them after; then one Runner may run several sweeps one
// after the other or concurrently (concurrent sweeps time each other,
// though: run one at a time). It keeps the last data set it opened for the
// next sweep. Do not copy a Runner after first use.
type Runner struct {
	// DB holds the sweeps, their models (model files are resolved relative
	// to DB.ArtifactDir) and receives points and artifacts.
	DB *store.DB
	// Datasets maps the extra dataset names this runner knows to their
	// dataset.Open specs (e.g. "cifar10" → "cifar10:/data/cifar"). The
	// names of BuiltinDatasets are always known.
	Datasets map[string]string
	// Version is recorded with every point (the rmprune binary version);
	// empty means the module's VCS revision, else "dev".
	Version string
	// Finetune fine-tunes pruned networks; nil means Train (the train
	// package).
	Finetune FinetuneFunc
	// NoFinetune switches fine-tuning off: sweeps with finetune_epochs > 0
	// are refused with ErrFinetuneUnavailable.
	NoFinetune bool
	// FinetuneLimit > 0 caps the training images of every fine-tuning epoch
	// (tests); a sweep's own finetune_limit applies when smaller or when
	// this is 0, which uses the whole training split.
	FinetuneLimit int
	// BenchTime is the least time of each timing; 0 means DefaultBenchTime.
	BenchTime time.Duration
	// CalibImages is the size of the calibration batch, drawn in a fixed
	// order from the dataset's training split, on which the statistics of
	// each residual block's input and sum are measured once per sweep
	// (DESIGN, BN-kept form): the scales slim ranks the RMNet's reserved
	// channels and block outputs by. Blocks whose checkpoint carries them
	// (running1/running2) are not measured. 0 picks a size that fits a
	// budget of the slow reference forward (see CalibMACs); negative: no
	// measurement (the checkpoint's statistics, else mean 0, variance 1).
	CalibImages int
	// Latency configures the interleaved latency pass that ends every sweep
	// (sweep/latency.go) and Remeasure.
	Latency LatencyOptions
	// Targets accepts sweeps that name a worker target (a cluster
	// coordinator places their points); the in-process runner refuses them.
	Targets bool
	// OnPoint, when not nil, is called after each point the run measures
	// and stores (not for points found already stored).
	OnPoint func(p store.Point)

	mu       sync.Mutex // guards the cache below
	lastSpec string     // the last dataset opened, kept for the next sweep
	lastData *dataset.Dataset
}

// Dataset opens the data set of a name the runner knows (see DatasetSpec).
// The runner keeps the last one it opened, so checking a name with Dataset
// before a Run costs nothing more. Errors for unknown names wrap ErrConfig.
func (r *Runner) Dataset(name string) (*dataset.Dataset, error) {
	spec, err := r.DatasetSpec(name)
	if err != nil {
		return nil, err
	}
	d, err := r.openDataset(spec)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	return d, nil
}

// openDataset opens spec, reusing the last data set opened (a split is
// never modified, so sweeps may share it).
func (r *Runner) openDataset(spec string) (*dataset.Dataset, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastData != nil && r.lastSpec == spec {
		return r.lastData, nil
	}
	d, err := dataset.Open(spec)
	if err != nil {
		return nil, err
	}
	r.lastSpec, r.lastData = spec, d
	return d, nil
}

// DatasetSpec returns the dataset.Open spec of a dataset name, or an error
// wrapping ErrConfig for a name the runner does not know. Names never are
// paths: a request can only pick among the configured data sets.
func (r *Runner) DatasetSpec(name string) (string, error) {
	if spec, ok := r.Datasets[name]; ok && spec != "" {
		return spec, nil
	}
	if spec, ok := BuiltinDatasets[name]; ok {
		return spec, nil
	}
	known := slices.Sorted(func(yield func(string) bool) {
		for k := range BuiltinDatasets {
			if !yield(k) {
				return
			}
		}
		for k := range r.Datasets {
			if _, dup := BuiltinDatasets[k]; !dup && !yield(k) {
				return
			}
		}
	})
	return "", fmt.Errorf("sweep: %w: unknown dataset %q (known: %v)", ErrConfig, name, known)
}

// CanFinetune reports whether sweeps with finetune_epochs > 0 can run.
func (r *Runner) CanFinetune() bool { return !r.NoFinetune }

// finetune returns the fine-tuning function in use.
func (r *Runner) finetune() FinetuneFunc {
	if r.Finetune != nil {
		return r.Finetune
	}
	return Train
}

// Validate checks c (after c.Defaults()) against the runner: the
// configuration itself, the dataset name and fine-tuning support. The web
// layer calls it before CreateSweep to answer 422 at once.
func (r *Runner) Validate(c *Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if _, err := r.DatasetSpec(c.Dataset); err != nil {
		return err
	}
	if c.FinetuneEpochs > 0 && !r.CanFinetune() {
		return fmt.Errorf("sweep: %w: %w", ErrConfig, ErrFinetuneUnavailable)
	}
	if c.Target != "" && !r.Targets {
		return fmt.Errorf("sweep: %w: target %q: this server runs sweeps in process (start it with --cluster)", ErrConfig, c.Target)
	}
	return nil
}

// Key names a point of a sweep.
type Key struct {
	Form  string
	Ratio float64 // rounded with store.NormRatio; 0 is the unpruned reference
}

// String writes k as form@ratio, e.g. rmnet@0.3.
func (k Key) String() string { return fmt.Sprintf("%s@%s", k.Form, formatRatio(k.Ratio)) }

// Plan lists the points of a sweep in the order Run measures them: the
// unpruned ResNet and the unpruned RMNet (ratio 0) first, then each form's
// ratios in increasing order.
func Plan(c *Config) []Key {
	keys := []Key{{FormResNet, 0}, {FormRMNet, 0}}
	for _, f := range c.Forms {
		for _, ratio := range c.PointRatios() {
			keys = append(keys, Key{f, ratio})
		}
	}
	return keys
}

// Run computes sweep sweepID: it marks it running, loads its model and
// dataset once, and measures each point of Plan that the store does not hold
// yet — prune, [fine-tune], evaluate top-1/top-5 on the test split, time
// batch 1 (latency p50/p90, per-layer) and the sweep's batch (images/s) on
// the SIMD engine — and stores it with its artifacts (our safetensors, ONNX
// and, for pruned points, the recipe JSON) under DB.ArtifactDir()/sweeps/ID/.
// Points already stored are skipped, so a cancelled, failed or interrupted
// sweep resumes where it stopped. A ratio the pruning guards refuse
// (pruning.ErrNoStats, ErrDestroyed) is stored as a refused point with its
// reason, and the sweep goes on.
//
// progress, when not nil, gets the fraction done (0..1, non-decreasing) and a
// line saying what is being done; the fraction is also saved in the store.
// It is called from Run's goroutine.
//
// The sweep ends done (Run returns nil), cancelled when ctx is cancelled
// (Run returns ctx's error), interrupted when ctx's cause is ErrInterrupted,
// or failed with the error's message (Run returns the error).
func (r *Runner) Run(ctx context.Context, sweepID int64, progress func(frac float64, msg string)) error {
	if r.DB == nil {
		return errors.New("sweep: runner has no database")
	}
	s, err := r.DB.Sweep(ctx, sweepID)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if err := r.DB.SetSweepStatus(ctx, sweepID, store.StatusRunning, ""); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	j := &job{r: r, s: s, progress: progress, frac: s.Progress}
	err = j.safeRun(ctx)
	// Record the outcome even when ctx is done.
	bg := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		if err := r.DB.SetSweepStatus(bg, sweepID, store.StatusDone, ""); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		j.report(1, "done")
		return nil
	case ctx.Err() != nil:
		status := store.StatusCancelled
		if errors.Is(context.Cause(ctx), ErrInterrupted) {
			status = store.StatusInterrupted
		}
		if serr := r.DB.SetSweepStatus(bg, sweepID, status, ""); serr != nil {
			return fmt.Errorf("sweep: %w (after: %w)", serr, ctx.Err())
		}
		return ctx.Err()
	default:
		if serr := r.DB.SetSweepStatus(bg, sweepID, store.StatusFailed, oneLine(err.Error())); serr != nil {
			return fmt.Errorf("%w (and: %w)", err, serr)
		}
		return err
	}
}

// job is one Run.
type job struct {
	r        *Runner
	s        store.Sweep
	cfg      Config
	g        *nn.Graph // the model as loaded
	d        *dataset.Dataset
	comp     *Computer // computes the points of g on d
	version  string
	progress func(float64, string)

	total, done int       // points in the plan, points finished
	frac        float64   // last fraction reported
	saved       time.Time // last progress write to the store
	savedFrac   float64
}

// safeRun runs the job, turning a panic in a pruning, conversion or export
// step into the sweep's failure, so that a server's other sweeps go on.
func (j *job) safeRun(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sweep: internal error (a bug): %v", p)
		}
	}()
	return j.run(ctx)
}

func (j *job) run(ctx context.Context) error {
	r := j.r
	j.cfg = FromSweep(j.s)
	j.cfg.Defaults()
	if err := r.Validate(&j.cfg); err != nil {
		return err
	}
	j.version = r.Version
	if j.version == "" {
		j.version = version.String()
	}
	j.report(j.frac, "loading model and data")
	m, err := r.DB.Model(ctx, j.s.ModelID)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	path := m.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(r.DB.ArtifactDir(), path)
	}
	if j.g, err = modelio.Load(path, modelio.Options{}); err != nil && m.Arch != "" {
		// A state dict whose architecture was given by hand at upload.
		if g, err2 := modelio.Load(path, modelio.Options{Arch: m.Arch}); err2 == nil {
			j.g, err = g, nil
		}
	}
	if err != nil {
		return fmt.Errorf("sweep: model %d: %w", m.ID, err)
	}
	if err := j.cfg.Check(j.g); err != nil {
		return err
	}
	if j.d, err = r.Dataset(j.cfg.Dataset); err != nil {
		return err
	}
	if j.d.Test == nil || j.d.Test.Len() == 0 {
		return fmt.Errorf("sweep: dataset %s has no test split", j.cfg.Dataset)
	}
	if err := evaluate.CheckCompatible(j.g, j.d); err != nil {
		return fmt.Errorf("sweep: model %s on %s: %w", m.Name, j.cfg.Dataset, err)
	}
	if j.cfg.FinetuneEpochs > 0 && r.Finetune == nil {
		// Find out now, not after the references, that training cannot run.
		if _, err := train.CheckData(j.g, j.d); err != nil {
			return fmt.Errorf("sweep: fine-tune %s on %s: %w", m.Name, j.cfg.Dataset, err)
		}
	}

	j.comp = &Computer{Model: j.g, Data: j.d, Finetune: r.Finetune, CalibImages: r.CalibImages}
	plan := Plan(&j.cfg)
	have, err := r.DB.Points(ctx, j.s.ID)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	stored := map[Key]store.Point{}
	for _, p := range have {
		stored[Key{p.Form, store.NormRatio(p.Ratio)}] = p
	}
	j.total = len(plan)
	for _, k := range plan {
		if _, ok := stored[k]; ok {
			j.done++
		}
	}
	j.report(float64(j.done)/float64(j.total), fmt.Sprintf("%d of %d points already stored", j.done, j.total))
	for _, k := range plan {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p, ok := stored[k]; ok {
			// A process that died between storing a point and its
			// artifacts left them missing: write them now (a refused
			// point has none).
			if p.Refused() {
				continue
			}
			if err := j.repairArtifacts(ctx, k, p); err != nil {
				return err
			}
			continue
		}
		p, err := j.point(ctx, k)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("sweep: point %s: %w", k, err)
		}
		j.done++
		j.saved = time.Time{} // save every whole point
		msg := fmt.Sprintf("%s: top-1 %.2f%%, %.3f ms", k, 100*p.Top1, p.LatencyMSP50)
		if p.Refused() {
			msg = fmt.Sprintf("%s: refused (%s); going on", k, p.Error)
		}
		j.report(float64(j.done)/float64(j.total), msg)
		if r.OnPoint != nil {
			r.OnPoint(p)
		}
	}
	// All points built: time them together (sweep/latency.go).
	return j.latencyPass(ctx)
}

// Stages of a point and the share of its progress each takes.
var stageShare = map[string][2]float64{ // start, end within the point
	"prune": {0, 0.1}, "finetune": {0.1, 0.5}, "evaluate": {0.1, 0.55}, "bench": {0.55, 0.9}, "save": {0.9, 1},
}

// stage reports progress within the current point: stage's share scaled by f in [0,1].
func (j *job) stage(k Key, name string, f float64, msg string) {
	sh := stageShare[name]
	if name == "evaluate" && j.cfg.FinetuneEpochs > 0 && k.Ratio > 0 {
		sh = [2]float64{0.5, 0.7}
	}
	if name == "bench" && j.cfg.FinetuneEpochs > 0 && k.Ratio > 0 {
		sh = [2]float64{0.7, 0.9}
	}
	within := sh[0] + (sh[1]-sh[0])*min(max(f, 0), 1)
	j.report((float64(j.done)+within)/float64(j.total), k.String()+": "+msg)
}

// report passes progress on and saves it in the store (at most once a
// second, and at every whole point: run clears j.saved).
func (j *job) report(frac float64, msg string) {
	frac = min(max(frac, j.frac), 1) // never goes back
	j.frac = frac
	if j.progress != nil {
		j.progress(frac, msg)
	}
	if frac != j.savedFrac && (time.Since(j.saved) >= time.Second || frac == 1) {
		// Progress is advisory: a failed write must not stop the sweep.
		if err := j.r.DB.SetSweepProgress(context.Background(), j.s.ID, frac); err == nil {
			j.saved, j.savedFrac = time.Now(), frac
		}
	}
}

// network is the net of one point and what describes it.
type network struct {
	g        *nn.Graph
	channels []store.LayerChannels
	recipe   *pruning.Recipe
}

// convChannels lists every conv's output channels, unchanged (an unpruned net).
func convChannels(g *nn.Graph) []store.LayerChannels {
	var ls []store.LayerChannels
	for _, n := range g.Nodes {
		if n.Op == nn.OpConv {
			ls = append(ls, store.LayerChannels{Layer: n.Name, Before: n.Out, After: n.Out})
		}
	}
	return ls
}

// Input returns the PointInput of point k of the job's sweep.
func (j *job) input(k Key) PointInput {
	return j.r.PointInput(&j.cfg, k, j.version)
}

// PointInput returns the input of point k of a sweep configured by cfg
// (after Defaults), with the runner's limits applied.
func (r *Runner) PointInput(cfg *Config, k Key, version string) PointInput {
	limit := cfg.FinetuneLimit
	if limit == 0 || (r.FinetuneLimit > 0 && r.FinetuneLimit < limit) {
		limit = r.FinetuneLimit
	}
	return PointInput{Form: k.Form, Ratio: k.Ratio, Config: *cfg, FinetuneLimit: limit, BenchTime: r.BenchTime,
		Version: version}
}

// point measures and stores point k.
func (j *job) point(ctx context.Context, k Key) (store.Point, error) {
	res, err := j.comp.Compute(ctx, j.input(k), func(stage string, f float64, msg string) {
		j.stage(k, stage, f, msg)
	})
	if err != nil {
		return store.Point{}, err
	}
	j.stage(k, "save", 0.5, "writing artifacts")
	stored, _, err := StoreResult(context.WithoutCancel(ctx), j.r.DB, j.s.ID, res, "")
	return stored, err
}

// repairArtifacts writes the artifacts of a stored point that has none (a
// process died between AddPoint and AddArtifact).
func (j *job) repairArtifacts(ctx context.Context, k Key, p store.Point) error {
	have, err := j.r.DB.Artifacts(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	want := 2
	if k.Ratio > 0 {
		want = 3
	}
	if len(have) >= want {
		return nil
	}
	if j.cfg.FinetuneEpochs > 0 && k.Ratio > 0 {
		// The fine-tuned weights are lost: do not store untuned ones in
		// their place.
		return nil
	}
	net, err := j.comp.build(&j.cfg, k, nil)
	if err != nil {
		return fmt.Errorf("sweep: point %s: %w", k, err)
	}
	enc, err := encodeArtifacts(k, net, j.g.InputShape(), j.version)
	if err != nil {
		return fmt.Errorf("sweep: point %s: %w", k, err)
	}
	files, err := WriteFiles(j.r.DB.ArtifactDir(), j.s.ID, enc)
	if err != nil {
		return fmt.Errorf("sweep: point %s: %w", k, err)
	}
	return addArtifacts(ctx, j.r.DB, p.ID, files)
}

// formatRatio writes a stored ratio briefly: 0.3, 0.125.
func formatRatio(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

// calibBatch draws n training images (the test split when there is no
// training split) in a fixed shuffled order, shaped and normalised for g.
func calibBatch(g *nn.Graph, d *dataset.Dataset, n int) (*nn.Act, error) {
	split := d.Train
	if split == nil || split.Len() == 0 {
		split = d.Test
	}
	n = min(n, split.Len())
	in := g.InputShape()
	var mean, std []float32
	if len(g.Mean) > 0 {
		mean, std = g.Mean, g.Std
	}
	l, err := dataset.NewLoader(split, dataset.LoaderOptions{Batch: n, Shape: [3]int{in.C, in.H, in.W},
		Mean: mean, Std: std, Shuffle: true, Seed: 1})
	if err != nil {
		return nil, err
	}
	b := l.NewBatch()
	l.Fill(b, 0, 0)
	return &nn.Act{N: b.N(), C: in.C, H: in.H, W: in.W, D: b.X}, nil
}

// oneLine joins an error's lines for the store's error column.
func oneLine(s string) string {
	out := make([]rune, 0, len(s))
	space := false
	for _, c := range s {
		if c == '\n' || c == '\r' || c == '\t' || c == ' ' {
			space = true
			continue
		}
		if space && len(out) > 0 {
			out = append(out, ' ')
		}
		space = false
		out = append(out, c)
	}
	return string(out)
}

// removeFiles deletes written artifact files (paths relative to dir).
func removeFiles(dir string, files map[string]store.Artifact) {
	for _, a := range files {
		os.Remove(filepath.Join(dir, a.Path))
	}
}
