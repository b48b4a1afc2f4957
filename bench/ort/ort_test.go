//go:build ort

package ort

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/onnx"
)

func TestLibPathEnv(t *testing.T) {
	t.Setenv("ORT_LIB", filepath.Join(t.TempDir(), "missing.so"))
	if _, err := LibPath(); err == nil || errors.Is(err, ErrNoLibrary) {
		t.Errorf("missing ORT_LIB: got %v; want an error naming it (not ErrNoLibrary: an explicit path must not skip)", err)
	}
	t.Setenv("ORT_LIB", "")
	t.Setenv("ORT_CACHE", t.TempDir())
	if _, err := LibPath(); !errors.Is(err, ErrNoLibrary) {
		t.Errorf("empty cache: got %v; want ErrNoLibrary", err)
	}
}

// exportNet writes a resnet20 with random BN statistics to dir.
func exportNet(t testing.TB, dir string) (*nn.Graph, string) {
	g, err := nn.Build("resnet20", 3, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range g.Nodes {
		if n.Op == nn.OpBatchNorm {
			for _, v := range [][]float32{n.P("bias"), n.P("running_mean")} {
				for i := range v {
					v[i] = float32(rng.NormFloat64() * 0.1)
				}
			}
		}
	}
	path := filepath.Join(dir, "resnet20.onnx")
	if err := onnx.WriteFile(path, g, onnx.Options{}); err != nil {
		t.Fatal(err)
	}
	return g, path
}

func openSession(t testing.TB, path string, threads int) *Session {
	t.Helper()
	s, err := Open(path, threads)
	if errors.Is(err, ErrNoLibrary) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSession(t *testing.T) {
	g, path := exportNet(t, t.TempDir())
	s := openSession(t, path, 1)
	if got := s.InputShape(); !slices.Equal(got, []int64{-1, 3, 32, 32}) {
		t.Errorf("input shape %v; want [-1 3 32 32]", got)
	}
	if got := s.OutputShape(); !slices.Equal(got, []int64{-1, 10}) {
		t.Errorf("output shape %v; want [-1 10]", got)
	}
	x := nn.NewAct(2, 3, 32, 32)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range x.D {
		x.D[i] = float32(rng.NormFloat64())
	}
	want, err := g.Forward(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, shape, err := s.Run(x.D, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int64{2, 10}) {
		t.Errorf("output shape %v; want [2 10]", shape)
	}
	if rel, _ := nn.RelError(got, want.D); !(rel <= 1e-4) {
		t.Errorf("rel error %g; want ≤ 1e-4", rel)
	}

	// A runner reuses its tensors: the same input gives the same output.
	r, err := s.NewRunner(2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	copy(r.Input(), x.D)
	for range 2 {
		if err := r.Run(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Output(), got) {
			t.Error("runner output differs from Run")
		}
	}

	if _, _, err := s.Run(x.D[:100], 2); err == nil || !strings.Contains(err.Error(), "want 6144") {
		t.Errorf("short input: got %v; want a length error", err)
	}
	if _, err := s.NewRunner(0); err == nil {
		t.Error("batch 0: got no error")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.onnx"), 1); err == nil || !strings.HasPrefix(err.Error(), "ort: open ") {
		t.Errorf("missing model: got %v; want ort: open ...", err)
	}
}

// BenchmarkResNet20 times ONNX Runtime on an exported CIFAR ResNet-20:
// go test -tags ort -bench . ./bench/ort/
func BenchmarkResNet20(b *testing.B) {
	_, path := exportNet(b, b.TempDir())
	for _, threads := range []int{1, 2} {
		s := openSession(b, path, threads)
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("threads=%d/batch=%d", threads, batch), func(b *testing.B) {
				r, err := s.NewRunner(batch)
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				for range 3 { // warm-up
					if err := r.Run(); err != nil {
						b.Fatal(err)
					}
				}
				for b.Loop() {
					if err := r.Run(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
			})
		}
	}
}
