package pruning

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// forceDead sets γ = 0 on a share of the channels of every BatchNorm that a
// ReLU or ReLU6 reads directly: β ≤ 0 (dead) for most, β > 0 (a constant)
// for the share constShare of them. It returns the dead channels per BN.
func forceDead(g *nn.Graph, rng *rand.Rand, share, constShare float64) map[string][]int {
	cons := g.Consumers()
	dead := map[string][]int{}
	for _, n := range g.Nodes {
		if n.Op != nn.OpBatchNorm {
			continue
		}
		cs := cons[n.Name]
		if len(cs) != 1 || (cs[0].Op != nn.OpReLU && cs[0].Op != nn.OpReLU6) {
			continue
		}
		gamma, beta := n.P("weight"), n.P("bias")
		for c := range gamma {
			if rng.Float64() >= share {
				continue
			}
			gamma[c] = 0
			switch r := rng.Float64(); {
			case r < constShare:
				beta[c] = float32(0.1 + rng.Float64())
			case r < constShare+0.2:
				beta[c] = 0
			default:
				beta[c] = -float32(0.05 + rng.Float64())
				dead[n.Name] = append(dead[n.Name], c)
			}
			if beta[c] == 0 {
				dead[n.Name] = append(dead[n.Name], c)
			}
		}
	}
	return dead
}

func randAct(rng *rand.Rand, n int, s nn.Shape) *nn.Act {
	a := nn.NewAct(n, s.C, s.H, s.W)
	for i := range a.D {
		a.D[i] = float32(rng.NormFloat64())
	}
	return a
}

func forward(t testing.TB, g *nn.Graph, x *nn.Act) *nn.Act {
	t.Helper()
	y, err := g.Forward(x, nil)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	return y
}

func ptr(v float64) *float64 { return &v }

// readNPY reads a little-endian float32 .npy file (format 1.0 or 2.0).
func readNPY(path string) ([]int, []float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(b) < 12 || string(b[1:6]) != "NUMPY" {
		return nil, nil, fmt.Errorf("%s: not an npy file", path)
	}
	var hl, off int
	if b[6] == 1 {
		hl, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	} else {
		hl, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	}
	h := string(b[off : off+hl])
	if !strings.Contains(h, "'descr': '<f4'") || strings.Contains(h, "'fortran_order': True") {
		return nil, nil, fmt.Errorf("%s: want little-endian float32 C order, header %s", path, h)
	}
	m := regexp.MustCompile(`'shape': \(([^)]*)\)`).FindStringSubmatch(h)
	if m == nil {
		return nil, nil, fmt.Errorf("%s: no shape in header", path)
	}
	var shape []int
	numel := 1
	for _, f := range strings.Split(m[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil {
			return nil, nil, err
		}
		shape = append(shape, d)
		numel *= d
	}
	data := b[off+hl:]
	if len(data) != 4*numel {
		return nil, nil, fmt.Errorf("%s: %d data bytes for shape %v", path, len(data), shape)
	}
	out := make([]float32, numel)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return shape, out, nil
}

// bitsEqual reports whether two graphs have the same nodes and bit-identical tensors.
func bitsEqual(a, b *nn.Graph) error {
	if len(a.Nodes) != len(b.Nodes) {
		return fmt.Errorf("%d nodes vs %d", len(a.Nodes), len(b.Nodes))
	}
	for i, n := range a.Nodes {
		m := b.Nodes[i]
		if n.Name != m.Name || n.Op != m.Op || n.In != m.In || n.Out != m.Out || n.Groups != m.Groups {
			return fmt.Errorf("node %d: %s/%s %d→%d vs %s/%s %d→%d", i, n.Name, n.Op, n.In, n.Out, m.Name, m.Op, m.In, m.Out)
		}
		if len(n.Params) != len(m.Params) {
			return fmt.Errorf("node %s: %d params vs %d", n.Name, len(n.Params), len(m.Params))
		}
		for k := range n.Params {
			x, y := n.P(k), m.P(k)
			if len(x) != len(y) {
				return fmt.Errorf("node %s.%s: %d vs %d values", n.Name, k, len(x), len(y))
			}
			for j := range x {
				if math.Float32bits(x[j]) != math.Float32bits(y[j]) {
					return fmt.Errorf("node %s.%s[%d]: %v vs %v", n.Name, k, j, x[j], y[j])
				}
			}
		}
	}
	return nil
}
