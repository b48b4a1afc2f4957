package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmprune/rmprune/nn"
)

// mask appends a mask with the given values (random in [-0.5, 1.5) when nil).
func (b *graphBuilder) mask(name, in string, c int, vals []float32) string {
	n := &nn.Node{Name: name, Op: nn.OpMask, Inputs: []string{in}}
	if vals == nil {
		vals = make([]float32, c)
		for i := range vals {
			vals[i] = float32(b.rng.Float64()*2 - 0.5)
		}
	}
	n.SetP("weight", []int{c}, vals)
	return b.add(n)
}

// maskedBlock appends a ResNet BasicBlock with the reference code's masks
// reading x (c channels, non-negative); projection adds a strided 1×1
// downsample.
func (b *graphBuilder) maskedBlock(p, x string, c, out int, projection bool, mask2 []float32) string {
	stride := 1
	if projection {
		stride = 2
	}
	y := b.conv(p+"conv1", x, c, out, 3, stride, 1, 1, false)
	y = b.bn(p+"bn1", y, out)
	y = b.mask(p+"mask1", y, out, nil)
	y = b.op(p+"relu1", nn.OpReLU, y)
	y = b.conv(p+"conv2", y, out, out, 3, 1, 1, 1, false)
	y = b.bn(p+"bn2", y, out)
	sc := b.mask(p+"mask_res.0", x, c, nil)
	sc = b.op(p+"mask_res.1", nn.OpReLU, sc)
	if projection {
		sc = b.conv(p+"downsample.0", sc, c, out, 1, stride, 0, 1, false)
		sc = b.bn(p+"downsample.1", sc, out)
	}
	y = b.op(p+"add", nn.OpAdd, y, sc)
	y = b.mask(p+"mask2", y, out, mask2)
	return b.op(p+"relu", nn.OpReLU, y)
}

var maskGradCases = []gradCase{
	// mask1: fused into the BatchNorm, with its ReLU.
	{"bn-mask-relu", 3, 6, 3, func(b *graphBuilder) {
		x := b.conv("conv", "input", 3, 5, 3, 1, 1, 1, false)
		x = b.bn("bn", x, 5)
		x = b.mask("mask", x, 5, nil)
		b.op("relu", nn.OpReLU, x)
	}, false},
	// Fused without a ReLU, some masks exactly 0 (smooth there).
	{"bn-mask-zero-conv", 3, 6, 3, func(b *graphBuilder) {
		x := b.conv("conv", "input", 3, 4, 3, 1, 1, 1, false)
		x = b.bn("bn", x, 4)
		x = b.mask("mask", x, 4, []float32{0, 0.7, -1.2, 0})
		b.conv("conv2", x, 4, 3, 3, 1, 1, 1, true)
	}, false},
	// Unfused masks (two readers of the conv), exactly 0 and not.
	{"conv-masks-zero", 3, 5, 2, func(b *graphBuilder) {
		x := b.conv("conv", "input", 3, 4, 3, 1, 1, 1, true)
		m := b.mask("m1", x, 4, []float32{0, 1, 0.3, 0})
		k := b.mask("m2", x, 4, []float32{-0.4, 0, 2, 1})
		b.op("add", nn.OpAdd, m, k)
	}, false},
	// mask2 fused into its add, without a ReLU, some masks exactly 0.
	{"add-mask-zero", 3, 5, 3, func(b *graphBuilder) {
		x := b.conv("conv", "input", 3, 4, 3, 1, 1, 1, true)
		y := b.conv("conv2", x, 4, 4, 3, 1, 1, 1, false)
		y = b.op("add", nn.OpAdd, y, x)
		b.mask("mask", y, 4, []float32{0, 1.3, -0.6, 0})
	}, false},
	// Identity and projection blocks: mask_res with its ReLU, mask2 on the
	// residual sum, then a classifier.
	{"masked-blocks-ce", 3, 8, 4, func(b *graphBuilder) {
		x := b.conv("conv1", "input", 3, 4, 3, 1, 1, 1, false)
		x = b.bn("bn1", x, 4)
		x = b.mask("mask1", x, 4, nil)
		x = b.op("relu", nn.OpReLU, x)
		x = b.maskedBlock("layer1.0.", x, 4, 4, false, nil)
		x = b.maskedBlock("layer2.0.", x, 4, 6, true, nil)
		x = b.op("gap", nn.OpGlobalAvgPool, x)
		x = b.op("flatten", nn.OpFlatten, x)
		b.linear("fc", x, 6, 5)
	}, true},
	{"masked-block-sum", 4, 6, 3, func(b *graphBuilder) {
		x := b.conv("stem", "input", 4, 4, 3, 1, 1, 1, false)
		x = b.op("stem.relu", nn.OpReLU, x)
		b.maskedBlock("layer1.0.", x, 4, 4, false, nil)
	}, false},
}

func TestMaskGradients(t *testing.T) {
	for _, tc := range maskGradCases {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/threads=%d", tc.name, threads), func(t *testing.T) {
				res := runGradCase(t, tc, threads)
				found := false
				for _, name := range res.names {
					found = found || strings.HasSuffix(name, "mask.weight") || name == "m1.weight" || name == "layer1.0.mask2.weight"
				}
				if !found {
					t.Fatalf("no mask gradient among %v", res.names)
				}
				if err := res.compare(2e-3); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// TestMaskGradientCheckFails shows the check catches a wrong mask gradient.
func TestMaskGradientCheckFails(t *testing.T) {
	var tc gradCase
	for _, c := range maskGradCases {
		if c.name == "masked-blocks-ce" {
			tc = c
		}
	}
	res := runGradCase(t, tc, 1)
	for _, name := range []string{"mask1.weight", "layer1.0.mask1.weight", "layer1.0.mask_res.0.weight", "layer2.0.mask2.weight", "bn1.weight"} {
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
}

// maskNet is a masked identity block on random data after one training
// forward and backward.
func maskNet(t *testing.T, mask2 []float32, threads int) (*Net, *nn.Graph) {
	t.Helper()
	b := newGraphBuilder(4, 6, 6, 5)
	x := b.conv("stem", "input", 4, 4, 3, 1, 1, 1, false)
	x = b.op("stem.relu", nn.OpReLU, x)
	x = b.maskedBlock("layer1.0.", x, 4, 4, false, mask2)
	x = b.op("gap", nn.OpGlobalAvgPool, x)
	x = b.op("flatten", nn.OpFlatten, x)
	b.linear("fc", x, 4, 3)
	net, err := NewNet(b.g, nn.Shape{C: 4, H: 6, W: 6}, NetOptions{MaxBatch: 5, Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	in := make([]float32, 5*4*36)
	for i := range in {
		in[i] = float32(math.Sin(float64(i) * 0.37))
	}
	net.Forward(in, 5, true)
	net.Loss([]int{0, 1, 2, 0, 1})
	net.Backward()
	return net, b.g
}

func paramByName(net *Net, name string) *Param {
	for _, p := range net.Params() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// TestMaskZeroWithReLU: a mask at exactly 0 before a ReLU passes nothing and
// has zero gradient (ReLU'(0) = 0, as PyTorch), and SGD keeps it at 0 even
// with momentum and the penalty; a mask below the threshold becomes 0.
func TestMaskZeroWithReLU(t *testing.T) {
	net, g := maskNet(t, []float32{0, 1, 0.004, -0.003}, 1)
	defer net.Close()
	m := paramByName(net, "layer1.0.mask2.weight")
	if m == nil || !m.Mask {
		t.Fatal("layer1.0.mask2.weight: not a mask param")
	}
	if m.Grad[0] != 0 {
		t.Errorf("gradient of a zero mask: got %g; want 0", m.Grad[0])
	}
	if m.Grad[1] == 0 {
		t.Errorf("gradient of mask 1: got 0; want non-zero")
	}
	m.Mom[0] = 5 // stale momentum must not move a zero mask
	sgd := SGD{Momentum: 0.9, WeightDecay: 5e-4, MaskSparsity: 1e-3, MaskThreshold: 0.005}
	for range 3 {
		for _, p := range net.Params() {
			clear(p.Grad)
		}
		m.Grad[0], m.Grad[1] = 0.5, 0.5
		sgd.Step(net.Params(), 0.1)
	}
	w := g.Node("layer1.0.mask2").P("weight")
	if w[0] != 0 || w[2] != 0 || w[3] != 0 {
		t.Errorf("masks after 3 steps: got %v; want 0 at 0, 2 and 3", w)
	}
	if w[1] == 0 || m.Mom[0] != 0 {
		t.Errorf("mask 1 %g (want non-zero), momentum of mask 0 %g (want 0)", w[1], m.Mom[0])
	}
}

// TestMaskStep checks one update of a mask against the formula.
func TestMaskStep(t *testing.T) {
	p := &Param{Data: []float32{0.5, -0.5, 0.02, 0}, Grad: []float32{0.1, 0.1, 0.1, 0.3}, Mom: []float32{0.2, 0, 0, 0.1}, Mask: true}
	SGD{Momentum: 0.9, WeightDecay: 0.01, MaskSparsity: 0.05, MaskThreshold: 0.01}.Step([]*Param{p}, 0.1)
	want := []float64{
		0.5 - 0.1*(0.9*0.2+0.1+0.05+0.01*0.5),
		-0.5 - 0.1*(0.1-0.05-0.01*0.5),
		0, // 0.02 − 0.1·(0.1+0.05+0.0002) < 0.01
		0,
	}
	for i, w := range want {
		if math.Abs(float64(p.Data[i])-w) > 1e-6 {
			t.Errorf("mask %d: got %g; want %g", i, p.Data[i], w)
		}
	}
	if p.Mom[2] != 0 || p.Mom[3] != 0 {
		t.Errorf("momentum of zeroed masks: got %v; want 0", p.Mom[2:])
	}
}

// TestMaskRunningStats: a training forward updates act_mean/act_var of the
// block input (running1) and of the residual sum (running2) as a PyTorch
// BatchNorm (momentum 0.1, unbiased variance) from their initial 0 and 1;
// an eval forward leaves them.
func TestMaskRunningStats(t *testing.T) {
	for _, threads := range []int{1, 2} {
		net, g := maskNet(t, nil, threads)
		for _, name := range []string{"stem.relu", "layer1.0.add"} {
			var l *layer
			for _, x := range net.layers {
				if x.node.Name == name {
					l = x
				}
			}
			out := l.out
			if l.relu != nil {
				out = l.relu.out
			}
			if l.node.Op == nn.OpAdd { // the sum, before mask2
				out = make([]float32, 5*4*36)
				for _, in := range l.ins {
					for i := range out {
						out[i] += in.out[i]
					}
				}
			}
			mean, vr := g.Node(name).P("act_mean"), g.Node(name).P("act_var")
			if len(mean) != 4 || len(vr) != 4 {
				t.Fatalf("%s: act_mean %d, act_var %d values; want 4", name, len(mean), len(vr))
			}
			hw := 36
			for c := range 4 {
				var s, ss float64
				for b := range 5 {
					for _, v := range out[(b*4+c)*hw : (b*4+c+1)*hw] {
						s += float64(v)
						ss += float64(v) * float64(v)
					}
				}
				n := float64(5 * hw)
				m := s / n
				v := (ss/n - m*m) * n / (n - 1)
				if math.Abs(float64(mean[c])-0.1*m) > 1e-5 || math.Abs(float64(vr[c])-(0.9+0.1*v)) > 1e-4 {
					t.Errorf("threads %d %s channel %d: got mean %g var %g; want %g %g", threads, name, c, mean[c], vr[c], 0.1*m, 0.9+0.1*v)
				}
			}
		}
		before := append([]float32(nil), g.Node("layer1.0.add").P("act_var")...)
		net.Forward(make([]float32, 5*4*36), 5, false)
		if after := g.Node("layer1.0.add").P("act_var"); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("eval forward changed act_var: %v -> %v", before, after)
		}
		net.Close()
	}
}

// TestMaskForwardMatchesGraph: the training net's eval forward of a masked
// graph equals nn.Graph.Forward (fusions included).
func TestMaskForwardMatchesGraph(t *testing.T) {
	net, g := maskNet(t, nil, 2)
	defer net.Close()
	in := make([]float32, 5*4*36)
	for i := range in {
		in[i] = float32(math.Cos(float64(i) * 0.11))
	}
	got := net.Forward(in, 5, false)
	want, err := g.Forward(&nn.Act{N: 5, C: 4, H: 6, W: 6, D: in}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 5 {
		w := want.D[b*3 : (b+1)*3]
		for i := range w {
			if d := math.Abs(float64(got[b*3+i] - w[i])); d > 1e-4 {
				t.Fatalf("image %d output %d: got %g; want %g", b, i, got[b*3+i], w[i])
			}
		}
	}
}

// BenchmarkMaskTrainStep times training steps of ResNet-20 (1×28×28, batch
// 128, 2 threads) without and with the reference code's masks, interleaved
// in blocks of 4 steps, and reports both images/s (median step) and the
// ratio masked/plain.
func BenchmarkMaskTrainStep(b *testing.B) {
	plain, err := nn.Build("resnet20", 1, 10, 1)
	if err != nil {
		b.Fatal(err)
	}
	masked, err := nn.AddMasks(plain.Clone())
	if err != nil {
		b.Fatal(err)
	}
	in := nn.Shape{C: 1, H: 28, W: 28}
	const batch = 128
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*in.Numel())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := make([]int, batch)
	for i := range labels {
		labels[i] = rng.IntN(10)
	}
	var steps [2]func()
	for i, g := range []*nn.Graph{plain, masked} {
		net, err := NewNet(g, in, NetOptions{MaxBatch: batch, Threads: 2})
		if err != nil {
			b.Fatal(err)
		}
		defer net.Close()
		sgd := SGD{Momentum: 0.9, WeightDecay: 5e-4, MaskSparsity: 1e-4, MaskThreshold: 1e-3}
		steps[i] = func() {
			net.Forward(x, batch, true)
			net.Loss(labels)
			net.Backward()
			sgd.Step(net.Params(), 0.01)
		}
		for range 3 {
			steps[i]()
		}
	}
	var times [2][]time.Duration
	for b.Loop() {
		for i, step := range steps {
			for range 4 {
				t0 := time.Now()
				step()
				times[i] = append(times[i], time.Since(t0))
			}
		}
	}
	var ips [2]float64
	for i := range times {
		slices.Sort(times[i])
		ips[i] = batch / times[i][len(times[i])/2].Seconds()
	}
	b.ReportMetric(ips[0], "plain-images/s")
	b.ReportMetric(ips[1], "masked-images/s")
	b.ReportMetric(ips[1]/ips[0], "masked/plain")
}

// TestMaskRunResume: mask-sparsity training of tiny BasicBlock and
// Bottleneck ResNets drives masks to exactly 0 (they stay 0), records
// running1/running2, and resumes exactly; changed mask settings are refused.
func TestMaskRunResume(t *testing.T) {
	data := openMNIST(t)
	for _, bottleneck := range []bool{false, true} {
		t.Run(fmt.Sprintf("bottleneck=%v", bottleneck), func(t *testing.T) {
			build := func() *nn.Graph {
				spec := nn.ResNetSpec{InChannels: 1, StemWidth: 8, StemKernel: 3, Classes: 10, Masks: true,
					Blocks: nn.ResNetBlocks([]int{1, 1}, []int{4, 8}, 8, bottleneck)}
				g := spec.Build(3)
				g.Arch, g.Classes = "tiny-resnet", 10
				return g
			}
			dir := t.TempDir()
			opt := DefaultOptions()
			opt.Epochs, opt.Batch, opt.Seed, opt.Threads = 2, 64, 5, 2
			opt.Limit, opt.EvalLimit = 256, 100
			opt.MaskSparsity, opt.MaskThreshold = 1, 0.3
			a := build()
			opt.Out = filepath.Join(dir, "a.safetensors")
			rep, err := Run(context.Background(), a, data, opt)
			if err != nil {
				t.Fatal(err)
			}
			zero := 0
			for _, m := range rep.Masks {
				zero += m.Zero
			}
			if zero == 0 {
				t.Errorf("no mask exactly 0 after training with s = 1, t = 0.3: %+v", rep.Masks)
			}
			for _, name := range []string{"relu", "layer1.0.relu", "layer1.0.add", "layer2.0.add"} {
				if v := a.Node(name).P("act_var"); len(v) == 0 || v[0] == 1 {
					t.Errorf("%s: act_var %v; want running statistics", name, v)
				}
			}

			b := build()
			opt.Out = filepath.Join(dir, "b.safetensors")
			opt.MaxSteps = 3
			if _, err := Run(context.Background(), b, data, opt); err != nil {
				t.Fatal(err)
			}
			opt.MaxSteps, opt.Resume = 0, true
			b = build()
			if _, err := Run(context.Background(), b, data, opt); err != nil {
				t.Fatal(err)
			}
			sa, sb := a.StateDict(), b.StateDict()
			for _, k := range sa.Keys {
				x, y := nn.Floats(sa.Tensors[k]), nn.Floats(sb.Tensors[k])
				for i := range x {
					if x[i] != y[i] {
						t.Fatalf("%s[%d]: resumed %g; uninterrupted %g", k, i, y[i], x[i])
					}
				}
			}
			// A finished masked model trained further: its zero masks stay 0.
			zeros := map[string][]int{}
			for _, n := range a.Nodes {
				if n.Op == nn.OpMask {
					for i, v := range n.P("weight") {
						if v == 0 {
							zeros[n.Name] = append(zeros[n.Name], i)
						}
					}
				}
			}
			more := opt
			more.Resume, more.MaskSparsity, more.MaskThreshold, more.Epochs = false, 0, 0, 1
			more.Out = filepath.Join(dir, "c.safetensors")
			if _, err := Run(context.Background(), a, data, more); err != nil {
				t.Fatal(err)
			}
			for name, idx := range zeros {
				for _, i := range idx {
					if v := a.Node(name).P("weight")[i]; v != 0 {
						t.Errorf("%s[%d]: zero mask became %g in further training", name, i, v)
					}
				}
			}
			opt.MaskThreshold = 0.01
			if _, err := Run(context.Background(), build(), data, opt); err == nil || !strings.Contains(err.Error(), "mask threshold") {
				t.Errorf("resume with another mask threshold: err %v; want a settings error naming it", err)
			}
			opt.MaskThreshold = 1
			opt.Resume = false
			if _, err := Run(context.Background(), build(), data, opt); err == nil {
				t.Error("mask threshold 1: got no error")
			}
		})
	}
}
