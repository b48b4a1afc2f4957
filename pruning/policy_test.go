package pruning

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

func randomResNet20(t testing.TB, seed uint64) *nn.Graph {
	t.Helper()
	g := buildNet(t, "resnet20", seed)
	nn.RandomizeBN(g, rand.New(rand.NewPCG(seed, 99)))
	return g
}

// A global ratio makes the policy remove round(R·prunable) channels (a guard
// only redirects a choice); a uniform ratio removes round(R·n) in every
// layer; dead-channel propagation may remove more, exactly; no layer is emptied.
func TestRatios(t *testing.T) {
	g := randomResNet20(t, 5)
	shape := nn.Shape{C: 3, H: 8, W: 8}
	calib := randAct(rand.New(rand.NewPCG(5, 5)), 4, shape)
	tests := []struct {
		method, scope, form string
		ratio               float64
	}{
		{Slim, ScopeGlobal, FormRMNet, 0.1},
		{Slim, ScopeGlobal, FormRMNet, 0.5},
		{Slim, ScopeGlobal, FormResNet, 0.3},
		{L1, ScopeGlobal, FormRMNet, 0.4},
		{L1, ScopeUniform, FormRMNet, 0.3},
		{L1, ScopeUniform, FormResNet, 0.5},
		{Slim, ScopeUniform, FormRMNet, 0.7},
		{Slim, "", FormRMNet, 0.25}, // slim defaults to global
		{L1, "", FormResNet, 0.25},  // l1 defaults to uniform
	}
	for _, tt := range tests {
		t.Run(tt.method+"/"+tt.scope+"/"+tt.form, func(t *testing.T) {
			res, err := Prune(g, Options{Method: tt.method, Scope: tt.scope, Form: tt.form, Ratio: ptr(tt.ratio), Calib: calib})
			if err != nil {
				t.Fatal(err)
			}
			r := res.Report
			wantScope := tt.scope
			if wantScope == "" {
				wantScope = map[string]string{Slim: ScopeGlobal, L1: ScopeUniform}[tt.method]
			}
			if r.Scope != wantScope {
				t.Errorf("scope got %q; want %q", r.Scope, wantScope)
			}
			if r.GuardKept != 0 && wantScope == ScopeUniform {
				t.Fatalf("guards kept %d: the test wants none", r.GuardKept)
			}
			// The policy removes exactly its target; propagation may remove
			// more (channels left dead or unread, exactly).
			removed := r.ChannelsBefore - r.ChannelsAfter
			if r.PolicyRemoved+r.PropagatedRemoved != removed {
				t.Errorf("policy %d + propagated %d ≠ removed %d", r.PolicyRemoved, r.PropagatedRemoved, removed)
			}
			switch wantScope {
			case ScopeGlobal:
				want := int(math.Round(tt.ratio * float64(r.ChannelsBefore)))
				if r.PolicyRemoved != want || r.TargetRemoved != want {
					t.Errorf("policy removed %d (target %d) of %d; want %d", r.PolicyRemoved, r.TargetRemoved, r.ChannelsBefore, want)
				}
			case ScopeUniform:
				for _, l := range res.Recipe.Layers {
					want := l.Channels - int(math.Round(tt.ratio*float64(l.Channels)))
					if len(l.Kept) != want || len(l.Final) > len(l.Kept) {
						t.Errorf("layer %s keeps %d (final %d) of %d; want %d", l.Name, len(l.Kept), len(l.Final), l.Channels, want)
					}
				}
			}
			slack := 0.005 + float64(r.PropagatedRemoved)/float64(r.ChannelsBefore)
			if got := r.RemovedSharePrunable; got < tt.ratio-0.005 || got > tt.ratio+slack {
				t.Errorf("removed_share_prunable got %.3f; want %.2f (+ propagation %.3f)", got, tt.ratio, slack)
			}
			t.Logf("removed %.3f of prunable (%d propagated), %.3f of all", r.RemovedSharePrunable, r.PropagatedRemoved, r.RemovedShareAll)
			if r.RemovedShareAll > r.RemovedSharePrunable+1e-12 {
				t.Errorf("removed_share_all %.3f > removed_share_prunable %.3f", r.RemovedShareAll, r.RemovedSharePrunable)
			}
			for _, l := range r.Layers {
				if l.After < 1 {
					t.Errorf("layer %s emptied", l.Name)
				}
			}
		})
	}
}

// Guards: min-channels keeps K in every layer even where a global ratio would
// empty it; round-to makes every layer's count a multiple of N.
func TestGuards(t *testing.T) {
	g := randomResNet20(t, 6)
	// Make one layer so weak that a global ratio of 0.5 would take all of it.
	for _, n := range g.Nodes {
		if n.Name == "layer2.1.bn1" {
			for i, v := range n.P("weight") {
				n.P("weight")[i] = v * 1e-3
			}
		}
	}
	shape := nn.Shape{C: 3, H: 8, W: 8}
	calib := randAct(rand.New(rand.NewPCG(6, 6)), 4, shape)
	tests := []struct {
		name       string
		opt        Options
		min, round int
	}{
		{"min1", Options{Method: Slim, Ratio: ptr(0.5), Form: FormResNet}, 1, 1},
		{"min1-rmnet", Options{Method: Slim, Ratio: ptr(0.5)}, 1, 1},
		{"min4", Options{Method: Slim, Ratio: ptr(0.9), MinChannels: 4}, 4, 1},
		{"min4-resnet", Options{Method: Slim, Ratio: ptr(0.9), MinChannels: 4, Form: FormResNet}, 4, 1},
		{"round8", Options{Method: Slim, Ratio: ptr(0.5), RoundTo: 8}, 8, 8},
		{"round8-uniform", Options{Method: L1, Ratio: ptr(0.3), RoundTo: 8}, 8, 8},
		{"round8-threshold", Options{Method: Slim, Threshold: ptr(0.9), RoundTo: 8}, 8, 8},
		{"round8-resnet", Options{Method: L1, Ratio: ptr(0.6), RoundTo: 8, Form: FormResNet}, 8, 8},
		{"round4-min6", Options{Method: Slim, Ratio: ptr(0.8), RoundTo: 4, MinChannels: 6}, 8, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opt.Calib = calib
			res, err := Prune(g, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range res.Recipe.Layers {
				k := len(l.Final)
				if k < min(tt.min, l.Channels) {
					t.Errorf("layer %s keeps %d; want ≥ %d", l.Name, k, tt.min)
				}
				if l.Channels >= tt.round && k%tt.round != 0 {
					t.Errorf("layer %s keeps %d; want a multiple of %d", l.Name, k, tt.round)
				}
			}
			r := res.Report
			if tt.name == "min1" && r.GuardKept == 0 {
				t.Errorf("guard_kept got 0; want > 0 (layer2.1.conv1 would be emptied)")
			}
			if tt.opt.Ratio != nil && tt.opt.Scope != ScopeUniform && tt.opt.Method == Slim {
				// The achieved share is the ratio up to guards and rounding.
				slack := float64(r.GuardKept+abs(r.RoundingDelta)+r.PropagatedRemoved) / float64(r.ChannelsBefore)
				if d := math.Abs(r.RemovedSharePrunable - *tt.opt.Ratio); d > slack+1e-9 {
					t.Errorf("removed share %.3f, ratio %.2f: off by %.3f, more than guards and rounding explain (%.3f)", r.RemovedSharePrunable, *tt.opt.Ratio, d, slack)
				}
			}
			t.Logf("removed %.3f of prunable (guard kept %d, rounding %+d)", r.RemovedSharePrunable, r.GuardKept, r.RoundingDelta)
		})
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Prune leaves its input alone, and the pruned network shares no tensor
// with it (fine-tuning the result must not change the source).
func TestSourceUntouched(t *testing.T) {
	for _, form := range []string{FormRMNet, FormResNet} {
		t.Run(form, func(t *testing.T) {
			g := randomResNet20(t, 16)
			forceDead(g, rand.New(rand.NewPCG(16, 16)), 0.2, 0.3)
			before := nn.SourceSHA256(g.StateDict())
			res, err := Prune(g, Options{Method: L1, Ratio: ptr(0.3), Form: form, Shape: nn.Shape{C: 3, H: 8, W: 8}})
			if err != nil {
				t.Fatal(err)
			}
			if after := nn.SourceSHA256(g.StateDict()); after != before {
				t.Fatalf("Prune changed its input")
			}
			for _, n := range res.Graph.Nodes {
				for k := range n.Params {
					v := n.P(k)
					for i := range v {
						v[i] += 1
					}
				}
			}
			if after := nn.SourceSHA256(g.StateDict()); after != before {
				t.Errorf("the pruned network shares tensors with its source")
			}
		})
	}
}
