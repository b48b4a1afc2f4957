package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// gradCase is a small graph whose every gradient is checked against central
// finite differences of the float64 oracle.
type gradCase struct {
	name  string
	c, h  int                   // input channels and size (square)
	n     int                   // batch
	build func(b *graphBuilder) // appends nodes after "input"
	ce    bool                  // loss = cross-entropy (else Σ r·y)
}

var gradCases = []gradCase{
	// Sizes that reach the kernels' direct (unpacked) paths, K blocking and
	// chunked weight gradients.
	{"wide-conv-s1", 16, 20, 2, func(b *graphBuilder) {
		b.conv("conv", "input", 16, 16, 3, 1, 1, 1, false)
	}, false},
	{"wide-conv-s2-and-1x1", 8, 20, 2, func(b *graphBuilder) {
		x := b.conv("conv", "input", 8, 16, 3, 2, 1, 1, false)
		b.conv("proj", x, 16, 16, 1, 1, 0, 1, false)
	}, false},
	{"conv-7x7-chunked", 16, 7, 11, func(b *graphBuilder) {
		b.conv("conv", "input", 16, 32, 3, 1, 1, 1, false)
	}, false},
	{"conv3x3-s1-bias-bn-relu-gap-linear-ce", 3, 7, 4, func(b *graphBuilder) {
		x := b.conv("conv", "input", 3, 6, 3, 1, 1, 1, true)
		x = b.bn("bn", x, 6)
		x = b.op("relu", nn.OpReLU, x)
		x = b.op("gap", nn.OpGlobalAvgPool, x)
		x = b.op("flatten", nn.OpFlatten, x)
		b.linear("fc", x, 6, 5)
	}, true},
	{"conv3x3-s2-col2im", 2, 9, 3, func(b *graphBuilder) {
		b.conv("conv", "input", 2, 5, 3, 2, 1, 1, false)
	}, false},
	{"conv1x1-s2-nopad", 4, 8, 3, func(b *graphBuilder) {
		b.conv("conv", "input", 4, 3, 1, 2, 0, 1, true)
	}, false},
	{"conv5x5-p2-and-3x3-p0", 2, 9, 2, func(b *graphBuilder) {
		x := b.conv("c5", "input", 2, 4, 5, 1, 2, 1, false)
		b.conv("c3", x, 4, 3, 3, 1, 0, 1, true)
	}, false},
	{"grouped-and-depthwise", 4, 8, 3, func(b *graphBuilder) {
		x := b.conv("g2", "input", 4, 6, 3, 1, 1, 2, true)
		b.conv("dw", x, 6, 6, 3, 2, 1, 6, false)
	}, false},
	{"bn-train", 3, 5, 4, func(b *graphBuilder) {
		x := b.conv("conv", "input", 3, 4, 3, 1, 1, 1, false)
		b.bn("bn", x, 4)
	}, false},
	{"relu6-prelu-clamp", 3, 6, 2, func(b *graphBuilder) {
		x := b.conv("conv", "input", 3, 4, 3, 1, 1, 1, true)
		y := b.op("relu6", nn.OpReLU6, x)
		z := b.prelu("prelu", x, 4)
		w := b.clamp("clamp", x, 4, -0.5, 0.7)
		b.op("sum", nn.OpAdd, y, z, w)
	}, false},
	{"residual-block", 4, 6, 3, func(b *graphBuilder) {
		s := b.conv("stem", "input", 4, 4, 3, 1, 1, 1, false)
		s = b.op("stem.relu", nn.OpReLU, s)
		y := b.conv("conv1", s, 4, 4, 3, 1, 1, 1, false)
		y = b.bn("bn1", y, 4)
		y = b.op("relu1", nn.OpReLU, y)
		y = b.conv("conv2", y, 4, 4, 3, 1, 1, 1, false)
		y = b.bn("bn2", y, 4)
		y = b.op("add", nn.OpAdd, y, s)
		b.op("relu", nn.OpReLU, y)
	}, false},
	// Winograd: F(4×4) on 12×12 and F(2×2) on 6×6 maps, forward and input
	// gradient (accumulated into the shortcut's), with BN+ReLU and add+ReLU.
	{"residual-block-winograd", 8, 12, 2, func(b *graphBuilder) {
		s := b.conv("stem", "input", 8, 8, 3, 1, 1, 1, false)
		s = b.op("stem.relu", nn.OpReLU, s)
		y := b.conv("conv1", s, 8, 8, 3, 1, 1, 1, false)
		y = b.bn("bn1", y, 8)
		y = b.op("relu1", nn.OpReLU, y)
		y = b.conv("conv2", y, 8, 8, 3, 1, 1, 1, false)
		y = b.bn("bn2", y, 8)
		y = b.op("add", nn.OpAdd, y, s)
		y = b.op("relu", nn.OpReLU, y)
		y = b.conv("down", y, 8, 8, 3, 2, 1, 1, false)
		b.conv("conv3", y, 8, 9, 3, 1, 1, 1, true)
	}, false},
	{"pools", 2, 9, 2, func(b *graphBuilder) {
		x := b.conv("conv", "input", 2, 3, 3, 1, 1, 1, true)
		m := b.pool("max", nn.OpMaxPool, x, 3, 2, 1)
		a := b.pool("avg", nn.OpAvgPool, x, 3, 2, 1)
		b.op("add", nn.OpAdd, m, a)
	}, false},
	{"avgpool2-flatten-linear-ce", 2, 6, 3, func(b *graphBuilder) {
		x := b.conv("conv", "input", 2, 3, 3, 1, 1, 1, false)
		x = b.pool("avg", nn.OpAvgPool, x, 2, 2, 0)
		x = b.op("flatten", nn.OpFlatten, x)
		b.linear("fc", x, 27, 4)
	}, true},
}

// gradResult holds one case's analytic gradients and how to get numeric ones.
type gradResult struct {
	names   []string             // tensors checked: params and "input"
	ours    map[string][]float32 // analytic gradients of Net
	numGrad func(name string, i int) float64
}

// runGradCase computes the Net's gradients and the oracle's loss function.
func runGradCase(t *testing.T, tc gradCase, threads int) *gradResult {
	t.Helper()
	b := newGraphBuilder(tc.c, tc.h, tc.h, 7)
	tc.build(b)
	g := b.g
	in := nn.Shape{C: tc.c, H: tc.h, W: tc.h}
	net, err := NewNet(g, in, NetOptions{MaxBatch: tc.n, Threads: threads, InputGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, tc.n*in.Numel())
	x64 := make([]float64, len(x))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		x64[i] = float64(x[i])
	}
	labels := make([]int, tc.n)
	ref := newRef64(g)
	y := net.Forward(x, tc.n, true)
	yr := ref.forward(x64, tc.n, in)
	if len(y) != len(yr.d) {
		t.Fatalf("forward: got %d outputs; want %d", len(y), len(yr.d))
	}
	for i := range y {
		if d := math.Abs(float64(y[i]) - yr.d[i]); d > 1e-4*(1+math.Abs(yr.d[i])) {
			t.Fatalf("forward output %d: got %g; want %g (float64 oracle)", i, y[i], yr.d[i])
		}
	}
	var r []float64
	if tc.ce {
		for i := range labels {
			labels[i] = rng.IntN(yr.c)
		}
		loss, _ := net.Loss(labels)
		if want := crossEntropy64(yr, labels); math.Abs(loss-want) > 1e-5*(1+want) {
			t.Fatalf("loss: got %g; want %g", loss, want)
		}
	} else {
		r = make([]float64, len(yr.d))
		rg := make([]float32, len(r))
		for i := range r {
			rg[i] = float32(rng.NormFloat64())
			r[i] = float64(rg[i])
		}
		net.setOutputGrad(rg)
	}
	net.Backward()
	res := &gradResult{ours: map[string][]float32{}}
	for _, p := range net.Params() {
		res.names = append(res.names, p.Name)
		res.ours[p.Name] = append([]float32(nil), p.Grad...)
	}
	res.names = append(res.names, "input")
	res.ours["input"] = append([]float32(nil), net.layers[0].grad[:len(x)]...)
	lossAt := func() float64 {
		y := ref.forward(x64, tc.n, in)
		if tc.ce {
			return crossEntropy64(y, labels)
		}
		s := 0.0
		for i, v := range y.d {
			s += r[i] * v
		}
		return s
	}
	res.numGrad = func(name string, i int) float64 {
		v := x64
		if name != "input" {
			v = ref.p[name]
		}
		old := v[i]
		h := 1e-6 * math.Max(1, math.Abs(old))
		v[i] = old + h
		up := lossAt()
		v[i] = old - h
		down := lossAt()
		v[i] = old
		return (up - down) / (2 * h)
	}
	return res
}

// compare checks up to 16 sampled entries of every tensor; the tolerance is
// relative to the tensor's largest gradient (float32 backward against
// float64 differences).
func (res *gradResult) compare(tol float64) error {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, name := range res.names {
		ours := res.ours[name]
		scale := 1e-3
		for _, v := range ours {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		idx := rng.Perm(len(ours))
		if len(idx) > 16 {
			idx = idx[:16]
		}
		for _, i := range idx {
			num := res.numGrad(name, i)
			if d := math.Abs(float64(ours[i]) - num); d > tol*scale {
				return fmt.Errorf("%s[%d]: got %g; want %g (finite differences, |diff| %.3g > %.3g)", name, i, ours[i], num, d, tol*scale)
			}
		}
	}
	return nil
}

func TestGradients(t *testing.T) {
	for _, tc := range gradCases {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/threads=%d", tc.name, threads), func(t *testing.T) {
				res := runGradCase(t, tc, threads)
				if err := res.compare(2e-3); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// TestGradientCheckFails shows the check catches a wrong gradient: a 2%
// error in one tensor, or a gradient of the wrong tensor.
func TestGradientCheckFails(t *testing.T) {
	var tc gradCase
	for _, c := range gradCases {
		if c.name == "conv3x3-s1-bias-bn-relu-gap-linear-ce" {
			tc = c
		}
	}
	res := runGradCase(t, tc, 1)
	for _, name := range []string{"conv.weight", "bn.weight", "fc.bias", "input"} {
		g := res.ours[name]
		orig := append([]float32(nil), g...)
		for i := range g {
			g[i] *= 1.02
		}
		if err := res.compare(2e-3); err == nil {
			t.Errorf("scaling %s by 1.02: check passed; want a failure", name)
		}
		copy(g, orig)
	}
	if err := res.compare(2e-3); err != nil {
		t.Errorf("restored gradients: %v", err)
	}
}
