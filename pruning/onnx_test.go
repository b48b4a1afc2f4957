package pruning

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/onnx"
)

// A pruned network exports to ONNX (BN folded, the recipe in
// metadata_props) and the exported model computes what our reference
// forward computes. The dense form is imported back here; the copy-aware
// form (Gather, not imported) is checked against the reference forward by
// nn/onnx's evaluator, and ONNX Runtime itself runs in nn/onnx's tagged tests.
func TestPrunedExportsToONNX(t *testing.T) {
	for _, arch := range []string{"resnet20", "mobilenet_v2"} {
		for _, form := range []string{FormRMNet, FormResNet} {
			t.Run(arch+"/"+form, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(21, 22))
				g := buildNet(t, arch, 5)
				nn.RandomizeBN(g, rng)
				forceDead(g, rng, 0.2, 0.2)
				shape := nn.Shape{C: 3, H: 16, W: 16}
				x := randAct(rng, 2, shape)
				res, err := Prune(g, Options{Method: Slim, Ratio: ptr(0.5), Form: form, Calib: x})
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if err := onnx.Write(&buf, res.Graph, onnx.Options{Shape: shape}); err != nil {
					t.Fatal(err)
				}
				buf.Reset()
				if err := onnx.Write(&buf, res.Graph, onnx.Options{Shape: shape, Dense: true}); err != nil {
					t.Fatal(err)
				}
				m, err := onnx.Decode(buf.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				if v, _ := m.MetadataValue("rmprune.recipe"); v != res.Graph.Recipe || v == "" {
					t.Errorf("metadata rmprune.recipe %.40q…; want the recipe", v)
				}
				back, err := onnx.ToGraph(m)
				if err != nil {
					t.Fatal(err)
				}
				want := forward(t, res.Graph, x)
				got := forward(t, back, x)
				if rel, _ := nn.RelError(got.D, want.D); rel > 1e-4 {
					t.Errorf("ONNX model vs reference: rel error %.3g; want ≤ 1e-4", rel)
				}
			})
		}
	}
}
