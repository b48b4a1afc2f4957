//go:build ort

package ort

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/onnx"
)

// Race times every entry and refuses models of different input shapes.
func TestRace(t *testing.T) {
	if _, err := LibPath(); errors.Is(err, ErrNoLibrary) {
		t.Skip(err)
	}
	dir := t.TempDir()
	g, path := exportNet(t, dir)
	dense := filepath.Join(dir, "dense.onnx")
	if err := onnx.WriteFile(dense, g, onnx.Options{Dense: true}); err != nil {
		t.Fatal(err)
	}
	sides, err := Race(context.Background(), []Entry{{"a", path}, {"b", dense}}, 2, 1, 3, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(sides) != 2 {
		t.Fatalf("got %d sides; want 2", len(sides))
	}
	for i, s := range sides {
		if !(s.ImagesPerS > 0) || !(s.LatencyMsP90 >= s.LatencyMsP50) {
			t.Errorf("side %d: %+v; want positive images/s and p90 ≥ p50", i, s)
		}
	}
	other := filepath.Join(dir, "other.onnx")
	if err := onnx.WriteFile(other, g, onnx.Options{Shape: nn.Shape{C: 3, H: 16, W: 16}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Race(context.Background(), []Entry{{"a", path}, {"o", other}}, 1, 1, 3, time.Millisecond); err == nil {
		t.Error("models of different input shapes: got nil error")
	}
}
