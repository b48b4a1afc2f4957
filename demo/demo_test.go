package demo

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rmprune/rmprune/modelio"
)

func TestMNISTLoads(t *testing.T) {
	b, trained, err := MNIST()
	if err != nil {
		t.Fatalf("MNIST: %v", err)
	}
	path := filepath.Join(t.TempDir(), MNISTFile)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := modelio.Load(path, modelio.Options{})
	if err != nil {
		t.Fatalf("load demo model: %v", err)
	}
	if in := g.InputShape(); in.C != 1 || in.H != 28 || in.W != 28 {
		t.Errorf("input shape %v; want 1x28x28", in)
	}
	if g.Classes != 10 {
		t.Errorf("classes %d; want 10", g.Classes)
	}
	t.Logf("trained: %v, %d bytes", trained, len(b))
}
