package train

import (
	"math"
	"strings"

	"github.com/rmprune/rmprune/kernels"
	"github.com/rmprune/rmprune/nn"
)

// Mask-sparsity training (DESIGN "Mask-sparsity training"): the training op
// of nn.OpMask (y = m_c·x), its fusions, the running statistics masked
// ResNets collect, and the SGD rule of masks (penalty, hard threshold).
//
// Fusions, so that masks cost little over plain training:
//   - a mask that alone reads a BatchNorm (mask1, mask_mid) is computed by
//     that BatchNorm with γ' = m·γ and β' = m·β (exact: m·(γx̂+β)); its
//     gradients follow from the BatchNorm's: dγ = m·dγ', dβ = m·dβ',
//     dm = γ·dγ' + β·dβ'. No pass over the activation is added.
//   - a ReLU that alone reads a mask is computed by it (or by the BatchNorm
//     the mask is fused into).
//   - a mask that is not fused (mask_res.0 on the block input, mask2 on the
//     residual sum) collects, in its forward pass, BatchNorm-style running
//     statistics of its input (momentum 0.1, unbiased variance, as PyTorch)
//     as act_mean/act_var of the input node: running1 and running2 of the
//     RMNet reference code.

// maskOp is one mask layer.
type maskOp struct {
	t *Net
	l *layer
	m *Param
	// Fused into the BatchNorm it alone reads: bn computes it with the
	// effective parameters bn.gamma, bn.beta; gamma and beta are the
	// BatchNorm's own (trained) ones.
	bn          *bnOp
	gamma, beta *Param
	// fused: computed by the add it alone reads (maskedAddOp).
	fused bool
	// rm, rv are the running statistics of the input (nil: not collected).
	rm, rv   []float32
	fwd, bwd func(worker, lo, hi int)
}

// planMasks marks the fusions of every mask layer; plan calls it before it
// fuses ReLUs and allocates buffers.
func (t *Net) planMasks() {
	cons := map[*layer][]*layer{}
	for _, l := range t.layers {
		for _, in := range l.ins {
			cons[in] = append(cons[in], l)
		}
	}
	for _, l := range t.layers {
		if l.node.Op != nn.OpMask {
			continue
		}
		owner := l
		p := l.ins[0]
		if (p.node.Op == nn.OpBatchNorm || (p.node.Op == nn.OpAdd && len(p.ins) == 2)) && len(cons[p]) == 1 && p.relu == nil && !p.alias {
			// The BatchNorm or add writes the masked output: the mask's
			// buffers are its producer's (as a flatten's are its input's).
			l.alias, owner = true, p
		}
		if r := cons[l]; len(r) == 1 && r[0].node.Op == nn.OpReLU {
			owner.relu, r[0].fused = r[0], true
		}
	}
}

func (t *Net) newMask(l *layer) *maskOp {
	o := &maskOp{t: t, l: l, m: t.newParam(l.node, "weight", false)}
	o.m.Mask = true
	o.fwd, o.bwd = o.forwardTask, o.backwardTask
	if l.alias && l.ins[0].node.Op == nn.OpAdd {
		l.ins[0].impl.(*maskedAddOp).m = o.m
		o.fused = true
		return o
	}
	if l.alias {
		bn := l.ins[0].impl.(*bnOp)
		c := l.outS.C
		o.bn, o.gamma, o.beta = bn, bn.gamma, bn.beta
		bn.gamma = &Param{Name: bn.gamma.Name + "·mask", Data: make([]float32, c), Grad: make([]float32, c)}
		bn.beta = &Param{Name: bn.beta.Name + "·mask", Data: make([]float32, c), Grad: make([]float32, c)}
		return o
	}
	// Running statistics of the input, on the input node (the first mask
	// reading a node collects them).
	in := l.ins[0].node
	for _, other := range t.layers {
		if other == l {
			break
		}
		if mo, ok := other.impl.(*maskOp); ok && mo.rm != nil && other.ins[0].node == in {
			return o
		}
	}
	c := l.inS.C
	if p := in.P("act_mean"); len(p) != c {
		in.SetP("act_mean", []int{c}, make([]float32, c))
	}
	if p := in.P("act_var"); len(p) != c {
		v := make([]float32, c)
		for i := range v {
			v[i] = 1
		}
		in.SetP("act_var", []int{c}, v)
	}
	o.rm, o.rv = in.P("act_mean"), in.P("act_var")
	return o
}

// prepareMasks sets the effective parameters of the BatchNorms that compute
// a mask; Forward calls it first.
func (t *Net) prepareMasks() {
	for _, l := range t.layers {
		o, ok := l.impl.(*maskOp)
		if !ok || o.bn == nil {
			continue
		}
		for c, m := range o.m.Data {
			o.bn.gamma.Data[c] = m * o.gamma.Data[c]
			o.bn.beta.Data[c] = m * o.beta.Data[c]
		}
	}
}

// finishMasks turns the gradients of effective BatchNorm parameters into
// those of γ, β and the mask; Backward calls it last.
func (t *Net) finishMasks() {
	for _, l := range t.layers {
		o, ok := l.impl.(*maskOp)
		if !ok || o.bn == nil {
			continue
		}
		for c, m := range o.m.Data {
			dg, db := o.bn.gamma.Grad[c], o.bn.beta.Grad[c]
			o.gamma.Grad[c] = m * dg
			o.beta.Grad[c] = m * db
			o.m.Grad[c] = float32(float64(o.gamma.Data[c])*float64(dg) + float64(o.beta.Data[c])*float64(db))
		}
	}
}

func (o *maskOp) forward(t *Net, l *layer) {
	if o.bn == nil && !o.fused {
		t.pool.Run(l.outS.C, o.fwd)
	}
}

func (o *maskOp) forwardTask(_, lo, hi int) {
	t, l := o.t, o.l
	hw, C := l.outS.H*l.outS.W, l.outS.C
	x := l.ins[0].out
	out := l.out
	if l.relu != nil {
		out = l.relu.out
	}
	stats := t.train && o.rm != nil
	cnt := float64(t.n * hw)
	for c := lo; c < hi; c++ {
		m := o.m.Data[c]
		var s, ss float64
		for b := 0; b < t.n; b++ {
			src := x[(b*C+c)*hw : (b*C+c+1)*hw]
			dst := out[(b*C+c)*hw : (b*C+c+1)*hw]
			if stats {
				a, q := sumSq(src)
				s += a
				ss += q
			}
			scaleShift(dst, src, m, 0, l.relu != nil) // the plane is still in cache
		}
		if stats {
			mean := s / cnt
			vr := max(ss/cnt-mean*mean, 0)
			if cnt > 1 {
				vr *= cnt / (cnt - 1)
			}
			o.t.updateRunning(o.rm, o.rv, c, mean, vr)
		}
	}
}

func (o *maskOp) backward(t *Net, l *layer) {
	if o.bn == nil && !o.fused {
		t.pool.Run(l.outS.C, o.bwd)
	}
}

func (o *maskOp) backwardTask(_, lo, hi int) {
	t, l := o.t, o.l
	hw, C := l.outS.H*l.outS.W, l.outS.C
	x := l.ins[0].out
	dyAll := l.grad
	var gate []float32 // fused ReLU: its output gates the gradient
	if l.relu != nil {
		dyAll, gate = l.relu.grad, l.relu.out
	}
	dxAll := l.ins[0].grad
	acc := l.addIn[0]
	for c := lo; c < hi; c++ {
		m := o.m.Data[c]
		var dm float64
		for b := 0; b < t.n; b++ {
			xs := x[(b*C+c)*hw : (b*C+c+1)*hw]
			dy := dyAll[(b*C+c)*hw : (b*C+c+1)*hw]
			dy = dy[:len(xs)]
			var ys, dx []float32
			if gate != nil {
				ys = gate[(b*C+c)*hw : (b*C+c+1)*hw]
				ys = ys[:len(xs)]
			}
			if dxAll != nil {
				dx = dxAll[(b*C+c)*hw : (b*C+c+1)*hw]
				dx = dx[:len(xs)]
			}
			// dy is not written: it may be a buffer other layers read
			// (the add's, shared with the residual branch).
			if ys != nil && dx != nil && !acc {
				// The usual case (mask_res, mask2): gated, dx written.
				// Vector passes over the plane (in cache after the first):
				// dx = g, dm += Σ x·g, dx = m·g.
				kernels.Gate(dx, dy, ys)
				_, sx := sumDot(dx, xs, 0)
				dm += sx
				scaleShift(dx, dx, m, 0, false)
				continue
			}
			for i := 0; i < len(xs); i += 64 {
				var s float32
				e := min(i+64, len(xs))
				for j := i; j < e; j++ {
					g := dy[j]
					if ys != nil {
						g = reluGrad(g, ys[j])
					}
					s += xs[j] * g
					switch {
					case dx == nil:
					case acc:
						dx[j] += m * g
					default:
						dx[j] = m * g
					}
				}
				dm += float64(s)
			}
		}
		o.m.Grad[c] = float32(dm)
	}
}

// maskedAddOp is a two-input add whose only reader is a mask (mask2), with
// the mask's ReLU when it has one: y = ReLU(m·(a+b)). It collects the running
// statistics of a+b (running2) as act_mean/act_var of the add, and its
// backward writes both inputs' gradients and the mask's in one pass.
type maskedAddOp struct {
	t        *Net
	l        *layer
	m        *Param
	rm, rv   []float32
	fwd, bwd func(worker, lo, hi int)
}

// maskedAdd reports whether add layer l is read by a mask alone that it
// computes.
func (t *Net) maskedAdd(l *layer) bool {
	for _, o := range t.layers {
		if o.node.Op == nn.OpMask && o.alias && o.ins[0] == l {
			return true
		}
	}
	return false
}

func (t *Net) newMaskedAdd(l *layer) *maskedAddOp {
	o := &maskedAddOp{t: t, l: l}
	n, c := l.node, l.outS.C
	if p := n.P("act_mean"); len(p) != c {
		n.SetP("act_mean", []int{c}, make([]float32, c))
	}
	if p := n.P("act_var"); len(p) != c {
		n.SetP("act_var", []int{c}, maskOnes(c))
	}
	o.rm, o.rv = n.P("act_mean"), n.P("act_var")
	o.fwd, o.bwd = o.forwardTask, o.backwardTask
	return o
}

func maskOnes(c int) []float32 {
	v := make([]float32, c)
	for i := range v {
		v[i] = 1
	}
	return v
}

func (o *maskedAddOp) forward(t *Net, l *layer) { t.pool.Run(l.outS.C, o.fwd) }

func (o *maskedAddOp) forwardTask(_, lo, hi int) {
	t, l := o.t, o.l
	hw, C := l.outS.H*l.outS.W, l.outS.C
	xa, xb := l.ins[0].out, l.ins[1].out
	out := l.out
	if l.relu != nil {
		out = l.relu.out
	}
	stats := t.train
	cnt := float64(t.n * hw)
	for c := lo; c < hi; c++ {
		m := o.m.Data[c]
		var s, ss float64
		for b := 0; b < t.n; b++ {
			a := xa[(b*C+c)*hw : (b*C+c+1)*hw]
			bb := xb[(b*C+c)*hw : (b*C+c+1)*hw]
			dst := out[(b*C+c)*hw : (b*C+c+1)*hw]
			bb, dst = bb[:len(a)], dst[:len(a)]
			// One vector pass: dst = ReLU(m·(a+b)) and the statistics of a+b.
			sa, sq := kernels.AddScaleStats(dst, a, bb, m, l.relu != nil)
			s += sa
			ss += sq
		}
		if stats {
			mean := s / cnt
			vr := max(ss/cnt-mean*mean, 0)
			if cnt > 1 {
				vr *= cnt / (cnt - 1)
			}
			o.t.updateRunning(o.rm, o.rv, c, mean, vr)
		}
	}
}

func (o *maskedAddOp) backward(t *Net, l *layer) { t.pool.Run(l.outS.C, o.bwd) }

// backwardTask: g = the output gradient (gated by the ReLU); the inputs get
// m·g, the mask Σ (a+b)·g. The add's gradient buffer (which an input it
// alone reads shares) receives m·g; other inputs get it stored or added.
func (o *maskedAddOp) backwardTask(_, lo, hi int) {
	t, l := o.t, o.l
	hw, C := l.outS.H*l.outS.W, l.outS.C
	xa, xb := l.ins[0].out, l.ins[1].out
	dyAll := l.grad
	var gate []float32
	if l.relu != nil {
		dyAll, gate = l.relu.grad, l.relu.out
	}
	for c := lo; c < hi; c++ {
		m := o.m.Data[c]
		var dm float64
		for b := 0; b < t.n; b++ {
			off := (b*C + c) * hw
			a := xa[off : off+hw]
			bb := xb[off : off+hw]
			dy := dyAll[off : off+hw]
			bb, dy = bb[:len(a)], dy[:len(a)]
			var ys []float32
			if gate != nil {
				ys = gate[off : off+hw]
				ys = ys[:len(a)]
			}
			// The add's own gradient: m·g (shared with inputs it alone reads).
			own := l.grad[off : off+hw]
			own = own[:len(a)]
			// One vector pass: g = dy (gated), dm += Σ g·(a+b), own = m·g.
			// Without a ReLU own is dy itself.
			dm += kernels.GateDot2Scale(own, dy, ys, a, bb, m)
			for k, in := range l.ins {
				if in.grad != nil && !in.gradShared {
					store(in.grad[off:off+hw], own, l.addIn[k])
				}
			}
		}
		o.m.Grad[c] = float32(dm)
	}
}

// stepMask is SGD's update of a mask: the penalty s·sign(m) and weight decay
// join the gradient, and after the step a mask with |m| ≤ threshold is set to
// exactly 0 with its momentum cleared. A mask that is exactly 0 stays 0 (its
// gradient and momentum are cleared and it is not updated): a zero mask is a
// removed channel, also after a resume or in a later fine-tuning run.
func (o SGD) stepMask(p *Param, lr float32) {
	mu, wd, s := float32(o.Momentum), float32(o.WeightDecay), float32(o.MaskSparsity)
	th := float32(o.MaskThreshold)
	for i, v := range p.Data {
		if v == 0 || (p.Frozen != nil && p.Frozen[i]) {
			p.Grad[i], p.Mom[i] = 0, 0
			continue
		}
		g := p.Grad[i] + wd*v
		if v > 0 {
			g += s
		} else {
			g -= s
		}
		m := mu*p.Mom[i] + g
		nv := v - lr*m
		if float32(math.Abs(float64(nv))) <= th {
			nv, m = 0, 0
			p.Grad[i] = 0
		}
		p.Mom[i] = m
		p.Data[i] = nv
	}
}

// MaskStats counts a graph's masks and those exactly 0, per kind (the last
// component of the node name: mask1, mask_mid, mask_res.0, mask2, or the
// node name when it has none of these forms).
type MaskStats struct {
	Kind        string `json:"kind"`
	Channels    int    `json:"channels"`
	Zero        int    `json:"zero"`
	BelowThresh int    `json:"below_1e-2"` // 0 < |m| < 0.01
}

// CountMasks returns per-kind mask statistics of g, kinds in first-seen order.
func CountMasks(g *nn.Graph) []MaskStats {
	var out []MaskStats
	idx := map[string]int{}
	for _, n := range g.Nodes {
		if n.Op != nn.OpMask {
			continue
		}
		k := maskKind(n.Name)
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, MaskStats{Kind: k})
		}
		for _, v := range n.P("weight") {
			out[i].Channels++
			switch {
			case v == 0:
				out[i].Zero++
			case math.Abs(float64(v)) < 0.01:
				out[i].BelowThresh++
			}
		}
	}
	return out
}

func maskKind(name string) string {
	if name == "mask1" {
		return "stem mask1"
	}
	for _, k := range []string{"mask_res.0", "mask_mid", "mask1", "mask2"} {
		if strings.HasSuffix(name, "."+k) {
			return k
		}
	}
	return name
}
