package onnx

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

func randFloats(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
	}
	return v
}

func buildNet(t testing.TB, arch string, seed uint64) *nn.Graph {
	t.Helper()
	g, err := nn.Build(arch, 3, 10, seed)
	if err != nil {
		t.Fatal(err)
	}
	nn.RandomizeBN(g, rand.New(rand.NewPCG(seed, 7)))
	return g
}

// clampedMobileNet is mobilenet_v2 in which every third ReLU6 became a
// per-channel clamp (bounds finite, ±Inf and ±MaxFloat32, as RM makes them for
// reserved channels), so it holds both Clip and Max/Min in ONNX.
func clampedMobileNet(t testing.TB) *nn.Graph {
	g := buildNet(t, "mobilenet_v2", 2)
	shapes, err := g.Shapes(nn.Shape{C: 3, H: 64, W: 64})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	k := 0
	for _, n := range g.Nodes {
		if n.Op != nn.OpReLU6 {
			continue
		}
		if k++; k%3 != 0 {
			continue
		}
		c := shapes[n.Name].C
		lo, hi := make([]float32, c), make([]float32, c)
		for i := range lo {
			switch i % 4 {
			case 0:
				lo[i], hi[i] = 0, 6
			case 1:
				lo[i], hi[i] = float32(math.Inf(-1)), float32(math.Inf(1))
			case 2:
				lo[i], hi[i] = -math.MaxFloat32, math.MaxFloat32
			default:
				lo[i] = float32(-rng.Float64())
				hi[i] = float32(rng.Float64())
			}
		}
		n.Op = nn.OpClamp
		n.SetP("min", []int{c}, lo)
		n.SetP("max", []int{c}, hi)
	}
	g.Input = [3]int{3, 64, 64}
	return g
}

// plainNet is a small net that exercises every op the exporter knows:
// strided and grouped convs with and without bias, a BatchNorm that cannot
// fold (after a max-pool) and one on flat features, PReLU on NCHW and on NC
// values, a per-channel clamp, avg-pool with padding, ReLU6, a three-input
// add, and a linear reading a 4-D value (GAP without flatten).
func plainNet() *nn.Graph {
	rng := rand.New(rand.NewPCG(11, 12))
	g := &nn.Graph{Input: [3]int{3, 13, 12}, Arch: "plain", Form: "rmnet", Classes: 5,
		Recipe: `{"method":"slim","ratio":0.5}`, SourceSHA256: "abc123", Labels: []string{"a", "b", "c", "d", "e"},
		Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}}
	add := func(n *nn.Node) { g.Nodes = append(g.Nodes, n) }
	conv := func(name, in string, cin, cout, k, s, p, groups int, bias bool) {
		n := &nn.Node{Name: name, Op: nn.OpConv, Inputs: []string{in}, In: cin, Out: cout, Kernel: k, Stride: s, Pad: p, Groups: groups}
		n.SetP("weight", []int{cout, cin / groups, k, k}, randFloats(rng, cout*cin/groups*k*k, math.Sqrt(2/float64(cin/groups*k*k))))
		if bias {
			n.SetP("bias", []int{cout}, randFloats(rng, cout, 0.1))
		}
		add(n)
	}
	bn := func(name, in string, c int, eps float64) {
		n := &nn.Node{Name: name, Op: nn.OpBatchNorm, Inputs: []string{in}, Eps: eps}
		n.SetP("weight", []int{c}, randFloats(rng, c, 0.3))
		n.SetP("bias", []int{c}, randFloats(rng, c, 0.3))
		n.SetP("running_mean", []int{c}, randFloats(rng, c, 0.3))
		v := randFloats(rng, c, 0.3)
		for i := range v {
			v[i] = 0.5 + v[i]*v[i]
		}
		n.SetP("running_var", []int{c}, v)
		add(n)
	}
	prelu := func(name, in string, c int) {
		n := &nn.Node{Name: name, Op: nn.OpPReLU, Inputs: []string{in}}
		n.SetP("weight", []int{c}, randFloats(rng, c, 0.5))
		add(n)
	}
	linear := func(name, in string, cin, cout int) {
		n := &nn.Node{Name: name, Op: nn.OpLinear, Inputs: []string{in}, In: cin, Out: cout}
		n.SetP("weight", []int{cout, cin}, randFloats(rng, cout*cin, 1/math.Sqrt(float64(cin))))
		n.SetP("bias", []int{cout}, randFloats(rng, cout, 0.1))
		add(n)
	}
	add(&nn.Node{Name: "input", Op: nn.OpInput, Out: 3})
	conv("c1", "input", 3, 8, 3, 2, 1, 1, true)
	add(&nn.Node{Name: "mp", Op: nn.OpMaxPool, Inputs: []string{"c1"}, Kernel: 3, Stride: 1, Pad: 1})
	bn("bn1", "mp", 8, 0)
	prelu("pr1", "bn1", 8)
	cl := &nn.Node{Name: "cl", Op: nn.OpClamp, Inputs: []string{"pr1"}}
	inf := float32(math.Inf(1))
	cl.SetP("min", []int{8}, []float32{0, -inf, -math.MaxFloat32, -0.5, 0, -inf, -1, 0.1})
	cl.SetP("max", []int{8}, []float32{6, inf, math.MaxFloat32, 0.5, inf, 1, 1, 0.2})
	add(cl)
	add(&nn.Node{Name: "ap", Op: nn.OpAvgPool, Inputs: []string{"cl"}, Kernel: 3, Stride: 1, Pad: 1})
	conv("c2", "ap", 8, 8, 3, 1, 1, 2, false)
	bn("bn2", "c2", 8, 1e-5)
	add(&nn.Node{Name: "r6", Op: nn.OpReLU6, Inputs: []string{"bn2"}})
	conv("c3", "ap", 8, 8, 1, 1, 0, 8, true)
	add(&nn.Node{Name: "sum", Op: nn.OpAdd, Inputs: []string{"r6", "c3", "ap"}})
	add(&nn.Node{Name: "relu", Op: nn.OpReLU, Inputs: []string{"sum"}})
	add(&nn.Node{Name: "pool", Op: nn.OpAvgPool, Inputs: []string{"relu"}, Kernel: 2, Stride: 2})
	add(&nn.Node{Name: "gap", Op: nn.OpGlobalAvgPool, Inputs: []string{"pool"}})
	linear("fc1", "gap", 8, 12)
	prelu("pr2", "fc1", 12)
	bn("bn3", "pr2", 12, 1e-3)
	linear("fc2", "bn3", 12, 5)
	return g
}

// encode exports g with opt and returns the bytes.
func encode(t testing.TB, g *nn.Graph, opt Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, g, opt); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decode(t testing.TB, b []byte) *Model {
	t.Helper()
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testCases are the networks every export test runs on.
func testCases(t testing.TB) []struct {
	name string
	g    *nn.Graph
	in   nn.Shape
} {
	return []struct {
		name string
		g    *nn.Graph
		in   nn.Shape
	}{
		{"resnet20", buildNet(t, "resnet20", 1), nn.Shape{C: 3, H: 32, W: 32}},
		{"mobilenet_v2", clampedMobileNet(t), nn.Shape{C: 3, H: 64, W: 64}},
		{"plain", plainNet(), nn.Shape{C: 3, H: 13, W: 12}},
	}
}
