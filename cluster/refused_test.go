package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// TestClusterRefusedPoint: a ratio the pruning guards refuse on a worker
// comes back as a refused point with its reason; the sweep ends done.
func TestClusterRefusedPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs worker processes")
	}
	db := openDB(t)
	c := startCoord(t, db, 0, filepath.Join(t.TempDir(), "js"), testPolicy)
	defer c.stop()
	startWorker(t, c.srv.URL(), "wref")

	// Every channel provably dead (γ = 0, β < 0 before each ReLU): any
	// ratio ≤ 0.5 would keep almost nothing (pruning.ErrDestroyed).
	g, err := nn.Build("resnet20", 1, 10, 7)
	if err != nil {
		t.Fatal(err)
	}
	g.Input = [3]int{1, 28, 28}
	for _, n := range g.Nodes {
		if n.Op == nn.OpBatchNorm {
			gamma, beta := n.P("weight"), n.P("bias")
			for i := range gamma {
				gamma[i], beta[i] = 0, -1
			}
		}
	}
	path := filepath.Join(t.TempDir(), "dead.safetensors")
	if err := modelio.SaveSafetensors(path, g); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := addModel(t, db, "dead.safetensors", data)
	s := addSweep(t, db, m.ID, sweep.Config{Dataset: "mnist", Forms: []string{"rmnet"}, Ratios: []float64{0.3},
		Limit: 50, Batch: 8, Threads: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.c.Run(ctx, s.ID, nil); err != nil {
		t.Fatalf("Run: %v; want the sweep to go on past the refused point", err)
	}
	sw, _ := db.Sweep(context.Background(), s.ID)
	if sw.Status != store.StatusDone {
		t.Errorf("sweep %s %q; want done", sw.Status, sw.Error)
	}
	ps, err := db.Points(context.Background(), s.ID)
	if err != nil || len(ps) != 3 {
		t.Fatalf("points %v, %v; want 3", ps, err)
	}
	for _, p := range ps {
		refused := p.Form == "rmnet" && p.Ratio == 0.3
		if p.Refused() != refused || p.Worker != "wref" {
			t.Errorf("%s@%v: status %q worker %q; want refused %v, measured by wref", p.Form, p.Ratio, p.Status, p.Worker, refused)
		}
		if refused && (!strings.Contains(p.Error, "pruning would destroy the network") || p.Top1 != 0) {
			t.Errorf("refused point: error %q top1 %v; want the guard's reason and no measurement", p.Error, p.Top1)
		}
		if as, _ := db.Artifacts(context.Background(), p.ID); refused != (len(as) == 0) {
			t.Errorf("%s@%v: %d artifacts; want none exactly for the refused point", p.Form, p.Ratio, len(as))
		}
	}
}
