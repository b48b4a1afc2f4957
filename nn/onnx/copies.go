package onnx

import (
	"math"

	"github.com/rmprune/rmprune/nn"
)

// Copy-aware lowering. RM leaves exact copies in a plain net's convolutions
// (see nn.DiracRows and nn.CentreOnly): reserved channels are Dirac rows, and
// the identity or 1×1 projection is merged into the next conv as centre-only
// columns. Written as dense convolutions, ONNX Runtime computes every copy as
// MACs; the copy-aware form writes them as what they are:
//
//   - a Dirac row is not computed: the channel stays a reference to the
//     channel it copies (sampled with the conv's stride, scaled, biased), and
//     activations that leave it unchanged are skipped for it;
//   - a conv's centre-only columns that read such copies become a separate
//     term added onto the conv over the other columns: the copied ONNX value
//     itself when the term is the identity (a residual Add, as in the
//     original ResNet); a Gather of its channels (strided Slice first, a Mul
//     by the coefficients when they are not all 1) when each output reads at
//     most one of them (a pruned identity) and the value has fewer than
//     align channels; else a 1×1 conv (stride: the copies' sampling) over
//     that value with the centre taps as weights (the projection shortcut,
//     and a pruned identity over align or more channels), depthwise when
//     each output reads its own channel (a masked identity);
//   - a conv whose term is a pruned identity and whose output only convs
//     read writes its rows permuted, each at the channel it copies
//     (diagonalOrder), its readers placing their columns to match
//     (permuted): the term becomes diagonal, a Mul (which ONNX Runtime
//     turns into a depthwise conv in NCHWc) or a depthwise 1×1 conv,
//     fused into the conv's sum and ReLU, instead of a Gather or a full 1×1
//     conv;
//   - a conv whose output only convs read (through ReLUs) and has more than
//     align channels but not a multiple of it is padded with zero output
//     channels to one, its readers getting zero columns (alignPad), or, when
//     at most align/2 channels are left over, split into two convs (the
//     aligned part and the rest) that its readers read one conv each,
//     summed (splitRows): ONNX Runtime then runs those readers and the Add
//     and ReLU after them fused in its NCHWc layout instead of an im2col
//     fallback and separate passes;
//   - wherever an op needs the channels as one tensor (pools, linear, adds,
//     convs reading copies through other taps), they are materialised with
//     Slice (channel ranges, spatial steps), Concat, and Mul/Add for copies
//     that carry a scale or bias.
//
// For an RM-converted ResNet the result is the original ResNet's graph:
// conv, conv, Add of the block input (or a 1×1/s conv of it), ReLU.

// copyTol is how far a copy may stray from exact and still be written as one:
// BN folding leaves reserved channels a bias of a few 1e-8 and a scale one
// ulp from 1. A ReLU after a copy of a non-negative value is skipped when the
// copy's bias is ≥ −copyTol (it changes values by at most copyTol), and an
// identity term's scales may differ from 1 by copyTol (relative).
const copyTol = 1e-6

// seg is one channel of a lowered value: channel ch of ONNX value v, sampled
// every stride pixels (from pixel 0), times coef plus bias. copy marks a
// channel carried by a Dirac row rather than computed by the node's own op.
type seg struct {
	v          string
	ch, stride int
	coef, bias float32
	copy       bool
}

// plainSegs are the channels of a whole ONNX value.
func plainSegs(v string, c int) []seg {
	s := make([]seg, c)
	for i := range s {
		s[i] = seg{v: v, ch: i, stride: 1, coef: 1}
	}
	return s
}

// whole reports whether segs are exactly the channels of one ONNX value, in
// order and unchanged, and returns it.
func (l *lowering) whole(segs []seg) (string, bool) {
	if len(segs) == 0 || len(segs) != l.chans[segs[0].v] {
		return "", false
	}
	for i, s := range segs {
		if s.v != segs[0].v || s.ch != i || s.stride != 1 || s.coef != 1 || s.bias != 0 {
			return "", false
		}
	}
	return segs[0].v, true
}

// nonneg reports whether a channel is provably ≥ −copyTol.
func (l *lowering) nonnegSeg(s seg) bool {
	return l.nonneg[s.v] && s.coef > 0 && s.bias >= -copyTol
}

// parts returns the channels of nn node name.
func (l *lowering) parts(name string) []seg {
	if s := l.segs[name]; s != nil {
		return s
	}
	return plainSegs(l.value[name], l.chans[l.value[name]])
}

// setSegs records node name's channels: a plain value when they are one.
func (l *lowering) setSegs(name string, segs []seg) {
	if v, ok := l.whole(segs); ok {
		l.value[name] = v
		delete(l.segs, name)
	} else {
		l.segs[name] = segs
		delete(l.value, name)
	}
	l.rank[name] = 4
}

// plain makes sure nn node name has an ONNX value (materialising its
// channels when needed) and returns it.
func (l *lowering) plain(name string) string {
	if v, ok := l.value[name]; ok {
		return v
	}
	v := l.materialise(l.segs[name], name+"/copies")
	l.value[name] = v
	return v
}

// materialise writes segs as one ONNX value: Slice per run of channels of
// one value, Concat, then Mul and Add for scales and biases.
func (l *lowering) materialise(segs []seg, name string) string {
	if v, ok := l.whole(segs); ok {
		return v
	}
	var parts []string
	for i := 0; i < len(segs); {
		s := segs[i]
		j := i + 1
		for j < len(segs) && segs[j].v == s.v && segs[j].stride == s.stride && segs[j].ch == segs[j-1].ch+1 {
			j++
		}
		if s.ch == 0 && j-i == l.chans[s.v] && s.stride == 1 {
			parts = append(parts, s.v)
		} else {
			starts, ends, axes, steps := []int64{int64(s.ch)}, []int64{int64(s.ch + j - i)}, []int64{1}, []int64{1}
			if s.stride > 1 {
				starts = append(starts, 0, 0)
				ends = append(ends, math.MaxInt64, math.MaxInt64)
				axes = append(axes, 2, 3)
				steps = append(steps, int64(s.stride), int64(s.stride))
			}
			out := l.unique(name + "/slice")
			l.emit("Slice", out, []string{s.v, l.ints64(name+"/starts", starts), l.ints64(name+"/ends", ends),
				l.ints64(name+"/axes", axes), l.ints64(name+"/steps", steps)}, out)
			parts = append(parts, out)
		}
		i = j
	}
	v := parts[0]
	if len(parts) > 1 {
		v = l.unique(name + "/concat")
		l.emit("Concat", v, parts, v, intAttr("axis", 1))
	}
	c := len(segs)
	coef, bias := make([]float32, c), make([]float32, c)
	scaled, biased, nonneg := false, false, true
	for i, s := range segs {
		coef[i], bias[i] = s.coef, s.bias
		scaled = scaled || s.coef != 1
		biased = biased || s.bias != 0
		nonneg = nonneg && l.nonneg[s.v] && s.coef > 0 && s.bias >= 0
	}
	if scaled {
		out := l.unique(name + "/scale")
		l.emit("Mul", out, []string{v, l.constant(name+".scale", []int{c, 1, 1}, coef)}, out)
		v = out
	}
	if biased {
		out := l.unique(name + "/bias")
		l.emit("Add", out, []string{v, l.constant(name+".bias", []int{c, 1, 1}, bias)}, out)
		v = out
	}
	l.chans[v], l.nonneg[v] = c, nonneg
	return v
}

// ints64 adds an int64 initializer.
func (l *lowering) ints64(name string, v []int64) string {
	name = l.unique(name)
	l.inits = append(l.inits, &Tensor{Name: name, Dims: []int64{int64(len(v))}, DataType: Int64, Int64s: v})
	return name
}

// copyConv lowers a conv with Dirac rows or centre-only columns reading
// copies; it reports false when the conv has neither (lower it densely).
func (l *lowering) copyConv(n *nn.Node, out string) bool {
	if !nn.CopyConv(n) || l.rank[n.Inputs[0]] != 4 {
		return false
	}
	segs := l.parts(n.Inputs[0])
	m, c, k, st := n.Out, n.In, n.Kernel, n.Stride
	kk, centre := k*k, (k/2)*(k+1)
	w, b := n.P("weight"), n.P("bias")
	at := func(o, i, t int) float32 { return w[(o*c+i)*kk+t] }
	bias := func(o int) float32 {
		if b == nil {
			return 0
		}
		return b[o]
	}
	// A Dirac row is written as a copy when it is one up to copyTol (a
	// positive scale, no bias: a biased copy needs its own op and would not
	// pass the ReLU after it) and its consumers take it as a copy; else it
	// stays a dense row: a few MACs more, but no Slice and Concat pass.
	src, coef := nn.DiracRows(w, m, c, k)
	dirac := make([]bool, m)
	var rows, cols []int // dense rows, dense columns
	for o, s := range src {
		if s >= 0 {
			// A bias is carried along (seg.bias): folded into the readers'
			// biases, or materialised with the copy where a ReLU changes it.
			dirac[o] = coef[o] > 0 && l.absorbed(n.Name, o, k)
		}
		if !dirac[o] {
			rows = append(rows, o)
		}
	}
	only := nn.CentreOnly(w, m, c, k, dirac) // over the dense rows
	carried := make([]bool, c)
	nCarried := 0
	for i := range c {
		carried[i] = only[i] && segs[i].copy && len(rows) > 0
		if carried[i] {
			nCarried++
		} else {
			cols = append(cols, i)
		}
	}
	if len(rows) == m && nCarried == 0 {
		// No copies: lowered densely, unless it reads a padded or permuted
		// value (read whole with its columns placed, not materialised).
		if _, ok := l.whole(segs); ok {
			return false
		}
		if _, _, ok := l.permuted(segs); !ok {
			return false
		}
	}
	l.copies += m - len(rows) + nCarried
	var y string
	split, splitV := 0, [2]string{} // a split conv's first range and values
	if md := len(rows); md > 0 {
		// Bias of the dense rows, with the carried copies' biases (read at
		// the centre tap, always inside the input) folded in.
		bd := make([]float32, md)
		biasNZ := false
		for r, o := range rows {
			bd[r] = bias(o)
			for i := range c {
				if carried[i] {
					bd[r] += at(o, i, centre) * segs[i].bias
				}
			}
			biasNZ = biasNZ || bd[r] != 0
		}
		// Carried columns, grouped by the value they copy and its sampling.
		type key struct {
			v      string
			stride int
		}
		var order []key
		group := map[key][]int{}
		for i := range c {
			read := false // by a dense row (an all-zero carried column adds nothing)
			for _, o := range rows {
				read = read || at(o, i, centre) != 0
			}
			if carried[i] && read {
				kv := key{segs[i].v, segs[i].stride * st}
				if group[kv] == nil {
					order = append(order, kv)
				}
				group[kv] = append(group[kv], i)
			}
		}
		var terms []string
		biasDone := false
		// Channels of the written value: md, or padded with zero rows (see
		// alignPad).
		mo := md
		if l.padOK(n.Name) {
			mo = alignPad(md)
		}
		// Row order of the written value: a pruned identity's rows go to the
		// position of the channel they copy (the value is permuted, its
		// readers place their columns), so that the term is diagonal: a
		// depthwise conv or a Mul rather than a 1×1 conv or a Gather.
		if len(order) == 1 && l.padOK(n.Name) && l.chans[order[0].v] == mo && l.realChans(order[0].v) == md {
			perm := diagonalOrder(rows, group[order[0]], segs, func(o, i int) bool { return at(o, i, centre) != 0 }, md)
			pr, pb := make([]int, md), make([]float32, md)
			for r, q := range perm {
				pr[q], pb[q] = rows[r], bd[r]
			}
			rows, bd = pr, pb
		}
		padB := func(v []float32) []float32 {
			p := make([]float32, mo)
			copy(p, v)
			return p
		}
		if cd := len(cols); cd > 0 {
			ds := make([]seg, cd)
			for j, i := range cols {
				ds[j] = segs[i]
			}
			// The input: a zero-padded value whose real channels are the
			// columns is read whole, with zero columns for its padding; whole
			// values in a row (a split conv's outputs) are read one conv
			// each, summed; else the columns are materialised.
			type part struct {
				x      string
				cx, j0 int   // channels of x; its first column in cols
				n      int   // columns read
				pos    []int // channel of x per column (nil: in order)
			}
			var parts []part
			if v, pos, ok := l.permuted(ds); ok {
				parts = []part{{v, l.chans[v], 0, cd, pos}}
			} else if ps := l.runs(ds); len(ps) > 1 {
				for _, r := range ps {
					parts = append(parts, part{ds[r[0]].v, r[1] - r[0], r[0], r[1] - r[0], nil})
				}
			} else {
				parts = []part{{l.materialise(ds, n.Name+"/in"), cd, 0, cd, nil}}
			}
			// The output: split into an aligned conv and one over the few
			// rows left (see splitRows) when it has no term and one input.
			ranges := [][2]int{{0, mo}}
			if sp := l.splitRows(n.Name, md); sp > 0 && len(order) == 0 && len(parts) == 1 && mo > md {
				ranges = [][2]int{{0, sp}, {sp, md}}
				mo = md
				split = sp
			}
			sh := l.shapes[n.Name]
			for ri, rg := range ranges {
				mr := rg[1] - rg[0]
				var sum []string
				for pi, p := range parts {
					wd := make([]float32, mr*p.cx*kk)
					for r := range mr {
						if rg[0]+r >= md {
							break // padding
						}
						o := rows[rg[0]+r]
						for j := range p.n {
							i, x := cols[p.j0+j], j
							if p.pos != nil {
								x = p.pos[j]
							}
							copy(wd[(r*p.cx+x)*kk:(r*p.cx+x+1)*kk], w[(o*c+i)*kk:(o*c+i+1)*kk])
						}
					}
					ins := []string{p.x, l.tensor(n.Name+".weight", []int{mr, p.cx, k, k}, wd)}
					if pi == 0 && (biasNZ || b != nil) {
						bp := make([]float32, mr)
						for r := range mr {
							if rg[0]+r < md {
								bp[r] = bd[rg[0]+r]
							}
						}
						ins = append(ins, l.tensor(n.Name+".bias", []int{mr}, bp))
					}
					// MACs over the real rows and columns (the padding is
					// layout, as ONNX Runtime's own rounding up to align).
					l.macs += int64((min(rg[1], md)-rg[0])*p.n*kk) * int64(sh.H*sh.W)
					t := out
					if len(ranges) > 1 || len(parts) > 1 || len(order) > 0 {
						t = l.unique(n.Name + "/conv")
					}
					l.emit("Conv", t, ins, t, ints("dilations", 1, 1), intAttr("group", 1), ints("kernel_shape", int64(k), int64(k)),
						ints("pads", int64(k/2), int64(k/2), int64(k/2), int64(k/2)), ints("strides", int64(st), int64(st)))
					l.chans[t] = mr
					sum = append(sum, t)
				}
				if len(ranges) > 1 {
					splitV[ri] = sum[0]
				} else {
					terms = append(terms, sum...)
				}
			}
			biasDone = true
		}
		for _, kv := range order {
			cv := l.chans[kv.v]
			wc := make([]float32, mo*cv)
			for r, o := range rows {
				for _, i := range group[kv] {
					wc[r*cv+segs[i].ch] += at(o, i, centre) * segs[i].coef
				}
			}
			// The copied value itself: an identity over the real channels,
			// and the same padding on both sides (its padding is zero).
			if kv.stride == 1 && mo == cv && l.realChans(kv.v) == md && identity(wc, md, cv) {
				terms = append(terms, kv.v)
				continue
			}
			// A selection over a value that ONNX Runtime keeps in its NCHWc
			// layout (a multiple of align channels) is a 1×1 conv: it stays
			// in that layout and fuses into the conv's sum and ReLU. Over
			// fewer channels (NCHW there anyway) a Gather is cheaper.
			if mo == md && cv%align != 0 {
				if t, ok := l.gather(n.Name, kv.v, kv.stride, wc, md, cv); ok {
					terms = append(terms, t)
					continue
				}
			}
			// Each output reading its own channel (a masked identity, as the
			// RMNet reference code's mask_res) is a depthwise 1×1 conv.
			wt, dims, group := wc, []int{mo, cv, 1, 1}, 1
			macs := int64(md * l.realChans(kv.v))
			if d, ok := diagonal(wc, mo, cv); ok {
				wt, dims, group, macs = d, []int{cv, 1, 1, 1}, cv, int64(md)
			}
			ins := []string{kv.v, l.tensor(n.Name+".shortcut_weight", dims, wt)}
			if !biasDone && biasNZ {
				ins = append(ins, l.tensor(n.Name+".bias", []int{mo}, padB(bd)))
				biasDone = true
			}
			sh := l.shapes[n.Name]
			l.macs += macs * int64(sh.H*sh.W)
			t := l.unique(n.Name + "/shortcut")
			l.emit("Conv", t, ins, t, ints("dilations", 1, 1), intAttr("group", int64(group)), ints("kernel_shape", 1, 1),
				ints("pads", 0, 0, 0, 0), ints("strides", int64(kv.stride), int64(kv.stride)))
			terms = append(terms, t)
		}
		if !biasDone && biasNZ {
			terms = append(terms, l.tensor(n.Name+".bias", []int{mo, 1, 1}, padB(bd)))
		}
		if split > 0 {
			terms = []string{splitV[0]}
		}
		y = terms[0]
		for j, t := range terms[1:] {
			name := out
			if j < len(terms)-2 {
				name = l.unique(out + "/sum")
			}
			l.emit("Add", name, []string{y, t}, name)
			y = name
		}
		l.chans[y] = mo
		if split > 0 {
			l.chans[y] = split
		}
		if mo > md {
			l.real[y] = md
		}
	}
	res := make([]seg, m)
	pos := make([]int, m) // position of each dense row in the written value
	for r, o := range rows {
		pos[o] = r
	}
	for o := range m {
		if dirac[o] {
			s := segs[src[o]]
			res[o] = seg{v: s.v, ch: s.ch, stride: s.stride * st, coef: s.coef * coef[o], bias: s.bias*coef[o] + bias(o), copy: true}
			continue
		}
		res[o] = seg{v: y, ch: pos[o], stride: 1, coef: 1}
		if split > 0 && pos[o] >= split {
			res[o] = seg{v: splitV[1], ch: pos[o] - split, stride: 1, coef: 1}
		}
	}
	l.setSegs(n.Name, res)
	return true
}

// absorbed reports whether every consumer of channel ch of nn node name
// takes it as a copy: activations that may pass it on (followed, each
// reading only this node), and convs that read it through the centre tap
// only. Pools, linears, adds and convs reading it through other taps need
// the channel materialised. When the producing conv is 1×1 (kernel k), the
// consuming convs must be larger: a copy between two 1×1 convs saves a
// handful of MACs and costs a Gather and an Add.
func (l *lowering) absorbed(name string, ch, k int) bool {
	if l.consumers == nil {
		l.consumers = l.g.Consumers()
	}
	cs := l.consumers[name]
	if len(cs) == 0 {
		return false // the graph's output
	}
	for _, c := range cs {
		switch {
		case c.Op == nn.OpReLU || c.Op == nn.OpPReLU || c.Op == nn.OpClamp:
			if !l.absorbed(c.Name, ch, k) {
				return false
			}
		case nn.CopyConv(c) && len(c.Inputs) == 1:
			if k == 1 && c.Kernel == 1 {
				return false
			}
			only := l.centre[c.Name]
			if only == nil {
				only = nn.CentreOnly(c.P("weight"), c.Out, c.In, c.Kernel, nil)
				l.centre[c.Name] = only
			}
			if !only[ch] {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// identity reports whether the rows × cols matrix a is the identity on its
// first rows rows (diagonal within copyTol) and zero below.
func identity(a []float32, rows, cols int) bool {
	for i := range len(a) / cols {
		for j := range cols {
			v := a[i*cols+j]
			if i == j && i < rows && math.Abs(float64(v)-1) > copyTol || (i != j || i >= rows) && v != 0 {
				return false
			}
		}
	}
	return true
}

// copyAct lowers an activation reading a value that holds copies: the copies
// it leaves unchanged stay references, the computed channels get the op per
// ONNX value. It reports false when a copy would change (lower it densely).
func (l *lowering) copyAct(n *nn.Node, out string) bool {
	segs := l.segs[n.Inputs[0]]
	if segs == nil {
		return false
	}
	var lo, hi, slope []float32
	switch n.Op {
	case nn.OpReLU:
	case nn.OpPReLU:
		slope = n.P("weight")
	case nn.OpClamp:
		lo, hi = n.P("min"), n.P("max")
	default:
		return false
	}
	// Per computed value: its channels' parameters, each set once.
	type param struct{ slope, lo, hi []float32 }
	params := map[string]*param{}
	var order []string
	reluChanges := false // a copy the ReLU changes (a bias < 0, e.g. after fine-tuning with the copies kept)
	for i, s := range segs {
		if s.copy {
			keep := false
			switch n.Op {
			case nn.OpReLU:
				keep = l.nonnegSeg(s)
				if !keep && s.coef != 0 {
					reluChanges = true
					continue
				}
			case nn.OpPReLU:
				keep = slope[i] == 1 || l.nonnegSeg(s)
			case nn.OpClamp:
				keep = hi[i] >= math.MaxFloat32 && (lo[i] <= -math.MaxFloat32 || lo[i] <= 0 && l.nonnegSeg(s))
			}
			if !keep {
				return false
			}
			continue
		}
		p := params[s.v]
		if p == nil {
			cv := l.chans[s.v]
			p = &param{slope: nanVec(cv), lo: nanVec(cv), hi: nanVec(cv)}
			params[s.v] = p
			order = append(order, s.v)
		}
		set := func(dst []float32, v []float32) bool {
			if v == nil {
				return true
			}
			if !math.IsNaN(float64(dst[s.ch])) && dst[s.ch] != v[i] {
				return false
			}
			dst[s.ch] = v[i]
			return true
		}
		if !set(p.slope, slope) || !set(p.lo, lo) || !set(p.hi, hi) {
			return false
		}
	}
	for _, v := range order {
		p := params[v]
		for _, vec := range [][]float32{p.slope, p.lo, p.hi} {
			for _, x := range vec {
				if math.IsNaN(float64(x)) && n.Op != nn.OpReLU {
					return false // a channel of the value is not in this node
				}
			}
		}
	}
	l.copies++
	mapped := map[string]string{}
	for j, v := range order {
		p, cv := params[v], l.chans[v]
		name := out
		if j > 0 {
			name = l.unique(out)
		}
		switch n.Op {
		case nn.OpReLU:
			l.emit("Relu", name, []string{v}, name)
			l.nonneg[name] = true
			if r, ok := l.real[v]; ok {
				l.real[name] = r // ReLU keeps the zero padding
			}
		case nn.OpPReLU:
			l.emit("PRelu", name, []string{v, l.tensor(n.Name+".weight", []int{cv, 1, 1}, p.slope)}, name)
		case nn.OpClamp:
			mid := l.unique(name + "/max")
			l.emit("Max", mid, []string{v, l.tensor(n.Name+".min", []int{cv, 1, 1}, p.lo)}, mid)
			l.emit("Min", name, []string{mid, l.tensor(n.Name+".max", []int{cv, 1, 1}, p.hi)}, name)
			nonneg := true
			for _, x := range p.lo {
				nonneg = nonneg && x >= 0
			}
			l.nonneg[name] = nonneg
		}
		l.chans[name] = cv
		mapped[v] = name
	}
	res := make([]seg, len(segs))
	for i, s := range segs {
		if !s.copy {
			s.v = mapped[s.v]
		}
		res[i] = s
	}
	if reluChanges {
		// The copies get materialised (Slice, Mul, Add) and the ReLU: a value
		// of their own that the readers take as copies again (coefficient
		// 1), a few element-wise ops a channel instead of a 3×3 row of MACs.
		// All of them, also those the ReLU leaves alone, so that a reader's
		// carried term still comes from one value (one Gather).
		var copies []int
		for i, s := range segs {
			if s.copy {
				copies = append(copies, i)
			}
		}
		ms := make([]seg, len(copies))
		for j, i := range copies {
			ms[j] = segs[i]
			ms[j].copy = false
		}
		v := l.materialise(ms, n.Name+"/copies")
		r := l.unique(n.Name + "/copies/relu")
		l.emit("Relu", r, []string{v}, r)
		l.chans[r], l.nonneg[r] = len(copies), true
		for j, i := range copies {
			res[i] = seg{v: r, ch: j, stride: 1, coef: 1, copy: true}
		}
	}
	l.setSegs(n.Name, res)
	return true
}

func nanVec(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

// gather writes a carried term that is a selection (each row reads at most
// one channel of v) as a strided Slice, Gather and a Mul by the coefficients
// (0 for rows reading none) when they are not all 1. For v of fewer than
// align channels (RMNet-56 L1 50%'s first stage, 8 channels) ONNX Runtime
// 1.30 runs this faster than a 1×1 conv over v, whose NCHW-input kernel is
// slow; over more, the 1×1 conv wins (scripts/benchort, README).
func (l *lowering) gather(name, v string, stride int, wc []float32, md, cv int) (string, bool) {
	idx := make([]int64, md)
	coef := make([]float32, md)
	ones := true
	for r := range md {
		nz := 0
		for ch, x := range wc[r*cv : (r+1)*cv] {
			if x != 0 {
				nz++
				idx[r], coef[r] = int64(ch), x
			}
		}
		if nz > 1 {
			return "", false
		}
		ones = ones && coef[r] == 1
	}
	x := v
	if stride > 1 {
		x = l.unique(name + "/sample")
		l.emit("Slice", x, []string{v, l.ints64(name+"/starts", []int64{0, 0}), l.ints64(name+"/ends", []int64{math.MaxInt64, math.MaxInt64}),
			l.ints64(name+"/axes", []int64{2, 3}), l.ints64(name+"/steps", []int64{int64(stride), int64(stride)})}, x)
	}
	own := md == cv // each row reads its own channel (or none): no Gather
	for r := range md {
		own = own && (coef[r] == 0 || idx[r] == int64(r))
	}
	g := x
	if !own {
		g = l.unique(name + "/gather")
		l.emit("Gather", g, []string{x, l.ints64(name+"/index", idx)}, g, intAttr("axis", 1))
	}
	if ones {
		return g, true
	}
	m := l.unique(name + "/mask")
	l.emit("Mul", m, []string{g, l.constant(name+".mask", []int{md, 1, 1}, coef)}, m)
	return m, true
}

// align is ONNX Runtime's NCHWc block on AVX-512 (8 on AVX2): its NCHWc
// convolution takes inputs of fewer channels than this or a multiple of it,
// and computes outputs rounded up to a multiple of it.
const align = 16

// alignPad returns the channel count a conv's output is padded to with zero
// channels: c itself below align (such inputs take ONNX Runtime's NCHW-input
// kernel) and when aligned, else the next multiple of align, so that the
// convs reading it run ONNX Runtime's NCHWc kernels rather than its
// im2col fallback (which it picks for an input of 17 or 33 channels).
func alignPad(c int) int {
	if c < align || c%align == 0 {
		return c
	}
	return (c + align - 1) / align * align
}

// permuted reports whether segs are the real channels of one value (all
// but its zero padding), unchanged, each once, in any order, and returns the
// value and the channel of each seg: a conv reads it whole, its columns
// placed and zero for the padding.
func (l *lowering) permuted(segs []seg) (string, []int, bool) {
	if len(segs) == 0 {
		return "", nil, false
	}
	v := segs[0].v
	if len(segs) != l.realChans(v) {
		return "", nil, false
	}
	pos := make([]int, len(segs))
	seen := make([]bool, len(segs))
	for i, s := range segs {
		if s.v != v || s.stride != 1 || s.coef != 1 || s.bias != 0 || s.ch >= len(segs) || seen[s.ch] {
			return "", nil, false
		}
		seen[s.ch], pos[i] = true, s.ch
	}
	return v, pos, true
}

// diagonalOrder returns a position per dense row (a permutation of 0..md−1)
// putting each row that reads exactly one of the carried columns cols (reads
// reports whether row o reads column i) at the channel that column copies,
// the other rows in the positions left, in order.
func diagonalOrder(rows, cols []int, segs []seg, reads func(o, i int) bool, md int) []int {
	perm := make([]int, len(rows))
	taken := make([]bool, md)
	for r, o := range rows {
		perm[r] = -1
		ch, n := -1, 0
		for _, i := range cols {
			if reads(o, i) {
				ch, n = segs[i].ch, n+1
			}
		}
		if n == 1 && ch < md && !taken[ch] {
			perm[r], taken[ch] = ch, true
		}
	}
	q := 0
	for r := range perm {
		if perm[r] >= 0 {
			continue
		}
		for taken[q] {
			q++
		}
		perm[r], taken[q] = q, true
	}
	return perm
}

// realChans returns the real channels of ONNX value v (all but its zero
// padding).
func (l *lowering) realChans(v string) int {
	if r, ok := l.real[v]; ok {
		return r
	}
	return l.chans[v]
}

// padOK reports whether nn node name's output may be written zero-padded:
// its consumers, through ReLUs, are convs that the copy-aware lowering
// writes (they read the padding through zero columns).
func (l *lowering) padOK(name string) bool {
	if l.consumers == nil {
		l.consumers = l.g.Consumers()
	}
	cs := l.consumers[name]
	if len(cs) == 0 {
		return false
	}
	for _, c := range cs {
		switch {
		case c.Op == nn.OpReLU:
			if !l.padOK(c.Name) {
				return false
			}
		case nn.CopyConv(c) && len(c.Inputs) == 1:
		default:
			return false
		}
	}
	return true
}

// splitRows returns where a conv of md output channels read only by convs
// is split in two (0: not split): after the multiples of align when at most
// align/2 rows are left, so that its readers run a conv over an aligned
// input plus one over the few channels left (ONNX Runtime's NCHW-input
// kernel), summed, rather than read align−r zero channels of padding.
// Measured on RMNet-56 L1 50% (17, 33 and 34 channels: 16+1, 32+1, 32+2):
// 3–4% faster at batch 32 than padding, 1% at batch 1.
func (l *lowering) splitRows(name string, md int) int {
	r := md % align
	if md < align || r == 0 || r > align/2 || !l.padOK(name) {
		return 0
	}
	return md - r
}

// runs splits segs into runs that are each a whole ONNX value (channels
// 0..n-1 of it, unchanged), returning [start, end) per run, or nil.
func (l *lowering) runs(segs []seg) [][2]int {
	var out [][2]int
	for i := 0; i < len(segs); {
		v := segs[i].v
		n := l.chans[v]
		if i+n > len(segs) {
			return nil
		}
		if _, ok := l.whole(segs[i : i+n]); !ok {
			return nil
		}
		out = append(out, [2]int{i, i + n})
		i += n
	}
	return out
}

// diagonal returns the diagonal of the rows × cols matrix a when a is square
// and zero off it.
func diagonal(a []float32, rows, cols int) ([]float32, bool) {
	if rows != cols {
		return nil, false
	}
	d := make([]float32, rows)
	for i := range rows {
		for j := range cols {
			if v := a[i*cols+j]; i == j {
				d[i] = v
			} else if v != 0 {
				return nil, false
			}
		}
	}
	return d, true
}
