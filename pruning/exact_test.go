package pruning

import (
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// narrowBottleneck is ResNet-50's layout (Bottlenecks 3-4-6-3, torchvision
// names) at 1/8 of its widths, so that the RM form stays small.
func narrowBottleneck(classes int, seed uint64) *nn.Graph {
	s := nn.ResNetSpec{InChannels: 3, StemWidth: 8, StemKernel: 7, MaxPool: true, Classes: classes,
		Blocks: nn.ResNetBlocks([]int{3, 4, 6, 3}, []int{8, 16, 32, 64}, 8, true)}
	g := s.Build(seed)
	g.Arch, g.Classes = "resnet50", classes
	return g
}

func buildNet(t testing.TB, arch string, seed uint64) *nn.Graph {
	t.Helper()
	if arch == "resnet50/8" {
		return narrowBottleneck(10, seed)
	}
	g, err := nn.Build(arch, 3, 10, seed)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// deadInPrunable counts the dead channels (γ = 0, β ≤ 0 before a ReLU) that
// sit in layers the report calls prunable.
func deadInPrunable(g *nn.Graph, dead map[string][]int, rep Report) int {
	prunable := map[string]bool{}
	for _, l := range rep.Layers {
		prunable[l.Name] = l.Prunable
	}
	n := 0
	for bn, cs := range dead {
		if conv := g.Node(bn).Inputs[0]; prunable[conv] {
			n += len(cs)
		}
	}
	return n
}

// Pruning exactly the dead channels (a threshold just above zero) must not
// change the output: they are removed with their consumers' input columns,
// constants fold where exact or stay.
func TestExactDeadChannels(t *testing.T) {
	tests := []struct {
		arch  string
		shape nn.Shape
	}{
		{"resnet20", nn.Shape{C: 3, H: 16, W: 16}},
		{"resnet18", nn.Shape{C: 3, H: 16, W: 16}},
		{"resnet50/8", nn.Shape{C: 3, H: 32, W: 32}},
		{"mobilenet_v2", nn.Shape{C: 3, H: 32, W: 32}},
	}
	for _, tt := range tests {
		for _, v := range []struct {
			form, method string
			calib        bool
		}{{FormRMNet, Slim, true}, {FormRMNet, L1, false}, {FormResNet, Slim, false}, {FormResNet, L1, false}} {
			form, method, calib := v.form, v.method, v.calib
			name := tt.arch + "/" + form + "/" + method
			if calib {
				name += "/calib"
			}
			t.Run(name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(7, uint64(len(name))))
				g := buildNet(t, tt.arch, 3)
				nn.RandomizeBN(g, rng)
				dead := forceDead(g, rng, 0.25, 0.25)
				x := randAct(rng, 2, tt.shape)
				want := forward(t, g, x)
				opt := Options{Method: method, Threshold: ptr(1e-6), Form: form, Shape: tt.shape}
				if calib {
					opt.Calib = x
				}
				res, err := Prune(g, opt)
				if err != nil {
					t.Fatal(err)
				}
				got := forward(t, res.Graph, x)
				rel, _ := nn.RelError(got.D, want.D)
				if rel > 1e-5 {
					t.Errorf("rel error got %.3g; want ≤ 1e-5", rel)
				}
				r := res.Report
				removed := r.ChannelsBefore - r.ChannelsAfter
				if n := deadInPrunable(g, dead, r); removed < n || n == 0 {
					t.Errorf("removed %d channels; want ≥ %d dead ones (and some)", removed, n)
				}
				if r.ParamsAfter >= r.ParamsBefore || r.MACsAfter >= r.MACsBefore {
					t.Errorf("params %d→%d, macs %d→%d: want both smaller", r.ParamsBefore, r.ParamsAfter, r.MACsBefore, r.MACsAfter)
				}
				t.Logf("removed %d of %d prunable (policy %d, propagated %d, constants kept %d), params %d→%d, rel %.2g, stats %s",
					removed, r.ChannelsBefore, r.PolicyRemoved, r.PropagatedRemoved, r.ConstantKept, r.ParamsBefore, r.ParamsAfter, rel, r.StatsSource)
			})
		}
	}
}
