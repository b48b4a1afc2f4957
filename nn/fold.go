package nn

import (
	"fmt"
	"slices"
)

// FoldBN returns a copy of g in which every BatchNorm that directly follows a
// conv it alone reads is folded into that conv:
// W'[o] = W[o]·γ_o/√(σ²_o+ε), b'_o = β_o − γ_o μ_o/√(σ²_o+ε) (+ the conv's bias, scaled).
// Readers of the BatchNorm read the conv instead. Other BatchNorms stay.
// Masks are folded first (FoldMasks).
func FoldBN(g *Graph) *Graph {
	c := FoldMasks(g)
	cons := c.Consumers()
	rename := map[string]string{}
	var kept []*Node
	byName := map[string]*Node{}
	for _, n := range c.Nodes {
		for i, in := range n.Inputs {
			if r, ok := rename[in]; ok {
				n.Inputs[i] = r
			}
		}
		if n.Op == OpBatchNorm && len(n.Inputs) == 1 {
			if conv := byName[n.Inputs[0]]; conv != nil && conv.Op == OpConv && len(cons[conv.Name]) == 1 {
				FoldBNInto(conv, n)
				rename[n.Name] = conv.Name
				continue
			}
		}
		byName[n.Name] = n
		kept = append(kept, n)
	}
	c.Nodes = kept
	return c
}

// FoldBNInto folds the eval-mode BatchNorm bn into conv's weight and bias.
func FoldBNInto(conv, bn *Node) {
	scale, shift := BNScaleShift(bn)
	w := conv.P("weight")
	per := len(w) / conv.Out
	for o := 0; o < conv.Out; o++ {
		for i := o * per; i < (o+1)*per; i++ {
			w[i] = float32(float64(w[i]) * scale[o])
		}
	}
	b := make([]float32, conv.Out)
	old := conv.P("bias")
	for o := range b {
		v := shift[o]
		if old != nil {
			v += scale[o] * float64(old[o])
		}
		b[o] = float32(v)
	}
	conv.SetP("bias", []int{conv.Out}, b)
}

// FoldMasks returns a copy of g without mask nodes that computes the same
// function in eval mode. Each mask folds where it is exact:
//   - into the layer it reads when that layer has no other reader (a BatchNorm's
//     γ and β, a conv's output rows and bias, another mask);
//   - a mask followed by a ReLU on a non-negative input (the reference code's
//     mask_res: ReLU(m·x) = max(m,0)·x for x ≥ 0) drops the ReLU and scales by
//     max(m,0), then folds into the input columns of the convs that read it;
//   - a mask after a residual sum (mask2) scales every input of the sum
//     (through the rules above; an input that cannot absorb it gets its own
//     mask), and the sum's recorded act statistics scale with it.
//
// A mask left over becomes a depthwise 1×1 conv (groups = C), which every
// consumer of the graph supports. Statistics recorded on a scaled node
// (act_mean, act_var) are scaled too.
func FoldMasks(g *Graph) *Graph {
	c := g.Clone()
	for changed := true; changed; {
		changed = false
		for _, n := range c.Nodes {
			if n.Op == OpMask && foldMask(c, n) {
				changed = true
				break
			}
		}
	}
	for _, n := range c.Nodes {
		if n.Op == OpMask {
			m := n.P("weight")
			n.Op, n.In, n.Out, n.Kernel, n.Stride, n.Pad, n.Groups = OpConv, len(m), len(m), 1, 1, 0, len(m)
			n.SetP("weight", []int{len(m), 1, 1, 1}, m)
		}
	}
	return c
}

// foldMask applies one folding rule to mask n and reports whether the graph
// changed.
func foldMask(g *Graph, n *Node) bool {
	cons := g.Consumers()
	p := g.Node(n.Inputs[0])
	m := n.P("weight")
	if len(cons[p.Name]) == 1 && scaleOutput(p, m) {
		g.remove(n, p.Name)
		return true
	}
	if r := cons[n.Name]; len(r) == 1 && r[0].Op == OpReLU && nonNegative(g, p) {
		for i, v := range m {
			m[i] = max(v, 0)
		}
		g.remove(r[0], n.Name)
		return true
	}
	if r := cons[n.Name]; len(r) > 0 {
		convs := true
		for _, c := range r {
			convs = convs && c.Op == OpConv
		}
		if convs {
			for _, c := range r {
				scaleInputs(c, m)
			}
			g.remove(n, p.Name)
			return true
		}
	}
	if p.Op == OpAdd && len(cons[p.Name]) == 1 {
		for j, in := range p.Inputs {
			src := g.Node(in)
			if len(cons[in]) == 1 && scaleOutput(src, m) {
				continue
			}
			// The input cannot absorb the scale: give it a mask of its own.
			k := &Node{Name: fmt.Sprintf("%s.mask%d", p.Name, j), Op: OpMask, Inputs: []string{in}}
			k.SetP("weight", []int{len(m)}, slices.Clone(m))
			g.insertBefore(p, k)
			p.Inputs[j] = k.Name
		}
		scaleStats(p, m)
		g.remove(n, p.Name)
		return true
	}
	return false
}

func allNonNegative(m []float32) bool {
	for _, v := range m {
		if !(v >= 0) {
			return false
		}
	}
	return true
}

// scaleOutput multiplies channel c of n's output by m[c], where n's params
// allow it exactly, and reports whether it did.
func scaleOutput(n *Node, m []float32) bool {
	switch n.Op {
	case OpBatchNorm, OpMask:
		for _, p := range []string{"weight", "bias"} {
			if v := n.P(p); v != nil {
				for c := range v {
					v[c] *= m[c]
				}
			}
		}
	case OpConv:
		w := n.P("weight")
		per := len(w) / n.Out
		for o := 0; o < n.Out; o++ {
			for i := o * per; i < (o+1)*per; i++ {
				w[i] *= m[o]
			}
		}
		if b := n.P("bias"); b != nil {
			for o := range b {
				b[o] *= m[o]
			}
		}
	default:
		return false
	}
	scaleStats(n, m)
	return true
}

// scaleStats scales recorded output statistics by m.
func scaleStats(n *Node, m []float32) {
	if v := n.P("act_mean"); v != nil {
		for c := range v {
			v[c] *= m[c]
		}
	}
	if v := n.P("act_var"); v != nil {
		for c := range v {
			v[c] *= m[c] * m[c]
		}
	}
}

// scaleInputs multiplies conv n's input channel c by m[c] (exact: zero
// padding stays zero).
func scaleInputs(n *Node, m []float32) {
	w := n.P("weight")
	icg := n.In / n.G()
	ocg := n.Out / n.G()
	kk := n.Kernel * n.Kernel
	for o := 0; o < n.Out; o++ {
		grp := o / ocg
		for i := 0; i < icg; i++ {
			s := m[grp*icg+i]
			row := w[(o*icg+i)*kk : (o*icg+i+1)*kk]
			for k := range row {
				row[k] *= s
			}
		}
	}
}

// nonNegative reports whether n's output is provably ≥ 0.
func nonNegative(g *Graph, n *Node) bool {
	switch n.Op {
	case OpReLU, OpReLU6:
		return true
	case OpMaxPool, OpAvgPool, OpGlobalAvgPool, OpFlatten:
		return nonNegative(g, g.Node(n.Inputs[0]))
	case OpClamp:
		return allNonNegative(n.P("min"))
	}
	return false
}

// remove deletes node n; its readers read replacement instead.
func (g *Graph) remove(n *Node, replacement string) {
	for _, o := range g.Nodes {
		for i, in := range o.Inputs {
			if in == n.Name {
				o.Inputs[i] = replacement
			}
		}
	}
	g.Nodes = slices.DeleteFunc(g.Nodes, func(o *Node) bool { return o == n })
}

// insertBefore puts k just before node at.
func (g *Graph) insertBefore(at, k *Node) {
	i := slices.Index(g.Nodes, at)
	g.Nodes = slices.Insert(g.Nodes, i, k)
}
