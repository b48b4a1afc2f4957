package pruning

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// randomNet builds a small random residual network: CIFAR stem, 1–3 stages
// of 1–2 BasicBlocks or Bottlenecks with random widths, projection or
// identity (sometimes scaled) shortcuts; or a narrow MobileNetV2. BNs are
// random, some channels dead or constant.
func randomNet(rng *rand.Rand) (*nn.Graph, nn.Shape) {
	shape := nn.Shape{C: 1 + rng.IntN(3), H: 8 + 2*rng.IntN(5), W: 8 + 2*rng.IntN(5)}
	var g *nn.Graph
	if rng.IntN(6) == 0 {
		g = nn.StandardMobileNetV2(shape.C, 2+rng.IntN(8), 0.25).Build(rng.Uint64())
	} else {
		stages := 1 + rng.IntN(3)
		counts, widths := make([]int, stages), make([]int, stages)
		for i := range counts {
			counts[i], widths[i] = 1+rng.IntN(2), 2+rng.IntN(12)
		}
		stem := 2 + rng.IntN(10)
		blocks := nn.ResNetBlocks(counts, widths, stem, rng.IntN(2) == 0)
		for i := range blocks {
			blocks[i].ShortcutScale = !blocks[i].Downsample && rng.IntN(3) == 0
		}
		s := nn.ResNetSpec{InChannels: shape.C, StemWidth: stem, StemKernel: 3, Blocks: blocks, Classes: 2 + rng.IntN(8),
			Masks: rng.IntN(3) == 0}
		g = s.Build(rng.Uint64())
	}
	nn.RandomizeBN(g, rng)
	forceDead(g, rng, 0.3*rng.Float64(), 0.3)
	for _, n := range g.Nodes { // a mask-trained net: zero and negative masks
		if n.Op == nn.OpMask {
			m := n.P("weight")
			for i := range m {
				m[i] = float32(1.6*rng.Float64() - 0.3)
				if rng.IntN(4) == 0 {
					m[i] = 0
				}
			}
		}
	}
	return g, shape
}

// Over random architectures and options: the pruned network is consistent
// (shapes check, forward runs, outputs finite), its report adds up, and
// replaying its recipe on the same source gives a bit-identical network.
func FuzzPrune(f *testing.F) {
	for seed := range uint64(12) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 0xf022))
		g, shape := randomNet(rng)
		x := randAct(rng, 2, shape)
		opt := Options{
			Method:      []string{Slim, L1}[rng.IntN(2)],
			Scope:       []string{"", ScopeGlobal, ScopeUniform}[rng.IntN(3)],
			Form:        []string{FormRMNet, FormResNet}[rng.IntN(2)],
			MinChannels: rng.IntN(4),
			RoundTo:     []int{0, 1, 2, 4, 8}[rng.IntN(5)],
			Shape:       shape,
		}
		if rng.IntN(2) == 0 {
			opt.Calib = x
		}
		switch rng.IntN(6) {
		case 0:
			opt.Threshold = ptr(rng.Float64())
		case 1:
			opt.Threshold = ptr(0)
		default:
			opt.Ratio = ptr(0.95 * rng.Float64())
		}
		res, err := Prune(g, opt)
		if errors.Is(err, ErrNoStats) || errors.Is(err, ErrDestroyed) {
			return // the guards refused (tested in TestRatioGuards)
		}
		if err != nil {
			t.Fatalf("%+v: %v", opt, err)
		}
		y := forward(t, res.Graph, x)
		if opt.Threshold != nil && *opt.Threshold == 0 && opt.RoundTo <= 1 {
			// Threshold 0 removes only zero-scale channels: exact (round-to
			// may remove live channels to reach a multiple).
			if rel, _ := nn.RelError(y.D, forward(t, g, x).D); rel > 1e-5 {
				t.Errorf("threshold 0 changed the output: rel error %g", rel)
			}
		}
		for _, v := range y.D {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("output %v", v)
			}
		}
		r := res.Report
		sum := 0
		for _, l := range res.Recipe.Layers {
			sum += len(l.Final)
			if len(l.Final) < min(max(opt.MinChannels, 1), l.Channels) {
				t.Errorf("layer %s keeps %d; min-channels %d", l.Name, len(l.Final), opt.MinChannels)
			}
		}
		if sum != r.ChannelsAfter {
			t.Errorf("recipe keeps %d channels; report says %d", sum, r.ChannelsAfter)
		}
		if s, err := res.Graph.Summarize(shape); err != nil || s.Params != r.ParamsAfter {
			t.Errorf("summary %v, %v; report params_after %d", s, err, r.ParamsAfter)
		}
		rec, err := ParseRecipe([]byte(res.Graph.Recipe))
		if err != nil {
			t.Fatal(err)
		}
		again, err := Prune(g, Options{Recipe: rec, Calib: opt.Calib, Shape: shape})
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		if err := bitsEqual(res.Graph, again.Graph); err != nil {
			t.Errorf("replay differs: %v", err)
		}
		if again.Graph.Recipe != res.Graph.Recipe {
			t.Errorf("replay recipe differs:\n%s\n%s", again.Graph.Recipe, res.Graph.Recipe)
		}
	})
}
