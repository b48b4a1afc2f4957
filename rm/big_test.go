package rm

import (
	"os"
	"runtime"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// TestResNet50FullWidth converts a real-width ResNet-50 (1000 classes) in both
// forms and checks the dense growth DESIGN quotes (23M → ~275M params). It
// allocates ~1.2 GB per form, so it runs only with RMPRUNE_LARGE=1.
func TestResNet50FullWidth(t *testing.T) {
	if testing.Short() || os.Getenv("RMPRUNE_LARGE") == "" {
		t.Skip("set RMPRUNE_LARGE=1 (and no -short) to convert a real-width ResNet-50")
	}
	g, err := nn.Build("resnet50", 3, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := nn.Shape{C: 3, H: 224, W: 224}
	before, err := g.Summarize(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range []bool{false, true} {
		res, err := Convert(g, Options{KeepBN: keep, Shape: in})
		if err != nil {
			t.Fatal(err)
		}
		after, err := res.Graph.Summarize(in)
		if err != nil {
			t.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		t.Logf("keep=%v: params %d → %d, MACs %d → %d, channels %d → %d; heap in use %d MiB, sys %d MiB",
			keep, before.Params, after.Params, before.MACs, after.MACs, Channels(g), Channels(res.Graph), ms.HeapInuse>>20, ms.Sys>>20)
		if after.Params < 265e6 || after.Params > 285e6 {
			t.Errorf("keep=%v: params after RM got %d; want ≈ 275M", keep, after.Params)
		}
		res = nil
		runtime.GC()
	}
}
