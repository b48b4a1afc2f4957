package main

import (
	"fmt"
	"io"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/evaluate"
)

func cmdEval(e *env, args []string) error {
	f := newFlags(e, "eval", "--model M --data DATASET [--rm] [--limit N] [--batch N] [--json]",
		"Top-1 (and top-5 where classes > 5) accuracy on the test split, on the SIMD engine.\nDATASET: "+dataset.Specs)
	f.modelFlags()
	data := f.String("data", "", "data set: "+dataset.Specs)
	useRM := f.Bool("rm", false, "apply RM (residual removal) first")
	limit := f.Int("limit", 0, "evaluate only the first N test images (0: all)")
	batch := f.Int("batch", 64, "images per batch")
	if err := f.parse(args); err != nil || helpAsked(args) {
		return err
	}
	return f.fail(func() error {
		if *data == "" {
			return fmt.Errorf("--data is required (%s)", dataset.Specs)
		}
		if *limit < 0 || *batch < 1 {
			return fmt.Errorf("--limit must be ≥ 0 and --batch ≥ 1")
		}
		g, err := f.loadModel()
		if err != nil {
			return err
		}
		d, err := dataset.Open(*data)
		if err != nil {
			return err
		}
		if *useRM {
			if g, err = applyRM(g); err != nil {
				return err
			}
		}
		if err := evaluate.CheckCompatible(g, d); err != nil {
			return fmt.Errorf("%s on %s: %w", f.model, *data, err)
		}
		// The images are finite (the data set refuses a normalisation that
		// is not), so NaN or Inf can only come from the weights.
		if n := nonFiniteParams(g); n > 0 {
			warnf(e.stderr, "eval", "%s has %d non-finite parameters (NaN or Inf): the outputs they reach are NaN or Inf and their predictions meaningless", f.model, n)
		}
		bar := newBar(e.stderr, d.Test.Len(), "eval")
		r, err := evaluate.Run(e.ctx, g, d, d.Test, evaluate.Options{Batch: *batch, Threads: f.threads, Limit: *limit,
			Progress: func(done, total int) { bar.ChangeMax(total); bar.Set(done) }})
		bar.Finish()
		if err != nil {
			return err
		}
		return f.report(r, func(w io.Writer) {
			fmt.Fprintf(w, "top-1 %.2f%%  top-5 %.2f%%  on %d images of %s\n", 100*r.Top1, 100*r.Top5, r.Images, *data)
		})
	}())
}
