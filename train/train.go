// Package train trains rmprune's networks in Go: training-mode forward and
// backward passes for every layer type of the nn graph (convolutions on the
// SIMD GEMM kernels), softmax cross-entropy, SGD with momentum, weight decay
// and a cosine schedule, network slimming's sparsity penalty on BatchNorm γ,
// fine-tuning of pruned plain networks, evaluation, and atomic per-epoch
// checkpoints that a run can resume from exactly.
package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/safetensors"
)

// Options configure Run. DefaultOptions holds the CLI defaults.
type Options struct {
	Epochs   int     // passes over the training split (≥ 1)
	Batch    int     // images per step (default 128)
	LR       float64 // peak learning rate of the cosine schedule (> 0)
	WD       float64 // weight decay, on every parameter as PyTorch's default
	Momentum float64 // SGD momentum in [0, 1)
	Sparsity float64 // s of network slimming: s·sign(γ) added to BatchNorm γ gradients
	// MaskSparsity s and MaskThreshold t train the masks (nn.OpMask) of a
	// masked graph: s·sign(m) joins each mask's gradient (loss + s·Σ|m|) and
	// after every step a mask with |m| ≤ t is set to exactly 0 and stays 0.
	// Weight decay applies to masks as to every parameter (PyTorch's
	// default, as the RMNet reference code's optimizer does).
	MaskSparsity, MaskThreshold float64
	Seed                        uint64 // data order and augmentation (initial weights are the caller's)
	Threads                     int    // workers (default: the number of CPUs)
	// MaxSteps > 0 stops the run after that many steps of this invocation;
	// the report then has no test accuracy (a checkpoint is still written).
	MaxSteps int
	// Resume continues from the checkpoint state saved beside Out
	// (Out + ".state"), which must exist and match the hyperparameters.
	Resume bool
	// Out is the model file written (atomically) at the end of every epoch.
	Out string
	// Augment overrides the data set's recommended training augmentation.
	Augment *dataset.Augment
	// Limit > 0 trains on the first Limit training images; EvalLimit > 0
	// evaluates on the first EvalLimit test images.
	Limit, EvalLimit int
	// Progress, if not nil, is called after every step and every epoch.
	Progress func(Progress)
	// KeepCopies freezes RM's copy structure (Dirac rows, centre-only
	// columns; see Net.KeepCopies) so that a fine-tuned RMNet still runs it
	// as copies.
	KeepCopies bool
	// RecalibrateBN > 0 re-estimates every BatchNorm's running statistics
	// after the last step, from that many training images (rounded up to
	// whole batches, without augmentation, no weights change) as plain
	// averages of the batch statistics. A short fine-tuning run moves the
	// weights faster than the running averages (momentum 0.1) follow: on
	// the MNIST demo pruned and fine-tuned for 15 steps the running
	// statistics left top-1 at 94.5% where they were 99.3% once re-estimated.
	RecalibrateBN int
}

// DefaultOptions returns the training defaults of the CLI contract: lr 0.1,
// wd 5e-4, momentum 0.9, batch 128, no sparsity, threads = cores.
func DefaultOptions() Options {
	return Options{Epochs: 1, Batch: 128, LR: 0.1, WD: 5e-4, Momentum: 0.9, Threads: runtime.NumCPU()}
}

// Progress reports a run's state.
type Progress struct {
	Epoch, Epochs int     // 0-based epoch being run, total epochs
	Step, Steps   int     // steps done (all epochs), total steps
	EpochStep     int     // steps done in this epoch
	EpochSteps    int     // steps per epoch
	Loss          float64 // mean training loss over this epoch so far
	Acc           float64 // training top-1 over this epoch so far
	ImagesPerS    float64 // batch / median time of the last 64 steps
	LR            float64
	// EpochDone is set once per epoch, after evaluation and the checkpoint;
	// Top1 is the test accuracy then (NaN without a test split).
	EpochDone bool
	Top1      float64
}

// Report is the result of a run.
type Report struct {
	ImagesPerS float64  `json:"images_per_s"`
	Top1       *float64 `json:"top1"`           // nil when MaxSteps stopped the run or there is no test split
	Top5       *float64 `json:"top5,omitempty"` // when classes > 5
	Images     int      `json:"images"`         // test images evaluated
	Loss       float64  `json:"loss"`           // mean training loss of the last epoch run
	TrainTop1  float64  `json:"train_top1"`
	Epochs     int      `json:"epochs"`
	Steps      int      `json:"steps"` // steps done in total (resumed runs included)
	Batch      int      `json:"batch"`
	Threads    int      `json:"threads"`
	Seconds    float64  `json:"seconds"`
	Out        string   `json:"out"`
	// Masks: per-kind mask counts of a masked model at the end (CountMasks).
	Masks []MaskStats `json:"masks,omitempty"`
}

// state is the resume record stored in the ".state" file's metadata.
type state struct {
	Step     int     `json:"step"`
	Epochs   int     `json:"epochs"`
	Batch    int     `json:"batch"`
	LR       float64 `json:"lr"`
	WD       float64 `json:"wd"`
	Momentum float64 `json:"momentum"`
	Sparsity float64 `json:"sparsity"`
	// Mask penalty and threshold (absent in states written before masks).
	MaskSparsity  float64 `json:"mask_sparsity,omitempty"`
	MaskThreshold float64 `json:"mask_threshold,omitempty"`
	Seed          uint64  `json:"seed"`
	Limit         int     `json:"limit"`
	Train         int     `json:"train_images"`
}

const (
	stateFormat = "rmprune-train-state/1"
	momPrefix   = "optimizer.momentum."
)

// StatePath is the resume state file written beside a model file.
func StatePath(out string) string { return out + ".state" }

func (o *Options) validate() error {
	if o.Batch == 0 {
		o.Batch = 128
	}
	if o.Threads <= 0 {
		o.Threads = runtime.NumCPU()
	}
	switch {
	case o.Epochs < 1:
		return fmt.Errorf("train: epochs %d, want at least 1", o.Epochs)
	case o.Batch < 2:
		return fmt.Errorf("train: batch %d, want at least 2 (BatchNorm needs batch statistics)", o.Batch)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return fmt.Errorf("train: learning rate %g, want > 0", o.LR)
	case !(o.WD >= 0):
		return fmt.Errorf("train: weight decay %g, want ≥ 0", o.WD)
	case !(o.Momentum >= 0 && o.Momentum < 1):
		return fmt.Errorf("train: momentum %g, want in [0, 1)", o.Momentum)
	case !(o.Sparsity >= 0):
		return fmt.Errorf("train: sparsity %g, want ≥ 0", o.Sparsity)
	case !(o.MaskSparsity >= 0) || math.IsInf(o.MaskSparsity, 0):
		return fmt.Errorf("train: mask sparsity %g, want ≥ 0", o.MaskSparsity)
	case !(o.MaskThreshold >= 0 && o.MaskThreshold < 1):
		return fmt.Errorf("train: mask threshold %g, want in [0, 1)", o.MaskThreshold)
	case o.MaxSteps < 0:
		return fmt.Errorf("train: max steps %d, want ≥ 0", o.MaxSteps)
	case o.Out == "":
		return errors.New("train: no output model file")
	case o.RecalibrateBN < 0:
		return fmt.Errorf("train: BN recalibration images %d, want ≥ 0", o.RecalibrateBN)
	}
	return nil
}

// CheckData reports whether g can train on data: the model's recorded input
// shape must equal the data's image shape and its classifier must have one
// output per class.
func CheckData(g *nn.Graph, data *dataset.Dataset) (nn.Shape, error) {
	ds := nn.Shape{C: data.Shape[0], H: data.Shape[1], W: data.Shape[2]}
	ms := nn.Shape{C: g.Input[0], H: g.Input[1], W: g.Input[2]}
	if ms.C == 0 && len(g.Nodes) > 0 {
		ms.C = g.Nodes[0].Out
	}
	if (ms.C != 0 && ms.C != ds.C) || (ms.H != 0 && ms.W != 0 && (ms.H != ds.H || ms.W != ds.W)) {
		return ds, fmt.Errorf("train: model input %dx%dx%d does not match the %s images %v", ms.C, ms.H, ms.W, data.Name, ds)
	}
	shapes, err := g.Shapes(ds)
	if err != nil {
		return ds, fmt.Errorf("train: model does not fit the %s images %v: %w", data.Name, ds, err)
	}
	out := shapes[g.Output().Name]
	if out.H != 1 || out.W != 1 {
		return ds, fmt.Errorf("train: model output is %v, want a vector of class scores", out)
	}
	if data.Classes > 0 && out.C != data.Classes {
		return ds, fmt.Errorf("train: model has %d outputs, the %s data %d classes", out.C, data.Name, data.Classes)
	}
	if data.Train.Len() == 0 {
		return ds, fmt.Errorf("train: the %s data has no training split", data.Name)
	}
	return ds, nil
}

// Run trains g on data's training split: a fresh network built by nn.Build
// (rmprune train) or a loaded one, typically a pruned BN-kept plain net
// (rmprune finetune). Weights are updated in place. At the end of every
// epoch the test split is evaluated (eval-mode forward on the SIMD engine)
// and g is written to opt.Out with its resume state beside it, both
// atomically; a failed or interrupted run never leaves a half-written file,
// and nothing is written before the first epoch ends (or MaxSteps or a
// cancelled ctx stops the run: then a checkpoint is written at that step).
func Run(ctx context.Context, g *nn.Graph, data *dataset.Dataset, opt Options) (*Report, error) {
	start := time.Now()
	if err := opt.validate(); err != nil {
		return nil, err
	}
	shape, err := CheckData(g, data)
	if err != nil {
		return nil, err
	}
	if err := checkOutDir(opt.Out); err != nil {
		return nil, err
	}
	split := data.Train.Head(opt.Limit)
	batch := min(opt.Batch, split.Len())
	if batch < 2 {
		return nil, fmt.Errorf("train: %d training images, want at least 2", split.Len())
	}
	// Model metadata travels into the model file.
	g.Input = [3]int{shape.C, shape.H, shape.W}
	if len(g.Mean) == 0 {
		g.Mean, g.Std = slices.Clone(data.Mean), slices.Clone(data.Std)
	}
	if g.Classes == 0 {
		g.Classes = data.Classes
	}
	g.Dataset = data.Name
	if len(g.Labels) == 0 && len(data.Labels) == g.Classes {
		g.Labels = slices.Clone(data.Labels)
	}
	aug := data.Augment
	if opt.Augment != nil {
		aug = *opt.Augment
	}
	loader, err := dataset.NewLoader(split, dataset.LoaderOptions{Batch: batch, Shape: data.Shape,
		Mean: g.Mean, Std: g.Std, Shuffle: true, Seed: opt.Seed, Augment: aug, DropLast: true})
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	net, err := NewNet(g, shape, NetOptions{MaxBatch: batch, Threads: opt.Threads})
	if err != nil {
		return nil, err
	}
	defer net.Close()

	st := state{Epochs: opt.Epochs, Batch: batch, LR: opt.LR, WD: opt.WD, Momentum: opt.Momentum,
		Sparsity: opt.Sparsity, MaskSparsity: opt.MaskSparsity, MaskThreshold: opt.MaskThreshold, Seed: opt.Seed, Limit: opt.Limit, Train: split.Len()}
	if opt.Resume {
		if err := resume(net, opt.Out, &st); err != nil {
			return nil, err
		}
	}
	if opt.KeepCopies {
		net.KeepCopies()
	}
	spe := loader.Batches()
	total := opt.Epochs * spe
	sgd := SGD{Momentum: opt.Momentum, WeightDecay: opt.WD, Sparsity: opt.Sparsity,
		MaskSparsity: opt.MaskSparsity, MaskThreshold: opt.MaskThreshold}
	rep := &Report{Epochs: opt.Epochs, Batch: batch, Threads: opt.Threads, Out: opt.Out}

	var times []time.Duration
	ran := 0
	stopped := false
	var lastLoss, lastAcc float64
	var evalTop1 = math.NaN()
	for st.Step < total && !stopped {
		epoch, i0 := st.Step/spe, st.Step%spe
		var sumLoss float64
		var correct, seen int
		batches := prefetch(ctx, loader, epoch, i0, spe)
		for b := range batches.all {
			t0 := time.Now()
			net.Forward(b.X, b.N(), true)
			loss, c := net.Loss(b.Labels)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				batches.close()
				return nil, fmt.Errorf("train: loss diverged (%g) at step %d; nothing written for this step (try a lower learning rate)", loss, st.Step+1)
			}
			net.Backward()
			lr := CosineLR(opt.LR, st.Step, total)
			sgd.Step(net.Params(), lr)
			times = append(times, time.Since(t0))
			st.Step++
			ran++
			sumLoss += loss * float64(b.N())
			correct += c
			seen += b.N()
			lastLoss, lastAcc = sumLoss/float64(seen), float64(correct)/float64(seen)
			if opt.Progress != nil {
				opt.Progress(Progress{Epoch: epoch, Epochs: opt.Epochs, Step: st.Step, Steps: total,
					EpochStep: st.Step - epoch*spe, EpochSteps: spe, Loss: lastLoss, Acc: lastAcc,
					ImagesPerS: imagesPerS(times[max(0, len(times)-64):], batch), LR: lr, Top1: math.NaN()})
			}
			batches.release(b)
			if opt.MaxSteps > 0 && ran >= opt.MaxSteps && st.Step < total {
				stopped = true
				break
			}
			if ctx.Err() != nil {
				break
			}
		}
		batches.close()
		if err := ctx.Err(); err != nil {
			if ran == 0 {
				return nil, fmt.Errorf("train: interrupted before the first step: %w", err)
			}
			if serr := checkpoint(net, opt.Out, st); serr != nil {
				return nil, errors.Join(err, serr)
			}
			return nil, fmt.Errorf("train: interrupted at step %d (checkpoint saved; continue with resume): %w", st.Step, err)
		}
		if stopped {
			break
		}
		if st.Step == total && opt.RecalibrateBN > 0 {
			lo := dataset.LoaderOptions{Batch: batch, Shape: data.Shape, Mean: g.Mean, Std: g.Std, DropLast: true}
			if err := recalibrateBN(ctx, net, split, lo, opt.RecalibrateBN); err != nil {
				return nil, err
			}
		}
		// End of an epoch: checkpoint, then evaluate.
		if err := checkpoint(net, opt.Out, st); err != nil {
			return nil, err
		}
		if data.Test.Len() > 0 {
			r, err := Evaluate(g, data.Test, EvalOptions{Batch: batch, Threads: opt.Threads, Limit: opt.EvalLimit})
			if err != nil {
				return nil, err
			}
			evalTop1 = r.Top1
			rep.Images = r.Images
			if st.Step == total {
				rep.Top1 = ptr(r.Top1)
				if r.Classes > 5 {
					rep.Top5 = ptr(r.Top5)
				}
			}
		}
		if opt.Progress != nil {
			opt.Progress(Progress{Epoch: epoch, Epochs: opt.Epochs, Step: st.Step, Steps: total, EpochStep: spe,
				EpochSteps: spe, Loss: lastLoss, Acc: lastAcc, ImagesPerS: imagesPerS(times[max(0, len(times)-64):], batch),
				LR: CosineLR(opt.LR, st.Step, total), EpochDone: true, Top1: evalTop1})
		}
	}
	if stopped {
		if err := checkpoint(net, opt.Out, st); err != nil {
			return nil, err
		}
		rep.Top1, rep.Top5 = nil, nil
	} else if ran == 0 && data.Test.Len() > 0 {
		// Resuming a finished run: report its accuracy.
		r, err := Evaluate(g, data.Test, EvalOptions{Batch: batch, Threads: opt.Threads, Limit: opt.EvalLimit})
		if err != nil {
			return nil, err
		}
		rep.Top1, rep.Images = ptr(r.Top1), r.Images
		if r.Classes > 5 {
			rep.Top5 = ptr(r.Top5)
		}
	}
	rep.ImagesPerS = imagesPerS(times, batch)
	rep.Masks = CountMasks(g)
	rep.Loss, rep.TrainTop1 = lastLoss, lastAcc
	rep.Steps = st.Step
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

func ptr(v float64) *float64 { return &v }

// recalibrateBN runs the first images of split (whole batches of lo, in
// order; lo has no augmentation) through net in training mode with the
// running statistics as cumulative averages (Net.cumulative), so they end as
// the mean of the batch statistics of the final weights.
func recalibrateBN(ctx context.Context, net *Net, split *dataset.Split, lo dataset.LoaderOptions, images int) error {
	loader, err := dataset.NewLoader(split, lo)
	if err != nil {
		return fmt.Errorf("train: BN recalibration: %w", err)
	}
	n := min((images+lo.Batch-1)/lo.Batch, loader.Batches())
	net.cumulative = 1
	defer func() { net.cumulative = 0 }()
	batches := prefetch(ctx, loader, 0, 0, n)
	defer batches.close()
	for b := range batches.all {
		net.Forward(b.X, b.N(), true)
		net.cumulative++
		batches.release(b)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("train: BN recalibration: %w", err)
		}
	}
	return nil
}

// imagesPerS is batch / the median step time, skipping 3 warm-up steps when
// there are more.
func imagesPerS(times []time.Duration, batch int) float64 {
	if len(times) == 0 {
		return 0
	}
	t := times
	if len(t) > 3 {
		t = t[3:]
	}
	s := slices.Clone(t)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return float64(batch) / med.Seconds()
}

// checkOutDir fails early when the output cannot be written.
func checkOutDir(out string) error {
	dir := filepath.Dir(out)
	f, err := os.CreateTemp(dir, ".rmprune-train-*")
	if err != nil {
		return fmt.Errorf("train: cannot write %s: %w", out, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// checkpoint writes the model file and then its resume state, each atomically.
func checkpoint(net *Net, out string, st state) error {
	g := net.g
	g.SourceSHA256 = ""
	g.SourceSHA256 = nn.SourceSHA256(g.StateDict())
	if err := modelio.SaveSafetensors(out, g); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	meta, sd, err := modelio.Encode(g)
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	meta["format"] = stateFormat
	b, _ := json.Marshal(st)
	meta["train_state"] = string(b)
	for _, p := range net.params {
		if err := sd.Add(momPrefix+p.Name, nn.NewTensor([]int{len(p.Mom)}, p.Mom)); err != nil {
			return fmt.Errorf("train: checkpoint: %w", err)
		}
	}
	if err := safetensors.WriteFile(StatePath(out), meta, sd); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	return nil
}

// resume loads weights, running statistics, momentum buffers and the step
// from out's state file into net, checking that the run's settings match.
func resume(net *Net, out string, st *state) error {
	path := StatePath(out)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("train: resume: no checkpoint state %s (run without resume first)", path)
		}
		return fmt.Errorf("train: resume: %w", err)
	}
	if f.Metadata["format"] != stateFormat {
		return fmt.Errorf("train: resume: %s is not a training state file", path)
	}
	var saved state
	if err := json.Unmarshal([]byte(f.Metadata["train_state"]), &saved); err != nil {
		return fmt.Errorf("train: resume: %s: bad train_state: %w", path, err)
	}
	var diff []string
	check := func(name string, got, want any) {
		if got != want {
			diff = append(diff, fmt.Sprintf("%s %v (checkpoint %v)", name, got, want))
		}
	}
	check("epochs", st.Epochs, saved.Epochs)
	check("batch", st.Batch, saved.Batch)
	check("lr", st.LR, saved.LR)
	check("wd", st.WD, saved.WD)
	check("momentum", st.Momentum, saved.Momentum)
	check("sparsity", st.Sparsity, saved.Sparsity)
	check("mask sparsity", st.MaskSparsity, saved.MaskSparsity)
	check("mask threshold", st.MaskThreshold, saved.MaskThreshold)
	check("seed", st.Seed, saved.Seed)
	check("training images", st.Train, saved.Train)
	if len(diff) > 0 {
		return fmt.Errorf("train: resume: settings differ from %s: %s", path, strings.Join(diff, ", "))
	}
	// Every tensor of the graph and every momentum buffer must be present
	// with the same size; only then is anything copied.
	own := net.g.StateDict()
	get := func(name string, n int) ([]float32, error) {
		t, ok := f.Tensors.Get(name)
		if !ok {
			return nil, fmt.Errorf("train: resume: %s has no tensor %s (a different model?)", path, name)
		}
		d := nn.Floats(t)
		if len(d) != n {
			return nil, fmt.Errorf("train: resume: %s: tensor %s has %d values, the model %d", path, name, len(d), n)
		}
		return d, nil
	}
	var copies [][2][]float32
	for _, name := range own.Keys {
		dst := nn.Floats(own.Tensors[name])
		src, err := get(name, len(dst))
		if err != nil {
			return err
		}
		copies = append(copies, [2][]float32{dst, src})
	}
	for _, p := range net.params {
		src, err := get(momPrefix+p.Name, len(p.Mom))
		if err != nil {
			return err
		}
		copies = append(copies, [2][]float32{p.Mom, src})
	}
	for _, c := range copies {
		copy(c[0], c[1])
	}
	st.Step = saved.Step
	return nil
}

// batchStream prefetches batches start..end-1 of an epoch in a goroutine.
type batchStream struct {
	ready  chan *dataset.Batch
	free   chan *dataset.Batch
	cancel chan struct{}
	done   chan struct{}
}

func prefetch(ctx context.Context, l *dataset.Loader, epoch, start, end int) *batchStream {
	s := &batchStream{ready: make(chan *dataset.Batch, 2), free: make(chan *dataset.Batch, 2),
		cancel: make(chan struct{}), done: make(chan struct{})}
	s.free <- l.NewBatch()
	s.free <- l.NewBatch()
	go func() {
		defer close(s.done)
		defer close(s.ready)
		for i := start; i < end; i++ {
			var b *dataset.Batch
			select {
			case b = <-s.free:
			case <-s.cancel:
				return
			case <-ctx.Done():
				return
			}
			l.Fill(b, epoch, i)
			s.ready <- b
		}
	}()
	return s
}

// All yields the prefetched batches; use release to hand a batch back.
func (s *batchStream) all(yield func(*dataset.Batch) bool) {
	for b := range s.ready {
		if !yield(b) {
			return
		}
	}
}

func (s *batchStream) release(b *dataset.Batch) { s.free <- b }

func (s *batchStream) close() {
	close(s.cancel)
	<-s.done
}

// EvalOptions configure Evaluate.
type EvalOptions struct {
	Batch   int // default 128
	Threads int // default: the number of CPUs
	Limit   int // > 0: the first Limit images only
}

// EvalReport is a test accuracy.
type EvalReport struct {
	Top1, Top5 float64 // fractions in [0, 1]
	Images     int
	Classes    int
}

// Evaluate measures top-1 and top-5 accuracy of g on split with the
// eval-mode forward (BatchNorm running statistics) of the SIMD engine,
// normalising with g's mean and std.
func Evaluate(g *nn.Graph, split *dataset.Split, opt EvalOptions) (*EvalReport, error) {
	if opt.Batch <= 0 {
		opt.Batch = 128
	}
	if opt.Threads <= 0 {
		opt.Threads = runtime.NumCPU()
	}
	split = split.Head(opt.Limit)
	if split.Len() == 0 {
		return nil, errors.New("train: evaluate: empty split")
	}
	shape := nn.Shape{C: split.Shape[0], H: split.Shape[1], W: split.Shape[2]}
	l, err := dataset.NewLoader(split, dataset.LoaderOptions{Batch: opt.Batch, Shape: split.Shape, Mean: g.Mean, Std: g.Std, Prefetch: 1})
	if err != nil {
		return nil, fmt.Errorf("train: evaluate: %w", err)
	}
	// The SIMD engine (BatchNorm folded); the training net's eval-mode
	// forward if the engine cannot take the graph.
	var run func(x []float32, n int) ([]float32, error)
	var k int
	if e, err := engine.Compile(g, engine.Options{Threads: opt.Threads, MaxBatch: opt.Batch, Shape: shape}); err == nil {
		defer e.Close()
		run, k = e.Run, e.OutputShape().Numel()
	} else {
		net, nerr := NewNet(g, shape, NetOptions{MaxBatch: opt.Batch, Threads: opt.Threads})
		if nerr != nil {
			return nil, fmt.Errorf("train: evaluate: %w", errors.Join(err, nerr))
		}
		defer net.Close()
		run = func(x []float32, n int) ([]float32, error) { return net.Forward(x, n, false), nil }
		k = net.layers[len(net.layers)-1].outS.Numel()
	}
	r := &EvalReport{Classes: k}
	var top1, top5 int
	for b := range l.Epoch(0) {
		out, err := run(b.X, b.N())
		if err != nil {
			return nil, fmt.Errorf("train: evaluate: %w", err)
		}
		for i, lab := range b.Labels {
			z := out[i*k : (i+1)*k]
			rank := 0
			for _, v := range z {
				if v > z[lab] {
					rank++
				}
			}
			if rank == 0 {
				top1++
			}
			if rank < 5 {
				top5++
			}
		}
		r.Images += b.N()
	}
	r.Top1 = float64(top1) / float64(r.Images)
	r.Top5 = float64(top5) / float64(r.Images)
	return r, nil
}

// String formats a report for humans.
func (r *Report) String() string {
	t := "n/a"
	if r.Top1 != nil {
		t = strconv.FormatFloat(*r.Top1, 'f', 4, 64)
	}
	return fmt.Sprintf("%d steps, %.1f images/s, loss %.4f, train top-1 %.4f, test top-1 %s", r.Steps, r.ImagesPerS, r.Loss, r.TrainTop1, t)
}
