package pruning

import (
	"os"
	"testing"
	"time"

	"github.com/rmprune/rmprune/nn"
)

// Full-size networks take seconds and gigabytes: RMPRUNE_BIG=1 runs them.
func TestBigNets(t *testing.T) {
	if os.Getenv("RMPRUNE_BIG") == "" {
		t.Skip("set RMPRUNE_BIG=1 to prune full-size ResNet-50 and MobileNetV2")
	}
	for _, arch := range []string{"resnet50", "mobilenet_v2"} {
		t.Run(arch, func(t *testing.T) {
			g, err := nn.Build(arch, 3, 1000, 1)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res, err := Prune(g, Options{Method: Slim, Ratio: ptr(0.5), Shape: nn.Shape{C: 3, H: 224, W: 224}})
			if err != nil {
				t.Fatal(err)
			}
			r := res.Report
			t.Logf("%s rmnet: params %d→%d, macs %d→%d, channels %d→%d in %v", arch, r.ParamsBefore, r.ParamsAfter, r.MACsBefore, r.MACsAfter, r.ChannelsBefore, r.ChannelsAfter, time.Since(start))
		})
	}
}
