package onnx

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// A mask-trained ResNet (masks, some exactly 0 or negative) exports: the
// masks fold away and the ONNX graph computes the same function.
func TestExportMasked(t *testing.T) {
	spec, err := nn.StandardResNet("resnet20", 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	spec.Masks = true
	g := spec.Build(1)
	rng := rand.New(rand.NewPCG(3, 4))
	nn.RandomizeBN(g, rng)
	for _, n := range g.Nodes {
		if n.Op == nn.OpMask {
			w := n.P("weight")
			for i := range w {
				w[i] = float32(rng.Float64()*2 - 0.5)
				if i%4 == 0 {
					w[i] = 0
				}
			}
		}
	}
	in := nn.Shape{C: 1, H: 28, W: 28}
	g.Input = [3]int{1, 28, 28}
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := WriteFile(path, g, Options{}); err != nil {
		t.Fatal(err)
	}
	back, err := ReadGraph(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.HasMasks() {
		t.Error("exported graph has mask nodes")
	}
	want := forward(t, g, in, 3)
	got := forward(t, back, in, 3)
	if rel, _ := nn.RelError(got, want); !(rel <= 1e-5) {
		t.Errorf("exported masked net: rel error %g; want ≤ 1e-5", rel)
	}
}
