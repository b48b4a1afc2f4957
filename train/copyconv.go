package train

import (
	"github.com/rmprune/rmprune/nn"
)

// copyConvOp runs a conv whose RM copy structure KeepCopies froze (see
// copyMask) the way the engine does (engine.SplitConvs), in training:
//
//   - Dirac rows (reserved channels) are channel copies: y[o] = a·x[src]
//     sampled at the stride, and in backward dx[src] += a·dy[o] scattered back;
//   - centre-only (identity) input columns are 1×1 contributions to the other
//     rows: a gather-add y[o] += a·x[c] with a trainable per-row scale when
//     every row reads at most one of them (the merged identity), else a 1×1
//     conv (the merged projection), both with their transposes in backward;
//   - the rest, (non-Dirac rows) × (other input columns), is an ordinary
//     dense convOp (Winograd, GEMMs) on layers of its own whose input and
//     output are gathered from / scattered to the conv's when they are not
//     the whole tensors.
//
// The weights that train are the same as in the dense path with
// Param.Frozen (the dense block and the identity columns' centre taps), and
// their gradients are the same up to float rounding; the Grad of frozen
// elements is 0 (SGD skips them).
type copyConvOp struct {
	t     *Net
	l     *layer
	w     *Param
	orig  *convOp // the dense op replaced: its stats feed the BatchNorm reading the conv
	c, m  int     // input and output channels
	kk    int     // taps
	cent  int     // centre tap
	st    int     // stride
	ihw   int     // input pixels per image
	oh    int     // output rows
	ow    int     // output columns
	iw    int     // input width
	dRow  []int32 // Dirac rows: output channel,
	dSrc  []int32 // the input channel it copies
	dW    []int32 // and the index of its weight
	dCoef []float32

	rows []int32 // the other output channels (dense rows)
	rest []int32 // input channels the dense rows read through every tap
	cols []int32 // centre-only input channels

	// The dense k×k part (nil when rows or rest is empty) on its own
	// layer dl, whose input is x itself (directIn: rest is every channel)
	// or the gathered rest channels, and whose output and gradient are the
	// conv's own (directOut: no Dirac rows) or buffers gathered from them.
	dense     *convOp
	dl        *layer
	directIn  bool
	directOut bool

	// Centre-only columns as a selection (sel != nil): dense row i reads
	// input channel sel[i] (−1: none) scaled by the weight at selW[i].
	sel     []int32
	selW    []int32
	selCoef []float32
	selG    [][]float64 // per worker: partial gradients of the scales
	// Otherwise a 1×1 conv (stride st) over the gathered columns.
	q  *convOp
	ql *layer

	gather, fwd, gatherGrad, bwd func(worker, lo, hi int)
}

// newCopyConv plans conv layer l (op orig, weights frozen by copyMask) as
// copies; it returns nil when the conv has no copy structure or a shape
// the copy path does not handle (a bias, padding other than k/2).
func (t *Net) newCopyConv(l *layer, orig *convOp) *copyConvOp {
	n := l.node
	frozen := orig.w.Frozen
	k := n.Kernel
	if frozen == nil || orig.group != 1 || orig.b != nil || k%2 == 0 || n.Pad != k/2 {
		return nil
	}
	C, M, kk := l.inS.C, n.Out, k*k
	w := orig.w.Data
	o := &copyConvOp{t: t, l: l, w: orig.w, orig: orig, c: C, m: M, kk: kk, cent: (k / 2) * (k + 1), st: n.Stride,
		ihw: l.inS.H * l.inS.W, oh: l.outS.H, ow: l.outS.W, iw: l.inS.W}
	// Dirac rows: every weight frozen (copyMask freezes no other whole row
	// but an all-zero one, which stays a dense row).
	for r := 0; r < M; r++ {
		all, nz := true, -1
		for i := r * C * kk; i < (r+1)*C*kk; i++ {
			all = all && frozen[i]
			if w[i] != 0 {
				nz = i
			}
		}
		if all && nz >= 0 {
			o.dRow = append(o.dRow, int32(r))
			o.dSrc = append(o.dSrc, int32((nz-r*C*kk)/kk))
			o.dW = append(o.dW, int32(nz))
		} else {
			o.rows = append(o.rows, int32(r))
		}
	}
	o.dCoef = make([]float32, len(o.dRow))
	// Centre-only columns: every off-centre tap of the dense rows frozen.
	for ci := 0; ci < C; ci++ {
		only := k > 1
		for _, r := range o.rows {
			for tap := 0; tap < kk && only; tap++ {
				only = tap == o.cent || frozen[(int(r)*C+ci)*kk+tap]
			}
		}
		if only {
			o.cols = append(o.cols, int32(ci))
		} else {
			o.rest = append(o.rest, int32(ci))
		}
	}
	if len(o.dRow) == 0 && len(o.cols) == 0 {
		return nil
	}
	nd, nr, nq := len(o.rows), len(o.rest), len(o.cols)
	ohw := o.oh * o.ow
	o.directIn = nr == C
	o.directOut = len(o.dRow) == 0
	var dOut, dGrad []float32 // the dense rows' output and gradient
	if nd > 0 {
		if o.directOut {
			dOut, dGrad = l.out, l.grad
		} else {
			dOut = make([]float32, t.maxBatch*nd*ohw)
			if l.grad != nil {
				dGrad = make([]float32, t.maxBatch*nd*ohw)
			}
		}
	}
	if nd > 0 && nr > 0 {
		in, addIn := l.ins[0], l.addIn[0]
		if !o.directIn {
			in = o.gathered(nr, l.inGrad(0))
			addIn = false
		}
		o.dense, o.dl = t.subConv(l, "dense", in, addIn, nd, k, n.Stride, n.Pad, dOut, dGrad)
	}
	// The centre taps of the columns: a selection when each dense row has
	// at most one that trains.
	if nd > 0 && nq > 0 {
		o.sel, o.selW = make([]int32, nd), make([]int32, nd)
		for i, r := range o.rows {
			o.sel[i] = -1
			for _, ci := range o.cols {
				j := (int(r)*C+int(ci))*kk + o.cent
				if frozen[j] {
					continue // a zero that stays zero
				}
				if o.sel[i] >= 0 {
					o.sel = nil
					break
				}
				o.sel[i], o.selW[i] = ci, int32(j)
			}
			if o.sel == nil {
				break
			}
		}
		if o.sel != nil {
			o.selCoef = make([]float32, nd)
			o.selG = make([][]float64, t.workers())
			for wk := range o.selG {
				o.selG[wk] = make([]float64, nd)
			}
		} else {
			o.selW = nil
			qOut := make([]float32, t.maxBatch*nd*ohw)
			o.q, o.ql = t.subConv(l, "centre", o.gathered(nq, l.inGrad(0)), false, nd, 1, n.Stride, 0, qOut, dGrad)
		}
	}
	o.gather, o.fwd, o.gatherGrad, o.bwd = o.gatherTask, o.forwardTask, o.gatherGradTask, o.backwardTask
	return o
}

// gathered returns an input layer of c channels of the conv's input size
// with its own output (and, when grad, gradient) buffers.
func (o *copyConvOp) gathered(c int, grad bool) *layer {
	t, l := o.t, o.l
	s := nn.Shape{C: c, H: l.inS.H, W: l.inS.W}
	in := &layer{outS: s, out: make([]float32, t.maxBatch*s.Numel())}
	if grad {
		in.grad = make([]float32, t.maxBatch*s.Numel())
	}
	return in
}

// subConv builds a dense convOp of out channels (k×k, stride, pad) reading
// layer in, on a layer of its own with the given output and gradient
// buffers. Its weights are not a Param of the Net: the copy op fills them
// from the conv's and collects their gradient.
func (t *Net) subConv(l *layer, name string, in *layer, addIn bool, out, k, stride, pad int, y, dy []float32) (*convOp, *layer) {
	sn := &nn.Node{Name: l.node.Name + "/" + name, Op: nn.OpConv, In: in.outS.C, Out: out, Kernel: k, Stride: stride, Pad: pad}
	sn.SetP("weight", []int{out, in.outS.C, k, k}, make([]float32, out*in.outS.C*k*k))
	sl := &layer{node: sn, ins: []*layer{in}, addIn: []bool{addIn}, inS: in.outS,
		outS: nn.Shape{C: out, H: l.outS.H, W: l.outS.W}, out: y, grad: dy}
	np := len(t.params)
	c := t.newConv(sl)
	t.params = t.params[:np]
	sl.impl = c
	return c, sl
}

// sync copies the current weights into the parts.
func (o *copyConvOp) sync() {
	w, C, kk := o.w.Data, o.c, o.kk
	for r, j := range o.dW {
		o.dCoef[r] = w[j]
	}
	for i, j := range o.selW {
		o.selCoef[i] = w[j]
	}
	if o.dense != nil {
		dw, nr := o.dense.w.Data, len(o.rest)
		for i, r := range o.rows {
			for j, ci := range o.rest {
				copy(dw[(i*nr+j)*kk:(i*nr+j+1)*kk], w[(int(r)*C+int(ci))*kk:])
			}
		}
	}
	if o.q != nil {
		qw, nq := o.q.w.Data, len(o.cols)
		for i, r := range o.rows {
			for j, ci := range o.cols {
				qw[i*nq+j] = w[(int(r)*C+int(ci))*kk+o.cent]
			}
		}
	}
}

func (o *copyConvOp) forward(t *Net, l *layer) {
	o.sync()
	if (o.dense != nil && !o.directIn) || o.q != nil {
		t.pool.Run(t.n, o.gather)
	}
	if o.dense != nil {
		o.dense.forward(t, o.dl)
	}
	if o.q != nil {
		o.q.forward(t, o.ql)
	}
	for _, s := range o.orig.stats {
		clear(s)
	}
	t.pool.Run(t.n, o.fwd)
}

// gatherTask copies the rest and centre-only channels of images [lo, hi)
// into the parts' inputs.
func (o *copyConvOp) gatherTask(_, lo, hi int) {
	x, isz, hw := o.l.ins[0].out, o.c*o.ihw, o.ihw
	for b := lo; b < hi; b++ {
		img := x[b*isz : (b+1)*isz]
		if o.dense != nil && !o.directIn {
			gatherRows(o.dl.ins[0].out[b*len(o.rest)*hw:], img, o.rest, hw)
		}
		if o.q != nil {
			gatherRows(o.ql.ins[0].out[b*len(o.cols)*hw:], img, o.cols, hw)
		}
	}
}

// forwardTask assembles the output of images [lo, hi).
func (o *copyConvOp) forwardTask(worker, lo, hi int) {
	l := o.l
	x, y := l.ins[0].out, l.out
	isz, ohw := o.c*o.ihw, o.oh*o.ow
	osz, nd := o.m*ohw, len(o.rows)
	for b := lo; b < hi; b++ {
		img, out := x[b*isz:(b+1)*isz], y[b*osz:(b+1)*osz]
		for i, r := range o.rows {
			dst := out[int(r)*ohw : int(r+1)*ohw]
			switch {
			case o.dense == nil:
				clear(dst)
			case !o.directOut:
				copy(dst, o.dl.out[(b*nd+i)*ohw:])
			}
			if o.q != nil {
				accum(dst, o.ql.out[(b*nd+i)*ohw:])
			}
			if o.sel != nil && o.sel[i] >= 0 {
				o.sample(dst, img[int(o.sel[i])*o.ihw:], o.selCoef[i], true)
			}
		}
		for r, row := range o.dRow {
			o.sample(out[int(row)*ohw:int(row+1)*ohw], img[int(o.dSrc[r])*o.ihw:], o.dCoef[r], false)
		}
		if o.orig.stats != nil && o.t.train {
			o.orig.addStats(worker, out)
		}
	}
}

func (o *copyConvOp) backward(t *Net, l *layer) {
	if len(o.rows) > 0 && !o.directOut {
		t.pool.Run(t.n, o.gatherGrad)
	}
	if o.dense != nil {
		o.dense.backward(t, o.dl)
	}
	if o.q != nil {
		o.q.backward(t, o.ql)
	}
	for _, g := range o.selG {
		clear(g)
	}
	t.pool.Run(t.n, o.bwd)
	// The conv's weight gradient: the parts' gradients in place, 0 for
	// the frozen weights.
	dw, C, kk := o.w.Grad, o.c, o.kk
	clear(dw)
	if o.dense != nil {
		g, nr := o.dense.w.Grad, len(o.rest)
		for i, r := range o.rows {
			for j, ci := range o.rest {
				copy(dw[(int(r)*C+int(ci))*kk:(int(r)*C+int(ci)+1)*kk], g[(i*nr+j)*kk:])
			}
		}
	}
	if o.q != nil {
		g, nq := o.q.w.Grad, len(o.cols)
		for i, r := range o.rows {
			for j, ci := range o.cols {
				if at := (int(r)*C+int(ci))*kk + o.cent; !o.w.Frozen[at] {
					dw[at] = g[i*nq+j]
				}
			}
		}
	}
	for i, j := range o.selW {
		if o.sel[i] < 0 {
			continue
		}
		var s float64
		for _, g := range o.selG {
			s += g[i]
		}
		dw[j] = float32(s)
	}
}

// gatherGradTask gathers the dense rows' output gradient of images [lo, hi).
func (o *copyConvOp) gatherGradTask(_, lo, hi int) {
	dy, ohw := o.l.grad, o.oh*o.ow
	osz, nd := o.m*ohw, len(o.rows)
	for b := lo; b < hi; b++ {
		gatherRows(o.dl.grad[b*nd*ohw:], dy[b*osz:(b+1)*osz], o.rows, ohw)
	}
}

// backwardTask adds the copies' transposes to the input gradient of images
// [lo, hi) (and the parts' gathered input gradients) and sums the
// selection's scale gradients.
func (o *copyConvOp) backwardTask(worker, lo, hi int) {
	l := o.l
	x, dy := l.ins[0].out, l.grad
	isz, hw, ohw := o.c*o.ihw, o.ihw, o.oh*o.ow
	osz := o.m * ohw
	for b := lo; b < hi; b++ {
		img, g := x[b*isz:(b+1)*isz], dy[b*osz:(b+1)*osz]
		var dx []float32
		if l.inGrad(0) {
			dx = l.ins[0].grad[b*isz : (b+1)*isz]
			switch {
			case o.dense != nil && o.directIn:
				// The dense part wrote (or added) its input gradient in place.
			case o.dense == nil:
				if !l.addIn[0] {
					clear(dx)
				}
			case l.addIn[0]:
				addRows(dx, o.dl.ins[0].grad[b*len(o.rest)*hw:], o.rest, hw)
			default:
				// rest and cols partition the channels.
				scatterRows(dx, o.dl.ins[0].grad[b*len(o.rest)*hw:], o.rest, hw)
				for _, c := range o.cols {
					clear(dx[int(c)*hw : int(c+1)*hw])
				}
			}
			if o.q != nil {
				addRows(dx, o.ql.ins[0].grad[b*len(o.cols)*hw:], o.cols, hw)
			}
		}
		if o.sel != nil {
			sg := o.selG[worker]
			for i, r := range o.rows {
				c := o.sel[i]
				if c < 0 {
					continue
				}
				gr, xc := g[int(r)*ohw:int(r+1)*ohw], img[int(c)*hw:]
				if dx != nil {
					sg[i] += o.dotScatter(dx[int(c)*hw:], gr, xc, o.selCoef[i])
				} else {
					sg[i] += o.dot(gr, xc)
				}
			}
		}
		if dx != nil {
			for r, row := range o.dRow {
				o.scatterAdd(dx[int(o.dSrc[r])*hw:], g[int(row)*ohw:int(row+1)*ohw], o.dCoef[r])
			}
		}
	}
}

// gatherRows copies rows idx of src (hw floats each) to consecutive rows of
// dst.
func gatherRows(dst, src []float32, idx []int32, hw int) {
	for j, c := range idx {
		copy(dst[j*hw:(j+1)*hw], src[int(c)*hw:int(c+1)*hw])
	}
}

// scatterRows copies consecutive rows of src to rows idx of dst (hw floats
// each).
func scatterRows(dst, src []float32, idx []int32, hw int) {
	for j, c := range idx {
		copy(dst[int(c)*hw:int(c+1)*hw], src[j*hw:(j+1)*hw])
	}
}

// addRows adds consecutive rows of src to rows idx of dst (hw floats each).
func addRows(dst, src []float32, idx []int32, hw int) {
	for j, c := range idx {
		accum(dst[int(c)*hw:int(c+1)*hw], src[j*hw:])
	}
}

// sample writes (acc: adds) a·x[oy·st][ox·st] to dst[oy][ox] (dst oh×ow, x
// a plane of the input).
func (o *copyConvOp) sample(dst, x []float32, a float32, acc bool) {
	if o.st == 1 && o.ow == o.iw {
		x = x[:len(dst)]
		switch {
		case acc:
			for i, v := range x {
				dst[i] += a * v
			}
		case a == 1:
			copy(dst, x)
		default:
			for i, v := range x {
				dst[i] = a * v
			}
		}
		return
	}
	for oy := 0; oy < o.oh; oy++ {
		r := x[oy*o.st*o.iw:]
		d := dst[oy*o.ow : (oy+1)*o.ow]
		if acc {
			for ox := range d {
				d[ox] += a * r[ox*o.st]
			}
			continue
		}
		for ox := range d {
			d[ox] = a * r[ox*o.st]
		}
	}
}

// scatterAdd is sample's transpose: dx[oy·st][ox·st] += a·g[oy][ox].
func (o *copyConvOp) scatterAdd(dx, g []float32, a float32) {
	if o.st == 1 && o.ow == o.iw {
		dx = dx[:len(g)]
		for i, v := range g {
			dx[i] += a * v
		}
		return
	}
	for oy := 0; oy < o.oh; oy++ {
		r := dx[oy*o.st*o.iw:]
		s := g[oy*o.ow : (oy+1)*o.ow]
		for ox, v := range s {
			r[ox*o.st] += a * v
		}
	}
}

// dot returns Σ g[oy][ox]·x[oy·st][ox·st].
func (o *copyConvOp) dot(g, x []float32) float64 {
	var s float64
	if o.st == 1 && o.ow == o.iw {
		for i := 0; i < len(g); i += o.ow {
			s += float64(dot32(g[i:i+o.ow], x[i:]))
		}
		return s
	}
	for oy := 0; oy < o.oh; oy++ {
		r := x[oy*o.st*o.iw:]
		var a float32
		for ox, v := range g[oy*o.ow : (oy+1)*o.ow] {
			a += v * r[ox*o.st]
		}
		s += float64(a)
	}
	return s
}

// dotScatter is scatterAdd(dx, g, a) returning dot(g, x) in the same pass.
func (o *copyConvOp) dotScatter(dx, g, x []float32, a float32) float64 {
	if o.st != 1 || o.ow != o.iw {
		o.scatterAdd(dx, g, a)
		return o.dot(g, x)
	}
	var s float64
	for i := 0; i < len(g); i += o.ow {
		gr := g[i : i+o.ow]
		xr, dr := x[i:i+o.ow], dx[i:i+o.ow]
		var s0, s1 float32
		j := 0
		for ; j+2 <= len(gr); j += 2 {
			s0 += gr[j] * xr[j]
			s1 += gr[j+1] * xr[j+1]
			dr[j] += a * gr[j]
			dr[j+1] += a * gr[j+1]
		}
		for ; j < len(gr); j++ {
			s0 += gr[j] * xr[j]
			dr[j] += a * gr[j]
		}
		s += float64(s0 + s1)
	}
	return s
}

// accum adds src to dst (len(dst) floats).
func accum(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// dot32 returns Σ g[i]·x[i] over len(g) (a row: short float32 sums, added
// in float64 by the caller), with four accumulators.
func dot32(g, x []float32) float32 {
	x = x[:len(g)]
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(g); i += 4 {
		a0 += g[i] * x[i]
		a1 += g[i+1] * x[i+1]
		a2 += g[i+2] * x[i+2]
		a3 += g[i+3] * x[i+3]
	}
	for ; i < len(g); i++ {
		a0 += g[i] * x[i]
	}
	return (a0 + a1) + (a2 + a3)
}
