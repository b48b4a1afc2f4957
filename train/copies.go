package train

import "github.com/rmprune/rmprune/nn"

// copyMask marks the weights of conv node n that make RM's copy structure:
// every weight of a Dirac row (an output channel whose filter has a single
// non-zero, at the centre tap: a reserved channel copying one input
// channel) and the zero weights of a centre-only input column (an input
// channel every other row reads through the centre tap alone: a merged
// identity; its non-zero centre taps still train). The engine runs these as copies instead of dense MACs
// (see engine.SplitConvs); training them would turn them into ordinary
// dense weights. It returns nil when the conv has no such structure.
func copyMask(n *nn.Node) []bool {
	w := n.P("weight")
	k := n.Kernel
	if n.Op != nn.OpConv || n.G() != 1 || k%2 == 0 || len(w) == 0 {
		return nil
	}
	kk := k * k
	c := len(w) / (n.Out * kk)
	centre := (k / 2) * (k + 1)
	mask := make([]bool, len(w))
	dirac := make([]bool, n.Out)
	any := false
	for o := 0; o < n.Out; o++ {
		row := w[o*c*kk : (o+1)*c*kk]
		nz, at := 0, -1
		for i, v := range row {
			if v != 0 {
				nz++
				at = i
			}
		}
		if nz == 1 && at%kk == centre {
			dirac[o], any = true, true
			for i := range row {
				mask[o*c*kk+i] = true
			}
		}
	}
	if k == 1 {
		if !any {
			return nil
		}
		return mask
	}
	for ci := 0; ci < c; ci++ {
		centreOnly, read := true, false
		for o := 0; o < n.Out && centreOnly; o++ {
			if dirac[o] {
				continue
			}
			for t := 0; t < kk; t++ {
				v := w[(o*c+ci)*kk+t]
				if t != centre && v != 0 {
					centreOnly = false
					break
				}
				read = read || v != 0
			}
		}
		if !centreOnly || !read {
			continue
		}
		any = true
		for o := 0; o < n.Out; o++ {
			for t := 0; t < kk; t++ {
				if i := (o*c+ci)*kk + t; w[i] == 0 {
					mask[i] = true // which rows read the column stays as it is
				}
			}
		}
	}
	if !any {
		return nil
	}
	return mask
}

// KeepCopies freezes the copy structure of every conv (see copyMask): SGD
// leaves those weights as they are, so a fine-tuned RMNet keeps running its
// reserved channels and merged identities as copies. The Net runs them as
// copies too (copyConvOp): Dirac rows as channel copies, centre-only columns
// as 1×1 contributions, dense MACs only for what trains.
func (t *Net) KeepCopies() { t.keepCopies(true) }

// keepCopies is KeepCopies; with run false the convs keep computing the
// frozen structure densely (tests and benchmarks compare both).
func (t *Net) keepCopies(run bool) {
	for _, p := range t.params {
		if p.node != nil && p.param == "weight" {
			p.Frozen = copyMask(p.node)
		}
	}
	if !run {
		return
	}
	for _, l := range t.layers {
		if c, ok := l.impl.(*convOp); ok && c.w.Frozen != nil {
			if cc := t.newCopyConv(l, c); cc != nil {
				l.impl = cc
			}
		}
	}
}
