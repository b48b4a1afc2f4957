package modelio

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/internal/fixture"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/safetensors"
)

// The reference forward matches PyTorch 1.13 on every fixture (tol 1e-5).
func TestFixturesMatchPyTorch(t *testing.T) {
	for _, net := range fixture.Nets(t) {
		t.Run(net.Name, func(t *testing.T) {
			g, err := Load(fixture.Path(net.File), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if g.Arch != net.Arch {
				t.Errorf("arch got %s; want %s", g.Arch, net.Arch)
			}
			x := fixture.Act(t, net.Input)
			want := fixture.Act(t, net.Output)
			y, err := g.Forward(x, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rel, abs := nn.RelError(y.D, want.D); rel > 1e-5 {
				t.Errorf("rel error vs PyTorch got %g (abs %g); want ≤ 1e-5", rel, abs)
			}
		})
	}
}

// A .pth and its safetensors copy load to the same network and hash alike.
func TestPlainSafetensorsMatchesPth(t *testing.T) {
	a, err := Load(fixture.Path("resnet20_cifar.pth"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(fixture.Path("resnet20_cifar.plain.safetensors"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.SourceSHA256 == "" || a.SourceSHA256 != b.SourceSHA256 {
		t.Errorf("source_sha256 got %q and %q; want equal, non-empty", a.SourceSHA256, b.SourceSHA256)
	}
}

// Our model file round-trips exactly, metadata included.
func TestOwnFormatRoundTrip(t *testing.T) {
	g, err := Load(fixture.Path("resnet56_rm.pth"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Mean, g.Std = []float32{0.5, 0.4, 0.3}, []float32{0.2, 0.2, 0.25}
	g.Labels = []string{"a", "b"}
	g.Input = [3]int{3, 32, 32}
	g.Recipe = `{"ratio":0.5}`
	g.Dataset = "fashion-mnist"
	if !g.HasMasks() {
		t.Fatal("resnet56_rm (the RMNet pruning layout) loaded without mask nodes")
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := SaveSafetensors(path, g); err != nil {
		t.Fatal(err)
	}
	h, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if nn.SourceSHA256(h.StateDict()) != nn.SourceSHA256(g.StateDict()) {
		t.Error("tensors differ after round trip")
	}
	if h.SourceSHA256 != g.SourceSHA256 || h.Recipe != g.Recipe || h.Arch != g.Arch || h.Form != g.Form ||
		h.Input != g.Input || len(h.Labels) != 2 || h.Mean[2] != 0.3 || h.Std[2] != 0.25 || h.Classes != g.Classes ||
		h.Dataset != "fashion-mnist" || !h.HasMasks() {
		t.Errorf("metadata got %+v; want %+v", h, g)
	}
	if len(h.Nodes) != len(g.Nodes) {
		t.Fatalf("nodes got %d; want %d", len(h.Nodes), len(g.Nodes))
	}
	for i, n := range h.Nodes {
		if m := g.Nodes[i]; n.Name != m.Name || n.Op != m.Op || n.Kernel != m.Kernel || n.Stride != m.Stride || n.G() != m.G() {
			t.Errorf("node %d got %+v; want %+v", i, n, m)
		}
	}
}

// A model file's dataset key is one line of text.
func TestBadDatasetMetadata(t *testing.T) {
	g, err := Load(fixture.Path("resnet20_cifar.pth"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "mnist\nrm -rf", strings.Repeat("x", 300)} {
		meta, sd, err := Encode(g)
		if err != nil {
			t.Fatal(err)
		}
		meta["dataset"] = bad
		path := filepath.Join(t.TempDir(), "m.safetensors")
		if err := safetensors.WriteFile(path, meta, sd); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path, Options{}); err == nil || !strings.Contains(err.Error(), "bad dataset metadata") || !strings.Contains(err.Error(), path) {
			t.Errorf("dataset %q: got %v; want a bad dataset metadata error naming the file", bad, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		return p
	}
	pthBytes, _ := os.ReadFile(fixture.Path("resnet20_cifar.pth"))
	tests := []struct {
		name, path, want string
		opt              Options
	}{
		{"missing", filepath.Join(dir, "nope.pth"), "no such file", Options{}},
		{"text", write("notes.txt", []byte("hello, this is not a model")), "not a model file", Options{}},
		{"truncated pth", write("cut.pth", pthBytes[:len(pthBytes)/2]), "cut.pth", Options{}},
		{"wrong arch", fixture.Path("resnet20_cifar.pth"), "resnet56", Options{Arch: "resnet56"}},
		{"unknown arch", fixture.Path("resnet20_cifar.pth"), "unknown architecture", Options{Arch: "vgg16"}},
		{"directory", dir, "directory", Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path, tt.opt)
			if err == nil {
				t.Fatal("got nil error")
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error got %q; want one line containing %q", msg, tt.want)
			}
		})
	}
}
