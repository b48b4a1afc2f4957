package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRepVGGBuild(t *testing.T) {
	tests := []struct {
		arch     string
		in       Shape
		blocks   int
		keys     []string // must exist
		noKeys   []string // must not exist
		identity int      // blocks with an identity BN
	}{
		{"repvgg-a0", Shape{3, 224, 224}, 22,
			[]string{"stage0.rbr_dense.conv.weight", "stage0.rbr_1x1.bn.running_var", "stage1.1.rbr_identity.weight", "stage4.0.rbr_1x1.conv.weight", "linear.weight", "linear.bias"},
			[]string{"stage0.rbr_identity.weight", "stage1.0.rbr_identity.weight"}, 17},
		{"repvgg-cifar", Shape{3, 32, 32}, 7,
			[]string{"stage0.rbr_dense.bn.weight", "stage1.0.rbr_identity.weight", "stage3.1.rbr_identity.bias"},
			[]string{"stage3.0.rbr_identity.weight"}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			g, err := BuildRepVGG(tt.arch, 3, 10, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			shapes, err := g.Shapes(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if s := shapes["linear"]; s.C != 10 {
				t.Errorf("output %v; want 10 classes", s)
			}
			sd := g.StateDict()
			for _, k := range tt.keys {
				if _, ok := sd.Get(k); !ok {
					t.Errorf("key %s missing", k)
				}
			}
			for _, k := range tt.noKeys {
				if _, ok := sd.Get(k); ok {
					t.Errorf("key %s present; want absent", k)
				}
			}
			adds, ids := 0, 0
			for _, n := range g.Nodes {
				if n.Op == OpAdd {
					adds++
					if len(n.Inputs) == 3 {
						ids++
					}
				}
			}
			if adds != tt.blocks || ids != tt.identity {
				t.Errorf("blocks got %d (%d with identity); want %d (%d)", adds, ids, tt.blocks, tt.identity)
			}
		})
	}
	if _, err := BuildRepVGG("repvgg-b9", 3, 10, 0, 1); err == nil {
		t.Error("unknown arch: got nil error")
	}
	if _, err := BuildRepVGG("repvgg-cifar", 3, 10, 1, 1); err == nil {
		t.Error("reserve 1: got nil error")
	}
}

// RepVGG + RM passes the first int(C·r) channels of every identity block
// through unchanged, whatever the (trained) weights of the other rows.
func TestRepVGGReserve(t *testing.T) {
	for _, r := range []float64{0, 0.25, 0.5} {
		s, err := StandardRepVGG("repvgg-cifar", 3, 10, r)
		if err != nil {
			t.Fatal(err)
		}
		g := s.Build(2)
		res := s.Reserved()
		if r > 0 && (res["stage1.0"] != int(16*r) || res["stage3.1"] != int(64*r) || res["stage2.0"] != 0) {
			t.Errorf("r=%g: Reserved() = %v", r, res)
		}
		rng := rand.New(rand.NewPCG(5, 6))
		for _, n := range g.Nodes {
			if n.Op != OpBatchNorm {
				continue
			}
			skip := res[n.Name[:strings.Index(n.Name, ".rbr")]]
			for p, v := range map[string][]float32{"weight": n.P("weight"), "bias": n.P("bias"), "running_mean": n.P("running_mean"), "running_var": n.P("running_var")} {
				for c := skip; c < len(v); c++ {
					v[c] = float32(rng.NormFloat64())
					if p == "running_var" {
						v[c] = float32(0.5 + rng.Float64())
					}
				}
			}
		}
		x := NewAct(2, 3, 9, 9)
		for i := range x.D {
			x.D[i] = float32(rng.NormFloat64())
		}
		acts := map[string][]float32{}
		if _, err := g.Forward(x, func(n *Node, out *Act) {
			if n.Op == OpReLU {
				acts[n.Name] = append([]float32(nil), out.D...)
			}
		}); err != nil {
			t.Fatal(err)
		}
		prev := "stage0.nonlinearity"
		for _, name := range []string{"stage1.0", "stage1.1"} {
			in, out := acts[prev], acts[name+".nonlinearity"]
			hw := 9 * 9
			maxd := 0.0
			for b := 0; b < 2; b++ {
				for c := 0; c < res[name]; c++ {
					for i := 0; i < hw; i++ {
						o := (b*16+c)*hw + i
						maxd = max(maxd, math.Abs(float64(in[o]-out[o])))
					}
				}
			}
			if maxd > 1e-6 {
				t.Errorf("r=%g block %s: reserved channels changed by %g; want passed through", r, name, maxd)
			}
			prev = name + ".nonlinearity"
		}
	}
}
