package rm

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/npy"
	"github.com/rmprune/rmprune/nn/pth"
)

const fixtureDir = "../testdata/nets"

// TestFixtures converts the PyTorch reference networks (scripts/fixtures/
// make_nets.py) and checks the plain nets against PyTorch's own output:
// computed with PyTorch 1.13 in float32, tol 1e-5 (rel error).
func TestFixtures(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fixtureDir, "manifest.json"))
	if err != nil {
		t.Skipf("no fixtures yet (%v): run scripts/fixtures/make_nets.py", err)
	}
	var man struct {
		Nets []struct {
			Name, File, Input, Output string
		}
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	// Required (issue 3); every other net of the manifest runs too.
	want := map[string]bool{"resnet18_tv": true, "resnet50_tv": true, "resnet56_rm": true, "resnet56_rmtrain": true, "mobilenet_v2": true}
	for _, net := range man.Nets {
		delete(want, net.Name)
		t.Run(net.Name, func(t *testing.T) {
			if testing.Short() && net.Name == "resnet34_tv" {
				t.Skip("short")
			}
			if _, err := os.Stat(filepath.Join(fixtureDir, net.File)); err != nil {
				t.Skipf("fixture not there yet: %v", err)
			}
			sd, err := pth.ReadFile(filepath.Join(fixtureDir, net.File))
			if err != nil {
				t.Fatal(err)
			}
			g, err := nn.FromStateDict(sd, "")
			if err != nil {
				t.Fatal(err)
			}
			xs, xd, err := npy.ReadFile(filepath.Join(fixtureDir, net.Input))
			if err != nil {
				t.Fatal(err)
			}
			_, yd, err := npy.ReadFile(filepath.Join(fixtureDir, net.Output))
			if err != nil {
				t.Fatal(err)
			}
			if len(xs) != 4 {
				t.Fatalf("input shape %v; want NCHW", xs)
			}
			x := &nn.Act{N: xs[0], C: xs[1], H: xs[2], W: xs[3], D: xd}
			for _, opt := range []struct {
				name string
				opt  Options
			}{
				{"folded", Options{}},
				{"kept", Options{KeepBN: true}},
				{"kept-calib", Options{KeepBN: true, Calib: x}},
			} {
				res, err := Convert(g, opt.opt)
				if err != nil {
					t.Fatal(err)
				}
				if res.Graph.HasResidual() {
					t.Errorf("%s: converted graph still has an add", opt.name)
				}
				y, err := res.Graph.Forward(x, nil)
				if err != nil {
					t.Fatal(err)
				}
				rel, abs := nn.RelError(y.D, yd)
				if rel > tol || math.IsNaN(rel) {
					t.Errorf("%s: rel error vs PyTorch got %.3g (abs %.3g); want ≤ %g", opt.name, rel, abs, tol)
				}
				t.Logf("%s: %d blocks, rel error vs PyTorch %.2g, stats %v", opt.name, len(res.Blocks), rel, res.StatsSource()["layer2.0"])
				if (net.Name == "resnet56_rm" || net.Name == "resnet56_rmtrain") && opt.name == "kept" {
					// running1 is tracked in identity blocks only; running2 everywhere.
					for _, b := range res.Blocks {
						wantIn := SourceCheckpoint
						if b.Name == "layer2.0" || b.Name == "layer3.0" {
							wantIn = SourceDefault
						}
						if b.InputStats != wantIn || b.SumStats != SourceCheckpoint {
							t.Errorf("block %s stats from %s/%s; want %s/%s", b.Name, b.InputStats, b.SumStats, wantIn, SourceCheckpoint)
						}
					}
				}
			}
		})
	}
	for name := range want {
		t.Errorf("fixture %s missing from the manifest", name)
	}
}
