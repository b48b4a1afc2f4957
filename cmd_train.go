package main

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/train"
)

// trainFlags are the flags train and finetune share.
type trainFlags struct {
	data             *string
	epochs, batch    *int
	lr, wd, sparsity *float64
	seed             *uint64
	maxSteps         *int
	resume           *bool
	out              *string
	limit, evalLimit *int
	keepCopies       *bool // finetune only
	recalibrate      *int  // finetune only
	masks            *bool
	maskS, maskT     *float64
}

func addTrainFlags(f *flags, epochs int, lr float64) *trainFlags {
	d := train.DefaultOptions()
	return &trainFlags{
		data:      f.String("data", "", "training data: "+dataset.Specs),
		epochs:    f.Int("epochs", epochs, "passes over the training split"),
		batch:     f.Int("batch", d.Batch, "images per step"),
		lr:        f.Float64("lr", lr, "peak learning rate (cosine schedule)"),
		wd:        f.Float64("wd", d.WD, "weight decay"),
		sparsity:  f.Float64("sparsity", 0, "network slimming: s·sign(γ) added to every BN γ gradient"),
		seed:      f.Uint64("seed", 1, "seed for initial weights, data order and augmentation"),
		maxSteps:  f.Int("max-steps", 0, "stop after K steps (checkpoint written; top1 is null)"),
		resume:    f.Bool("resume", false, "continue from the checkpoint state beside --out"),
		out:       f.String("out", "", "model file to write (our .safetensors), every epoch, atomically"),
		limit:     f.Int("limit", 0, "train on the first N training images only"),
		evalLimit: f.Int("eval-limit", 0, "evaluate on the first N test images only"),
		masks:     f.Bool("masks", false, "add the RMNet reference code's per-channel masks at 1 (mask-sparsity training; a model that has masks keeps them)"),
		maskS:     f.Float64("mask-sparsity", 0, "mask penalty s: loss + s·Σ|m| over all masks"),
		maskT:     f.Float64("mask-threshold", 0, "after every step a mask with |m| ≤ T is set to exactly 0 and stays 0"),
	}
}

// prepareMasks adds masks when --masks asks for them and checks that the
// mask flags have masks to act on.
func (t *trainFlags) prepareMasks(g *nn.Graph) (*nn.Graph, error) {
	if *t.masks {
		m, err := train.WithMasks(g)
		if err != nil {
			return nil, err
		}
		g = m
	}
	if (*t.maskS != 0 || *t.maskT != 0) && !g.HasMasks() {
		return nil, fmt.Errorf("--mask-sparsity and --mask-threshold act on masks: the model has none (add --masks)")
	}
	return g, nil
}

func (t *trainFlags) run(e *env, f *flags, g *nn.Graph, d *dataset.Dataset, what string) error {
	opt := train.DefaultOptions()
	opt.Epochs, opt.Batch, opt.LR, opt.WD, opt.Sparsity = *t.epochs, *t.batch, *t.lr, *t.wd, *t.sparsity
	opt.Seed, opt.Threads, opt.MaxSteps, opt.Resume, opt.Out = *t.seed, f.threads, *t.maxSteps, *t.resume, *t.out
	opt.Limit, opt.EvalLimit = *t.limit, *t.evalLimit
	opt.KeepCopies = t.keepCopies != nil && *t.keepCopies
	if t.recalibrate != nil {
		opt.RecalibrateBN = *t.recalibrate
	}
	opt.MaskSparsity, opt.MaskThreshold = *t.maskS, *t.maskT
	bar := newBar(e.stderr, -1, what)
	opt.Progress = func(p train.Progress) {
		if p.EpochDone {
			bar.Clear()
			fmt.Fprintf(e.stderr, "epoch %d/%d  loss %.4f  train acc %.2f%%  test top-1 %.2f%%  %.0f img/s\n",
				p.Epoch+1, p.Epochs, p.Loss, 100*p.Acc, 100*p.Top1, p.ImagesPerS)
			return
		}
		bar.ChangeMax(p.Steps)
		bar.Describe(fmt.Sprintf("%s epoch %d/%d loss %.3f acc %.1f%% %.0f img/s", what, p.Epoch+1, p.Epochs, p.Loss, 100*p.Acc, p.ImagesPerS))
		bar.Set(p.Step)
	}
	r, err := train.Run(e.ctx, g, d, opt)
	bar.Finish()
	if err != nil {
		return err
	}
	return f.report(r, func(w io.Writer) {
		top1 := "n/a (stopped by --max-steps)"
		if r.Top1 != nil && !math.IsNaN(*r.Top1) {
			top1 = fmt.Sprintf("%.2f%%", 100**r.Top1)
		}
		fmt.Fprintf(w, "wrote %s: test top-1 %s, %.0f training images/s (batch %d, %d threads)\n", r.Out, top1, r.ImagesPerS, r.Batch, r.Threads)
		for _, m := range r.Masks {
			fmt.Fprintf(w, "  %-11s %4d of %4d masks exactly 0, %d more below 0.01\n", m.Kind, m.Zero, m.Channels, m.BelowThresh)
		}
	})
}

func (t *trainFlags) check() error {
	if *t.data == "" || *t.out == "" {
		return fmt.Errorf("--data and --out are required")
	}
	if !strings.HasSuffix(strings.ToLower(*t.out), ".safetensors") {
		return fmt.Errorf("--out %s: training writes our .safetensors model file", *t.out)
	}
	return nil
}

func cmdTrain(e *env, args []string) error {
	f := newFlags(e, "train", "(--arch A | --model M) --data DATASET [--epochs E] [--batch N] [--lr F] [--wd F] [--sparsity S] [--seed N]\n"+
		"        [--masks] [--mask-sparsity S] [--mask-threshold T] [--threads N] [--max-steps K] [--resume] --out M [--json]",
		"Train a network from scratch (--arch; SGD, momentum 0.9, cosine schedule) or further (--model), optionally with\n"+
			"the network-slimming sparsity penalty on BN γ or with the RMNet reference code's masks (--masks: mask-sparsity\n"+
			"training, masks added at 1 to a ResNet). A checkpoint is written every epoch; --resume continues it.")
	f.modelFlags()
	arch := &f.arch
	t := addTrainFlags(f, 1, 0.1)
	if err := f.parse(args); err != nil || helpAsked(args) {
		return err
	}
	return f.fail(func() error {
		if err := t.check(); err != nil {
			return err
		}
		if *arch == "" && f.model == "" {
			return fmt.Errorf("--arch or --model is required (%s)", strings.Join(nn.Archs, ", "))
		}
		d, err := dataset.Open(*t.data)
		if err != nil {
			return err
		}
		var g *nn.Graph
		if f.model != "" {
			g, err = f.loadModel()
		} else {
			g, err = nn.Build(*arch, d.Shape[0], d.Classes, *t.seed)
			if err == nil {
				g.Input = d.Shape
			}
		}
		if err != nil {
			return err
		}
		if g, err = t.prepareMasks(g); err != nil {
			return err
		}
		return t.run(e, f, g, d, "train")
	}())
}

func cmdFinetune(e *env, args []string) error {
	f := newFlags(e, "finetune", "--model M --data DATASET --epochs E [--batch N] [--lr F] [--keep-copies] [--recalibrate-bn N] [--masks] [--mask-sparsity S]\n"+
		"        [--mask-threshold T] [--resume] --out M2 [--json]",
		"Fine-tune a model (typically a pruned BN-kept plain net written by prune) on a data set.")
	f.modelFlags()
	t := addTrainFlags(f, 2, 0.01)
	t.keepCopies = f.Bool("keep-copies", false, "leave RM's copy structure (reserved Dirac filters, merged identities) untrained, so the engine still runs it as copies")
	t.recalibrate = f.Int("recalibrate-bn", 2048, "after the last step, re-estimate the BatchNorm statistics on N training images (0: keep the running averages)")
	if err := f.parse(args); err != nil || helpAsked(args) {
		return err
	}
	return f.fail(func() error {
		if err := t.check(); err != nil {
			return err
		}
		g, err := f.loadModel()
		if err != nil {
			return err
		}
		if g, err = t.prepareMasks(g); err != nil {
			return err
		}
		d, err := dataset.Open(*t.data)
		if err != nil {
			return err
		}
		return t.run(e, f, g, d, "finetune")
	}())
}
