package onnx

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/rm"
)

// copyNet is a small plain net whose copies take every path of the
// copy-aware lowering: a strided Dirac row copying the input, scaled, read
// at the centre only (but the ReLU after it must run: the copy is
// materialised with a strided Slice, Concat and Mul), a strided conv with Dirac rows that scale and reorder, one
// with a bias (not a copy: a dense row), read by the next conv at the centre
// tap only (a 1×1 term: each row reads two), Dirac rows not leading read by
// centre-only columns, and Dirac rows only, read by the pooling at the end
// (not absorbed: a dense conv).
func copyNet() *nn.Graph {
	rng := rand.New(rand.NewPCG(21, 22))
	g := &nn.Graph{Input: [3]int{3, 9, 10}, Arch: "copies", Form: "rmnet", Classes: 4}
	add := func(n *nn.Node) { g.Nodes = append(g.Nodes, n) }
	conv := func(name, in string, cin, cout, k, s int, w []float32) *nn.Node {
		n := &nn.Node{Name: name, Op: nn.OpConv, Inputs: []string{in}, In: cin, Out: cout, Kernel: k, Stride: s, Pad: k / 2}
		if w == nil {
			w = randFloats(rng, cout*cin*k*k, math.Sqrt(2/float64(cin*k*k)))
		}
		n.SetP("weight", []int{cout, cin, k, k}, w)
		n.SetP("bias", []int{cout}, randFloats(rng, cout, 0.1))
		add(n)
		return n
	}
	relu := func(name, in string) { add(&nn.Node{Name: name, Op: nn.OpReLU, Inputs: []string{in}}) }
	// dirac sets rows of w ([m][c][k][k]) to copies of src with coef.
	dirac := func(n *nn.Node, rows map[int][2]float32) {
		w, b := n.P("weight"), n.P("bias")
		c, kk := n.In, n.Kernel*n.Kernel
		for o, sc := range rows {
			clear(w[o*c*kk : (o+1)*c*kk])
			w[o*c*kk+int(sc[0])*kk+kk/2] = sc[1]
			b[o] = 0
		}
	}
	add(&nn.Node{Name: "input", Op: nn.OpInput, Out: 3})
	c0 := conv("c0", "input", 3, 4, 3, 2, nil)
	dirac(c0, map[int][2]float32{3: {1, 2}})
	relu("r0", "c0")
	a := conv("a", "r0", 4, 6, 3, 2, nil)
	dirac(a, map[int][2]float32{0: {2, 1}, 1: {0, 0.5}, 2: {3, 2}})
	a.P("bias")[2] = -0.05 // not a copy
	for o := range 6 {     // c0's copy is read at the centre only
		for t := range 9 {
			if t != 4 {
				a.P("weight")[(o*4+3)*9+t] = 0
			}
		}
	}
	relu("ra", "a")
	b := conv("b", "ra", 6, 5, 3, 1, nil)
	for o := range 5 { // reads a's copies at the centre only
		for _, col := range []int{0, 1} {
			for t := range 9 {
				if t != 4 {
					b.P("weight")[(o*6+col)*9+t] = 0
				}
			}
		}
	}
	relu("rb", "b")
	d := conv("d", "rb", 5, 7, 3, 1, nil)
	dirac(d, map[int][2]float32{1: {4, 1}, 3: {0, 1}, 5: {2, 1}}) // Dirac rows not leading
	relu("rd", "d")
	// e: centre-only columns 1, 3 and 5, all copies of rb, read so that
	// row 0 sums two of them: a 1×1 term; dense over the rest.
	e := conv("e", "rd", 7, 6, 3, 1, nil)
	w, kk := e.P("weight"), 9
	for o := range 6 {
		for _, col := range []int{1, 3, 5} {
			clear(w[(o*7+col)*kk : (o*7+col+1)*kk])
		}
	}
	w[(0*7+1)*kk+4], w[(0*7+3)*kk+4], w[(2*7+3)*kk+4] = 1, -0.4, 0.7
	w[(1*7+5)*kk+4], w[(4*7+5)*kk+4] = 0.3, -0.2
	relu("re", "e")
	f := conv("f", "re", 6, 2, 1, 1, nil) // Dirac rows only
	dirac(f, map[int][2]float32{0: {5, 1}, 1: {0, 1}})
	add(&nn.Node{Name: "gap", Op: nn.OpGlobalAvgPool, Inputs: []string{"f"}})
	fc := &nn.Node{Name: "fc", Op: nn.OpLinear, Inputs: []string{"gap"}, In: 2, Out: 4}
	fc.SetP("weight", []int{4, 2}, randFloats(rng, 8, 0.5))
	fc.SetP("bias", []int{4}, randFloats(rng, 4, 0.1))
	add(fc)
	return g
}

// biasedCopyNet is copyNet with a negative bias on two copies of a ReLU's
// output (d's Dirac rows 1 and 3), which the ReLU after d changes.
func biasedCopyNet() *nn.Graph {
	g := copyNet()
	d := g.Node("d")
	d.P("bias")[1], d.P("bias")[3] = -0.3, -0.05
	return g
}

// copyCases are RM-made nets with copies: RMNet-20 (folded and BN-kept),
// pruned without calibration (exact copies) and with it (copies one ulp off),
// MobileNetV2 → V1 (PReLU and clamps on reserved channels), and copyNet.
func copyCases(t testing.TB) []NetCase {
	t.Helper()
	cifar := nn.Shape{C: 3, H: 32, W: 32}
	var out []NetCase
	for _, keep := range []bool{false, true} {
		res, err := rm.Convert(buildNet(t, "resnet20", 9), rm.Options{KeepBN: keep, Shape: cifar})
		if err != nil {
			t.Fatal(err)
		}
		name := "rmnet20"
		if keep {
			name += "-keepbn"
		}
		out = append(out, NetCase{name, res.Graph, cifar})
	}
	half, third, most := 0.5, 0.3, 0.6
	for _, pc := range []struct {
		name string
		opt  pruning.Options
	}{
		// 50%: stages of 8, 16 and 32 channels (a Gather in the first, 1×1
		// terms after); 30%: 11, 22 and 45 (the latter padded to 32 and 48).
		{"rmnet20-l1-50", pruning.Options{Method: pruning.L1, Ratio: &half, Scope: "uniform"}},
		{"rmnet20-l1-30", pruning.Options{Method: pruning.L1, Ratio: &third, Scope: "uniform"}},
		// Global: uneven widths from block to block (Gathers and permuted
		// identities side by side).
		{"rmnet20-l1-60-global", pruning.Options{Method: pruning.L1, Ratio: &most, Scope: "global", Force: true}},
		{"rmnet20-slim-50-calib", pruning.Options{Method: pruning.Slim, Ratio: &half, Calib: rm.RandomInput(8, cifar, 3)}},
	} {
		p, err := pruning.Prune(buildNet(t, "resnet20", 10), pc.opt)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, NetCase{pc.name, p.Graph, cifar})
	}
	mb := nn.Shape{C: 3, H: 32, W: 32}
	res, err := rm.Convert(buildNet(t, "mobilenet_v2", 9), rm.Options{Shape: mb})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, NetCase{"mobilenet_v2-rm", res.Graph, mb})
	out = append(out, NetCase{"copies", copyNet(), nn.Shape{C: 3, H: 9, W: 10}},
		NetCase{"copies-biased", biasedCopyNet(), nn.Shape{C: 3, H: 9, W: 10}})
	// A mask-trained bottleneck ResNet (random BN and masks, some zero), as
	// it is (masks fold on export) and RM-converted (reserved channels cross
	// a 1×1, a strided 3×3 and a 1×1).
	spec := nn.ResNetSpec{InChannels: 3, StemWidth: 6, StemKernel: 3, Classes: 5, Masks: true, Blocks: []nn.BlockSpec{
		{Prefix: "layer1.0", Bottleneck: true, In: 6, Mid: 3, Mid2: 3, Out: 8, Stride: 2, Downsample: true},
		{Prefix: "layer1.1", Bottleneck: true, In: 8, Mid: 2, Mid2: 3, Out: 8, Stride: 1},
	}}
	masked := spec.Build(3)
	rng := rand.New(rand.NewPCG(31, 32))
	nn.RandomizeBN(masked, rng)
	for _, n := range masked.Nodes {
		if n.Op == nn.OpMask {
			for i, w := 0, n.P("weight"); i < len(w); i++ {
				if w[i] = float32(0.5 + rng.Float64()); i%4 == 3 {
					w[i] = 0
				}
			}
		}
	}
	small := nn.Shape{C: 3, H: 12, W: 12}
	bres, err := rm.Convert(masked, rm.Options{Shape: small})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, NetCase{"bottleneck-masked", masked, small}, NetCase{"bottleneck-masked-rm", bres.Graph, small})
	// A mask-trained basic-block ResNet of 16 channels, RM-converted: its
	// identities scaled by the residual masks (some zero) are depthwise 1×1
	// terms.
	basic := nn.ResNetSpec{InChannels: 3, StemWidth: 16, StemKernel: 3, Classes: 5, Masks: true, Blocks: []nn.BlockSpec{
		{Prefix: "layer1.0", In: 16, Mid: 16, Out: 16, Stride: 1},
		{Prefix: "layer1.1", In: 16, Mid: 16, Out: 16, Stride: 1},
	}}.Build(4)
	nn.RandomizeBN(basic, rng)
	for _, n := range basic.Nodes {
		if n.Op == nn.OpMask {
			for i, w := 0, n.P("weight"); i < len(w); i++ {
				if w[i] = float32(0.5 + rng.Float64()); i%5 == 2 {
					w[i] = 0
				}
			}
		}
	}
	mres, err := rm.Convert(basic, rm.Options{Shape: small})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, NetCase{"basic-masked-rm", mres.Graph, small})
	for i := range out {
		out[i].G.Input = [3]int{out[i].In.C, out[i].In.H, out[i].In.W}
	}
	return out
}

// CopyCases is copyCases for the ONNX Runtime tests.
var CopyCases = copyCases

// The copy-aware export computes what the reference forward of the original
// graph does (≤ 1e-5), as does the dense one, and records its form.
func TestCopyAwareMatchesReference(t *testing.T) {
	for _, tc := range copyCases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			x := nn.NewAct(2, tc.In.C, tc.In.H, tc.In.W)
			for i := range x.D {
				x.D[i] = float32(rng.NormFloat64())
			}
			want, err := tc.G.Forward(x, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, dense := range []bool{false, true} {
				m := decode(t, encode(t, tc.G, Options{Dense: dense}))
				got, err := evalModel(m, x)
				if err != nil {
					t.Fatal(err)
				}
				if rel, _ := nn.RelError(got.D, want.D); !(rel <= 1e-5) {
					t.Errorf("dense %v: rel error %g; want ≤ 1e-5", dense, rel)
				}
				// Copy-aware when it saves MACs (MobileNetV2's reserved
				// channels pass depthwise convs: no copies to write).
				cm, dm := macs(t, tc.G, Options{}), macs(t, tc.G, Options{Dense: true})
				form := ExportCopyAware
				if dense || cm == dm {
					form = ExportDense
				}
				if cm > dm {
					t.Errorf("copy-aware MACs %d > dense %d", cm, dm)
				}
				if got := meta(m, "rmprune.export"); got != form {
					t.Errorf("dense %v: rmprune.export %q; want %q", dense, got, form)
				}
			}
		})
	}
}

func meta(m *Model, key string) string {
	for _, e := range m.Metadata {
		if e.Key == key {
			return e.Value
		}
	}
	return ""
}

func opCount(m *Model) map[string]int {
	c := map[string]int{}
	for _, n := range m.Graph.Nodes {
		c[n.OpType]++
	}
	return c
}

// RM costs nothing in the copy-aware export: an RMNet's ONNX graph is the
// original ResNet's (the same ops and MACs), while the dense one computes the
// copies as 3×3 convolutions.
func macs(t *testing.T, g *nn.Graph, opt Options) int64 {
	t.Helper()
	info, err := Describe(g, opt)
	if err != nil {
		t.Fatal(err)
	}
	return info.MACs
}

func TestCopyAwareRMNetIsResNet(t *testing.T) {
	for _, arch := range []string{"resnet20", "resnet56", "bottleneck"} {
		t.Run(arch, func(t *testing.T) {
			var g *nn.Graph
			if arch == "bottleneck" { // ImageNet stem, projection and identity blocks
				g = nn.ResNetSpec{InChannels: 3, StemWidth: 8, StemKernel: 7, MaxPool: true, Classes: 10,
					Blocks: nn.ResNetBlocks([]int{2, 2}, []int{4, 8}, 8, true)}.Build(3)
				nn.RandomizeBN(g, rand.New(rand.NewPCG(3, 7)))
			} else {
				g = buildNet(t, arch, 3)
			}
			g.Input = [3]int{3, 32, 32}
			res, err := rm.Convert(g, rm.Options{})
			if err != nil {
				t.Fatal(err)
			}
			orig := opCount(decode(t, encode(t, g, Options{})))
			copyAware := decode(t, encode(t, res.Graph, Options{}))
			if got := opCount(copyAware); len(got) != len(orig) || got["Conv"] != orig["Conv"] || got["Add"] != orig["Add"] || got["Relu"] != orig["Relu"] {
				t.Errorf("copy-aware RMNet ops %v; want the ResNet's %v", got, orig)
			}
			wantMACs := macs(t, g, Options{})
			sum, err := g.Summarize(nn.Shape{C: 3, H: 32, W: 32})
			if err != nil {
				t.Fatal(err)
			}
			if wantMACs != sum.MACs {
				t.Errorf("ResNet export MACs %d; want the graph's %d", wantMACs, sum.MACs)
			}
			if got := macs(t, res.Graph, Options{}); got != wantMACs {
				t.Errorf("copy-aware MACs %d; want the ResNet's %d", got, wantMACs)
			}
			dense := macs(t, res.Graph, Options{Dense: true})
			rsum, err := res.Graph.Summarize(nn.Shape{C: 3, H: 32, W: 32})
			if err != nil {
				t.Fatal(err)
			}
			if dense != rsum.MACs || dense <= wantMACs {
				t.Errorf("dense export MACs %d; want the RMNet's %d (> %d)", dense, rsum.MACs, wantMACs)
			}
		})
	}
}

// copyNet's export takes every path of the lowering, and a pruned RMNet's
// identity columns become Muls.
func TestCopyAwareOps(t *testing.T) {
	for _, tc := range copyCases(t) {
		if tc.Name != "rmnet20-l1-50" {
			continue
		}
		// Its channels are permuted so that each identity is diagonal: a Mul
		// (8 channels) or a depthwise conv, no Gather.
		if got := opCount(decode(t, encode(t, tc.G, Options{}))); got["Gather"] != 0 || got["Mul"] == 0 || got["Add"] == 0 {
			t.Errorf("%s: ops %v; want Mul and Add, no Gather", tc.Name, got)
		}
	}
	m := decode(t, encode(t, copyNet(), Options{}))
	got := opCount(m)
	for _, op := range []string{"Slice", "Mul", "Gather"} {
		if got[op] == 0 {
			t.Errorf("ops %v: no %s", got, op)
		}
	}
	if n := got["Conv"]; n != 8 { // c0, a (dense rows), b and its 1×1 term, d, e and its 1×1 term, f
		t.Errorf("ops %v: %d Conv; want 8", got, n)
	}
	if d := opCount(decode(t, encode(t, copyNet(), Options{Dense: true}))); d["Conv"] != 6 || d["Slice"]+d["Gather"]+d["Concat"] != 0 {
		t.Errorf("dense ops %v; want 6 Conv and no Slice, Gather, Concat", d)
	}
}

// A copy that a clamp changes is not kept: the conv's value is materialised
// (its computed channels and the copy, Concat) and clamped whole.
func TestCopyAwareClampedCopy(t *testing.T) {
	g := copyNet()
	c0 := g.Node("c0")
	lo, hi := make([]float32, c0.Out), make([]float32, c0.Out)
	for i := range lo {
		lo[i], hi[i] = -0.5, 0.5
	}
	r0 := g.Node("r0")
	r0.Op = nn.OpClamp
	r0.SetP("min", []int{c0.Out}, lo)
	r0.SetP("max", []int{c0.Out}, hi)
	m := decode(t, encode(t, g, Options{}))
	if got := opCount(m); got["Concat"] == 0 {
		t.Errorf("ops %v: no Concat", got)
	}
	matchesReference(t, g, m, 4)
}

// A copy with a negative bias before a ReLU (what fine-tuning with the copies
// kept leaves: the reserved channel's BN trained) stays a copy: only it is
// materialised and passed through a ReLU, so it costs no MACs, and the
// output is exact.
func TestCopyAwareBiasedCopy(t *testing.T) {
	base, g := copyNet(), biasedCopyNet()
	// (It may cost less: the materialised copies are a narrower value for
	// the 1×1 term of e's row that sums two of them.)
	if got, want := macs(t, g, Options{}), macs(t, base, Options{}); got > want {
		t.Errorf("copy-aware MACs %d with biased copies; want ≤ %d, as without", got, want)
	}
	m := decode(t, encode(t, g, Options{}))
	matchesReference(t, g, m, 5)
}

// matchesReference checks that model m computes what g's reference forward
// does (≤ 1e-5) on a random batch of copyNet's input shape.
func matchesReference(t *testing.T, g *nn.Graph, m *Model, seed uint64) {
	t.Helper()
	x := rm.RandomInput(2, nn.Shape{C: 3, H: 9, W: 10}, seed)
	want, err := g.Forward(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := evalModel(m, x)
	if err != nil {
		t.Fatal(err)
	}
	if rel, _ := nn.RelError(out.D, want.D); !(rel <= 1e-5) {
		t.Errorf("rel error %g; want ≤ 1e-5", rel)
	}
}

// The copy-aware export of a pruned RMNet gives ONNX Runtime convolutions it
// runs in its NCHWc layout: every conv reads fewer than 16 channels or a
// multiple of 16 (unaligned outputs are padded with zero channels or split
// into an aligned conv and one over the rest), and only terms over fewer
// than 16 channels are Gathers.
func TestCopyAwareAligned(t *testing.T) {
	for _, tc := range copyCases(t) {
		if tc.Name != "rmnet20-l1-50" && tc.Name != "rmnet20-l1-30" {
			continue
		}
		m := decode(t, encode(t, tc.G, Options{}))
		inits := map[string]*Tensor{}
		for _, in := range m.Graph.Initializers {
			inits[in.Name] = in
		}
		padded := 0
		readers := map[string]int{} // value → k×k convs (k > 1) reading it
		for _, n := range m.Graph.Nodes {
			switch n.OpType {
			case "Conv":
				w := inits[n.Inputs[1]]
				if c := w.Dims[1]; c >= align && c%align != 0 {
					t.Errorf("%s: conv %s reads %d channels", tc.Name, n.Name, c)
				}
				if w.Dims[2] > 1 {
					readers[n.Inputs[0]]++
				}
				row := len(w.Data) / int(w.Dims[0])
				for o := range int(w.Dims[0]) {
					zero := true
					for _, v := range w.Data[o*row : (o+1)*row] {
						zero = zero && v == 0
					}
					if zero {
						padded++
						break
					}
				}
			case "Gather":
				if c := inits[n.Inputs[1]].Dims[0]; c >= align {
					t.Errorf("%s: Gather %s of %d channels; want a 1×1 conv", tc.Name, n.Name, c)
				}
			}
		}
		split := 0
		for _, c := range readers {
			if c > 1 {
				split++
			}
		}
		// 50%: 17, 33 and 34 channels are split; 30%: 22 (16+6) is split,
		// 45 (32+13) padded to 48.
		if split == 0 {
			t.Errorf("%s: no conv is split", tc.Name)
		}
		if tc.Name == "rmnet20-l1-30" && padded == 0 {
			t.Errorf("%s: no conv writes a padded output", tc.Name)
		}
	}
}

// Masked identities are depthwise 1×1 terms over 16 channels, a Mul alone
// (no Gather) over fewer.
func TestCopyAwareMaskedIdentity(t *testing.T) {
	for _, tc := range copyCases(t) {
		if tc.Name != "basic-masked-rm" && tc.Name != "bottleneck-masked-rm" {
			continue
		}
		m := decode(t, encode(t, tc.G, Options{}))
		depthwise := 0
		for _, n := range m.Graph.Nodes {
			for _, a := range n.Attrs {
				if n.OpType == "Conv" && a.Name == "group" && a.I > 1 {
					depthwise++
				}
			}
		}
		got := opCount(m)
		switch {
		case tc.Name == "basic-masked-rm" && depthwise == 0:
			t.Errorf("%s: ops %v: no depthwise term", tc.Name, got)
		case tc.Name == "bottleneck-masked-rm" && (got["Gather"] != 0 || got["Mul"] == 0):
			t.Errorf("%s: ops %v; want Mul and no Gather", tc.Name, got)
		}
	}
}

// An unpruned RMNet's copy-aware file (Conv and Add only) imports back to a
// graph that computes the same.
func TestCopyAwareImports(t *testing.T) {
	in := nn.Shape{C: 3, H: 32, W: 32}
	res, err := rm.Convert(buildNet(t, "resnet20", 4), rm.Options{Shape: in})
	if err != nil {
		t.Fatal(err)
	}
	res.Graph.Input = [3]int{3, 32, 32}
	g, err := ToGraph(decode(t, encode(t, res.Graph, Options{})))
	if err != nil {
		t.Fatal(err)
	}
	if !g.HasResidual() {
		t.Error("imported copy-aware RMNet has no adds")
	}
	if rel, _ := nn.RelError(forward(t, g, in, 3), forward(t, res.Graph, in, 3)); !(rel <= 1e-5) {
		t.Errorf("imported graph: rel error %g; want ≤ 1e-5", rel)
	}
}

// Pruned RMNets of random weights, ratios and scopes (global pruning leaves
// uneven channel counts: padded, split and permuted convs, identities whose
// outputs read one copy, none, or — at stage boundaries — several) export
// copy-aware to graphs that compute what the reference forward does.
func TestCopyAwareRandomPruned(t *testing.T) {
	cifar := nn.Shape{C: 3, H: 32, W: 32}
	rng := rand.New(rand.NewPCG(41, 42))
	for i := range 6 {
		ratio := 0.15 + 0.6*rng.Float64()
		scope := []string{"uniform", "global"}[i%2]
		method := []string{pruning.L1, pruning.Slim}[i/2%2]
		g := buildNet(t, "resnet20", uint64(100+i))
		g.Input = [3]int{3, 32, 32}
		opt := pruning.Options{Method: method, Ratio: &ratio, Scope: scope, Form: "rmnet", Shape: cifar, Force: true}
		if method == pruning.Slim {
			opt.Calib = rm.RandomInput(8, cifar, uint64(i))
		}
		p, err := pruning.Prune(g, opt)
		if err != nil {
			t.Fatal(err)
		}
		x := nn.NewAct(2, 3, 32, 32)
		for j := range x.D {
			x.D[j] = float32(rng.NormFloat64())
		}
		want, err := p.Graph.Forward(x, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, encode(t, p.Graph, Options{}))
		got, err := evalModel(m, x)
		if err != nil {
			t.Fatal(err)
		}
		if rel, _ := nn.RelError(got.D, want.D); !(rel <= 1e-5) {
			t.Errorf("%s %s %.2f: rel error %g; want ≤ 1e-5 (ops %v)", method, scope, ratio, rel, opCount(m))
		}
		if meta(m, "rmprune.export") != ExportCopyAware {
			t.Errorf("%s %s %.2f: export %q", method, scope, ratio, meta(m, "rmprune.export"))
		}
	}
}
