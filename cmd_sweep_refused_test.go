package main

import (
	"strings"
	"testing"

	"github.com/rmprune/rmprune/store"
)

func TestPrintSweepRefused(t *testing.T) {
	r := &sweepReport{ID: 3, Status: store.StatusDone, Points: []sweepPoint{
		{Form: "rmnet", Ratio: 0, Params: 1000, Top1: 0.99, Top5: 1, Status: store.PointDone},
		{Form: "rmnet", Ratio: 0.3, Status: store.PointRefused, Error: "pruning: ratio 0.3 would keep 3 of 976 prunable channels: pruning would destroy the network"},
	}}
	var b strings.Builder
	printSweep(&b, r, nil)
	out := b.String()
	for _, want := range []string{"99.00%", "refused", "refused rmnet@0.3: pruning: ratio 0.3 would keep 3 of 976"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "0.30") && strings.Contains(line, "%") {
			t.Errorf("the refused point is printed with a measurement: %q", line)
		}
	}
}
