package nn

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// randomizeMasks gives every mask values in [-0.5, 1.5) with some exact
// zeros, so that negative and dead masks are exercised.
func randomizeMasks(g *Graph, rng *rand.Rand) {
	for _, n := range g.Nodes {
		if n.Op != OpMask {
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

func maskedSpecs(t *testing.T) map[string]ResNetSpec {
	t.Helper()
	basic, err := StandardResNet("resnet20", 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	basic.Masks = true
	bott := ResNetSpec{InChannels: 3, StemWidth: 8, StemKernel: 3, Classes: 5, Masks: true,
		Blocks: ResNetBlocks([]int{2, 2}, []int{4, 8}, 8, true)}
	imagenet := ResNetSpec{InChannels: 3, StemWidth: 8, StemKernel: 7, MaxPool: true, Classes: 4, Masks: true,
		Blocks: ResNetBlocks([]int{2, 1}, []int{8, 16}, 8, false)}
	return map[string]ResNetSpec{"basic": basic, "bottleneck": bott, "imagenet-stem": imagenet}
}

func TestFoldMasksKeepsOutput(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for name, spec := range maskedSpecs(t) {
		t.Run(name, func(t *testing.T) {
			g := spec.Build(1)
			if !g.HasMasks() {
				t.Fatal("Masks spec built no mask nodes")
			}
			RandomizeBN(g, rng)
			randomizeMasks(g, rng)
			size := 32
			if spec.StemKernel == 7 {
				size = 64
			}
			x := randAct(rng, 2, Shape{3, size, size})
			want, err := g.Forward(x, nil)
			if err != nil {
				t.Fatal(err)
			}
			for form, f := range map[string]*Graph{"FoldMasks": FoldMasks(g), "FoldBN": FoldBN(g)} {
				if f.HasMasks() {
					t.Fatalf("%s left mask nodes", form)
				}
				got, err := f.Forward(x, nil)
				if err != nil {
					t.Fatal(err)
				}
				if rel, _ := RelError(got.D, want.D); rel > 1e-5 {
					t.Errorf("%s: rel error got %g; want ≤ 1e-5", form, rel)
				}
			}
			// Folding must not touch the source graph.
			again, _ := g.Forward(x, nil)
			if rel, _ := RelError(again.D, want.D); rel != 0 {
				t.Errorf("source graph changed by folding: rel %g", rel)
			}
		})
	}
}

// A mask whose neighbours cannot absorb it becomes a depthwise conv.
func TestFoldMasksFallback(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	spec := maskedSpecs(t)["basic"]
	g := spec.Build(2)
	RandomizeBN(g, rng)
	randomizeMasks(g, rng)
	// A second reader of bn1 stops mask1 folding into it.
	bn := g.Node("layer1.0.bn1")
	g.Nodes = append(g.Nodes[:len(g.Nodes)-3], append([]*Node{{Name: "extra", Op: OpReLU, Inputs: []string{bn.Name}}}, g.Nodes[len(g.Nodes)-3:]...)...)
	f := FoldMasks(g)
	n := f.Node("layer1.0.mask1")
	if n == nil || n.Op != OpConv || n.G() != n.Out || n.Kernel != 1 {
		t.Fatalf("layer1.0.mask1 after folding: %+v; want a depthwise 1×1 conv", n)
	}
	x := randAct(rng, 1, Shape{3, 32, 32})
	want, _ := g.Forward(x, nil)
	got, err := f.Forward(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rel, _ := RelError(got.D, want.D); rel > 1e-5 {
		t.Errorf("rel error got %g; want ≤ 1e-5", rel)
	}
}

// Statistics recorded on a residual sum (running2, before mask2) scale with
// the folded mask.
func TestFoldMasksScalesStats(t *testing.T) {
	spec := maskedSpecs(t)["basic"]
	g := spec.Build(3)
	add := g.Node("layer1.0.add")
	c := spec.Blocks[0].Out
	mean, vr := make([]float32, c), make([]float32, c)
	m := g.Node("layer1.0.mask2").P("weight")
	for i := range mean {
		mean[i], vr[i], m[i] = 2, 3, float32(i%3)-1
	}
	add.SetP("act_mean", []int{c}, mean)
	add.SetP("act_var", []int{c}, vr)
	f := FoldMasks(g)
	fm, fv := f.Node("layer1.0.add").P("act_mean"), f.Node("layer1.0.add").P("act_var")
	for i := range fm {
		w := float32(i%3) - 1
		if fm[i] != 2*w || fv[i] != 3*w*w {
			t.Fatalf("channel %d: stats got (%g, %g); want (%g, %g)", i, fm[i], fv[i], 2*w, 3*w*w)
		}
	}
}

// MaskSummary sorts masks into kinds by structure and counts exact zeros.
func TestMaskSummary(t *testing.T) {
	for name, spec := range maskedSpecs(t) {
		t.Run(name, func(t *testing.T) {
			g := spec.Build(1)
			zeros := map[string]int{}
			counts := map[string]int{}
			for _, n := range g.Nodes {
				if n.Op != OpMask {
					continue
				}
				var kind string
				switch {
				case n.Name == "mask1":
					kind = MaskStem
				case strings.HasSuffix(n.Name, ".mask_res.0"):
					kind = MaskReserved
				case strings.HasSuffix(n.Name, ".mask2"):
					kind = MaskBlockOut
				default:
					kind = MaskInner
				}
				m := n.P("weight")
				for i := range m[:len(m)-1] {
					if i%3 == 0 {
						m[i] = 0
						zeros[kind]++
					}
				}
				m[len(m)-1] = -2
				counts[kind] += len(m)
			}
			r := MaskSummary(g)
			if len(r.Kinds) != 4 {
				t.Fatalf("kinds got %+v; want stem, inner, reserved, block_out", r.Kinds)
			}
			for i, k := range r.Kinds {
				if k.Kind != MaskKinds[i] || k.Count != counts[k.Kind] || k.Zero != zeros[k.Kind] || k.Min != 0 || k.Max != 2 ||
					k.ZeroShare != float64(zeros[k.Kind])/float64(counts[k.Kind]) {
					t.Errorf("kind %d got %+v; want %s with %d of %d zero, min 0, max 2", i, k, MaskKinds[i], zeros[k.Kind], counts[k.Kind])
				}
			}
			for _, l := range r.Layers {
				if want := MaskKind(g, g.Node(l.Name)); l.Kind != want || l.Negative != 1 {
					t.Errorf("layer %s got %+v; want kind %s, 1 negative", l.Name, l, want)
				}
			}
			if MaskSummary(FoldMasks(g)) != nil {
				t.Error("MaskSummary of a net without masks; want nil")
			}
		})
	}
}

// TestAddMasksMatchesSpec: AddMasks of a plain ResNet has the nodes (names,
// ops, inputs, order, mask sizes) of the same spec built with Masks, and
// computes the same function as the plain net (masks at 1).
func TestAddMasksMatchesSpec(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for name, spec := range maskedSpecs(t) {
		t.Run(name, func(t *testing.T) {
			want := spec.Build(1)
			spec.Masks = false
			plain := spec.Build(1)
			RandomizeBN(plain, rng)
			got, err := AddMasks(plain)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Nodes) != len(want.Nodes) {
				t.Fatalf("got %d nodes; want %d", len(got.Nodes), len(want.Nodes))
			}
			for i, w := range want.Nodes {
				n := got.Nodes[i]
				if n.Name != w.Name || n.Op != w.Op || fmt.Sprint(n.Inputs) != fmt.Sprint(w.Inputs) {
					t.Fatalf("node %d: got %s %s %v; want %s %s %v", i, n.Name, n.Op, n.Inputs, w.Name, w.Op, w.Inputs)
				}
				if n.Op == OpMask && fmt.Sprint(n.P("weight")) != fmt.Sprint(w.P("weight")) {
					t.Fatalf("mask %s: got %v; want %v", n.Name, n.P("weight"), w.P("weight"))
				}
			}
			if plain.HasMasks() {
				t.Fatal("AddMasks changed its input graph")
			}
			size := 32
			if spec.StemKernel == 7 {
				size = 64
			}
			x := randAct(rng, 2, Shape{3, size, size})
			a, err := plain.Forward(x, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := got.Forward(x, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range a.D {
				if a.D[i] != b.D[i] {
					t.Fatalf("output %d: got %g; want %g (masks at 1)", i, b.D[i], a.D[i])
				}
			}
			if _, err := AddMasks(got); err == nil {
				t.Error("AddMasks of a masked graph: got no error")
			}
		})
	}
}

func TestAddMasksRefuses(t *testing.T) {
	mb := StandardMobileNetV2(3, 10, 0.5).Build(1)
	plain := StandardMobileNetV2(3, 10, 0.5)
	plain.Blocks = plain.Blocks[:1]
	for name, g := range map[string]*Graph{"mobilenet_v2": mb, "no residual": plain.Build(1)} {
		if _, err := AddMasks(g); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
}
