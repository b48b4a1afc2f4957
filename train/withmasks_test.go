package train

import (
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

func TestWithMasks(t *testing.T) {
	g, err := nn.Build("resnet20", 1, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	masked, err := WithMasks(g)
	if err != nil {
		t.Fatal(err)
	}
	if !masked.HasMasks() || g.HasMasks() || masked == g {
		t.Errorf("without masks: got masks %v on a copy %v, source masks %v; want masks on a copy, source untouched",
			masked.HasMasks(), masked != g, g.HasMasks())
	}
	again, err := WithMasks(masked)
	if err != nil || again != masked {
		t.Errorf("with masks: got %p, %v; want the graph itself (%p)", again, err, masked)
	}
	plain, err := rm.Convert(g, rm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WithMasks(plain.Graph); err == nil {
		t.Errorf("plain net: got nil error; want a refusal (no residual blocks)")
	}
}
