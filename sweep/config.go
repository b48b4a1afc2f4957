package sweep

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/store"
)

// Forms and methods a sweep knows.
const (
	FormRMNet  = pruning.FormRMNet  // the RM-converted plain net, every channel prunable
	FormResNet = pruning.FormResNet // the residual baseline, channels inside blocks only
	MethodSlim = pruning.Slim
	MethodL1   = pruning.L1
)

// Limits that keep a request (e.g. from the web form) from asking for
// unbounded work.
const (
	MaxRatios  = 100
	MaxBatch   = 4096
	MaxThreads = 256
	MaxEpochs  = 1000
)

// ErrConfig marks an invalid sweep configuration (the web layer answers 422).
var ErrConfig = errors.New("invalid sweep configuration")

// Config is what a sweep measures. The JSON keys are those of DESIGN's
// POST /api/sweeps body (without model_id), so a request decodes straight
// into a Config; call Defaults, then Validate.
type Config struct {
	Dataset        string    `json:"dataset"`         // a dataset name the runner knows (see Runner.Datasets)
	Method         string    `json:"method"`          // slim | l1 (default slim)
	Scope          string    `json:"scope"`           // global | uniform (default: slim → global, l1 → uniform)
	Forms          []string  `json:"forms"`           // rmnet, resnet (default both)
	Ratios         []float64 `json:"ratios"`          // each in [0,1); default 0.1 … 0.9 by 0.1
	MinChannels    int       `json:"min_channels"`    // fewest channels a layer keeps (default 1)
	RoundTo        int       `json:"round_to"`        // keep multiples of this (default 1)
	FinetuneEpochs int       `json:"finetune_epochs"` // fine-tuning epochs after each pruning (default 0)
	FinetuneLimit  int       `json:"finetune_limit"`  // training images per fine-tuning epoch (0: all)
	// TrainCopies makes form rmnet's fine-tuning train RM's copy filters
	// (reserved channels' Dirac rows, merged identity columns) like any
	// weight. By default they stay frozen, as the ResNet form's identity
	// shortcuts do, and the engine keeps running them as copies.
	TrainCopies bool   `json:"train_copies"`
	Batch       int    `json:"batch"`   // batch for evaluation and images/s (default 32)
	Threads     int    `json:"threads"` // worker threads (default: the machine's cores)
	Limit       int    `json:"limit"`   // test images evaluated (0: the whole test split)
	Target      string `json:"target"`  // cluster workers of this target run the points ("": the default)
}

// TargetPattern is what a worker target label may be: lower-case letters,
// digits, '_' and '-', at most 32 ("" is the default target).
var TargetPattern = regexp.MustCompile(`^[a-z0-9_-]{0,32}$`)

// DefaultRatios returns 0.1, 0.2, …, 0.9.
func DefaultRatios() []float64 {
	r := make([]float64, 9)
	for i := range r {
		r[i] = float64(i+1) / 10
	}
	return r
}

// DefaultScope is the scope a method uses when none is given: global for
// slim (one ranking of BN scales across layers), uniform for l1.
func DefaultScope(method string) string {
	if method == MethodL1 {
		return pruning.ScopeUniform
	}
	return pruning.ScopeGlobal
}

// Defaults fills every zero field with DESIGN's default. Negative numbers are
// left for Validate to refuse.
func (c *Config) Defaults() {
	c.Method = strings.ToLower(strings.TrimSpace(c.Method))
	c.Scope = strings.ToLower(strings.TrimSpace(c.Scope))
	if c.Method == "" {
		c.Method = MethodSlim
	}
	if c.Scope == "" {
		c.Scope = DefaultScope(c.Method)
	}
	if len(c.Forms) == 0 {
		c.Forms = []string{FormRMNet, FormResNet}
	}
	if len(c.Ratios) == 0 {
		c.Ratios = DefaultRatios()
	}
	if c.MinChannels == 0 {
		c.MinChannels = 1
	}
	if c.RoundTo == 0 {
		c.RoundTo = 1
	}
	if c.Batch == 0 {
		c.Batch = 32
	}
	if c.Threads == 0 {
		c.Threads = runtime.NumCPU()
	}
}

// Validate checks a configuration after Defaults: known method, scope and
// forms (no repeats), 1 to MaxRatios finite ratios in [0,1), positive guards,
// batch and threads, non-negative epochs and limit. Errors wrap ErrConfig.
// Whether the forms suit the network is Check's job.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("sweep: %w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(c.Dataset) == "" {
		return bad("dataset is required")
	}
	switch c.Method {
	case MethodSlim, MethodL1:
	default:
		return bad("unknown method %q (want %s or %s)", c.Method, MethodSlim, MethodL1)
	}
	switch c.Scope {
	case pruning.ScopeGlobal, pruning.ScopeUniform:
	default:
		return bad("unknown scope %q (want %s or %s)", c.Scope, pruning.ScopeGlobal, pruning.ScopeUniform)
	}
	if len(c.Forms) == 0 {
		return bad("no forms (want %s and/or %s)", FormRMNet, FormResNet)
	}
	for i, f := range c.Forms {
		if f != FormRMNet && f != FormResNet {
			return bad("unknown form %q (want %s or %s)", f, FormRMNet, FormResNet)
		}
		if slices.Contains(c.Forms[:i], f) {
			return bad("form %q given twice", f)
		}
	}
	if len(c.Ratios) == 0 {
		return bad("no ratios")
	}
	if len(c.Ratios) > MaxRatios {
		return bad("%d ratios; at most %d", len(c.Ratios), MaxRatios)
	}
	for _, r := range c.Ratios {
		if math.IsNaN(r) || r < 0 || r >= 1 {
			return bad("ratio %v is outside [0,1)", r)
		}
	}
	switch {
	case c.MinChannels < 1:
		return bad("min_channels %d: want ≥ 1", c.MinChannels)
	case c.RoundTo < 1:
		return bad("round_to %d: want ≥ 1", c.RoundTo)
	case c.FinetuneEpochs < 0 || c.FinetuneEpochs > MaxEpochs:
		return bad("finetune_epochs %d: want 0…%d", c.FinetuneEpochs, MaxEpochs)
	case c.FinetuneLimit < 0:
		return bad("finetune_limit %d: want ≥ 0 (0: the whole training split)", c.FinetuneLimit)
	case c.Batch < 1 || c.Batch > MaxBatch:
		return bad("batch %d: want 1…%d", c.Batch, MaxBatch)
	case c.Threads < 1 || c.Threads > MaxThreads:
		return bad("threads %d: want 1…%d", c.Threads, MaxThreads)
	case c.Limit < 0:
		return bad("limit %d: want ≥ 0 (0: the whole test split)", c.Limit)
	case !TargetPattern.MatchString(c.Target):
		return bad("target %q: use at most 32 lower-case letters, digits, '_' and '-'", c.Target)
	}
	return nil
}

// Check tells whether the configuration suits network g: form resnet needs a
// residual network (a plain net has no ResNet baseline to prune), and the
// guards min_channels and round_to must be below the widest conv layer's
// channel count (else no layer could lose a channel and every "pruned" point
// would be the unpruned network). Errors wrap ErrConfig.
func (c *Config) Check(g *nn.Graph) error {
	widest := 0
	for _, n := range g.Nodes {
		if n.Op == nn.OpConv {
			widest = max(widest, n.Out)
		}
	}
	if widest > 1 {
		for _, guard := range []struct {
			name string
			v    int
		}{{"min_channels", c.MinChannels}, {"round_to", c.RoundTo}} {
			if guard.v >= widest {
				return fmt.Errorf("sweep: %w: %s %d: the widest layer of %s has %d channels, so nothing could be pruned (want 1…%d)",
					ErrConfig, guard.name, guard.v, archName(g), widest, widest-1)
			}
		}
	}
	if slices.Contains(c.Forms, FormResNet) && !g.HasResidual() {
		return fmt.Errorf("sweep: %w: form %s needs a residual network; %s has no residual blocks (use form %s only)",
			ErrConfig, FormResNet, archName(g), FormRMNet)
	}
	return nil
}

// archName names g's architecture in a message.
func archName(g *nn.Graph) string {
	if g.Arch == "" {
		return "the network"
	}
	return g.Arch
}

// PointRatios returns the sweep's pruning ratios rounded as the store keeps
// them (store.NormRatio), sorted, without repeats and without 0 (ratio 0 is
// the unpruned reference every sweep has anyway).
func (c *Config) PointRatios() []float64 {
	var rs []float64
	for _, r := range c.Ratios {
		r = store.NormRatio(r)
		if r > 0 && !slices.Contains(rs, r) {
			rs = append(rs, r)
		}
	}
	slices.Sort(rs)
	return rs
}

// Sweep returns the store row for this configuration on model modelID, ready
// for store.DB.CreateSweep.
func (c *Config) Sweep(modelID int64) store.Sweep {
	return store.Sweep{
		ModelID: modelID, Dataset: c.Dataset, Method: c.Method, Scope: c.Scope,
		Forms: slices.Clone(c.Forms), Ratios: slices.Clone(c.Ratios),
		MinChannels: c.MinChannels, RoundTo: c.RoundTo, FinetuneEpochs: c.FinetuneEpochs, FinetuneLimit: c.FinetuneLimit,
		TrainCopies: c.TrainCopies, Batch: c.Batch, Threads: c.Threads, Limit: c.Limit, Target: c.Target,
	}
}

// FromSweep returns the configuration a stored sweep was created with.
func FromSweep(s store.Sweep) Config {
	return Config{
		Dataset: s.Dataset, Method: s.Method, Scope: s.Scope,
		Forms: slices.Clone(s.Forms), Ratios: slices.Clone(s.Ratios),
		MinChannels: s.MinChannels, RoundTo: s.RoundTo, FinetuneEpochs: s.FinetuneEpochs, FinetuneLimit: s.FinetuneLimit,
		TrainCopies: s.TrainCopies, Batch: s.Batch, Threads: s.Threads, Limit: s.Limit, Target: s.Target,
	}
}
