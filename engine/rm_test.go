package engine_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/kernels"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// RM-converted nets take the Dirac-row / centre-column path; it must match
// the reference forward and the dense path.
func TestEngineRMNets(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	specs := map[string]nn.ResNetSpec{}
	s := nn.ResNetSpec{InChannels: 3, StemWidth: 8, StemKernel: 3, Classes: 10}
	s.Blocks = nn.ResNetBlocks([]int{2, 2, 2}, []int{8, 16, 32}, 8, false)
	specs["basic"] = s
	b := nn.ResNetSpec{InChannels: 3, StemWidth: 8, StemKernel: 7, MaxPool: true, Classes: 10}
	b.Blocks = nn.ResNetBlocks([]int{1, 2}, []int{4, 8}, 8, true)
	specs["bottleneck"] = b
	mb := nn.StandardMobileNetV2(3, 10, 0.25)
	for name, spec := range specs {
		for _, keepBN := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/keepbn=%v", name, keepBN), func(t *testing.T) {
				g := spec.Build(3)
				checkRM(t, g, keepBN, rng, nn.Shape{C: 3, H: 33, W: 33})
			})
		}
	}
	t.Run("mobilenet_v2", func(t *testing.T) {
		checkRM(t, mb.Build(4), true, rng, nn.Shape{C: 3, H: 32, W: 32})
	})
}

func checkRM(t *testing.T, g *nn.Graph, keepBN bool, rng *rand.Rand, shape nn.Shape) {
	for _, n := range g.Nodes {
		if n.Op == nn.OpBatchNorm {
			for _, p := range []string{"weight", "bias", "running_mean"} {
				v := n.P(p)
				for i := range v {
					v[i] = float32(rng.NormFloat64()*0.3) + map[string]float32{"weight": 1}[p]
				}
			}
		}
	}
	res, err := rm.Convert(g, rm.Options{KeepBN: keepBN, Shape: shape})
	if err != nil {
		t.Fatal(err)
	}
	// 32 images: a batch of 32 on 2 threads runs image groups of 4 (split
	// convs batched into one Winograd call); one of 2 runs them one by one.
	x := rm.RandomInput(32, shape, 9)
	want, err := g.Forward(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dense bool
		wino  engine.WinogradMode
	}{{false, engine.WinogradOff}, {true, engine.WinogradOff}, {false, engine.WinogradF4}, {true, engine.WinogradF2}, {false, engine.WinogradF4C}, {true, engine.WinogradF2C}} {
		dense := c.dense
		e, err := engine.Compile(res.Graph, engine.Options{Threads: 2, MaxBatch: 32, Shape: shape, Dense: dense, Winograd: c.wino})
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Run(x.D, 32)
		if err != nil {
			t.Fatal(err)
		}
		got = append([]float32(nil), got...)
		two, err := e.Run(x.D[:2*shape.Numel()], 2)
		if err != nil {
			t.Fatal(err)
		}
		if rel, _ := nn.RelError(two, want.D[:len(two)]); rel > 1e-4 {
			t.Errorf("dense=%v winograd=%d batch 2: rel error got %g; want ≤ 1e-4", dense, c.wino, rel)
		}
		if !dense && c.wino == engine.WinogradOff {
			full, _ := res.Graph.Summarize(shape)
			computed, err := engine.ComputedMACs(res.Graph, shape)
			_, saved := e.SplitConvs()
			if err != nil || computed != full.MACs-saved || computed >= full.MACs {
				t.Errorf("ComputedMACs %d (%v); want %d − %d saved", computed, err, full.MACs, saved)
			}
			orig, _ := g.Summarize(shape)
			if c, err := engine.ComputedMACs(g, shape); err != nil || c != orig.MACs {
				t.Errorf("ComputedMACs of the ResNet %d (%v); want its MACs %d (nothing to split)", c, err, orig.MACs)
			}
		}
		if n, saved := e.SplitConvs(); !dense && (n == 0 || saved <= 0) {
			t.Errorf("RM net: %d convs split saving %d MACs; want the shortcut used", n, saved)
		} else if dense && n != 0 {
			t.Errorf("Dense option: %d convs split; want 0", n)
		}
		if rel, _ := nn.RelError(got, want.D); rel > 1e-4 {
			t.Errorf("dense=%v winograd=%d: rel error got %g; want ≤ 1e-4", dense, c.wino, rel)
		}
		if wi := e.Algorithms(true); c.wino != engine.WinogradOff && winogradSteps(wi) == 0 {
			t.Errorf("dense=%v: forced Winograd not used: %v", dense, wi)
		}
		for _, n := range []int{1, 2} {
			if a := testing.AllocsPerRun(5, func() { e.Run(x.D[:n*shape.Numel()], n) }); a != 0 {
				t.Errorf("dense=%v batch %d: allocations per inference got %v; want 0", dense, n, a)
			}
		}
		e.Close()
	}
}

// TestEngineDemoNets runs the MNIST demo ResNet-20 and its RMNet (whose
// downsampling blocks leave split convs with a 1×1 GEMM over the centre
// columns) on every kernel path, with Winograd off (convT on AVX-512) and
// forced, at batch 1 on 1 and 2 threads (layer-parallel: Winograd split by
// tile rows) and batch 32 on 2 threads (image groups of 4), against the
// reference forward.
func TestEngineDemoNets(t *testing.T) {
	g, err := modelio.Load(filepath.Join("..", "demo", "resnet20-mnist.safetensors"), modelio.Options{})
	if err != nil {
		t.Skip(err) // the demo models are committed; a trimmed checkout may lack them
	}
	res, err := rm.Convert(g, rm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	shape := g.InputShape()
	x := rm.RandomInput(32, shape, 3)
	defer func(isa string) { kernels.UseISA(isa) }(kernels.ISA())
	for _, net := range []struct {
		name string
		g    *nn.Graph
	}{{"resnet", g}, {"rmnet", res.Graph}} {
		want, err := net.g.Forward(x, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, isa := range kernels.ISAs() {
			if err := kernels.UseISA(isa); err != nil {
				t.Fatal(err)
			}
			for _, wino := range []engine.WinogradMode{engine.WinogradOff, engine.WinogradF2, engine.WinogradF4, engine.WinogradF2C, engine.WinogradF4C} {
				for _, threads := range []int{1, 2} {
					e, err := engine.Compile(net.g, engine.Options{Threads: threads, MaxBatch: 32, Shape: shape, Winograd: wino})
					if err != nil {
						t.Fatal(err)
					}
					for _, n := range []int{32, 1} {
						if threads == 1 && n == 32 {
							continue
						}
						got, err := e.Run(x.D[:n*shape.Numel()], n)
						if err != nil {
							t.Fatal(err)
						}
						if rel, _ := nn.RelError(got, want.D[:len(got)]); rel > 1e-4 {
							t.Errorf("%s %s winograd %d threads %d batch %d: rel error got %g; want ≤ 1e-4", net.name, isa, wino, threads, n, rel)
						}
					}
					e.Close()
				}
			}
		}
	}
}

// winogradSteps counts the conv steps that run any Winograd algorithm.
func winogradSteps(algos map[string]int) int {
	n := 0
	for a, k := range algos {
		if strings.Contains(a, "winograd") {
			n += k
		}
	}
	return n
}
