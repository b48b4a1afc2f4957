package demo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/evaluate"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
)

// The embedded demo is the sparsity-trained ResNet-20: it loads, has MNIST's
// shape, classifies MNIST test digits (the README quotes its top-1 on all
// 10,000; this checks the first 1,000) and is mask-sparsity trained.
func TestMNISTDemoIsTrained(t *testing.T) {
	path := filepath.Join(t.TempDir(), MNISTFile)
	if err := os.WriteFile(path, MNIST(), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := modelio.Load(path, modelio.Options{})
	if err != nil {
		t.Fatalf("load demo model: %v", err)
	}
	if in := g.InputShape(); in.C != 1 || in.H != 28 || in.W != 28 || g.Classes != 10 {
		t.Fatalf("input %v, %d classes; want 1x28x28, 10", in, g.Classes)
	}
	d, err := dataset.Open("mnist")
	if err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	r, err := evaluate.Run(context.Background(), g, d, d.Test, evaluate.Options{Limit: 1000, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Top1 < 0.98 {
		t.Errorf("demo top-1 on 1,000 MNIST test images got %.4f; want ≥ 0.98", r.Top1)
	}
	checkMasks(t, g)
	t.Logf("top-1 %.4f", r.Top1)
}

// checkMasks: a demo is mask-sparsity trained: it has the reference code's
// masks on every channel kind and at least 30% of them are exactly 0.
func checkMasks(t *testing.T, g *nn.Graph) {
	t.Helper()
	var zero, total int
	kinds := map[string]bool{}
	for _, n := range g.Nodes {
		if n.Op != nn.OpMask {
			continue
		}
		kinds[n.Name[strings.LastIndex(n.Name, ".mask")+1:]] = true
		for _, v := range n.P("weight") {
			total++
			if v == 0 {
				zero++
			}
		}
	}
	for _, k := range []string{"mask1", "mask_res.0", "mask2"} {
		if !kinds[k] {
			t.Errorf("no %s masks (kinds %v); want a mask-trained model", k, kinds)
		}
	}
	if float64(zero) < 0.3*float64(total) {
		t.Errorf("%d of %d masks exactly 0; want at least 30%% (a mask-sparsity-trained model)", zero, total)
	}
}

// The Fashion-MNIST demo file (not embedded) is trained: the README quotes
// 92.74% on all 10,000 test images; this checks the first 1,000.
func TestFashionDemoIsTrained(t *testing.T) {
	g, err := modelio.Load("resnet20-fashion-mnist.safetensors", modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dataset.Open("fashion-mnist")
	if err != nil {
		t.Skipf("Fashion-MNIST not available (Debian dataset-fashion-mnist): %v", err)
	}
	r, err := evaluate.Run(context.Background(), g, d, d.Test, evaluate.Options{Limit: 1000, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Top1 < 0.90 {
		t.Errorf("Fashion-MNIST demo top-1 on 1,000 test images got %.4f; want ≥ 0.90", r.Top1)
	}
	checkMasks(t, g)
}
