package evaluate

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/nn"
)

// brightnessData makes a folder data set whose class is the image brightness.
func brightnessData(t *testing.T) *dataset.Dataset {
	dir := t.TempDir()
	for c, v := range []uint8{40, 210} {
		d := filepath.Join(dir, "test", fmt.Sprintf("class%d", c))
		os.MkdirAll(d, 0o755)
		for i := 0; i < 7; i++ {
			img := image.NewGray(image.Rect(0, 0, 8, 8))
			for p := range img.Pix {
				img.Pix[p] = v + uint8(i)
			}
			f, _ := os.Create(filepath.Join(d, fmt.Sprintf("%d.png", i)))
			png.Encode(f, img)
			f.Close()
		}
	}
	d, err := dataset.Open("folder:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// brightnessNet scores class 1 by mean brightness, class 0 by its negative
// (sign = +1), or the reverse (sign = −1).
func brightnessNet(sign float32, classes int) *nn.Graph {
	g := &nn.Graph{Nodes: []*nn.Node{{Name: "input", Op: nn.OpInput, Out: 1}}, Input: [3]int{1, 8, 8},
		Mean: []float32{0.5}, Std: []float32{0.5}}
	g.Nodes = append(g.Nodes, &nn.Node{Name: "gap", Op: nn.OpGlobalAvgPool, Inputs: []string{"input"}},
		&nn.Node{Name: "flat", Op: nn.OpFlatten, Inputs: []string{"gap"}})
	fc := &nn.Node{Name: "fc", Op: nn.OpLinear, Inputs: []string{"flat"}, In: 1, Out: classes}
	w := make([]float32, classes)
	w[0], w[1] = -sign, sign
	fc.SetP("weight", []int{classes, 1}, w)
	fc.SetP("bias", []int{classes}, make([]float32, classes))
	g.Nodes = append(g.Nodes, fc)
	return g
}

func TestRun(t *testing.T) {
	d := brightnessData(t)
	tests := []struct {
		name   string
		sign   float32
		limit  int
		top1   float64
		images int
	}{
		{"right", 1, 0, 1, 14},
		{"reversed", -1, 0, 0, 14},
		{"limit", 1, 5, 1, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			r, err := Run(context.Background(), brightnessNet(tt.sign, 2), d, d.Test, Options{Batch: 4, Threads: 2, Limit: tt.limit,
				Progress: func(done, total int) { calls++ }})
			if err != nil {
				t.Fatal(err)
			}
			if r.Top1 != tt.top1 || r.Images != tt.images {
				t.Errorf("got top1 %v on %d images; want %v on %d", r.Top1, r.Images, tt.top1, tt.images)
			}
			if calls == 0 {
				t.Error("progress never reported")
			}
		})
	}
}

func TestRunIncompatible(t *testing.T) {
	d := brightnessData(t)
	if _, err := Run(context.Background(), brightnessNet(1, 3), d, d.Test, Options{}); err == nil {
		t.Error("3-class model on 2-class data: got nil error")
	}
}

func TestRank(t *testing.T) {
	tests := []struct {
		logits []float32
		label  int
		want   int
	}{
		{[]float32{0.1, 0.9, 0.3}, 1, 0},
		{[]float32{0.1, 0.9, 0.3}, 2, 1},
		{[]float32{0.1, 0.9, 0.3}, 0, 2},
		{[]float32{0.5, 0.5}, 1, 0},
	}
	for _, tt := range tests {
		if got := Rank(tt.logits, tt.label); got != tt.want {
			t.Errorf("Rank(%v, %d) got %d; want %d", tt.logits, tt.label, got, tt.want)
		}
	}
}
