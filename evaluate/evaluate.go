// Package evaluate measures a network's accuracy on a data set's test split
// with the SIMD engine.
package evaluate

import (
	"context"
	"fmt"
	"runtime"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/nn"
)

// Options configure an evaluation.
type Options struct {
	Batch     int       // default 64
	Threads   int       // default: all cores
	Limit     int       // first N test images; 0: all
	Mean, Std []float32 // normalisation; nil: the model's, else the data set's
	// Progress, if set, is called after every batch with images done and total.
	Progress func(done, total int)
}

// Result is top-1/top-5 accuracy as fractions in [0,1].
type Result struct {
	Top1   float64 `json:"top1"`
	Top5   float64 `json:"top5"` // 0 when the model has ≤ 5 classes
	Images int     `json:"images"`
}

// CheckCompatible tells whether g can be evaluated on d: same channel count
// and class count.
func CheckCompatible(g *nn.Graph, d *dataset.Dataset) error {
	in := g.InputShape()
	if in.C != d.Shape[0] {
		return fmt.Errorf("the model takes %d input channels; %s images have %d", in.C, d.Name, d.Shape[0])
	}
	out := g.Output()
	if out.Op == nn.OpLinear && out.Out != d.Classes {
		return fmt.Errorf("the model has %d outputs; %s has %d classes", out.Out, d.Name, d.Classes)
	}
	return nil
}

// Run evaluates g on split (the test split of d).
func Run(ctx context.Context, g *nn.Graph, d *dataset.Dataset, split *dataset.Split, opt Options) (*Result, error) {
	if err := CheckCompatible(g, d); err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	if opt.Batch < 1 {
		opt.Batch = 64
	}
	if opt.Threads < 1 {
		opt.Threads = runtime.NumCPU()
	}
	mean, std := opt.Mean, opt.Std
	if mean == nil && len(g.Mean) > 0 {
		mean, std = g.Mean, g.Std
	}
	in := g.InputShape()
	l, err := dataset.NewLoader(split, dataset.LoaderOptions{Batch: opt.Batch, Shape: [3]int{in.C, in.H, in.W},
		Mean: mean, Std: std, Limit: opt.Limit, Prefetch: 2})
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	e, err := engine.Compile(g, engine.Options{Threads: opt.Threads, MaxBatch: opt.Batch, Shape: in})
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	defer e.Close()
	classes := e.OutputShape().Numel()
	r := &Result{}
	var top1, top5 int
	for b := range l.Epoch(0) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		y, err := e.Run(b.X, b.N())
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		for i, label := range b.Labels {
			rank := Rank(y[i*classes:(i+1)*classes], label)
			if rank == 0 {
				top1++
			}
			if rank < 5 {
				top5++
			}
		}
		r.Images += b.N()
		if opt.Progress != nil {
			opt.Progress(r.Images, l.Len())
		}
	}
	if r.Images == 0 {
		return nil, fmt.Errorf("evaluate: %s has no test images", d.Name)
	}
	r.Top1 = float64(top1) / float64(r.Images)
	if classes > 5 {
		r.Top5 = float64(top5) / float64(r.Images)
	}
	return r, nil
}

// Rank is the number of classes scored strictly above label (ties favour the
// label), so rank 0 is a top-1 hit.
func Rank(logits []float32, label int) int {
	r := 0
	for _, v := range logits {
		if v > logits[label] {
			r++
		}
	}
	return r
}
