package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// setDirac makes row o of conv node name's weights a Dirac row copying input
// channel src with coefficient a.
func setDirac(g *nn.Graph, name string, o, src int, a float32) {
	n := g.Node(name)
	w, k := n.P("weight"), n.Kernel
	c := n.In
	row := w[o*c*k*k : (o+1)*c*k*k]
	clear(row)
	row[src*k*k+(k/2)*(k+1)] = a
}

// setCentre makes input column ci of conv node name centre-only: every row
// but those in skip reads it through the centre tap alone, with scale
// coef[o] (0: not at all).
func setCentre(g *nn.Graph, name string, ci int, coef map[int]float32, skip ...int) {
	n := g.Node(name)
	w, k := n.P("weight"), n.Kernel
	kk := k * k
	for o := 0; o < n.Out; o++ {
		if containsInt(skip, o) {
			continue
		}
		col := w[(o*n.In+ci)*kk : (o*n.In+ci+1)*kk]
		clear(col)
		col[(k/2)*(k+1)] = coef[o]
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// copyGradCases are convs with RM's copy structure at several places: Dirac
// rows anywhere and at stride 2, centre-only columns as a selection (merged
// identity) and as a 1×1 block (merged projection), on maps where the dense
// part runs with Winograd, and a 1×1 conv with Dirac rows.
var copyGradCases = []gradCase{
	{"dirac-rows-and-identity-columns", 4, 8, 3, func(b *graphBuilder) {
		x := b.conv("conv1", "input", 4, 8, 3, 1, 1, 1, false)
		for i, o := range []int{0, 2, 5, 7} {
			setDirac(b.g, "conv1", o, []int{3, 0, 1, 2}[i], []float32{1, 0.5, -1.5, 2}[i])
		}
		x = b.bn("bn1", x, 8)
		x = b.op("relu1", nn.OpReLU, x)
		x = b.conv("conv2", x, 8, 6, 3, 1, 1, 1, false)
		setDirac(b.g, "conv2", 5, 6, 1)
		setCentre(b.g, "conv2", 1, map[int]float32{0: 1, 1: 0.7, 2: -0.4}, 5)
		setCentre(b.g, "conv2", 4, map[int]float32{3: 1, 4: 1.3}, 5)
	}, false},
	{"stride2-dirac-and-projection", 4, 9, 2, func(b *graphBuilder) {
		x := b.conv("conv1", "input", 4, 7, 3, 2, 1, 1, false)
		for o := range 4 {
			setDirac(b.g, "conv1", o, o, 1)
		}
		x = b.op("relu1", nn.OpReLU, x)
		x = b.conv("conv2", x, 7, 5, 3, 1, 1, 1, false)
		for ci := range 4 {
			coef := map[int]float32{}
			for o := range 5 {
				if (o+ci)%3 != 0 {
					coef[o] = float32(b.rng.NormFloat64())
				}
			}
			setCentre(b.g, "conv2", ci, coef)
		}
	}, false},
	{"rm-block-winograd", 8, 12, 2, func(b *graphBuilder) {
		s := b.conv("stem", "input", 8, 8, 3, 1, 1, 1, false)
		s = b.op("stem.relu", nn.OpReLU, s)
		x := b.conv("conv1", s, 8, 16, 3, 1, 1, 1, false)
		for o := range 8 {
			setDirac(b.g, "conv1", o, o, 1)
		}
		x = b.bn("bn1", x, 16)
		x = b.op("relu1", nn.OpReLU, x)
		x = b.conv("conv2", x, 16, 8, 3, 1, 1, 1, false)
		for ci := range 8 {
			setCentre(b.g, "conv2", ci, map[int]float32{ci: 1})
		}
		x = b.bn("bn2", x, 8)
		b.op("relu2", nn.OpReLU, x)
	}, false},
	{"conv1x1-dirac-rows", 4, 6, 3, func(b *graphBuilder) {
		b.conv("conv", "input", 4, 6, 1, 1, 0, 1, false)
		setDirac(b.g, "conv", 1, 2, 1)
		setDirac(b.g, "conv", 4, 0, -0.5)
	}, false},
}

// TestCopyConvGradients checks the gradients of convs run as copies
// (KeepCopies) against finite differences of the float64 oracle: the input
// and every weight that trains; frozen weights get a zero gradient.
func TestCopyConvGradients(t *testing.T) {
	for _, tc := range copyGradCases {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/threads=%d", tc.name, threads), func(t *testing.T) {
				b := newGraphBuilder(tc.c, tc.h, tc.h, 7)
				tc.build(b)
				g := b.g
				in := nn.Shape{C: tc.c, H: tc.h, W: tc.h}
				net, err := NewNet(g, in, NetOptions{MaxBatch: tc.n, Threads: threads, InputGrad: true})
				if err != nil {
					t.Fatal(err)
				}
				defer net.Close()
				net.KeepCopies()
				copies := 0
				for _, l := range net.layers {
					if _, ok := l.impl.(*copyConvOp); ok {
						copies++
					}
				}
				if copies == 0 {
					t.Fatal("no conv runs as copies")
				}
				rng := rand.New(rand.NewPCG(3, 4))
				x := make([]float32, tc.n*in.Numel())
				x64 := make([]float64, len(x))
				for i := range x {
					x[i] = float32(rng.NormFloat64())
					x64[i] = float64(x[i])
				}
				ref := newRef64(g)
				y := net.Forward(x, tc.n, true)
				yr := ref.forward(x64, tc.n, in)
				for i := range y {
					if d := math.Abs(float64(y[i]) - yr.d[i]); d > 1e-4*(1+math.Abs(yr.d[i])) {
						t.Fatalf("forward output %d: got %g; want %g (float64 oracle)", i, y[i], yr.d[i])
					}
				}
				r := make([]float64, len(yr.d))
				rg := make([]float32, len(r))
				for i := range r {
					rg[i] = float32(rng.NormFloat64())
					r[i] = float64(rg[i])
				}
				net.setOutputGrad(rg)
				net.Backward()
				lossAt := func() float64 {
					s := 0.0
					for i, v := range ref.forward(x64, tc.n, in).d {
						s += r[i] * v
					}
					return s
				}
				check := func(name string, ours []float32, v []float64, frozen []bool) {
					scale := 1e-3
					for _, g := range ours {
						scale = math.Max(scale, math.Abs(float64(g)))
					}
					var idx []int
					for i := range ours {
						if frozen != nil && frozen[i] {
							if ours[i] != 0 {
								t.Errorf("%s[%d] is frozen: got gradient %g; want 0", name, i, ours[i])
							}
							continue
						}
						idx = append(idx, i)
					}
					rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
					if len(idx) > 24 {
						idx = idx[:24]
					}
					for _, i := range idx {
						old := v[i]
						h := 1e-6 * math.Max(1, math.Abs(old))
						v[i] = old + h
						up := lossAt()
						v[i] = old - h
						down := lossAt()
						v[i] = old
						num := (up - down) / (2 * h)
						if d := math.Abs(float64(ours[i]) - num); d > 2e-3*scale {
							t.Errorf("%s[%d]: got %g; want %g (finite differences)", name, i, ours[i], num)
						}
					}
				}
				for _, p := range net.Params() {
					check(p.Name, p.Grad, ref.p[p.Name], p.Frozen)
				}
				check("input", net.layers[0].grad[:len(x)], x64, nil)
			})
		}
	}
}

// rmnet returns the BN-kept RMNet of a ResNet-20 with random BatchNorms
// (the same one for the same seed).
func rmnet(t *testing.T, seed uint64, in nn.Shape) *nn.Graph {
	t.Helper()
	g, err := nn.Build("resnet20", in.C, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	nn.RandomizeBN(g, rand.New(rand.NewPCG(seed, 2)))
	res, err := rm.Convert(g, rm.Options{KeepBN: true, Shape: in})
	if err != nil {
		t.Fatal(err)
	}
	return res.Graph
}

// TestCopyConvMatchesDense trains the same RMNet with KeepCopies run as
// copies and computed densely (the frozen weights as MACs, direct convs):
// every step's loss and output, the gradients and the weights after each
// step agree within float rounding. The copy path with direct convs rounds
// like the dense one (1e-5). With Winograd its dense part rounds
// differently, hence the looser tolerances (it is still closer to the
// direct dense path than the dense Winograd path is: that one transforms
// the large carried channels together with the small ones and drifts by
// ~1e-3 of the loss within three steps on this net; the tiny maps and
// random BatchNorms of this net amplify any rounding difference from the
// second step on, so Winograd is compared over one step).
func TestCopyConvMatchesDense(t *testing.T) {
	for _, tt := range []struct {
		name     string
		direct   bool
		steps    int
		gradTol  float64
		valueTol float64 // outputs, loss and weights
	}{
		{"direct", true, 3, 1e-4, 1e-5},
		{"winograd", false, 1, 5e-3, 1e-3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			matchDense(t, tt.direct, tt.steps, tt.gradTol, tt.valueTol)
		})
	}
}

func matchDense(t *testing.T, direct bool, steps int, gradTol, valueTol float64) {
	in := nn.Shape{C: 1, H: 12, W: 12}
	const n = 6
	var nets [2]*Net
	for i, run := range []bool{true, false} {
		net, err := NewNet(rmnet(t, 1, in), in, NetOptions{MaxBatch: n, Threads: 2, Direct: direct || !run})
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		net.keepCopies(run)
		nets[i] = net
	}
	copies := 0
	for _, l := range nets[0].layers {
		if _, ok := l.impl.(*copyConvOp); ok {
			copies++
		}
	}
	if copies < 18 {
		t.Fatalf("%d convs run as copies; want the 18 of ResNet-20's blocks", copies)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, n*in.Numel())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := []int{0, 3, 5, 7, 9, 1}
	sgd := SGD{Momentum: 0.9, WeightDecay: 5e-4}
	// near reports whether a and b agree within tol relative to b's largest
	// magnitude, and else the first index where they do not.
	near := func(a, b []float32, tol float64) (int, bool) {
		m := 0.0
		for _, v := range b {
			m = math.Max(m, math.Abs(float64(v)))
		}
		for i := range a {
			if math.Abs(float64(a[i])-float64(b[i])) > tol*m+1e-12 {
				return i, false
			}
		}
		return 0, true
	}
	for step := range steps {
		var loss [2]float64
		var out [2][]float32
		for i, net := range nets {
			out[i] = append([]float32(nil), net.Forward(x, n, true)...)
			loss[i], _ = net.Loss(labels)
			net.Backward()
		}
		if i, ok := near(out[0], out[1], valueTol); !ok {
			t.Fatalf("step %d: output %d: got %g; want %g (dense)", step, i, out[0][i], out[1][i])
		}
		if math.Abs(loss[0]-loss[1]) > valueTol*loss[1] {
			t.Fatalf("step %d: loss got %g; want %g (dense)", step, loss[0], loss[1])
		}
		ps, pd := nets[0].Params(), nets[1].Params()
		for j := range ps {
			g := append([]float32(nil), pd[j].Grad...)
			for i, f := range pd[j].Frozen {
				if f {
					g[i] = 0
				}
			}
			if i, ok := near(ps[j].Grad, g, gradTol); !ok {
				t.Errorf("step %d: %s gradient [%d]: got %g; want %g (dense)", step, ps[j].Name, i, ps[j].Grad[i], g[i])
			}
		}
		for _, net := range nets {
			sgd.Step(net.Params(), 0.05)
		}
		for j := range ps {
			if i, ok := near(ps[j].Data, pd[j].Data, valueTol); !ok {
				t.Fatalf("step %d: %s[%d]: got %g; want %g (dense)", step, ps[j].Name, i, ps[j].Data[i], pd[j].Data[i])
			}
			for i, f := range pd[j].Frozen {
				if f && ps[j].Data[i] != pd[j].Data[i] {
					t.Fatalf("step %d: frozen %s[%d]: got %g; want %g", step, ps[j].Name, i, ps[j].Data[i], pd[j].Data[i])
				}
			}
		}
	}
}

// TestCopyConvStepAllocations: a training step of an RMNet run as copies
// allocates nothing (TestStepAllocations' rule), 1 and 2 threads, a full
// and a short batch.
func TestCopyConvStepAllocations(t *testing.T) {
	in := nn.Shape{C: 1, H: 28, W: 28}
	for _, tt := range []struct {
		name       string
		threads, n int
	}{
		{"1thread", 1, 4},
		{"2threads", 2, 4},
		{"short-batch", 2, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			net, err := NewNet(rmnet(t, 1, in), in, NetOptions{MaxBatch: 4, Threads: tt.threads})
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			net.KeepCopies()
			x := make([]float32, 4*in.Numel())
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			labels := make([]int, 4)
			sgd := SGD{Momentum: 0.9, WeightDecay: 5e-4}
			step := func() {
				net.Forward(x, tt.n, true)
				net.Loss(labels[:tt.n])
				net.Backward()
				sgd.Step(net.Params(), 0.1)
			}
			step()
			if got := testing.AllocsPerRun(3, step); got != 0 {
				t.Errorf("got %.0f allocations per step; want 0", got)
			}
		})
	}
}
