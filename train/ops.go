package train

import (
	"math"

	"github.com/rmprune/rmprune/nn"
)

// bnOp is a BatchNorm: in training mode y = γ·(x−μ_B)/√(σ²_B+ε) + β with the
// batch's mean and biased variance, and running statistics updated as
// PyTorch does (momentum 0.1, unbiased variance); in eval mode the running
// statistics replace the batch's.
type bnOp struct {
	t         *Net
	l         *layer
	gamma     *Param
	beta      *Param
	rm, rv    []float32
	eps       float64
	mean, inv []float64 // per channel, of the last forward
	conv      *convOp   // the conv feeding this BatchNorm alone: it sums the batch statistics
	fwd, bwd  func(worker, lo, hi int)
}

const bnMomentum = 0.1

// updateRunning moves channel c's running statistics towards a batch's
// mean and variance, by bnMomentum, or by 1/k while recalibrating
// (Net.cumulative: the plain average of the k batches so far).
func (t *Net) updateRunning(rm, rv []float32, c int, mean, vr float64) {
	mo := bnMomentum
	if t.cumulative > 0 {
		mo = 1 / float64(t.cumulative)
	}
	rm[c] = float32((1-mo)*float64(rm[c]) + mo*mean)
	rv[c] = float32((1-mo)*float64(rv[c]) + mo*vr)
}

func (t *Net) newBN(l *layer) *bnOp {
	n := l.node
	c := l.outS.C
	o := &bnOp{t: t, l: l, gamma: t.newParam(n, "weight", true), beta: t.newParam(n, "bias", false),
		rm: n.P("running_mean"), rv: n.P("running_var"), eps: n.Eps, mean: make([]float64, c), inv: make([]float64, c)}
	if o.eps == 0 {
		o.eps = 1e-5
	}
	o.fwd, o.bwd = o.forwardTask, o.backwardTask
	return o
}

func (o *bnOp) forward(t *Net, l *layer) { t.pool.Run(l.outS.C, o.fwd) }

func (o *bnOp) forwardTask(_, lo, hi int) {
	t, l := o.t, o.l
	hw := l.outS.H * l.outS.W
	C := l.outS.C
	x := l.ins[0].out
	m := float64(t.n * hw)
	for c := lo; c < hi; c++ {
		var mean, inv float64
		if t.train {
			var s, ss float64
			if o.conv != nil {
				for _, st := range o.conv.stats {
					s += st[2*c]
					ss += st[2*c+1]
				}
			}
			for b := 0; b < t.n && o.conv == nil; b++ {
				a, q := sumSq(x[(b*C+c)*hw : (b*C+c+1)*hw])
				s += a
				ss += q
			}
			mean = s / m
			vr := max(ss/m-mean*mean, 0)
			inv = 1 / math.Sqrt(vr+o.eps)
			unbiased := vr
			if m > 1 {
				unbiased = vr * m / (m - 1)
			}
			t.updateRunning(o.rm, o.rv, c, mean, unbiased)
		} else {
			mean = float64(o.rm[c])
			inv = 1 / math.Sqrt(float64(o.rv[c])+o.eps)
		}
		o.mean[c], o.inv[c] = mean, inv
		a := float32(float64(o.gamma.Data[c]) * inv)
		sh := float32(float64(o.beta.Data[c]) - float64(o.gamma.Data[c])*inv*mean)
		out := l.out
		if l.relu != nil {
			out = l.relu.out
		}
		for b := 0; b < t.n; b++ {
			scaleShift(out[(b*C+c)*hw:(b*C+c+1)*hw], x[(b*C+c)*hw:(b*C+c+1)*hw], a, sh, l.relu != nil)
		}
	}
}

func (o *bnOp) backward(t *Net, l *layer) { t.pool.Run(l.outS.C, o.bwd) }

func (o *bnOp) backwardTask(_, lo, hi int) {
	t, l := o.t, o.l
	hw := l.outS.H * l.outS.W
	C := l.outS.C
	x, dy := l.ins[0].out, l.grad
	var mask []float32 // fused ReLU: its output gates the gradient
	if l.relu != nil {
		dy, mask = l.relu.grad, l.relu.out
	}
	in := l.ins[0]
	m := float64(t.n * hw)
	for c := lo; c < hi; c++ {
		mean, inv := o.mean[c], o.inv[c]
		mf := float32(mean)
		var sdy, sdyx float64
		for b := 0; b < t.n; b++ {
			xs := x[(b*C+c)*hw : (b*C+c+1)*hw]
			ds := dy[(b*C+c)*hw : (b*C+c+1)*hw]
			var a, q float64
			if mask != nil {
				// Gate in place (the ReLU's gradient is read by nothing
				// else) while summing.
				a, q = gateSumDot(ds, mask[(b*C+c)*hw:(b*C+c+1)*hw], xs, mf)
			} else {
				a, q = sumDot(ds, xs, mf)
			}
			sdy += a
			sdyx += q
		}
		g := float64(o.gamma.Data[c])
		o.beta.Grad[c] = float32(sdy)
		o.gamma.Grad[c] = float32(sdyx * inv)
		if in.grad == nil {
			continue
		}
		// dx = γ·inv·(dy − Σdy/m − x̂·Σ(dy·x̂)/m), x̂ = (x−μ)·inv.
		var k1, k2, k3 float32
		if t.train {
			k1 = float32(g * inv)
			k2 = float32(g * inv * sdy / m)
			k3 = float32(g * inv * inv * inv * sdyx / m)
		} else {
			k1 = float32(g * inv)
		}
		acc := l.addIn[0]
		for b := 0; b < t.n; b++ {
			r := (b*C + c) * hw
			bnInputGrad(in.grad[r:r+hw], dy[r:r+hw], x[r:r+hw], k1, k2, k3, mf, acc)
		}
	}
}

// actOp is ReLU, ReLU6, PReLU or a per-channel clamp.
type actOp struct {
	t        *Net
	l        *layer
	kind     nn.Op
	slope    *Param
	lo, hi   []float32
	fwd, bwd func(worker, lo, hi int)
}

func (t *Net) newAct(l *layer) *actOp {
	o := &actOp{t: t, l: l, kind: l.node.Op}
	switch o.kind {
	case nn.OpPReLU:
		o.slope = t.newParam(l.node, "weight", false)
	case nn.OpClamp:
		o.lo, o.hi = l.node.P("min"), l.node.P("max")
	}
	o.fwd, o.bwd = o.forwardTask, o.backwardTask
	return o
}

func (o *actOp) forward(t *Net, l *layer) {
	if !l.fused {
		t.pool.Run(l.outS.C, o.fwd)
	}
}

func (o *actOp) forwardTask(_, lo, hi int) {
	t, l := o.t, o.l
	hw, C := l.outS.H*l.outS.W, l.outS.C
	x := l.ins[0].out
	for c := lo; c < hi; c++ {
		for b := 0; b < t.n; b++ {
			src := x[(b*C+c)*hw : (b*C+c+1)*hw]
			dst := l.out[(b*C+c)*hw : (b*C+c+1)*hw]
			switch o.kind {
			case nn.OpReLU:
				for i, v := range src {
					dst[i] = max(v, 0)
				}
			case nn.OpReLU6:
				for i, v := range src {
					dst[i] = min(max(v, 0), 6)
				}
			case nn.OpClamp:
				a, z := o.lo[c], o.hi[c]
				for i, v := range src {
					dst[i] = min(max(v, a), z)
				}
			case nn.OpPReLU:
				a := o.slope.Data[c]
				for i, v := range src {
					if v < 0 {
						v *= a
					}
					dst[i] = v
				}
			}
		}
	}
}

func (o *actOp) backward(t *Net, l *layer) {
	if !l.fused {
		t.pool.Run(l.outS.C, o.bwd)
	}
}

func (o *actOp) backwardTask(_, lo, hi int) {
	t, l := o.t, o.l
	hw, C := l.outS.H*l.outS.W, l.outS.C
	x := l.ins[0].out
	dxAll := l.ins[0].grad
	acc := l.addIn[0]
	for c := lo; c < hi; c++ {
		var ds float64
		for b := 0; b < t.n; b++ {
			xs := x[(b*C+c)*hw : (b*C+c+1)*hw]
			dy := l.grad[(b*C+c)*hw : (b*C+c+1)*hw]
			if o.kind == nn.OpPReLU {
				var s float32
				for i, v := range xs {
					if v < 0 {
						s += dy[i] * v
					}
				}
				ds += float64(s)
			}
			if dxAll == nil {
				continue
			}
			dx := dxAll[(b*C+c)*hw : (b*C+c+1)*hw]
			if o.kind == nn.OpReLU {
				ys := l.out[(b*C+c)*hw : (b*C+c+1)*hw]
				if acc {
					for i, y := range ys {
						dx[i] += reluGrad(dy[i], y)
					}
				} else {
					for i, y := range ys {
						dx[i] = reluGrad(dy[i], y)
					}
				}
				continue
			}
			for i, v := range xs {
				g := dy[i]
				switch o.kind {
				case nn.OpReLU:
					if v <= 0 {
						g = 0
					}
				case nn.OpReLU6:
					if v <= 0 || v >= 6 {
						g = 0
					}
				case nn.OpClamp:
					if v < o.lo[c] || v > o.hi[c] {
						g = 0
					}
				case nn.OpPReLU:
					if v < 0 {
						g *= o.slope.Data[c]
					}
				}
				if acc {
					dx[i] += g
				} else {
					dx[i] = g
				}
			}
		}
		if o.kind == nn.OpPReLU {
			o.slope.Grad[c] = float32(ds)
		}
	}
}

// addOp sums its inputs.
type addOp struct {
	t        *Net
	l        *layer
	fwd, bwd func(worker, lo, hi int)
}

func (t *Net) newAdd(l *layer) *addOp {
	o := &addOp{t: t, l: l}
	o.fwd, o.bwd = o.forwardTask, o.backwardTask
	return o
}

func (o *addOp) forward(t *Net, l *layer) { t.pool.Run(t.n, o.fwd) }

func (o *addOp) forwardTask(_, lo, hi int) {
	l := o.l
	sz := l.outS.Numel()
	out := l.out
	if l.relu != nil {
		out = l.relu.out
	}
	dst := out[lo*sz : hi*sz]
	a := l.ins[0].out[lo*sz : hi*sz]
	if len(l.ins) == 2 {
		b := l.ins[1].out[lo*sz : hi*sz]
		b = b[:len(a)]
		dst = dst[:len(a)]
		addTo(dst, a, b, l.relu != nil)
		return
	}
	copy(dst, a)
	for _, in := range l.ins[1:] {
		src := in.out[lo*sz : hi*sz]
		for i, v := range src {
			dst[i] += v
		}
	}
	if l.relu != nil {
		for i, v := range dst {
			dst[i] = max(v, 0)
		}
	}
}

func (o *addOp) backward(t *Net, l *layer) { t.pool.Run(t.n, o.bwd) }

func (o *addOp) backwardTask(_, lo, hi int) {
	l := o.l
	sz := l.outS.Numel()
	dy := l.grad[lo*sz : hi*sz]
	if l.relu != nil {
		g := l.relu.grad[lo*sz : hi*sz]
		y := l.relu.out[lo*sz : hi*sz]
		g = g[:len(dy)]
		y = y[:len(dy)]
		// The usual residual block: one input shares dy, the other
		// (the shortcut) gets it in the same pass.
		if len(l.ins) == 2 && l.ins[0].gradShared && l.ins[1].grad != nil && !l.ins[1].gradShared {
			gate2(dy, l.ins[1].grad[lo*sz:hi*sz], g, y, l.addIn[1])
			return
		}
		gate(dy, g, y)
	}
	for j, in := range l.ins {
		if in.grad != nil && !in.gradShared {
			store(in.grad[lo*sz:hi*sz], dy, l.addIn[j])
		}
	}
}

// poolOp is a max or average pool (padding counted in the average, as
// PyTorch's default; −∞ padding for the max).
type poolOp struct {
	t        *Net
	l        *layer
	max      bool
	arg      []int32 // max: input index of every output
	fwd, bwd func(worker, lo, hi int)
}

func (t *Net) newPool(l *layer) *poolOp {
	o := &poolOp{t: t, l: l, max: l.node.Op == nn.OpMaxPool}
	if o.max {
		o.arg = make([]int32, t.maxBatch*l.outS.Numel())
	}
	o.fwd, o.bwd = o.forwardTask, o.backwardTask
	return o
}

func (o *poolOp) forward(t *Net, l *layer) { t.pool.Run(t.n*l.outS.C, o.fwd) }

func (o *poolOp) forwardTask(_, lo, hi int) {
	l := o.l
	n := l.node
	k, s, p := n.Kernel, n.Stride, n.Pad
	H, W := l.inS.H, l.inS.W
	ho, wo := l.outS.H, l.outS.W
	inv := 1 / float32(k*k)
	for pl := lo; pl < hi; pl++ {
		src := l.ins[0].out[pl*H*W : (pl+1)*H*W]
		dst := l.out[pl*ho*wo : (pl+1)*ho*wo]
		for oy := 0; oy < ho; oy++ {
			for ox := 0; ox < wo; ox++ {
				best, bi := float32(math.Inf(-1)), int32(-1)
				var sum float32
				for ky := 0; ky < k; ky++ {
					iy := oy*s - p + ky
					if iy < 0 || iy >= H {
						continue
					}
					for kx := 0; kx < k; kx++ {
						ix := ox*s - p + kx
						if ix < 0 || ix >= W {
							continue
						}
						v := src[iy*W+ix]
						sum += v
						if v > best || bi < 0 {
							best, bi = v, int32(iy*W+ix)
						}
					}
				}
				if o.max {
					dst[oy*wo+ox] = best
					o.arg[pl*ho*wo+oy*wo+ox] = bi
				} else {
					dst[oy*wo+ox] = sum * inv
				}
			}
		}
	}
}

func (o *poolOp) backward(t *Net, l *layer) {
	if l.ins[0].grad != nil {
		t.pool.Run(t.n*l.outS.C, o.bwd)
	}
}

func (o *poolOp) backwardTask(_, lo, hi int) {
	l := o.l
	n := l.node
	k, s, p := n.Kernel, n.Stride, n.Pad
	H, W := l.inS.H, l.inS.W
	ho, wo := l.outS.H, l.outS.W
	inv := 1 / float32(k*k)
	for pl := lo; pl < hi; pl++ {
		dx := l.ins[0].grad[pl*H*W : (pl+1)*H*W]
		if !l.addIn[0] {
			clear(dx)
		}
		dy := l.grad[pl*ho*wo : (pl+1)*ho*wo]
		if o.max {
			for i, g := range dy {
				dx[o.arg[pl*ho*wo+i]] += g
			}
			continue
		}
		for oy := 0; oy < ho; oy++ {
			for ox := 0; ox < wo; ox++ {
				g := dy[oy*wo+ox] * inv
				for ky := 0; ky < k; ky++ {
					iy := oy*s - p + ky
					if iy < 0 || iy >= H {
						continue
					}
					for kx := 0; kx < k; kx++ {
						ix := ox*s - p + kx
						if ix >= 0 && ix < W {
							dx[iy*W+ix] += g
						}
					}
				}
			}
		}
	}
}

// gapOp is the global average pool.
type gapOp struct {
	t        *Net
	l        *layer
	fwd, bwd func(worker, lo, hi int)
}

func (t *Net) newGAP(l *layer) *gapOp {
	o := &gapOp{t: t, l: l}
	o.fwd, o.bwd = o.forwardTask, o.backwardTask
	return o
}

func (o *gapOp) forward(t *Net, l *layer) { t.pool.Run(t.n*l.outS.C, o.fwd) }

func (o *gapOp) forwardTask(_, lo, hi int) {
	l := o.l
	hw := l.inS.H * l.inS.W
	for pl := lo; pl < hi; pl++ {
		var s float64
		for _, v := range l.ins[0].out[pl*hw : (pl+1)*hw] {
			s += float64(v)
		}
		l.out[pl] = float32(s / float64(hw))
	}
}

func (o *gapOp) backward(t *Net, l *layer) {
	if l.ins[0].grad != nil {
		t.pool.Run(t.n*l.outS.C, o.bwd)
	}
}

func (o *gapOp) backwardTask(_, lo, hi int) {
	l := o.l
	hw := l.inS.H * l.inS.W
	inv := 1 / float32(hw)
	acc := l.addIn[0]
	for pl := lo; pl < hi; pl++ {
		g := l.grad[pl] * inv
		dx := l.ins[0].grad[pl*hw : (pl+1)*hw]
		for i := range dx {
			if acc {
				dx[i] += g
			} else {
				dx[i] = g
			}
		}
	}
}

// flattenOp reshapes; when it is its input's only reader it shares the
// input's buffers and does nothing.
type flattenOp struct{}

func (flattenOp) forward(t *Net, l *layer) {
	if !l.alias {
		sz := t.n * l.outS.Numel()
		copy(l.out[:sz], l.ins[0].out[:sz])
	}
}

func (flattenOp) backward(t *Net, l *layer) {
	if !l.alias && l.ins[0].grad != nil {
		sz := t.n * l.outS.Numel()
		store(l.ins[0].grad[:sz], l.grad[:sz], l.addIn[0])
	}
}

// linearOp is y = x·Wᵀ + b (plain loops: classifiers are small).
type linearOp struct {
	t              *Net
	l              *layer
	w, b           *Param
	acc            [][]float64 // per worker: one row of dW
	fwd, bwd, bwdW func(worker, lo, hi int)
}

func (t *Net) newLinear(l *layer) *linearOp {
	o := &linearOp{t: t, l: l, w: t.newParam(l.node, "weight", false)}
	if l.node.Params["bias"] != nil {
		o.b = t.newParam(l.node, "bias", false)
	}
	for range t.workers() {
		o.acc = append(o.acc, make([]float64, l.node.In))
	}
	o.fwd, o.bwd, o.bwdW = o.forwardTask, o.backwardTask, o.weightTask
	return o
}

func (o *linearOp) forward(t *Net, l *layer) { t.pool.Run(t.n, o.fwd) }

func (o *linearOp) forwardTask(_, lo, hi int) {
	l := o.l
	in, out := l.node.In, l.node.Out
	for b := lo; b < hi; b++ {
		x := l.ins[0].out[b*in : (b+1)*in]
		y := l.out[b*out : (b+1)*out]
		for j := range y {
			row := o.w.Data[j*in : (j+1)*in]
			var s float64
			if o.b != nil {
				s = float64(o.b.Data[j])
			}
			for i, v := range x {
				s += float64(row[i] * v)
			}
			y[j] = float32(s)
		}
	}
}

func (o *linearOp) backward(t *Net, l *layer) {
	t.pool.Run(l.node.Out, o.bwdW)
	if l.ins[0].grad != nil {
		t.pool.Run(t.n, o.bwd)
	}
}

// weightTask computes the gradient rows [lo, hi) of W and b.
func (o *linearOp) weightTask(worker, lo, hi int) {
	t, l := o.t, o.l
	in, out := l.node.In, l.node.Out
	acc := o.acc[worker]
	for j := lo; j < hi; j++ {
		clear(acc)
		var sb float64
		for b := 0; b < t.n; b++ {
			g := l.grad[b*out+j]
			if g == 0 {
				continue
			}
			sb += float64(g)
			x := l.ins[0].out[b*in : (b+1)*in]
			for i, v := range x {
				acc[i] += float64(g * v)
			}
		}
		dw := o.w.Grad[j*in : (j+1)*in]
		for i, v := range acc {
			dw[i] = float32(v)
		}
		if o.b != nil {
			o.b.Grad[j] = float32(sb)
		}
	}
}

func (o *linearOp) backwardTask(_, lo, hi int) {
	l := o.l
	in, out := l.node.In, l.node.Out
	acc := l.addIn[0]
	for b := lo; b < hi; b++ {
		dy := l.grad[b*out : (b+1)*out]
		dx := l.ins[0].grad[b*in : (b+1)*in]
		if !acc {
			clear(dx)
		}
		for j, g := range dy {
			row := o.w.Data[j*in : (j+1)*in]
			for i, v := range row {
				dx[i] += g * v
			}
		}
	}
}
