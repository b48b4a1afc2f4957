package pruning

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// plainNet is a hand-built plain chain that exercises every kind of surgery:
//
//	c1 3×3 → bn1 → relu → dw 3×3 (depthwise) → bn2 → clamp   (one space: c1)
//	c2 1×1 → bn3 → prelu                                     (space c2; c2 reads c1's by a 1×1: constants fold)
//	c3 3×3 → bn4 → relu → maxpool → flatten                  (space c3; c3 reads c2's through padding)
//	fc (reads c3's channels as 3×3 blocks of columns)
//
// with dead, constant and unread channels placed by hand.
func plainNet(rng *rand.Rand) *nn.Graph {
	g := &nn.Graph{Nodes: []*nn.Node{{Name: "input", Op: nn.OpInput, Out: 2}}, Input: [3]int{2, 6, 6}}
	add := func(n *nn.Node) { g.Nodes = append(g.Nodes, n) }
	rnd := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	conv := func(name, in string, cin, cout, k, groups int) {
		n := &nn.Node{Name: name, Op: nn.OpConv, Inputs: []string{in}, In: cin, Out: cout, Kernel: k, Stride: 1, Pad: k / 2, Groups: groups}
		n.SetP("weight", []int{cout, cin / max(groups, 1), k, k}, rnd(cout*cin/max(groups, 1)*k*k, 0.5))
		add(n)
	}
	bn := func(name, in string, c int) {
		n := &nn.Node{Name: name, Op: nn.OpBatchNorm, Inputs: []string{in}, Eps: 1e-5}
		gamma := rnd(c, 0.3)
		vr := rnd(c, 0.3)
		for i := range gamma {
			gamma[i] += 1
			vr[i] = 0.5 + vr[i]*vr[i]
		}
		n.SetP("weight", []int{c}, gamma)
		n.SetP("bias", []int{c}, rnd(c, 0.3))
		n.SetP("running_mean", []int{c}, rnd(c, 0.3))
		n.SetP("running_var", []int{c}, vr)
		add(n)
	}
	conv("c1", "input", 2, 6, 3, 1)
	bn("bn1", "c1", 6)
	add(&nn.Node{Name: "relu1", Op: nn.OpReLU, Inputs: []string{"bn1"}})
	conv("dw", "relu1", 6, 6, 3, 6)
	bn("bn2", "dw", 6)
	cl := &nn.Node{Name: "clamp", Op: nn.OpClamp, Inputs: []string{"bn2"}}
	cl.SetP("min", []int{6}, []float32{0, 0, -1, 0, 0, 0})
	cl.SetP("max", []int{6}, []float32{6, 6, 6, 2, 6, 6})
	add(cl)
	conv("c2", "clamp", 6, 5, 1, 1)
	bn("bn3", "c2", 5)
	pr := &nn.Node{Name: "prelu", Op: nn.OpPReLU, Inputs: []string{"bn3"}}
	pr.SetP("weight", []int{5}, []float32{0.25, 0, 0.1, 0.2, 0.3})
	add(pr)
	conv("c3", "prelu", 5, 4, 3, 1)
	bn("bn4", "c3", 4)
	add(&nn.Node{Name: "relu4", Op: nn.OpReLU, Inputs: []string{"bn4"}})
	add(&nn.Node{Name: "pool", Op: nn.OpMaxPool, Inputs: []string{"relu4"}, Kernel: 2, Stride: 2})
	add(&nn.Node{Name: "flatten", Op: nn.OpFlatten, Inputs: []string{"pool"}})
	fc := &nn.Node{Name: "fc", Op: nn.OpLinear, Inputs: []string{"flatten"}, In: 36, Out: 3}
	fc.SetP("weight", []int{3, 36}, rnd(108, 0.3))
	fc.SetP("bias", []int{3}, rnd(3, 0.1))
	add(fc)

	set := func(node string, c int, gamma, beta float32) {
		n := g.Node(node)
		n.P("weight")[c], n.P("bias")[c] = gamma, beta
	}
	set("bn1", 0, 0, -1)  // c1[0] dead after relu; dw turns it into bn2's constant shift: folds into c2 (1×1)
	set("bn2", 1, 0, 0.5) // c1[1] constant 0.5 after the clamp: folds into c2
	set("bn3", 0, 0, 0.3) // c2[0] constant 0.3, read by c3 through padding: kept
	set("bn3", 1, 0, -.4) // c2[1] dead: prelu slope 0
	set("bn4", 2, 0, -1)  // c3[2] dead
	set("bn4", 3, 0, 0.7) // c3[3] constant 0.7: folds into fc
	w := g.Node("c3").P("weight")
	for o := 0; o < 4; o++ {
		for t := 0; t < 9; t++ {
			w[(o*5+4)*9+t] = 0 // c2[4] is read by nobody
		}
	}
	return g
}

func TestPlainSurgery(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := plainNet(rng)
	shape := nn.Shape{C: 2, H: 6, W: 6}
	x := randAct(rng, 3, shape)
	want := forward(t, g, x)
	for _, method := range []string{Slim, L1} {
		t.Run(method, func(t *testing.T) {
			res, err := Prune(g, Options{Method: method, Threshold: ptr(1e-6), Shape: shape})
			if err != nil {
				t.Fatal(err)
			}
			got := forward(t, res.Graph, x)
			if rel, _ := nn.RelError(got.D, want.D); rel > 1e-5 {
				t.Errorf("rel error got %.3g; want ≤ 1e-5", rel)
			}
			final := map[string][]int{}
			for _, l := range res.Recipe.Layers {
				final[l.Name] = l.Final
			}
			wantKept := map[string][]int{"c1": {2, 3, 4, 5}, "c2": {0, 2, 3}, "c3": {0, 1}}
			for name, w := range wantKept {
				if got := final[name]; !equalInts(got, w) {
					t.Errorf("%s keeps %v; want %v", name, got, w)
				}
			}
			out := res.Graph
			if n := out.Node("dw"); n.In != 4 || n.Out != 4 || n.G() != 4 {
				t.Errorf("depthwise conv %d→%d groups %d; want 4→4 groups 4", n.In, n.Out, n.G())
			}
			if n := out.Node("fc"); n.In != 18 {
				t.Errorf("fc reads %d features; want 18 (2 channels × 3×3)", n.In)
			}
			for _, p := range []string{"clamp.min", "prelu.weight", "bn2.running_var"} {
				if sd := out.StateDict(); sd.Tensors[p] == nil {
					t.Errorf("missing %s", p)
				}
			}
			if got := len(out.Node("clamp").P("min")); got != 4 {
				t.Errorf("clamp has %d channels; want 4", got)
			}
			if got := len(out.Node("prelu").P("weight")); got != 3 {
				t.Errorf("prelu has %d slopes; want 3", got)
			}
			if res.Report.ConstantKept < 1 {
				t.Errorf("constant_kept got %d; want ≥ 1 (c2[0])", res.Report.ConstantKept)
			}
		})
	}
	t.Run("form resnet", func(t *testing.T) {
		_, err := Prune(g, Options{Method: Slim, Ratio: ptr(0.5), Form: FormResNet, Shape: shape})
		if !errors.Is(err, ErrNoResidual) {
			t.Errorf("got %v; want ErrNoResidual", err)
		}
	})
	t.Run("ratio", func(t *testing.T) {
		res, err := Prune(g, Options{Method: Slim, Ratio: ptr(0.6), Shape: shape})
		if err != nil {
			t.Fatal(err)
		}
		forward(t, res.Graph, x)
		for _, l := range res.Report.Layers {
			if l.After < 1 {
				t.Errorf("layer %s emptied", l.Name)
			}
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
