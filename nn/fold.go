package nn

// FoldBN returns a copy of g in which every BatchNorm that directly follows a
// conv it alone reads is folded into that conv:
// W'[o] = W[o]·γ_o/√(σ²_o+ε), b'_o = β_o − γ_o μ_o/√(σ²_o+ε) (+ the conv's bias, scaled).
// Readers of the BatchNorm read the conv instead. Other BatchNorms stay.
func FoldBN(g *Graph) *Graph {
	c := g.Clone()
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
