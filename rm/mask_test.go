package rm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// randomMasks gives every mask values in [-0.5, 1.5) with ~20% exact zeros
// and some negatives, so that dead and sign-flipping masks are exercised.
func randomMasks(g *nn.Graph, rng *rand.Rand) {
	for _, n := range g.Nodes {
		if n.Op != nn.OpMask {
			continue
		}
		m := n.P("weight")
		for i := range m {
			m[i] = float32(2*rng.Float64() - 0.5)
			if rng.IntN(5) == 0 {
				m[i] = 0
			}
		}
	}
}

func maskedCases() []struct {
	name string
	spec nn.ResNetSpec
} {
	basic := nn.ResNetSpec{InChannels: 3, StemWidth: 6, StemKernel: 3, Classes: 5, Masks: true, Blocks: []nn.BlockSpec{
		{Prefix: "layer1.0", In: 6, Mid: 5, Out: 6, Stride: 1},
		{Prefix: "layer2.0", In: 6, Mid: 7, Out: 8, Stride: 2, Downsample: true},
		{Prefix: "layer2.1", In: 8, Mid: 4, Out: 5, Stride: 1, Downsample: true},
		{Prefix: "layer2.2", In: 5, Mid: 6, Out: 5, Stride: 1},
	}}
	bott := nn.ResNetSpec{InChannels: 3, StemWidth: 6, StemKernel: 3, Classes: 5, Masks: true, Blocks: []nn.BlockSpec{
		{Prefix: "layer1.0", Bottleneck: true, In: 6, Mid: 3, Mid2: 3, Out: 8, Stride: 2, Downsample: true},
		{Prefix: "layer1.1", Bottleneck: true, In: 8, Mid: 2, Mid2: 3, Out: 8, Stride: 1},
	}}
	imagenet := nn.ResNetSpec{InChannels: 3, StemWidth: 6, StemKernel: 7, MaxPool: true, Classes: 4, Masks: true,
		Blocks: nn.ResNetBlocks([]int{2, 1}, []int{6, 8}, 6, false)}
	return []struct {
		name string
		spec nn.ResNetSpec
	}{{"basic", basic}, {"bottleneck", bott}, {"imagenet-stem", imagenet}}
}

// Every form of a mask-trained net (random BN, masks with zeros and
// negatives) computes the masked graph's function, and the BN-kept form
// carries each mask in the BN of the channels it scales.
func TestConvertMasked(t *testing.T) {
	for ci, tc := range maskedCases() {
		for fi, f := range forms {
			t.Run(tc.name+"/"+f.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(ci), uint64(fi)+40))
				in := nn.Shape{C: 3, H: 9, W: 9}
				if tc.spec.StemKernel == 7 {
					in = nn.Shape{C: 3, H: 20, W: 20}
				}
				g := tc.spec.Build(3)
				randomize(t, g, in, rng, nil)
				randomMasks(g, rng)
				if f.src == SourceDefault || f.src == "" {
					stripStats(g)
				}
				opt := Options{KeepBN: f.keep}
				if f.src == SourceCalib {
					opt.Calib = RandomInput(3, in, 99)
				}
				res, err := Convert(g, opt)
				if err != nil {
					t.Fatal(err)
				}
				if res.Graph.HasMasks() || res.Graph.HasResidual() {
					t.Fatalf("converted graph has masks %v, adds %v; want neither", res.Graph.HasMasks(), res.Graph.HasResidual())
				}
				x := RandomInput(2, in, 5)
				checkMaskedOutputs(t, g, res, x, f.keep)
				rep, err := Compare(g, res.Graph, x)
				if err != nil {
					t.Fatal(err)
				}
				if rep.MaxRelErr > tol || math.IsNaN(rep.MaxRelErr) {
					t.Errorf("Compare rel error got %.3g; want ≤ %g", rep.MaxRelErr, tol)
				}
				plain := tc.spec
				plain.Masks = false
				if want := Channels(plain.Build(1)); rep.ChannelsBefore != want {
					t.Errorf("Compare channels_before got %d; want %d (masks are channel-wise)", rep.ChannelsBefore, want)
				}
				if f.keep {
					checkMaskedScales(t, g, res, opt.Calib, f.src)
				}
			})
		}
	}
}

// checkMaskedOutputs compares the logits and, in the BN-kept form, every
// block's output BN with the original mask2 output.
func checkMaskedOutputs(t *testing.T, g *nn.Graph, res *Result, x *nn.Act, keep bool) {
	t.Helper()
	outs := map[string]string{} // converted node → original mask2 node
	if keep {
		for _, b := range res.Blocks {
			outs[b.Output] = b.Name + ".mask2"
		}
	}
	want := map[string][]float32{}
	wy, err := g.Forward(x, func(n *nn.Node, out *nn.Act) { want[n.Name] = append([]float32(nil), out.D...) })
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{}
	gy, err := res.Graph.Forward(x, func(n *nn.Node, out *nn.Act) {
		if _, ok := outs[n.Name]; ok {
			got[n.Name] = append([]float32(nil), out.D...)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if rel, abs := nn.RelError(gy.D, wy.D); rel > tol || math.IsNaN(rel) {
		t.Errorf("logits rel error got %.3g (abs %.3g); want ≤ %g", rel, abs, tol)
	}
	for o, m2 := range outs {
		if rel, abs := nn.RelError(got[o], want[m2]); rel > tol || math.IsNaN(rel) {
			t.Errorf("block output %s vs %s rel error got %.3g (abs %.3g); want ≤ %g", o, m2, rel, abs, tol)
		}
	}
}

// checkMaskedScales checks DESIGN's BN-kept scales of a mask-trained net:
// inner γ·m1, reserved √(v1+ε)·max(m_res,0), block outputs √(v2+ε)·m2, and
// γ = β = 0 exactly where a mask is 0.
func checkMaskedScales(t *testing.T, g *nn.Graph, res *Result, calib *nn.Act, src string) {
	t.Helper()
	st := newStats(g, nil, true)
	if calib != nil {
		blocks, err := findBlocks(mustUnmask(g))
		if err != nil {
			t.Fatal(err)
		}
		st = newStats(g, blocks, true)
		if err := st.measure(g, calib); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]*nn.Node{}
	for _, n := range res.Graph.Nodes {
		out[n.Name] = n
	}
	near := func(got float32, want float64) bool {
		return math.Abs(float64(got)-want) <= 1e-6*max(1, math.Abs(want))
	}
	for _, b := range res.Blocks {
		if !b.Masked {
			t.Errorf("block %s: Masked not set", b.Name)
		}
		if b.SumStats != src {
			t.Errorf("block %s: sum stats from %s; want %s", b.Name, b.SumStats, src)
		}
		mr := g.Node(b.Name + ".mask_res.0").P("weight")
		m2 := g.Node(b.Name + ".mask2").P("weight")
		in := st.get(b.Input, g.Node(b.Convs[0]).Stride, len(mr)) // the first reserved BN's statistics
		sum := st.get(b.Add, 1, len(m2))
		rbn := out[b.Convs[0]]
		rbn = out[res.Layer(rbn.Name).BN]
		gamma, beta := rbn.P("weight"), rbn.P("bias")
		for r, m := range mr {
			s := max(float64(m), 0)
			if s == 0 && (math.Float32bits(gamma[r]) != 0 || math.Float32bits(beta[r]) != 0) {
				t.Errorf("%s reserved %d: mask_res %g, γ %g β %g; want +0, +0", rbn.Name, r, m, gamma[r], beta[r])
			}
			if !near(gamma[r], math.Sqrt(in.vr[r]+1e-5)*s) || !near(beta[r], in.mean[r]*s) {
				t.Errorf("%s reserved %d: γ %g β %g; want %g, %g", rbn.Name, r, gamma[r], beta[r], math.Sqrt(in.vr[r]+1e-5)*s, in.mean[r]*s)
			}
		}
		// Inner channels of the first unit: γ·m1.
		bn1 := g.Node(b.Name + ".bn1").P("weight")
		m1 := g.Node(b.Name + ".mask1").P("weight")
		for o := range m1 {
			if got, want := gamma[len(mr)+o], bn1[o]*m1[o]; got != want && !(got == 0 && want == 0) {
				t.Errorf("%s inner %d: γ %g; want γ·m1 = %g", rbn.Name, o, got, want)
			}
		}
		obn := out[b.Output]
		og, ob, om := obn.P("weight"), obn.P("bias"), obn.P("running_var")
		for o, m := range m2 {
			if m == 0 && (math.Float32bits(og[o]) != 0 || math.Float32bits(ob[o]) != 0) {
				t.Errorf("%s out %d: mask2 0, γ %g β %g; want +0, +0", obn.Name, o, og[o], ob[o])
			}
			if !near(og[o], math.Sqrt(sum.vr[o]+1e-5)*float64(m)) || !near(ob[o], sum.mean[o]*float64(m)) || !near(om[o], sum.vr[o]) {
				t.Errorf("%s out %d: γ %g β %g var %g; want %g, %g, %g", obn.Name, o, og[o], ob[o], om[o],
					math.Sqrt(sum.vr[o]+1e-5)*float64(m), sum.mean[o]*float64(m), sum.vr[o])
			}
		}
	}
}

func mustUnmask(g *nn.Graph) *nn.Graph {
	u, _ := unmask(g)
	return u
}

// A masked net whose masks sit elsewhere than the reference layout's places
// still converts exactly (the leftovers fold by nn.FoldMasks).
func TestConvertMaskedOddPlaces(t *testing.T) {
	spec := maskedCases()[0].spec
	g := spec.Build(5)
	rng := rand.New(rand.NewPCG(9, 9))
	in := nn.Shape{C: 3, H: 8, W: 8}
	randomize(t, g, in, rng, nil)
	randomMasks(g, rng)
	// A mask on the classifier's input: neither after a BN nor a shortcut.
	for i, n := range g.Nodes {
		if n.Op == nn.OpFlatten {
			m := &nn.Node{Name: "extra.mask", Op: nn.OpMask, Inputs: []string{n.Name}}
			w := make([]float32, 5)
			for c := range w {
				w[c] = float32(c) - 1
			}
			m.SetP("weight", []int{5}, w)
			g.Nodes[i+1].Inputs[0] = m.Name
			g.Nodes = append(g.Nodes[:i+1], append([]*nn.Node{m}, g.Nodes[i+1:]...)...)
			break
		}
	}
	if _, err := g.Shapes(in); err != nil {
		t.Fatal(err)
	}
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			res, err := Convert(g, Options{KeepBN: keep})
			if err != nil {
				t.Fatal(err)
			}
			checkMaskedOutputs(t, g, res, RandomInput(2, in, 1), false)
		})
	}
}
