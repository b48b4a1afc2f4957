package rm

import (
	"fmt"
	"slices"

	"github.com/rmprune/rmprune/nn"
)

// blockMasks are the scales of a mask-trained block that the BN-kept form
// carries in its BatchNorms rather than in the convs.
type blockMasks struct {
	res []float64 // max(mask_res, 0): scales the reserved channels (the shortcut's view of the block input)
	out []float64 // mask2: scales the residual sum (the block output)
}

// unmask prepares a mask-trained network (nn.OpMask nodes, the RMNet
// reference code's pruning layout) for the BN-kept form. It returns a copy of
// g without masks and, per residual add, the masks the BN-kept form puts
// into the reserved and block-output BatchNorms:
//   - a mask after a BatchNorm (or conv) that nothing else reads — the stem's
//     and every block's mask1, a Bottleneck's mask_mid — scales that layer's
//     γ and β (inner channels: γ·m1);
//   - mask_res (a mask followed by a ReLU on a block input x ≥ 0, read by the
//     shortcut) acts as max(m,0)·x: it is dropped from the shortcut and
//     recorded as the block's res scale;
//   - mask2 (a mask on a residual sum that alone reads it) is dropped and
//     recorded as the block's out scale; the sum keeps its own statistics
//     (running2 is measured before mask2).
//
// Any other mask is folded by nn.FoldMasks (exact). The add and block-input
// nodes keep their names, so statistics measured on g apply to the copy.
func unmask(g *nn.Graph) (*nn.Graph, map[string]*blockMasks) {
	c := g.Clone()
	masks := map[string]*blockMasks{}
	nonneg := NonNegative(c)
	byName := map[string]*nn.Node{}
	for _, n := range c.Nodes {
		byName[n.Name] = n
	}
	of := func(add string) *blockMasks {
		if masks[add] == nil {
			masks[add] = &blockMasks{}
		}
		return masks[add]
	}
	for _, n := range slices.Clone(c.Nodes) {
		if n.Op != nn.OpMask {
			continue
		}
		cons := c.Consumers()
		p := byName[n.Inputs[0]]
		m := n.P("weight")
		switch {
		case len(cons[p.Name]) == 1 && (p.Op == nn.OpBatchNorm || p.Op == nn.OpConv):
			scaleLayer(p, m)
			drop(c, n, p.Name)
		case p.Op == nn.OpAdd && len(cons[p.Name]) == 1:
			b := of(p.Name)
			if b.out != nil {
				continue // two masks on one sum: leave the second to FoldMasks
			}
			b.out = widen(m)
			drop(c, n, p.Name)
		case nonneg[p.Name]:
			r := cons[n.Name]
			if len(r) != 1 || r[0].Op != nn.OpReLU {
				continue
			}
			add := shortcutAdd(c, r[0], cons)
			if add == nil || of(add.Name).res != nil {
				continue
			}
			res := make([]float64, len(m))
			for i, v := range m {
				res[i] = max(float64(v), 0)
			}
			of(add.Name).res = res
			drop(c, r[0], p.Name)
			drop(c, n, p.Name)
		}
	}
	if c.HasMasks() {
		c = nn.FoldMasks(c)
	}
	return c, masks
}

// shortcutAdd follows a shortcut from node from through at most a 1×1 conv
// and a BatchNorm, each read only by the next, to the add it feeds; nil when
// the path is anything else.
func shortcutAdd(g *nn.Graph, from *nn.Node, cons map[string][]*nn.Node) *nn.Node {
	cur := from
	for range 3 {
		cs := cons[cur.Name]
		if len(cs) != 1 {
			return nil
		}
		next := cs[0]
		switch {
		case next.Op == nn.OpAdd:
			return next
		case next.Op == nn.OpConv && next.Kernel == 1, next.Op == nn.OpBatchNorm:
			cur = next
		default:
			return nil
		}
	}
	return nil
}

// scaleLayer multiplies output channel c of a BatchNorm or conv by m[c]
// (BN γ and β; conv rows and bias) and its recorded output statistics.
func scaleLayer(n *nn.Node, m []float32) {
	switch n.Op {
	case nn.OpBatchNorm:
		for _, p := range []string{"weight", "bias"} {
			v := n.P(p)
			for c := range v {
				v[c] = zeroSign(v[c] * m[c])
			}
		}
	case nn.OpConv:
		w := n.P("weight")
		per := len(w) / n.Out
		for o := 0; o < n.Out; o++ {
			for i := o * per; i < (o+1)*per; i++ {
				w[i] = zeroSign(w[i] * m[o])
			}
		}
		if b := n.P("bias"); b != nil {
			for o := range b {
				b[o] = zeroSign(b[o] * m[o])
			}
		}
	}
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

// zeroSign turns −0 into +0, so a zero mask leaves plain zeros behind.
func zeroSign(v float32) float32 {
	if v == 0 {
		return 0
	}
	return v
}

func widen(m []float32) []float64 {
	out := make([]float64, len(m))
	for i, v := range m {
		out[i] = float64(v)
	}
	return out
}

// drop deletes node n; its readers read replacement instead.
func drop(g *nn.Graph, n *nn.Node, replacement string) {
	for _, o := range g.Nodes {
		for i, in := range o.Inputs {
			if in == n.Name {
				o.Inputs[i] = replacement
			}
		}
	}
	g.Nodes = slices.DeleteFunc(g.Nodes, func(o *nn.Node) bool { return o == n })
}

// checkMasks fails when a block's recorded masks do not fit its widths.
func checkMasks(b *block, bm *blockMasks, cr, cout int) error {
	if bm == nil {
		return nil
	}
	if bm.res != nil && len(bm.res) != cr {
		return fmt.Errorf("rm: block %s: mask_res has %d channels, the block input %d: %w", b.name, len(bm.res), cr, ErrPattern)
	}
	if bm.out != nil && len(bm.out) != cout {
		return fmt.Errorf("rm: block %s: mask2 has %d channels, the block output %d: %w", b.name, len(bm.out), cout, ErrPattern)
	}
	return nil
}
