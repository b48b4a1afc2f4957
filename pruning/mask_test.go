package pruning

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// maskedResNet20 is a mask-trained-looking ResNet-20: random BN, masks with
// ~25% exact zeros and some negatives, and block statistics (act_mean,
// act_var of every block input and residual sum, as running1/running2)
// measured on a random batch.
func maskedResNet20(t *testing.T, seed uint64, shape nn.Shape) *nn.Graph {
	t.Helper()
	spec, err := nn.StandardResNet("resnet20", 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	spec.Masks = true
	g := spec.Build(seed)
	rng := rand.New(rand.NewPCG(seed, 77))
	nn.RandomizeBN(g, rng)
	for _, n := range g.Nodes {
		if n.Op != nn.OpMask {
			continue
		}
		m := n.P("weight")
		for i := range m {
			switch r := rng.Float64(); {
			case r < 0.25:
				m[i] = 0
			case r < 0.35:
				m[i] = -float32(0.2 + rng.Float64())
			default:
				m[i] = float32(0.1 + rng.Float64())
			}
		}
	}
	res, err := rm.Convert(g, rm.Options{KeepBN: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, b := range res.Blocks {
		want[b.Input], want[b.Add] = true, true
	}
	x := randAct(rng, 4, shape)
	stats := map[string][2][]float32{}
	if _, err := g.Forward(x, func(n *nn.Node, a *nn.Act) {
		if !want[n.Name] {
			return
		}
		mean, vr := make([]float32, a.C), make([]float32, a.C)
		for c := 0; c < a.C; c++ {
			var s, ss float64
			cnt := 0
			for b := 0; b < a.N; b++ {
				for _, v := range a.Plane(b, c) {
					s += float64(v)
					ss += float64(v) * float64(v)
					cnt++
				}
			}
			m := s / float64(cnt)
			mean[c], vr[c] = float32(m), float32(max(ss/float64(cnt)-m*m, 0))
		}
		stats[n.Name] = [2][]float32{mean, vr}
	}); err != nil {
		t.Fatal(err)
	}
	for name, s := range stats {
		n := g.Node(name)
		n.SetP("act_mean", []int{len(s[0])}, s[0])
		n.SetP("act_var", []int{len(s[1])}, s[1])
	}
	return g
}

// slim on a mask-trained net scales every channel kind by what it learned:
// inner |γ·m1|, reserved √(v1+ε)·max(m_res,0), block outputs √(v2+ε)·|m2|
// (form rmnet then ranks by each channel's share of its readers' output,
// computed from these: TestShareScores).
func TestSlimScoresMasked(t *testing.T) {
	shape := nn.Shape{C: 3, H: 8, W: 8}
	g := maskedResNet20(t, 3, shape)
	ls, err := Importance(g, Options{Method: Slim, Shape: shape})
	if err != nil {
		t.Fatal(err)
	}
	byLayer := map[string]LayerScores{}
	for _, l := range ls {
		byLayer[l.Layer] = l
	}
	near := func(got, want float64) bool { return math.Abs(got-want) <= 1e-6*max(1, math.Abs(want)) }
	checked := 0
	input := "relu"
	for i := range 9 {
		p := []string{"layer1.", "layer2.", "layer3."}[i/3] + string(rune('0'+i%3))
		v1 := g.Node(input).P("act_var")
		v2 := g.Node(p + ".add").P("act_var")
		mr := g.Node(p + ".mask_res.0").P("weight")
		m1 := g.Node(p + ".mask1").P("weight")
		m2 := g.Node(p + ".mask2").P("weight")
		gamma := g.Node(p + ".bn1").P("weight")
		l1, l2 := byLayer[p+".conv1"], byLayer[p+".conv2"]
		if len(l1.Scales) != len(mr)+len(m1) || len(l2.Scales) != len(m2) {
			t.Fatalf("%s: %d and %d scores; want %d and %d", p, len(l1.Scales), len(l2.Scales), len(mr)+len(m1), len(m2))
		}
		for r, m := range mr {
			if want := math.Sqrt(float64(v1[r])+1e-5) * max(float64(m), 0); !near(l1.Scales[r], want) || l1.Kinds[r] != rm.KindReserved {
				t.Errorf("%s reserved %d: score %g (%v); want %g", p, r, l1.Scales[r], l1.Kinds[r], want)
			}
			checked++
		}
		for o, m := range m1 {
			if want := math.Abs(float64(gamma[o] * m)); !near(l1.Scales[len(mr)+o], want) {
				t.Errorf("%s inner %d: score %g; want |γ·m1| = %g", p, o, l1.Scales[len(mr)+o], want)
			}
			checked++
		}
		for o, m := range m2 {
			if want := math.Sqrt(float64(v2[o])+1e-5) * math.Abs(float64(m)); !near(l2.Scales[o], want) {
				t.Errorf("%s block output %d: score %g; want √(v2+ε)·|m2| = %g", p, o, l2.Scales[o], want)
			}
			checked++
		}
		input = p + ".relu"
	}
	if checked < 900 {
		t.Errorf("checked %d channels; want every channel of the 9 blocks", checked)
	}
}

// Threshold 0 removes exactly the channels whose scale is 0 (zero masks,
// zero γ) and leaves the predictions bit-identical, in both forms.
func TestThresholdZeroMasked(t *testing.T) {
	shape := nn.Shape{C: 3, H: 8, W: 8}
	g := maskedResNet20(t, 5, shape)
	x := randAct(rand.New(rand.NewPCG(5, 6)), 8, shape)
	want := forward(t, g, x)
	for _, form := range []string{FormRMNet, FormResNet} {
		t.Run(form, func(t *testing.T) {
			res, err := Prune(g, Options{Method: Slim, Threshold: ptr(0), Form: form, Shape: shape})
			if err != nil {
				t.Fatal(err)
			}
			got := forward(t, res.Graph, x)
			if rel, _ := nn.RelError(got.D, want.D); rel > 1e-5 {
				t.Errorf("rel error got %.3g; want ≤ 1e-5", rel)
			}
			if !slices.Equal(argmax(got), argmax(want)) {
				t.Errorf("predictions %v; want %v", argmax(got), argmax(want))
			}
			final := map[string][]int{}
			for _, l := range res.Recipe.Layers {
				final[l.Name] = l.Final
			}
			zero := 0
			for i := range 9 {
				p := []string{"layer1.", "layer2.", "layer3."}[i/3] + string(rune('0'+i%3))
				mr := g.Node(p + ".mask_res.0").P("weight")
				off := len(mr)
				if form == FormResNet {
					off = 0
				}
				for o, m := range g.Node(p + ".mask1").P("weight") {
					if m == 0 {
						zero++
						if slices.Contains(final[p+".conv1"], off+o) {
							t.Errorf("%s.conv1 channel %d (mask1 0) kept", p, off+o)
						}
					}
				}
				if form == FormResNet {
					continue
				}
				for r, m := range mr {
					if m <= 0 && slices.Contains(final[p+".conv1"], r) {
						t.Errorf("%s.conv1 reserved %d (mask_res %g) kept", p, r, m)
					}
				}
				for o, m := range g.Node(p + ".mask2").P("weight") {
					if m == 0 && slices.Contains(final[p+".conv2"], o) {
						t.Errorf("%s.conv2 block output %d (mask2 0) kept", p, o)
					}
				}
			}
			r := res.Report
			if zero == 0 || r.MACsAfter >= r.MACsBefore {
				t.Errorf("%d zero inner masks, MACs %d → %d; want some removed", zero, r.MACsBefore, r.MACsAfter)
			}
			t.Logf("%s: channels %d → %d, MACs %d → %d (%.1f%% removed)", form, r.ChannelsBefore, r.ChannelsAfter,
				r.MACsBefore, r.MACsAfter, 100*(1-float64(r.MACsAfter)/float64(r.MACsBefore)))
		})
	}
}

func argmax(a *nn.Act) []int {
	out := make([]int, a.N)
	per := len(a.D) / a.N
	for i := range out {
		row := a.D[i*per : (i+1)*per]
		for j, v := range row {
			if v > row[out[i]] {
				out[i] = j
			}
		}
	}
	return out
}

// The baseline from a mask-trained net (form resnet) folds the masks and
// ranks inner channels by |γ·m1|: no removed channel scores above a kept one.
func TestFormResNetMasked(t *testing.T) {
	shape := nn.Shape{C: 3, H: 8, W: 8}
	g := maskedResNet20(t, 7, shape)
	res, err := Prune(g, Options{Method: Slim, Ratio: ptr(0.4), Form: FormResNet, Shape: shape})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := math.Inf(1), math.Inf(-1) // lowest kept, highest removed
	for _, l := range res.Recipe.Layers {
		p := strings.TrimSuffix(l.Name, ".conv1")
		gamma, m1 := g.Node(p+".bn1").P("weight"), g.Node(p+".mask1").P("weight")
		for c := range l.Channels {
			s := math.Abs(float64(gamma[c] * m1[c]))
			if slices.Contains(l.Kept, c) {
				lo = min(lo, s)
			} else {
				hi = max(hi, s)
			}
		}
	}
	if hi > lo {
		t.Errorf("a channel with |γ·m1| %g was removed while one with %g was kept", hi, lo)
	}
	if res.Graph.HasMasks() {
		t.Error("pruned baseline still has mask nodes")
	}
}

func TestRatioGuards(t *testing.T) {
	shape := nn.Shape{C: 3, H: 8, W: 8}
	g := maskedResNet20(t, 9, shape)
	bare := g.Clone()
	for _, n := range bare.Nodes {
		delete(n.Params, "act_mean")
		delete(n.Params, "act_var")
	}
	// A network whose every channel is provably dead (γ = 0, β < 0 into
	// non-negative masks and ReLUs): dead-channel propagation removes nearly
	// everything, whatever the ratio.
	dead := maskedResNet20(t, 9, shape)
	for _, n := range dead.Nodes {
		switch n.Op {
		case nn.OpBatchNorm:
			gamma, beta := n.P("weight"), n.P("bias")
			for c := range gamma {
				gamma[c], beta[c] = 0, -1
			}
		case nn.OpMask:
			m := n.P("weight")
			for c := range m {
				m[c] = float32(math.Abs(float64(m[c])))
			}
		}
	}
	for _, tt := range []struct {
		name string
		g    *nn.Graph
		opt  Options
		want error
		msg  string
	}{
		{"no statistics", bare, Options{Method: Slim, Ratio: ptr(0.3)}, ErrNoStats, "give calibration data (--calib DATASET)"},
		{"no statistics, l1", bare, Options{Method: L1, Ratio: ptr(0.3)}, nil, ""},
		{"no statistics, threshold", bare, Options{Method: Slim, Threshold: ptr(0)}, nil, ""},
		{"no statistics, calib", bare, Options{Method: Slim, Ratio: ptr(0.3), Calib: randAct(rand.New(rand.NewPCG(1, 1)), 2, shape)}, nil, ""},
		{"statistics", g, Options{Method: Slim, Ratio: ptr(0.3)}, nil, ""},
		{"destroyed", dead, Options{Method: Slim, Ratio: ptr(0.1)}, ErrDestroyed, "refusing (prune --force accepts it)"},
		{"destroyed, forced", dead, Options{Method: Slim, Ratio: ptr(0.1), Force: true}, nil, ""},
		{"destroyed, ratio above 0.5", dead, Options{Method: Slim, Ratio: ptr(0.6)}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opt.Shape = shape
			res, err := Prune(tt.g, tt.opt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
			if err != nil && (res != nil || !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), "\n")) {
				t.Errorf("error %q (result %v); want one line with %q and no result", err, res != nil, tt.msg)
			}
			if tt.name == "destroyed, forced" && float64(res.Report.ChannelsAfter) >= MinKeptShare*float64(res.Report.ChannelsBefore) {
				t.Errorf("dead net kept %d of %d channels; the guard case needs < 5%%", res.Report.ChannelsAfter, res.Report.ChannelsBefore)
			}
		})
	}
}
