package main

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/internal/fixture"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn/npy"
)

// TestRunNonFinite feeds NaN and Inf inputs to run: every engine and form
// must give the reference's NaN/Inf pattern (not finite, normal-looking
// logits) and run must warn.
func TestRunNonFinite(t *testing.T) {
	dir := t.TempDir()
	model := fixture.Path("resnet20_cifar.pth")
	shape, base, err := npy.ReadFile(fixture.Path("resnet20_cifar.input.npy"))
	if err != nil {
		t.Fatal(err)
	}
	shape[0] = 1
	base = base[:shape[1]*shape[2]*shape[3]]
	inputs := map[string]func(i int, v float32) float32{
		"all-nan":  func(int, float32) float32 { return float32(math.NaN()) },
		"all-inf":  func(int, float32) float32 { return float32(math.Inf(1)) },
		"all-ninf": func(int, float32) float32 { return float32(math.Inf(-1)) },
		"one-nan": func(i int, v float32) float32 {
			if i == 300 {
				return float32(math.NaN())
			}
			return v
		},
		"one-inf": func(i int, v float32) float32 {
			if i == 400 {
				return float32(math.Inf(1))
			}
			return v
		},
	}
	for name, f := range inputs {
		x := make([]float32, len(base))
		for i, v := range base {
			x[i] = f(i, v)
		}
		in := filepath.Join(dir, name+".npy")
		if err := npy.WriteFile(in, shape, x); err != nil {
			t.Fatal(err)
		}
		var ref []float32
		for _, flags := range [][]string{{"--engine", "ref"}, {"--engine", "simd"}, {"--engine", "simd", "--rm"},
			{"--engine", "simd", "--winograd", "4"}, {"--engine", "ref", "--rm"}} {
			t.Run(name+strings.Join(flags, ""), func(t *testing.T) {
				out := filepath.Join(dir, name+strings.Join(flags, "")+".npy")
				_, stderr, err := runCLI(t, append([]string{"run", "--model", model, "--input", in, "--out", out}, flags...)...)
				if err != nil {
					t.Fatalf("%v: %s", err, stderr)
				}
				if !strings.Contains(stderr, "warning: "+in+" holds") || !strings.Contains(stderr, "non-finite") {
					t.Errorf("stderr %q; want a warning naming the input", stderr)
				}
				_, y, err := npy.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if ref == nil {
					ref = y
					if countNonFinite(y) == 0 {
						t.Fatalf("reference output %v is finite; the test proves nothing", y)
					}
					return
				}
				for i := range y {
					r, g := float64(ref[i]), float64(y[i])
					if math.IsNaN(r) != math.IsNaN(g) || math.IsInf(r, 0) && r != g {
						t.Errorf("logit %d: got %v; want %v (the reference's)", i, g, r)
					}
				}
			})
		}
	}
}

func TestEvalWarnsOnNonFiniteWeights(t *testing.T) {
	g, err := modelio.Load("demo/resnet20-mnist.safetensors", modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Node("conv1").P("weight")[3] = float32(math.NaN())
	path := filepath.Join(t.TempDir(), "nan.safetensors")
	if err := modelio.SaveSafetensors(path, g); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		model, want string
	}{{path, "warning: " + path + " has 1 non-finite parameters"}, {"demo/resnet20-mnist.safetensors", ""}} {
		_, stderr, err := runCLI(t, "eval", "--model", tt.model, "--data", "mnist", "--limit", "4")
		if err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
		if got := strings.Contains(stderr, "warning"); got != (tt.want != "") || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: stderr %q; want %q", tt.model, stderr, tt.want)
		}
	}
}
