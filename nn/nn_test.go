package nn

import (
	"math/rand/v2"
	"testing"
)

// Parameter counts published by torchvision for its models (1000 classes).
func TestStandardParamCounts(t *testing.T) {
	tests := []struct {
		arch   string
		params int64
		macs   int64 // 0: not checked
	}{
		{"resnet18", 11689512, 1814083944},
		{"resnet50", 25557032, 4089184256},
		{"mobilenet_v2", 3504872, 0},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			g, err := Build(tt.arch, 3, 1000, 1)
			if err != nil {
				t.Fatal(err)
			}
			s, err := g.Summarize(Shape{3, 224, 224})
			if err != nil {
				t.Fatal(err)
			}
			if s.Params != tt.params {
				t.Errorf("params got %d; want %d", s.Params, tt.params)
			}
			if tt.macs != 0 && (s.MACs < tt.macs*99/100 || s.MACs > tt.macs*101/100) {
				t.Errorf("macs got %d; want %d ±1%%", s.MACs, tt.macs)
			}
			if s.FLOPs != 2*s.MACs {
				t.Errorf("flops got %d; want 2×macs", s.FLOPs)
			}
		})
	}
}

func randAct(rng *rand.Rand, n int, s Shape) *Act {
	a := NewAct(n, s.C, s.H, s.W)
	for i := range a.D {
		a.D[i] = float32(rng.NormFloat64())
	}
	return a
}

func TestFoldBNKeepsOutput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, arch := range []string{"resnet20", "mobilenet_v2"} {
		t.Run(arch, func(t *testing.T) {
			g, err := Build(arch, 3, 10, 3)
			if err != nil {
				t.Fatal(err)
			}
			RandomizeBN(g, rng)
			x := randAct(rng, 2, Shape{3, 32, 32})
			want, err := g.Forward(x, nil)
			if err != nil {
				t.Fatal(err)
			}
			f := FoldBN(g)
			for _, n := range f.Nodes {
				if n.Op == OpBatchNorm {
					t.Fatalf("BatchNorm %s left after folding", n.Name)
				}
			}
			got, err := f.Forward(x, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rel, _ := RelError(got.D, want.D); rel > 1e-5 {
				t.Errorf("rel error got %g; want ≤ 1e-5", rel)
			}
		})
	}
}

func TestFromStateDictRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, arch := range []string{"resnet20", "resnet18", "resnet50", "cifar-resnet18", "mobilenet_v2"} {
		t.Run(arch, func(t *testing.T) {
			g, err := Build(arch, 1, 7, 5)
			if err != nil {
				t.Fatal(err)
			}
			RandomizeBN(g, rng)
			h, err := FromStateDict(g.StateDict(), "")
			if err != nil {
				t.Fatal(err)
			}
			if h.Arch != arch {
				t.Errorf("inferred arch got %s; want %s", h.Arch, arch)
			}
			if len(h.Nodes) != len(g.Nodes) {
				t.Fatalf("nodes got %d; want %d", len(h.Nodes), len(g.Nodes))
			}
			if SourceSHA256(h.StateDict()) != SourceSHA256(g.StateDict()) {
				t.Errorf("weights differ after inference")
			}
		})
	}
}

func TestFromStateDictErrors(t *testing.T) {
	g, _ := Build("resnet20", 3, 10, 1)
	sd := g.StateDict()
	extra := NewStateDict()
	for _, k := range sd.Keys {
		extra.Add(k, sd.Tensors[k])
	}
	extra.Add("layer9.0.foo", Zeros(3))
	if _, err := FromStateDict(extra, ""); err == nil {
		t.Error("extra key: got nil error")
	}
	if _, err := FromStateDict(sd, "resnet56"); err == nil {
		t.Error("--arch resnet56 on resnet20 weights: got nil error")
	}
	bad := NewStateDict()
	bad.Add("foo.weight", Zeros(2, 2))
	if _, err := FromStateDict(bad, ""); err == nil {
		t.Error("unknown keys: got nil error")
	}
}
