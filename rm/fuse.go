package rm

import (
	"slices"

	"github.com/rmprune/rmprune/nn"
)

// fuse finds convs A → B with B 1×1 (stride 1, pad 0, ungrouped), A read by
// B alone and no activation between, records each pair's MAC cost and fuses
// it per policy: W = W_B·W_A, b = W_B·b_A + b_B (A's kernel, stride and pad).
// Chains fuse left to right.
func fuse(res *Result, policy FusePolicy, in nn.Shape) {
	g := res.Graph
	shapes, err := g.Shapes(in)
	if err != nil {
		return
	}
	cons := g.Consumers()
	byName := map[string]*nn.Node{}
	var kept []*nn.Node
	removed := map[string]bool{}
	for _, n := range g.Nodes {
		a := (*nn.Node)(nil)
		if n.Op == nn.OpConv && n.Kernel == 1 && n.Stride == 1 && n.Pad == 0 && n.G() == 1 && len(n.Inputs) == 1 {
			a = byName[n.Inputs[0]]
		}
		if a == nil || a.Op != nn.OpConv || len(cons[a.Name]) != 1 {
			byName[n.Name] = n
			kept = append(kept, n)
			continue
		}
		sa := shapes[a.Name]
		hw := int64(sa.H * sa.W)
		kk := int64(a.Kernel * a.Kernel)
		f := Fusion{A: a.Name, B: n.Name,
			MACsBefore: int64(a.Out)*int64(a.In/a.G())*kk*hw + int64(n.Out)*int64(n.In)*hw,
			MACsAfter:  int64(n.Out) * int64(a.In) * kk * hw,
		}
		f.Fused = policy == FuseAll || (policy == FuseNoLoss && f.MACsAfter <= f.MACsBefore)
		res.Fusions = append(res.Fusions, f)
		if !f.Fused {
			byName[n.Name] = n
			kept = append(kept, n)
			continue
		}
		m := fusePair(a, n)
		kept = slices.DeleteFunc(kept, func(x *nn.Node) bool { return x == a })
		removed[a.Name] = true
		byName[m.Name] = m
		kept = append(kept, m)
	}
	g.Nodes = kept
	res.Layers = slices.DeleteFunc(res.Layers, func(l Layer) bool { return removed[l.Conv] })
	for i := range res.Blocks {
		res.Blocks[i].Convs = slices.DeleteFunc(res.Blocks[i].Convs, func(c string) bool { return removed[c] })
		if removed[res.Blocks[i].Output] {
			res.Blocks[i].Output = "" // fused into the next conv: the sum no longer exists
		}
	}
	annotate(res)
}

// fusePair returns conv b∘a as one conv named b.
func fusePair(a, b *nn.Node) *nn.Node {
	kk := a.Kernel * a.Kernel
	da := denseAt(a)
	wb, bb, ba := b.P("weight"), b.P("bias"), a.P("bias")
	w := make([]float64, b.Out*a.In*kk)
	bias := make([]float64, b.Out)
	wa := make([]float64, a.Out*a.In*kk)
	for m := 0; m < a.Out; m++ {
		for j := 0; j < a.In; j++ {
			for t := 0; t < kk; t++ {
				wa[(m*a.In+j)*kk+t] = da(m, j, t)
			}
		}
	}
	for o := 0; o < b.Out; o++ {
		row := w[o*a.In*kk : (o+1)*a.In*kk]
		s := 0.0
		if bb != nil {
			s = float64(bb[o])
		}
		for m := 0; m < a.Out; m++ {
			v := float64(wb[o*b.In+m])
			if v == 0 {
				continue
			}
			if ba != nil {
				s += v * float64(ba[m])
			}
			for i, x := range wa[m*a.In*kk : (m+1)*a.In*kk] {
				row[i] += v * x
			}
		}
		bias[o] = s
	}
	n := &nn.Node{Name: b.Name, Op: nn.OpConv, Inputs: slices.Clone(a.Inputs), In: a.In, Out: b.Out, Kernel: a.Kernel, Stride: a.Stride, Pad: a.Pad}
	wf := make([]float32, len(w))
	for i, v := range w {
		wf[i] = float32(v)
	}
	bf := make([]float32, len(bias))
	for i, v := range bias {
		bf[i] = float32(v)
	}
	n.SetP("weight", []int{b.Out, a.In, a.Kernel, a.Kernel}, wf)
	n.SetP("bias", []int{b.Out}, bf)
	return n
}
