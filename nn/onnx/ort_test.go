//go:build ort

package onnx_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rmprune/rmprune/bench/ort"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/onnx"
	"github.com/rmprune/rmprune/rm"
)

// openORT opens path in ONNX Runtime, skipping the test when the library has
// not been fetched (scripts/ort.sh).
func openORT(t *testing.T, path string, threads int) *ort.Session {
	t.Helper()
	s, err := ort.Open(path, threads)
	if errors.Is(err, ort.ErrNoLibrary) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Exported models run in ONNX Runtime 1.30 and match the reference forward
// (of the original, unfolded graph) within rel error 1e-4, at batch 1 and 3,
// with weights inline and in external data, copy-aware (the default) and
// dense.
func TestORTMatchesReference(t *testing.T) {
	if _, err := ort.LibPath(); errors.Is(err, ort.ErrNoLibrary) {
		t.Skip(err)
	}
	_, version, err := ort.Library()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ONNX Runtime %s", version)
	dir := t.TempDir()
	cases := onnx.NetCases(t)
	// An ImageNet-stem ResNet (7×7/2 conv, padded 3×3/2 max-pool) at 40×40.
	r18 := onnx.BuildNet(t, "resnet18", 8)
	r18.Input = [3]int{3, 40, 40}
	cases = append(cases, onnx.NetCase{Name: "resnet18", G: r18, In: nn.Shape{C: 3, H: 40, W: 40}})
	// RM-converted plain nets, the deploy export's real subject: RMNet-20
	// folded and BN-kept, and MobileNetV2 → V1 (PReLU on reserved channels,
	// ReLU6 as clamps that leave them unbounded).
	for _, rc := range []struct {
		name   string
		arch   string
		keepBN bool
		in     nn.Shape
	}{
		{"rmnet20", "resnet20", false, nn.Shape{C: 3, H: 32, W: 32}},
		{"rmnet20-keepbn", "resnet20", true, nn.Shape{C: 3, H: 32, W: 32}},
		{"mobilenet_v2-rm", "mobilenet_v2", false, nn.Shape{C: 3, H: 48, W: 48}},
	} {
		res, err := rm.Convert(onnx.BuildNet(t, rc.arch, 9), rm.Options{KeepBN: rc.keepBN, Shape: rc.in})
		if err != nil {
			t.Fatal(err)
		}
		res.Graph.Input = [3]int{rc.in.C, rc.in.H, rc.in.W}
		cases = append(cases, onnx.NetCase{Name: rc.name, G: res.Graph, In: rc.in})
	}
	for _, tc := range onnx.CopyCases(t) {
		tc.Name += "-copyaware"
		cases = append(cases, tc)
	}
	for _, tc := range cases {
		for _, variant := range []string{"", "external", "dense"} {
			name := tc.Name
			opt := onnx.Options{}
			switch variant {
			case "external":
				name, opt.ExternalThreshold = name+"-external", 1
			case "dense":
				name, opt.Dense = name+"-dense", true
			}
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(dir, name+".onnx")
				if err := onnx.WriteFile(path, tc.G, opt); err != nil {
					t.Fatal(err)
				}
				s := openORT(t, path, 2)
				if got := s.InputShape(); !slices.Equal(got, []int64{-1, int64(tc.In.C), int64(tc.In.H), int64(tc.In.W)}) {
					t.Errorf("input shape %v", got)
				}
				md, err := s.Metadata()
				if err != nil {
					t.Fatal(err)
				}
				if md["rmprune.arch"] != tc.G.Arch || md["rmprune.recipe"] != tc.G.Recipe {
					t.Errorf("metadata in ORT %v; want arch %q recipe %q", md, tc.G.Arch, tc.G.Recipe)
				}
				rng := rand.New(rand.NewPCG(uint64(len(name)), 9))
				for _, batch := range []int{1, 3} {
					x := nn.NewAct(batch, tc.In.C, tc.In.H, tc.In.W)
					for i := range x.D {
						x.D[i] = float32(rng.NormFloat64())
					}
					want, err := tc.G.Forward(x, nil)
					if err != nil {
						t.Fatal(err)
					}
					got, shape, err := s.Run(x.D, batch)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(shape, []int64{int64(batch), int64(want.C)}) {
						t.Errorf("batch %d: output shape %v; want [%d %d]", batch, shape, batch, want.C)
					}
					rel, abs := nn.RelError(got, want.D)
					t.Logf("batch %d: rel error %.3g (max |Δ| %.3g)", batch, rel, abs)
					if !(rel <= 1e-4) {
						t.Errorf("batch %d: rel error %g; want ≤ 1e-4", batch, rel)
					}
				}
			})
		}
	}
}

// A model past the 2 GiB protobuf limit goes to external data with the
// default options and still runs in ONNX Runtime. It needs ~10 GiB of memory
// and 2.2 GB of disk, so it runs only with RMPRUNE_ORT_BIG=1.
func TestORTPast2GiB(t *testing.T) {
	if os.Getenv("RMPRUNE_ORT_BIG") != "1" {
		t.Skip("set RMPRUNE_ORT_BIG=1 to export and run a 2.2 GB model")
	}
	const wide = 16384 // two wide×wide 1×1 convs: 2×1 GiB of weights
	rng := rand.New(rand.NewPCG(21, 22))
	g := &nn.Graph{Input: [3]int{3, 2, 2}, Arch: "big"}
	g.Nodes = append(g.Nodes, &nn.Node{Name: "input", Op: nn.OpInput, Out: 3})
	prev, cin := "input", 3
	for i, cout := range []int{wide, wide, wide} {
		name := fmt.Sprintf("conv%d", i)
		n := &nn.Node{Name: name, Op: nn.OpConv, Inputs: []string{prev}, In: cin, Out: cout, Kernel: 1, Stride: 1}
		w := make([]float32, cout*cin)
		bound := float32(math.Sqrt(3 / float64(cin)))
		for j := range w {
			w[j] = (2*rng.Float32() - 1) * bound
		}
		n.SetP("weight", []int{cout, cin, 1, 1}, w)
		g.Nodes = append(g.Nodes, n, &nn.Node{Name: name + ".relu", Op: nn.OpReLU, Inputs: []string{name}})
		prev, cin = name+".relu", cout
	}
	fc := &nn.Node{Name: "fc", Op: nn.OpLinear, In: wide, Out: 10}
	fc.SetP("weight", []int{10, wide}, onnx.RandFloats(rng, 10*wide, 0.01))
	g.Nodes = append(g.Nodes, &nn.Node{Name: "gap", Op: nn.OpGlobalAvgPool, Inputs: []string{prev}}, fc)
	fc.Inputs = []string{"gap"}

	dir := t.TempDir()
	path := filepath.Join(dir, "big.onnx")
	if err := onnx.WriteFile(path, g, onnx.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".data"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes", filepath.Base(p), st.Size())
	}
	x := nn.NewAct(1, 3, 2, 2)
	for i := range x.D {
		x.D[i] = float32(rng.NormFloat64())
	}
	want, err := g.Forward(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	g = nil
	s := openORT(t, path, 2)
	got, _, err := s.Run(x.D, 1)
	if err != nil {
		t.Fatal(err)
	}
	rel, abs := nn.RelError(got, want.D)
	t.Logf("rel error %.3g (max |Δ| %.3g)", rel, abs)
	if !(rel <= 1e-4) {
		t.Errorf("rel error %g; want ≤ 1e-4", rel)
	}
}
