package sweep

import (
	"fmt"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// Calibration budget: with CalibImages 0 a Runner measures the statistics of
// the residual blocks on as many training images as fit in CalibMACs
// multiply–accumulates of the (slow, exact) reference forward, at most
// MaxCalibImages and at least MinCalibImages: a slim ratio on the RMNet form
// is refused without statistics (pruning.ErrNoStats), so large networks
// measure a few images rather than fall back to (0, 1).
const (
	CalibMACs      = 1e9
	MaxCalibImages = 64
	MinCalibImages = 8
)

// calibImages is the number of calibration images for g: r.CalibImages when
// set (negative: none), else what fits the budget.
func (r *Runner) calibImages(g *nn.Graph) int { return calibImages(r.CalibImages, g) }

// calibImages is the number of calibration images for g given a setting as
// Runner.CalibImages.
func calibImages(set int, g *nn.Graph) int {
	switch {
	case set < 0:
		return 0
	case set > 0:
		return set
	}
	sum, err := g.Summarize(g.InputShape())
	if err != nil || sum.MACs <= 0 {
		return 0
	}
	return max(min(int(CalibMACs/float64(sum.MACs)), MaxCalibImages), MinCalibImages)
}

// withStats returns a copy of g whose residual blocks carry measured
// statistics — per-channel mean and population variance of each block's
// input and of its pre-activation sum, as act_mean/act_var, the form a
// checkpoint's running1/running2 take — so that every RM conversion of the
// sweep (the rmnet reference and each pruning) ranks reserved channels and
// block outputs by measured scales without measuring again. It returns g
// itself, and measured false, when g has no residual blocks or already
// carries statistics for all of them, or n is 0.
func withStats(g *nn.Graph, d *dataset.Dataset, n int) (out *nn.Graph, measured bool, err error) {
	if n <= 0 || !g.HasResidual() {
		return g, false, nil
	}
	res, err := rm.Convert(g, rm.Options{KeepBN: true})
	if err != nil {
		return nil, false, err
	}
	want := map[string]bool{}
	for _, b := range res.Blocks {
		for _, name := range []string{b.Input, b.Add} {
			if node := g.Node(name); node != nil && (node.P("act_mean") == nil || node.P("act_var") == nil) {
				want[name] = true
			}
		}
	}
	if len(want) == 0 {
		return g, false, nil
	}
	calib, err := calibBatch(g, d, n)
	if err != nil {
		return nil, false, err
	}
	out = g.Clone()
	if out.SourceSHA256 == "" {
		// Keep the identity of the model as loaded, not of the copy with
		// statistics added.
		out.SourceSHA256 = nn.SourceSHA256(g.StateDict())
	}
	_, err = g.Forward(calib, func(node *nn.Node, a *nn.Act) {
		if !want[node.Name] {
			return
		}
		mean, vr := channelStats(a)
		dst := out.Node(node.Name)
		dst.SetP("act_mean", []int{len(mean)}, mean)
		dst.SetP("act_var", []int{len(vr)}, vr)
	})
	if err != nil {
		return nil, false, fmt.Errorf("calibration forward: %w", err)
	}
	return out, true, nil
}

// channelStats returns the per-channel mean and population variance of a
// over the batch and all positions (two passes, float64).
func channelStats(a *nn.Act) (mean, vr []float32) {
	mean, vr = make([]float32, a.C), make([]float32, a.C)
	cnt := float64(a.N * a.H * a.W)
	for c := 0; c < a.C; c++ {
		var sum float64
		for b := 0; b < a.N; b++ {
			for _, v := range a.Plane(b, c) {
				sum += float64(v)
			}
		}
		m := sum / cnt
		var ss float64
		for b := 0; b < a.N; b++ {
			for _, v := range a.Plane(b, c) {
				dv := float64(v) - m
				ss += dv * dv
			}
		}
		mean[c], vr[c] = float32(m), float32(ss/cnt)
	}
	return mean, vr
}
