package nn

import (
	"math"
	"slices"
)

// LayerInfo is one row of the architecture table.
type LayerInfo struct {
	Name   string   `json:"name"`
	Op     Op       `json:"op"`
	Inputs []string `json:"inputs,omitempty"`
	Out    string   `json:"out_shape"` // CxHxW
	Params int64    `json:"params"`
	MACs   int64    `json:"macs"`
	Kernel int      `json:"kernel,omitempty"`
	Stride int      `json:"stride,omitempty"`
	Groups int      `json:"groups,omitempty"`
	// Gamma summarises |γ| of a BatchNorm: the sparsity that slimming exploits.
	Gamma *GammaStats `json:"gamma,omitempty"`
}

// GammaStats describes |γ| of one BatchNorm layer.
type GammaStats struct {
	Min, Median, Mean, Max float64
	NearZero               int `json:"near_zero"` // |γ| < 1e-2
	Count                  int `json:"count"`
}

// Summary is a network's size and cost for one input shape.
type Summary struct {
	Params int64       `json:"params"`
	MACs   int64       `json:"macs"`
	FLOPs  int64       `json:"flops"`
	Layers []LayerInfo `json:"layers"`
}

// Summarize counts params and MACs per layer for an input of shape in.
// params are learnable weights (BN γ/β and PReLU slopes included, running
// statistics excluded); MACs count conv and linear multiply-accumulates.
func (g *Graph) Summarize(in Shape) (*Summary, error) {
	shapes, err := g.Shapes(in)
	if err != nil {
		return nil, err
	}
	s := &Summary{}
	for _, n := range g.Nodes {
		li := LayerInfo{Name: n.Name, Op: n.Op, Inputs: n.Inputs, Out: shapes[n.Name].String()}
		li.Params = NodeParams(n)
		o := shapes[n.Name]
		switch n.Op {
		case OpConv:
			li.MACs = int64(o.C) * int64(o.H*o.W) * int64(n.In/n.G()) * int64(n.Kernel*n.Kernel)
			li.Kernel, li.Stride, li.Groups = n.Kernel, n.Stride, n.G()
		case OpLinear:
			li.MACs = int64(n.In) * int64(n.Out)
		case OpMaxPool, OpAvgPool:
			li.Kernel, li.Stride = n.Kernel, n.Stride
		case OpBatchNorm:
			li.Gamma = gammaStats(n.P("weight"))
		}
		s.Params += li.Params
		s.MACs += li.MACs
		s.Layers = append(s.Layers, li)
	}
	s.FLOPs = 2 * s.MACs
	return s, nil
}

// NodeParams counts a node's learnable parameters.
func NodeParams(n *Node) int64 {
	var p int64
	for name, t := range n.Params {
		if IsLearnable(name) {
			p += int64(Numel(ShapeOf(t)))
		}
	}
	return p
}

func gammaStats(g []float32) *GammaStats {
	if len(g) == 0 {
		return nil
	}
	a := make([]float64, len(g))
	st := &GammaStats{Count: len(g)}
	for i, v := range g {
		a[i] = math.Abs(float64(v))
		st.Mean += a[i]
		if a[i] < 1e-2 {
			st.NearZero++
		}
	}
	slices.Sort(a)
	st.Min, st.Max, st.Median = a[0], a[len(a)-1], a[len(a)/2]
	st.Mean /= float64(len(a))
	return st
}
