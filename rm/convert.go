package rm

import (
	"fmt"
	"math"
	"slices"

	"github.com/rmprune/rmprune/nn"
)

type converter struct {
	g      *nn.Graph
	opt    Options
	st     *stats
	shapes map[string]nn.Shape
	nonneg map[string]bool
	rename map[string]string      // original node → node of the converted graph holding the same tensor
	masks  map[string]*blockMasks // add name → masks the BN-kept form carries (mask-trained nets)

	nodes  []*nn.Node
	layers map[string]*Layer
	blocks []Block
}

func (c *converter) name(orig string) string {
	if r, ok := c.rename[orig]; ok {
		return r
	}
	return orig
}

func (c *converter) emit(n *nn.Node) string {
	c.nodes = append(c.nodes, n)
	return n.Name
}

func (c *converter) run(blocks []*block) (*Result, error) {
	byAdd := map[string]*block{}
	member := map[string]bool{}
	for _, b := range blocks {
		byAdd[b.add.Name] = b
		for m := range b.members {
			member[m] = true
		}
	}
	c.layers = map[string]*Layer{}
	for _, n := range c.g.Nodes {
		if b := byAdd[n.Name]; b != nil {
			var err error
			if b.kind == "repvgg" {
				err = c.repvgg(b)
			} else {
				err = c.residual(b)
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		if member[n.Name] {
			continue
		}
		m := n.Clone()
		for i, in := range m.Inputs {
			m.Inputs[i] = c.name(in)
		}
		if m.Op == nn.OpConv {
			c.layers[m.Name] = &Layer{Conv: m.Name, Kinds: make([]Kind, m.Out), Origin: seq(m.Out)}
		}
		c.emit(m)
	}
	if !c.opt.KeepBN {
		c.nodes = foldBN(c.nodes)
	}
	out := &nn.Graph{}
	*out = *c.g
	out.Nodes = c.nodes
	out.Mean, out.Std = slices.Clone(c.g.Mean), slices.Clone(c.g.Std)
	out.Labels = slices.Clone(c.g.Labels)
	out.Form = "rmnet"
	out.Arch = plainArch(c.g.Arch)
	res := &Result{Graph: out, Blocks: c.blocks, Reserved: map[string]int{}}
	for _, n := range out.Nodes {
		if l := c.layers[n.Name]; n.Op == nn.OpConv && l != nil {
			res.Layers = append(res.Layers, *l)
		}
	}
	annotate(res)
	return res, nil
}

// annotate fills each layer's BN and Act and the Reserved map from the graph.
func annotate(res *Result) {
	cons := res.Graph.Consumers()
	byName := map[string]*nn.Node{}
	for _, n := range res.Graph.Nodes {
		byName[n.Name] = n
	}
	single := func(name string) *nn.Node {
		if cs := cons[name]; len(cs) == 1 {
			return cs[0]
		}
		return nil
	}
	clear(res.Reserved)
	for i := range res.Layers {
		l := &res.Layers[i]
		l.BN, l.Act = "", ""
		next := single(l.Conv)
		if next != nil && next.Op == nn.OpBatchNorm {
			l.BN = next.Name
			next = single(next.Name)
		}
		if next != nil && isAct(next.Op) {
			l.Act = next.Name
		}
		if r := l.Reserved(); r > 0 {
			res.Reserved[l.Conv] = r
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// foldBN folds every BatchNorm that follows a conv it alone reads, in place.
func foldBN(nodes []*nn.Node) []*nn.Node {
	readers := map[string]int{}
	for _, n := range nodes {
		for _, in := range n.Inputs {
			readers[in]++
		}
	}
	byName := map[string]*nn.Node{}
	rename := map[string]string{}
	var kept []*nn.Node
	for _, n := range nodes {
		for i, in := range n.Inputs {
			if r, ok := rename[in]; ok {
				n.Inputs[i] = r
			}
		}
		if n.Op == nn.OpBatchNorm {
			if conv := byName[n.Inputs[0]]; conv != nil && conv.Op == nn.OpConv && readers[conv.Name] == 1 {
				nn.FoldBNInto(conv, n)
				rename[n.Name] = conv.Name
				continue
			}
		}
		byName[n.Name] = n
		kept = append(kept, n)
	}
	return kept
}

// affine returns the per-output-channel map of a unit's conv bias and BN:
// unit output = scale·(W∗x) + shift, W∗x without the conv's bias. c is the
// channel count (used when the unit has neither).
func affine(u unit, c int) (scale, shift []float64) {
	if u.conv != nil {
		c = u.conv.Out
	}
	scale = make([]float64, c)
	shift = make([]float64, c)
	for i := range scale {
		scale[i] = 1
	}
	if u.conv != nil {
		if b := u.conv.P("bias"); b != nil {
			for i := range shift {
				shift[i] = float64(b[i])
			}
		}
	}
	if u.bn != nil {
		s, t := nn.BNScaleShift(u.bn)
		for i := range scale {
			scale[i] = s[i]
			shift[i] = s[i]*shift[i] + t[i]
		}
	}
	return scale, shift
}

// denseAt returns conv's weight as if ungrouped: element [o][j][t] for output
// o, input channel j (of all In), tap t; zero outside o's group.
func denseAt(conv *nn.Node) func(o, j, t int) float64 {
	w := conv.P("weight")
	g := conv.G()
	icg, ocg := conv.In/g, conv.Out/g
	kk := conv.Kernel * conv.Kernel
	return func(o, j, t int) float64 {
		grp := o / ocg
		ic := j - grp*icg
		if ic < 0 || ic >= icg {
			return 0
		}
		return float64(w[(o*icg+ic)*kk+t])
	}
}

func isDepthwise(n *nn.Node) bool { return n.G() > 1 && n.G() == n.In && n.In == n.Out }

func epsOf(bn *nn.Node) float64 {
	if bn == nil || bn.Eps == 0 {
		return 1e-5
	}
	return bn.Eps
}

// residual emits the plain form of a residual block: every main-branch unit
// but the last gets cr reserved rows (Dirac, bias 0) in front; the last one
// merges the shortcut into its first cr columns.
func (c *converter) residual(b *block) error {
	keep := c.opt.KeepBN
	cr := b.main[0].conv.In
	prev := c.name(b.input.Name)
	info := Block{Name: b.name, Kind: b.kind, Input: b.input.Name, Add: b.add.Name, Reserved: cr, Projection: b.short.conv != nil}
	bm := c.masks[b.add.Name]
	if err := checkMasks(b, bm, cr, b.main[len(b.main)-1].conv.Out); err != nil {
		return err
	}
	var resMask, outMask []float64
	if bm != nil {
		resMask, outMask = bm.res, bm.out
		info.Masked = true
	}
	stride := 1
	for i, u := range b.main {
		conv := u.conv
		stride *= conv.Stride
		scale, shift := affine(u, 0)
		k := conv.Kernel
		kk, centre := k*k, (k/2)*k+k/2
		dense := denseAt(conv)
		nc := &nn.Node{Name: conv.Name, Op: nn.OpConv, Inputs: []string{prev}, Kernel: k, Stride: conv.Stride, Pad: conv.Pad}
		info.Convs = append(info.Convs, nc.Name)
		if i < len(b.main)-1 {
			// Reserving: [Dirac ; W].
			first := i == 0
			nc.Out = cr + conv.Out
			off := cr // input column of the original channel 0
			if first {
				off = 0
			}
			nc.In = off + conv.In
			mult := func(o int) float64 {
				if keep {
					return 1
				}
				return scale[o]
			}
			var w []float32
			if !first && isDepthwise(conv) {
				nc.Groups = nc.Out
				w = make([]float32, nc.Out*kk)
				for r := 0; r < cr; r++ {
					w[r*kk+centre] = 1
				}
				cw := conv.P("weight")
				for o := 0; o < conv.Out; o++ {
					for t := 0; t < kk; t++ {
						w[(cr+o)*kk+t] = float32(float64(cw[o*kk+t]) * mult(o))
					}
				}
				nc.SetP("weight", []int{nc.Out, 1, k, k}, w)
			} else {
				w = make([]float32, nc.Out*nc.In*kk)
				for r := 0; r < cr; r++ {
					w[(r*nc.In+r)*kk+centre] = 1
				}
				for o := 0; o < conv.Out; o++ {
					m := mult(o)
					row := w[(cr+o)*nc.In*kk:]
					for j := 0; j < conv.In; j++ {
						for t := 0; t < kk; t++ {
							if v := dense(o, j, t); v != 0 {
								row[(off+j)*kk+t] = float32(v * m)
							}
						}
					}
				}
				nc.SetP("weight", []int{nc.Out, nc.In, k, k}, w)
			}
			kinds := make([]Kind, nc.Out)
			origin := make([]int, nc.Out)
			for r := range nc.Out {
				if r < cr {
					kinds[r], origin[r] = KindReserved, r
				} else {
					kinds[r], origin[r] = KindInner, r-cr
				}
			}
			c.layers[nc.Name] = &Layer{Conv: nc.Name, Block: b.name, Kinds: kinds, Origin: origin, From: b.input.Name}
			if keep {
				if cb := conv.P("bias"); cb != nil {
					bias := make([]float32, nc.Out)
					copy(bias[cr:], cb)
					nc.SetP("bias", []int{nc.Out}, bias)
				}
				prev = c.emit(nc)
				st := c.st.get(b.input.Name, stride, cr)
				info.InputStats = worse(info.InputStats, st.src)
				s := resMask
				if !first && resMask != nil {
					// The first reserved BN already scaled the channels: this
					// one carries m·x, an identity with m·x's statistics.
					st, s = scaleStat(st, resMask), nil
				}
				prev = c.emit(reservedBN(u, nc, st, s))
			} else {
				bias := make([]float32, nc.Out)
				for o := 0; o < conv.Out; o++ {
					bias[cr+o] = float32(shift[o])
				}
				nc.SetP("bias", []int{nc.Out}, bias)
				prev = c.emit(nc)
			}
			if u.act != nil {
				a, err := reservedAct(u.act, cr, conv.Out, c.nonneg[b.input.Name])
				if err != nil {
					return fmt.Errorf("rm: block %s: %w", b.name, err)
				}
				a.Inputs = []string{prev}
				prev = c.emit(a)
			}
			continue
		}
		// Merging: [S | W], S the shortcut's linear map at the centre tap.
		nc.In, nc.Out = cr+conv.In, conv.Out
		sm, sb := shortcutMap(b.short, cr, conv.Out)
		w := make([]float32, nc.Out*nc.In*kk)
		for o := 0; o < nc.Out; o++ {
			row := w[o*nc.In*kk:]
			for r := 0; r < cr; r++ {
				row[r*kk+centre] = float32(sm[o*cr+r])
			}
			for j := 0; j < conv.In; j++ {
				for t := 0; t < kk; t++ {
					if v := dense(o, j, t); v != 0 {
						row[(cr+j)*kk+t] = float32(v * scale[o])
					}
				}
			}
		}
		nc.SetP("weight", []int{nc.Out, nc.In, k, k}, w)
		bsum := make([]float64, nc.Out)
		for o := range bsum {
			bsum[o] = shift[o] + sb[o]
		}
		c.layers[nc.Name] = &Layer{Conv: nc.Name, Block: b.name, Kinds: fill(nc.Out, KindBlockOut), Origin: seq(nc.Out)}
		if keep {
			prev = c.emit(nc)
			st := c.st.get(b.add.Name, 1, nc.Out)
			info.SumStats = st.src
			name := conv.Name + ".bn"
			if u.bn != nil {
				name = u.bn.Name
			}
			prev = c.emit(sumBN(name, prev, epsOf(u.bn), st, bsum, outMask))
		} else {
			bias := make([]float32, nc.Out)
			for o := range bias {
				bias[o] = float32(bsum[o])
			}
			nc.SetP("bias", []int{nc.Out}, bias)
			prev = c.emit(nc)
		}
	}
	c.rename[b.add.Name] = prev
	info.Output = prev
	c.blocks = append(c.blocks, info)
	return nil
}

// worse combines the sources of several statistics into the least
// preferred one.
func worse(a, b string) string {
	rank := map[string]int{"": 0, SourceCalib: 1, SourceCheckpoint: 2, SourceDefault: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func fill(n int, k Kind) []Kind {
	s := make([]Kind, n)
	for i := range s {
		s[i] = k
	}
	return s
}

// reservedBN is the BN of a reserving unit in the BN-kept form: reserved
// channels γ = √(v+ε)·s, β = μ·s with running (μ, v) — s·x whatever the
// statistics, s = max(mask_res, 0) of a mask-trained block (nil: 1) — and
// the unit's own BN (or an identity BN) on the rest.
func reservedBN(u unit, conv *nn.Node, st stat, s []float64) *nn.Node {
	cr := len(st.mean)
	c := conv.Out
	eps := epsOf(u.bn)
	name := conv.Name + ".bn"
	if u.bn != nil {
		name = u.bn.Name
	}
	n := &nn.Node{Name: name, Op: nn.OpBatchNorm, Inputs: []string{conv.Name}, Eps: eps}
	gamma, beta := make([]float32, c), make([]float32, c)
	mean, vr := make([]float32, c), make([]float32, c)
	for r := 0; r < cr; r++ {
		v := float32(st.vr[r])
		mean[r], vr[r] = float32(st.mean[r]), v
		gamma[r], beta[r] = scaled(math.Sqrt(float64(v)+eps), s, r), scaled(float64(mean[r]), s, r)
	}
	if u.bn != nil {
		copy(gamma[cr:], u.bn.P("weight"))
		copy(beta[cr:], u.bn.P("bias"))
		copy(mean[cr:], u.bn.P("running_mean"))
		copy(vr[cr:], u.bn.P("running_var"))
	} else {
		for o := cr; o < c; o++ {
			gamma[o], vr[o] = float32(math.Sqrt(1+eps)), 1
		}
	}
	n.SetP("weight", []int{c}, gamma)
	n.SetP("bias", []int{c}, beta)
	n.SetP("running_mean", []int{c}, mean)
	n.SetP("running_var", []int{c}, vr)
	return n
}

// scaleStat returns the statistics of m·x given those of x.
func scaleStat(st stat, m []float64) stat {
	out := stat{mean: make([]float64, len(st.mean)), vr: make([]float64, len(st.vr)), src: st.src}
	for i := range st.mean {
		out.mean[i], out.vr[i] = st.mean[i]*m[i], st.vr[i]*m[i]*m[i]
	}
	return out
}

// scaled returns v·s[i] in float32 (v when s is nil), with a zero scale
// giving +0 exactly.
func scaled(v float64, s []float64, i int) float32 {
	if s == nil {
		return float32(v)
	}
	if s[i] == 0 {
		return 0
	}
	return float32(v * s[i])
}

// sumBN is the BN after a merged conv in the BN-kept form: γ = √(v_s+ε)·m,
// β = μ_s·m, running_var = v_s, running_mean = μ_s − bias, so BN(z) =
// m·(z + bias); m is a mask-trained block's mask2 (nil: 1).
func sumBN(name, input string, eps float64, st stat, bias []float64, m []float64) *nn.Node {
	c := len(bias)
	n := &nn.Node{Name: name, Op: nn.OpBatchNorm, Inputs: []string{input}, Eps: eps}
	gamma, beta := make([]float32, c), make([]float32, c)
	mean, vr := make([]float32, c), make([]float32, c)
	for o := 0; o < c; o++ {
		v := float32(st.vr[o])
		mu := float32(st.mean[o])
		gamma[o] = scaled(math.Sqrt(float64(v)+eps), m, o)
		beta[o] = scaled(float64(mu), m, o)
		mean[o] = float32(float64(mu) - bias[o])
		vr[o] = v
	}
	n.SetP("weight", []int{c}, gamma)
	n.SetP("bias", []int{c}, beta)
	n.SetP("running_mean", []int{c}, mean)
	n.SetP("running_var", []int{c}, vr)
	return n
}

// shortcutMap returns the shortcut's linear map S [cout×cin] (multiplicative
// part: weights times BN scale) and its bias.
func shortcutMap(sc unit, cin, cout int) (s, bias []float64) {
	s = make([]float64, cout*cin)
	scale, shift := affine(sc, cout)
	switch {
	case sc.conv == nil:
		for o := 0; o < cout; o++ {
			s[o*cin+o] = scale[o]
		}
	default:
		dense := denseAt(sc.conv)
		for o := 0; o < cout; o++ {
			for j := 0; j < cin; j++ {
				s[o*cin+j] = dense(o, j, 0) * scale[o]
			}
		}
	}
	return s, shift
}

// reservedAct returns the activation of a reserving unit: the identity on
// the cr reserved channels, act on the c others. A ReLU stays a ReLU when the
// block input is ≥ 0; otherwise it becomes a PReLU with slope 1 on reserved
// channels and 0 on the others. A ReLU6 becomes a per-channel clamp: [0, 6] on
// the original channels, unbounded (±Inf) on the reserved ones.
func reservedAct(a *nn.Node, cr, c int, nonneg bool) (*nn.Node, error) {
	n := &nn.Node{Name: a.Name, Op: a.Op}
	inf := float32(math.Inf(1))
	switch a.Op {
	case nn.OpReLU:
		if nonneg {
			return n, nil
		}
		n.Op = nn.OpPReLU
		w := make([]float32, cr+c)
		for r := 0; r < cr; r++ {
			w[r] = 1
		}
		n.SetP("weight", []int{cr + c}, w)
	case nn.OpPReLU:
		w := make([]float32, cr+c)
		for r := 0; r < cr; r++ {
			w[r] = 1
		}
		copy(w[cr:], a.P("weight"))
		n.SetP("weight", []int{cr + c}, w)
	case nn.OpReLU6, nn.OpClamp:
		lo, hi := make([]float32, cr+c), make([]float32, cr+c)
		for r := 0; r < cr; r++ {
			lo[r], hi[r] = -inf, inf
		}
		if a.Op == nn.OpReLU6 {
			for o := cr; o < cr+c; o++ {
				lo[o], hi[o] = 0, 6
			}
		} else {
			copy(lo[cr:], a.P("min"))
			copy(hi[cr:], a.P("max"))
		}
		n.Op = nn.OpClamp
		n.SetP("min", []int{cr + c}, lo)
		n.SetP("max", []int{cr + c}, hi)
	default:
		return nil, fmt.Errorf("node %s: activation %s: %w", a.Name, a.Op, ErrPattern)
	}
	return n, nil
}

// repvgg merges the branches of a RepVGG block into one conv (structural
// re-parameterisation): conv branches centred in the largest kernel, BN and
// identity branches as scaled Dirac kernels. Rows that come out as an exact
// Dirac with bias 0 (RepVGG + RM's reserved channels) are reserved channels.
func (c *converter) repvgg(b *block) error {
	keep := c.opt.KeepBN
	cin := c.shapes[b.input.Name].C
	cout := c.shapes[b.add.Name].C
	k, stride := 1, 1
	for _, u := range b.branches {
		if u.conv != nil {
			k, stride = max(k, u.conv.Kernel), u.conv.Stride
		}
	}
	kk, centre := k*k, (k/2)*k+k/2
	w := make([]float64, cout*cin*kk)
	bias := make([]float64, cout)
	for _, u := range b.branches {
		scale, shift := affine(u, cout)
		for o := range bias {
			bias[o] += shift[o]
		}
		if u.conv == nil {
			if cin != cout {
				return fmt.Errorf("rm: block %s: identity branch maps %d channels to %d: %w", b.name, cin, cout, ErrPattern)
			}
			for o := 0; o < cout; o++ {
				w[(o*cin+o)*kk+centre] += scale[o]
			}
			continue
		}
		dense := denseAt(u.conv)
		kc := u.conv.Kernel
		d := (k - kc) / 2
		for o := 0; o < cout; o++ {
			for j := 0; j < cin; j++ {
				for ty := 0; ty < kc; ty++ {
					for tx := 0; tx < kc; tx++ {
						if v := dense(o, j, ty*kc+tx); v != 0 {
							w[(o*cin+j)*kk+(ty+d)*k+tx+d] += v * scale[o]
						}
					}
				}
			}
		}
	}
	name := b.name + ".rbr_reparam"
	if b.name == b.add.Name { // the add is not named <prefix>.add
		name = b.add.Name + ".conv"
	}
	nc := &nn.Node{Name: name, Op: nn.OpConv, Inputs: []string{c.name(b.input.Name)}, In: cin, Out: cout, Kernel: k, Stride: stride, Pad: k / 2}
	kinds, origin := fill(cout, KindBlockOut), seq(cout)
	wf := make([]float32, len(w))
	reserved := 0
	for o := 0; o < cout; o++ {
		row := w[o*cin*kk : (o+1)*cin*kk]
		dirac := bias[o] == 0 && o < cin
		for i, v := range row {
			if i == o*kk+centre {
				dirac = dirac && math.Abs(v-1) <= 1e-6
			} else {
				dirac = dirac && v == 0
			}
		}
		if dirac {
			row[o*kk+centre] = 1
			kinds[o] = KindReserved
			reserved++
		}
	}
	for i, v := range w {
		wf[i] = float32(v)
	}
	nc.SetP("weight", []int{cout, cin, k, k}, wf)
	c.layers[nc.Name] = &Layer{Conv: nc.Name, Block: b.name, Kinds: kinds, Origin: origin, From: b.input.Name}
	info := Block{Name: b.name, Kind: b.kind, Input: b.input.Name, Add: b.add.Name, Reserved: reserved, Convs: []string{nc.Name}}
	prev := ""
	if keep {
		prev = c.emit(nc)
		st := c.st.get(b.add.Name, 1, cout)
		info.SumStats = st.src
		var eps float64
		for _, u := range b.branches {
			if u.bn != nil {
				eps = epsOf(u.bn)
			}
		}
		if eps == 0 {
			eps = 1e-5
		}
		prev = c.emit(sumBN(b.name+".bn", prev, eps, st, bias, nil))
	} else {
		bf := make([]float32, cout)
		for o := range bf {
			bf[o] = float32(bias[o])
		}
		nc.SetP("bias", []int{cout}, bf)
		prev = c.emit(nc)
	}
	c.rename[b.add.Name] = prev
	info.Output = prev
	c.blocks = append(c.blocks, info)
	return nil
}
