package pruning

import (
	"math"

	"github.com/rmprune/rmprune/nn"
)

// constants finds, for every node and channel, whether the channel's value is
// the same at every position for every input, and which: a float64 for a
// known constant, NaN otherwise. It mirrors the reference forward: a conv row
// whose weights on non-zero inputs all vanish outputs its bias; a BatchNorm
// with γ = 0 outputs β; activations and pools map constants to constants;
// padding breaks a non-zero constant (the border sees zeros).
func constants(g *nn.Graph, shapes map[string]nn.Shape) map[string][]float64 {
	vals := make(map[string][]float64, len(g.Nodes))
	unknown := func(c int) []float64 {
		v := make([]float64, c)
		for i := range v {
			v[i] = math.NaN()
		}
		return v
	}
	for _, n := range g.Nodes {
		var in []float64
		if len(n.Inputs) > 0 {
			in = vals[n.Inputs[0]]
		}
		switch n.Op {
		case nn.OpInput:
			vals[n.Name] = unknown(shapes[n.Name].C)
		case nn.OpConv:
			vals[n.Name] = convConst(n, in)
		case nn.OpBatchNorm:
			gamma, beta := n.P("weight"), n.P("bias")
			mean, vr := n.P("running_mean"), n.P("running_var")
			eps := n.Eps
			if eps == 0 {
				eps = 1e-5
			}
			out := unknown(len(gamma))
			for c := range out {
				switch {
				case !math.IsNaN(in[c]):
					inv := 1 / math.Sqrt(float64(vr[c])+eps)
					out[c] = float64(float32((in[c]-float64(mean[c]))*inv*float64(gamma[c]) + float64(beta[c])))
				case gamma[c] == 0:
					out[c] = float64(beta[c])
				}
			}
			vals[n.Name] = out
		case nn.OpReLU:
			vals[n.Name] = mapConst(in, func(_ int, v float64) float64 { return max(v, 0) })
		case nn.OpReLU6:
			vals[n.Name] = mapConst(in, func(_ int, v float64) float64 { return min(max(v, 0), 6) })
		case nn.OpPReLU:
			a := n.P("weight")
			vals[n.Name] = mapConst(in, func(c int, v float64) float64 {
				if v < 0 {
					return float64(float32(a[c]) * float32(v))
				}
				return v
			})
		case nn.OpClamp:
			lo, hi := n.P("min"), n.P("max")
			out := mapConst(in, func(c int, v float64) float64 { return min(max(v, float64(lo[c])), float64(hi[c])) })
			for c := range out {
				if math.IsNaN(out[c]) && lo[c] == hi[c] {
					out[c] = float64(lo[c])
				}
			}
			vals[n.Name] = out
		case nn.OpMaxPool, nn.OpGlobalAvgPool, nn.OpFlatten:
			// A max over a window of one constant is that constant (padding is
			// -inf); a mean over the plane too. Flatten keeps per-channel
			// values; its features are read per channel block.
			vals[n.Name] = in
		case nn.OpAvgPool:
			vals[n.Name] = mapConst(in, func(_ int, v float64) float64 {
				if n.Pad > 0 && v != 0 {
					return math.NaN()
				}
				return v
			})
		case nn.OpAdd:
			out := make([]float64, len(in))
			for _, name := range n.Inputs {
				for c, v := range vals[name] {
					out[c] += v
				}
			}
			vals[n.Name] = out
		default:
			vals[n.Name] = unknown(shapes[n.Name].C)
		}
	}
	return vals
}

func mapConst(in []float64, f func(c int, v float64) float64) []float64 {
	out := make([]float64, len(in))
	for c, v := range in {
		if math.IsNaN(v) {
			out[c] = v
		} else {
			out[c] = f(c, v)
		}
	}
	return out
}

// convConst returns the constant output channels of a conv given its input's.
// A constant input reaches every output position unchanged through taps that
// never read padding: all taps without padding, else only the centre tap of
// an odd kernel padded by kernel/2 (what RM's Dirac rows use).
func convConst(n *nn.Node, in []float64) []float64 {
	w, bias := n.P("weight"), n.P("bias")
	g := n.G()
	icg, ocg := n.In/g, n.Out/g
	kk := n.Kernel * n.Kernel
	centre := centreTap(n)
	out := make([]float64, n.Out)
	for o := range out {
		grp := o / ocg
		sum := 0.0
		for ic := 0; ic < icg; ic++ {
			x := in[grp*icg+ic]
			row := w[(o*icg+ic)*kk : (o*icg+ic+1)*kk]
			nz, offCentre := false, false
			for t, v := range row {
				if v != 0 {
					nz = true
					offCentre = offCentre || t != centre
				}
			}
			if !nz || x == 0 {
				continue
			}
			if math.IsNaN(x) || (n.Pad > 0 && offCentre) {
				sum = math.NaN()
				break
			}
			for _, v := range row {
				sum += float64(v) * x
			}
		}
		if bias != nil && !math.IsNaN(sum) {
			sum += float64(bias[o])
		}
		if !math.IsNaN(sum) {
			sum = float64(float32(sum))
		}
		out[o] = sum
	}
	return out
}

// centreTap returns the index of the tap that never reads padding whatever
// the input size (an odd kernel padded by kernel/2), or -1.
func centreTap(n *nn.Node) int {
	k := n.Kernel
	if n.Pad == 0 {
		return -1
	}
	if k%2 == 1 && n.Pad == k/2 {
		return (k/2)*k + k/2
	}
	return -1
}

// foldable reports whether a constant input channel c of reader can move
// into its bias exactly: always for a linear or a conv without padding, and
// for a padded conv whose weights on c sit only at the centre tap.
func foldable(r read, c int) bool {
	n := r.reader
	if n.Op == nn.OpLinear || n.Pad == 0 {
		return true
	}
	centre := centreTap(n)
	if centre < 0 {
		return false
	}
	w := n.P("weight")
	kk := n.Kernel * n.Kernel
	for o := 0; o < n.Out; o++ {
		for t, v := range w[(o*n.In+c)*kk : (o*n.In+c+1)*kk] {
			if v != 0 && t != centre {
				return false
			}
		}
	}
	return true
}

// columnZero reports whether reader's weights on channel c (block columns
// per channel) are all zero.
func columnZero(r read, c int) bool {
	w := r.reader.P("weight")
	var per, in int
	if r.reader.Op == nn.OpLinear {
		per, in = 1, r.reader.In
	} else {
		per, in = r.reader.Kernel*r.reader.Kernel, r.reader.In
	}
	out := len(w) / (in * per)
	for o := 0; o < out; o++ {
		row := w[o*in*per : (o+1)*in*per]
		for j := c * r.block; j < (c+1)*r.block; j++ {
			for _, v := range row[j*per : (j+1)*per] {
				if v != 0 {
					return false
				}
			}
		}
	}
	return true
}

// Channel classes for surgery.
type class uint8

const (
	classLive     class = iota // carries information: removing it is pruning
	classExact                 // removable without changing the output (dead, unread or foldable constant)
	classConstant              // a non-zero constant read through padding: kept
)

// classify sorts the channels of a prunable space. A channel is exact when
// every reader either has zero weights on it or reads it as zero or as a
// constant it can fold; it is a kept constant when it is a non-zero constant
// somewhere in the space but not exactly removable (its information is
// nil, but padding makes it differ at the border).
func classify(s *space, vals map[string][]float64) []class {
	cls := make([]class, s.n)
	for c := range cls {
		exact := true
		for _, r := range s.reads {
			if columnZero(r, c) {
				continue
			}
			v := vals[r.at.Name][c]
			if !(v == 0 || (!math.IsNaN(v) && foldable(r, c))) {
				exact = false
				break
			}
		}
		if exact {
			cls[c] = classExact
			continue
		}
		for _, n := range s.nodes {
			if v := vals[n.Name][c]; !math.IsNaN(v) && v != 0 {
				cls[c] = classConstant
				break
			}
		}
	}
	return cls
}
