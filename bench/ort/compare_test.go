//go:build ort

package ort

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rmprune/rmprune/bench"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/rm"
)

// Pruned networks (both forms, both criteria) export to ONNX, run in ONNX
// Runtime and agree with the engine; Compare also checks the engine against
// the reference-equivalent export (rel error ≤ 1e-4).
func TestComparePrunedNets(t *testing.T) {
	if _, err := LibPath(); err != nil {
		t.Skip(err)
	}
	g, err := nn.Build("resnet20", 3, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	nn.RandomizeBN(g, rand.New(rand.NewPCG(1, 2)))
	shape := nn.Shape{C: 3, H: 32, W: 32}
	calib := rm.RandomInput(16, shape, 3)
	ratio := 0.5
	for _, tt := range []struct{ method, form string }{{"slim", "rmnet"}, {"l1", "rmnet"}, {"slim", "resnet"}} {
		t.Run(tt.method+"/"+tt.form, func(t *testing.T) {
			res, err := pruning.Prune(g, pruning.Options{Method: tt.method, Ratio: &ratio, Form: tt.form, Calib: calib, Shape: shape})
			if err != nil {
				t.Fatal(err)
			}
			want, err := res.Graph.Forward(calib, nil)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Compare(context.Background(), res.Graph, bench.Options{Batch: 3, Threads: 2, Shape: shape, MinRuns: 5, MinTime: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if c.MaxRelErr > 1e-4 || c.Runs < 5 || c.Ratio <= 0 {
				t.Errorf("comparison got %+v; want agreement ≤ 1e-4", c)
			}
			// And ONNX Runtime against the reference forward on real-ish input.
			path := t.TempDir() + "/m.onnx"
			if err := writeONNX(path, res.Graph, shape); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, _, err := s.Run(calib.D, calib.N)
			if err != nil {
				t.Fatal(err)
			}
			if rel, _ := nn.RelError(got, want.D); rel > 1e-4 {
				t.Errorf("ONNX Runtime vs reference forward: rel error %g; want ≤ 1e-4", rel)
			}
		})
	}
}
