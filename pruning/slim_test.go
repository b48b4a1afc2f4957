package pruning

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// channelStd returns the population mean and std of every channel of a.
func channelStd(a *nn.Act) (mean, std []float64) {
	mean, std = make([]float64, a.C), make([]float64, a.C)
	for c := 0; c < a.C; c++ {
		var s, ss float64
		n := 0
		for b := 0; b < a.N; b++ {
			for _, v := range a.Plane(b, c) {
				s += float64(v)
				n++
			}
		}
		m := s / float64(n)
		for b := 0; b < a.N; b++ {
			for _, v := range a.Plane(b, c) {
				ss += (float64(v) - m) * (float64(v) - m)
			}
		}
		mean[c], std[c] = m, math.Sqrt(ss/float64(n))
	}
	return mean, std
}

// recalibrate sets every BatchNorm's running statistics to those of its
// input on x (population variance), as a trained network's statistics would
// match its data. One pass: a BN's input is seen just before the BN runs.
func recalibrate(t *testing.T, g *nn.Graph, x *nn.Act) {
	cons := g.Consumers()
	_, err := g.Forward(x, func(n *nn.Node, out *nn.Act) {
		for _, bn := range cons[n.Name] {
			if bn.Op != nn.OpBatchNorm {
				continue
			}
			m, s := channelStd(out)
			mean, vr := bn.P("running_mean"), bn.P("running_var")
			for c := range m {
				mean[c], vr[c] = float32(m[c]), float32(s[c]*s[c])
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The slim score of every channel — the learned γ of an inner channel, the
// √(v+ε) that the BN-kept form gives a reserved channel or a block output —
// is the standard deviation of that channel's BN output on the data
// (×√(v/(v+ε)), the ε of BN), when the statistics describe the data. So
// one global ranking compares like with like: how much each channel varies
// where the next layer reads it.
func TestSlimScoreIsChannelStd(t *testing.T) {
	tests := []struct {
		arch  string
		shape nn.Shape
	}{
		{"resnet20", nn.Shape{C: 3, H: 8, W: 8}},
		{"resnet50/8", nn.Shape{C: 3, H: 64, W: 64}},
		{"mobilenet_v2", nn.Shape{C: 3, H: 64, W: 64}},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			g := buildNet(t, tt.arch, 4)
			nn.RandomizeBN(g, rng)
			x := randAct(rng, 4, tt.shape)
			recalibrate(t, g, x)
			res, err := rm.Convert(g, rm.Options{KeepBN: true, Calib: x})
			if err != nil {
				t.Fatal(err)
			}
			scores, err := Importance(g, Options{Method: Slim, Calib: x})
			if err != nil {
				t.Fatal(err)
			}
			byLayer := map[string]LayerScores{}
			for _, l := range scores {
				byLayer[l.Layer] = l
			}
			conv := res.Graph
			std := map[string][]float64{}
			if _, err := conv.Forward(x, func(n *nn.Node, out *nn.Act) {
				if n.Op == nn.OpBatchNorm {
					_, std[n.Name] = channelStd(out)
				}
			}); err != nil {
				t.Fatal(err)
			}
			checked := map[rm.Kind]int{}
			for _, l := range res.Layers {
				if l.BN == "" {
					continue
				}
				bn := conv.Node(l.BN)
				gamma, vr := bn.P("weight"), bn.P("running_var")
				ls, creator := byLayer[l.Conv]
				for c, k := range l.Kinds {
					g := math.Abs(float64(gamma[c]))
					if creator {
						// The score is |γ| (the smallest over the BNs of the
						// channel: an inverted residual has two).
						if sc := ls.Scales[c]; sc > g || (tt.arch != "mobilenet_v2" && sc != g) {
							t.Errorf("%s[%d]: slim score %g; |γ| %g", l.Conv, c, sc, g)
						}
					}
					v := float64(vr[c])
					if v < 1e-3 {
						continue // (nearly) dead: std ~0, score ~√ε, both tiny
					}
					// A few samples per channel deep in the net amplify rounding
					// through the BN scales: 0.5 % is far below any ranking gap
					// that matters.
					want := g * math.Sqrt(v/(v+1e-5))
					if got := std[l.BN][c]; math.Abs(got-want) > 5e-3*want {
						t.Errorf("%s[%d] (%s): std of BN output %.6g; |γ|·√(v/(v+ε)) %.6g", l.Conv, c, k, got, want)
					}
					checked[k]++
				}
			}
			for _, k := range []rm.Kind{rm.KindInner, rm.KindReserved, rm.KindBlockOut} {
				if checked[k] == 0 {
					t.Errorf("no %s channel checked", k)
				}
			}
			t.Logf("checked %v", checked)
		})
	}
}
