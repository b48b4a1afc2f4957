package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

func narrowResNet(imagenet, bottleneck bool, counts, widths []int, inC, classes int) *nn.Graph {
	s := nn.ResNetSpec{InChannels: inC, StemWidth: widths[0], StemKernel: 3, Classes: classes}
	if imagenet {
		s.StemKernel, s.MaxPool = 7, true
	}
	s.Blocks = nn.ResNetBlocks(counts, widths, widths[0], bottleneck)
	return s.Build(7)
}

// plainNet exercises the ops RM and pruning produce: PReLU, per-channel
// clamps, grouped and depthwise convs, standalone BN, avg-pool.
func plainNet(rng *rand.Rand) *nn.Graph {
	g := &nn.Graph{Nodes: []*nn.Node{{Name: "input", Op: nn.OpInput, Out: 3}}}
	add := func(n *nn.Node) { g.Nodes = append(g.Nodes, n) }
	rnd := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	conv := func(name, in string, cin, cout, k, s, p, groups int, bias bool) {
		n := &nn.Node{Name: name, Op: nn.OpConv, Inputs: []string{in}, In: cin, Out: cout, Kernel: k, Stride: s, Pad: p, Groups: groups}
		n.SetP("weight", []int{cout, cin / groups, k, k}, rnd(cout*cin/groups*k*k, 0.3))
		if bias {
			n.SetP("bias", []int{cout}, rnd(cout, 0.2))
		}
		add(n)
	}
	conv("c1", "input", 3, 12, 3, 1, 1, 1, true)
	pr := &nn.Node{Name: "p1", Op: nn.OpPReLU, Inputs: []string{"c1"}}
	pr.SetP("weight", []int{12}, rnd(12, 0.5))
	add(pr)
	conv("c2", "p1", 12, 12, 3, 2, 1, 3, false) // grouped
	bn := &nn.Node{Name: "bn", Op: nn.OpBatchNorm, Inputs: []string{"c2"}}
	bn.SetP("weight", []int{12}, rnd(12, 1))
	bn.SetP("bias", []int{12}, rnd(12, 1))
	bn.SetP("running_mean", []int{12}, rnd(12, 1))
	v := rnd(12, 0.3)
	for i := range v {
		v[i] = 1 + v[i]*v[i]
	}
	bn.SetP("running_var", []int{12}, v)
	add(bn)
	cl := &nn.Node{Name: "cl", Op: nn.OpClamp, Inputs: []string{"bn"}}
	lo, hi := make([]float32, 12), make([]float32, 12)
	for i := range lo {
		lo[i], hi[i] = -0.5, 0.7
		if i%3 == 0 {
			lo[i], hi[i] = -3.4e38, 3.4e38
		}
	}
	cl.SetP("min", []int{12}, lo)
	cl.SetP("max", []int{12}, hi)
	add(cl)
	conv("dw", "cl", 12, 12, 3, 1, 1, 12, true)
	add(&nn.Node{Name: "r6", Op: nn.OpReLU6, Inputs: []string{"dw"}})
	conv("sc", "r6", 12, 12, 1, 1, 0, 12, false) // depthwise 1×1: a scale
	add(&nn.Node{Name: "ap", Op: nn.OpAvgPool, Inputs: []string{"sc"}, Kernel: 2, Stride: 2})
	add(&nn.Node{Name: "sum", Op: nn.OpAdd, Inputs: []string{"ap", "ap"}})
	add(&nn.Node{Name: "relu", Op: nn.OpReLU, Inputs: []string{"sum"}})
	add(&nn.Node{Name: "flat", Op: nn.OpFlatten, Inputs: []string{"relu"}})
	lin := &nn.Node{Name: "fc", Op: nn.OpLinear, Inputs: []string{"flat"}, In: 12 * 4 * 4, Out: 5}
	lin.SetP("weight", []int{5, 12 * 16}, rnd(5*12*16, 0.1))
	lin.SetP("bias", []int{5}, rnd(5, 0.1))
	add(lin)
	g.Input = [3]int{3, 16, 16}
	return g
}

// maskedResNet is a narrow ResNet with the mask-trained demos' masks at
// random values (some zero, some negative; mask_res folds to max(m, 0)).
func maskedResNet(t *testing.T, rng *rand.Rand, widths []int) *nn.Graph {
	g, err := nn.AddMasks(narrowResNet(false, false, []int{2, 2, 2}, widths, 1, 10))
	if err != nil {
		t.Fatal(err)
	}
	nn.RandomizeBN(g, rng)
	for _, n := range g.Nodes {
		if n.Op == nn.OpMask {
			for i, m := range n.P("weight") {
				n.P("weight")[i] = m * float32(rng.Float64()*1.5-0.2)
				if i%5 == 3 {
					n.P("weight")[i] = 0
				}
			}
		}
	}
	return g
}

// forcedAlgo names the algorithm a forced Winograd mode runs (Algorithms);
// channel-vectorised modes fall back to the tile-vectorised one (wino−2) on
// layers the kernels cannot run.
func forcedAlgo(wino WinogradMode) string {
	switch wino {
	case WinogradF2, WinogradF4:
		return fmt.Sprintf("winograd F%d", 2*int(wino-1))
	case WinogradF2C, WinogradF4C:
		return fmt.Sprintf("winograd F%dc", 2*int(wino-3))
	}
	return ""
}

func TestEngineMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	mb := nn.StandardMobileNetV2(3, 10, 0.25)
	masked := maskedResNet(t, rng, []int{16, 32, 64})
	maskedRM, err := rm.Convert(maskedResNet(t, rng, []int{8, 13, 24}), rm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		g     *nn.Graph
		shape nn.Shape
	}{
		{"resnet20", narrowResNet(false, false, []int{3, 3, 3}, []int{16, 32, 64}, 1, 10), nn.Shape{C: 1, H: 28, W: 28}},
		{"resnet18-narrow-odd", narrowResNet(true, false, []int{2, 2, 2, 2}, []int{8, 13, 24, 37}, 3, 10), nn.Shape{C: 3, H: 45, W: 45}},
		{"resnet50-narrow", narrowResNet(true, true, []int{1, 2, 1, 1}, []int{4, 8, 16, 32}, 3, 10), nn.Shape{C: 3, H: 64, W: 64}},
		{"mobilenet_v2", mb.Build(3), nn.Shape{C: 3, H: 32, W: 32}},
		{"plain", plainNet(rng), nn.Shape{C: 3, H: 16, W: 16}},
		{"masked-resnet", masked, nn.Shape{C: 1, H: 28, W: 28}},
		{"masked-resnet-odd", masked, nn.Shape{C: 1, H: 13, W: 19}},
		{"masked-rmnet-odd", maskedRM.Graph, nn.Shape{C: 1, H: 22, W: 15}},
	}
	for _, tt := range tests {
		nn.RandomizeBN(tt.g, rng)
		for _, wino := range []WinogradMode{WinogradAuto, WinogradF2, WinogradF4, WinogradF2C, WinogradF4C} {
			for _, threads := range []int{1, 2} {
				for _, batch := range []int{1, 3, 11} {
					if batch == 11 && (threads == 1 || wino == WinogradAuto) {
						continue // image groups (of 4, then 1 and 2) run on 2 threads
					}
					t.Run(fmt.Sprintf("%s/wino%d/t%d/b%d", tt.name, wino, threads, batch), func(t *testing.T) {
						x := nn.NewAct(batch, tt.shape.C, tt.shape.H, tt.shape.W)
						for i := range x.D {
							x.D[i] = float32(rng.NormFloat64())
						}
						want, err := tt.g.Forward(x, nil)
						if err != nil {
							t.Fatal(err)
						}
						e, err := Compile(tt.g, Options{Threads: threads, MaxBatch: max(3, batch), Shape: tt.shape, Winograd: wino})
						if err != nil {
							t.Fatal(err)
						}
						defer e.Close()
						if wino != WinogradAuto && tt.name != "mobilenet_v2" {
							if a := e.Algorithms(batch >= threads && threads > 1); a[forcedAlgo(wino)] == 0 && a[forcedAlgo(wino-2)] == 0 {
								t.Fatalf("forced Winograd not used: %v", a)
							}
						}
						for rep := 0; rep < 2; rep++ { // reused buffers must not leak state
							got, err := e.Run(x.D, batch)
							if err != nil {
								t.Fatal(err)
							}
							if rel, _ := nn.RelError(got, want.D); rel > 1e-4 {
								t.Errorf("run %d: rel error got %g; want ≤ 1e-4", rep, rel)
							}
						}
					})
				}
			}
		}
	}
}

func TestEngineZeroAllocs(t *testing.T) {
	g := narrowResNet(false, false, []int{2, 2, 2}, []int{8, 16, 32}, 3, 10)
	for _, wino := range []WinogradMode{WinogradOff, WinogradF4} {
		e, err := Compile(g, Options{Threads: 2, MaxBatch: 2, Shape: nn.Shape{C: 3, H: 32, W: 32}, Winograd: wino})
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, 2*3*32*32)
		for _, n := range []int{1, 2} {
			xn := x[:n*3*32*32]
			if _, err := e.Run(xn, n); err != nil {
				t.Fatal(err)
			}
			if a := testing.AllocsPerRun(20, func() { e.Run(xn, n) }); a != 0 {
				t.Errorf("winograd %d batch %d: allocations per inference got %v; want 0", wino, n, a)
			}
		}
		e.Close()
	}
}

// With WinogradAuto the engine times each eligible layer and keeps what is
// fastest; convs Winograd cannot run (7×7 stem, stride 2, 1×1) stay direct,
// and whatever it chose computes the same network.
func TestEngineWinogradAuto(t *testing.T) {
	g := narrowResNet(true, false, []int{1, 1}, []int{16, 64}, 3, 10)
	nn.RandomizeBN(g, rand.New(rand.NewPCG(3, 4)))
	shape := nn.Shape{C: 3, H: 112, W: 112}
	e, err := Compile(g, Options{Threads: 1, MaxBatch: 1, Shape: shape})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a := e.Algorithms(false)
	for _, lt := range e.LayerTimes() {
		if lt.Algo != "" && !slices.Contains([]string{"direct", "winograd F2", "winograd F4", "winograd F2c", "winograd F4c"}, lt.Algo) {
			t.Errorf("%s: algorithm %q", lt.Name, lt.Algo)
		}
	}
	if a["direct"] < 3 { // the stem, the strided conv, the 1×1 projection
		t.Errorf("algorithms %v; want the convs Winograd cannot run direct", a)
	}
	t.Logf("auto choice on this machine: %v", a)
	x := rm.RandomInput(1, shape, 5)
	want, err := g.Forward(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Run(x.D, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rel, _ := nn.RelError(got, want.D); rel > 1e-4 {
		t.Errorf("rel error got %g; want ≤ 1e-4", rel)
	}
}

func TestParseWinograd(t *testing.T) {
	for in, want := range map[string]WinogradMode{"auto": WinogradAuto, "off": WinogradOff, "2": WinogradF2, "4": WinogradF4, "2c": WinogradF2C, "4c": WinogradF4C} {
		if got, err := ParseWinograd(in); err != nil || got != want {
			t.Errorf("ParseWinograd(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseWinograd("3"); err == nil {
		t.Error("ParseWinograd(3) accepted")
	}
}

func TestEngineErrors(t *testing.T) {
	g := narrowResNet(false, false, []int{1, 1, 1}, []int{4, 8, 16}, 3, 10)
	e, err := Compile(g, Options{MaxBatch: 2, Shape: nn.Shape{C: 3, H: 8, W: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Run(make([]float32, 3*3*64), 3); err == nil {
		t.Error("batch above MaxBatch: got nil error")
	}
	if _, err := e.Run(make([]float32, 5), 1); err == nil {
		t.Error("short input: got nil error")
	}
}

// TestEngineFusesScaledSkip: a mask on a block's shortcut (add(conv,
// mask(x))) goes into the conv's residual epilogue, not a step of its own.
func TestEngineFusesScaledSkip(t *testing.T) {
	g := maskedResNet(t, rand.New(rand.NewPCG(5, 6)), []int{8, 16, 32})
	e, err := Compile(g, Options{Threads: 2, MaxBatch: 2, Shape: nn.Shape{C: 1, H: 28, W: 28}, Winograd: WinogradOff})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, lt := range e.LayerTimes() {
		if strings.Contains(lt.Name, "mask_res") || strings.HasSuffix(lt.Name, ".add") {
			t.Errorf("step %q: want the shortcut mask and the add fused into the conv", lt.Name)
		}
	}
}

// Compile refuses a shape or batch whose buffers pass the memory budget,
// and accepts the same net within it.
func TestCompileMemoryBudget(t *testing.T) {
	old := memoryBudget
	defer func() { memoryBudget = old }()
	spec, _ := nn.StandardResNet("resnet20", 3, 10)
	g := spec.Build(1)
	memoryBudget = func() int64 { return 64 << 20 }
	e, err := Compile(g, Options{Threads: 2, MaxBatch: 4, Shape: nn.Shape{C: 3, H: 32, W: 32}})
	if err != nil {
		t.Fatalf("32×32 batch 4 within 64 MiB: %v", err)
	}
	e.Close()
	for _, o := range []Options{
		{Threads: 2, MaxBatch: 1, Shape: nn.Shape{C: 3, H: 512, W: 512}},
		{Threads: 2, MaxBatch: 4096, Shape: nn.Shape{C: 3, H: 64, W: 64}},
	} {
		if _, err := Compile(g, o); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%v batch %d in 64 MiB: got %v; want ErrTooLarge", o.Shape, o.MaxBatch, err)
		}
	}
}
