package nn

import (
	"fmt"
	"math"
)

// Act is a batch of activations in NCHW layout.
type Act struct {
	N, C, H, W int
	D          []float32
}

// NewAct allocates a zero activation.
func NewAct(n, c, h, w int) *Act {
	return &Act{N: n, C: c, H: h, W: w, D: make([]float32, n*c*h*w)}
}

// Shape is the per-image shape.
func (a *Act) Shape() Shape { return Shape{a.C, a.H, a.W} }

// Plane returns image n, channel c.
func (a *Act) Plane(n, c int) []float32 {
	hw := a.H * a.W
	o := (n*a.C + c) * hw
	return a.D[o : o+hw]
}

// Forward runs the reference (eval-mode) forward pass: clear loops with float64
// accumulation, the oracle for every fast path. visit, if not nil, sees every
// node's output (the slice must not be kept or modified).
func (g *Graph) Forward(x *Act, visit func(n *Node, out *Act)) (*Act, error) {
	if _, err := g.Shapes(x.Shape()); err != nil {
		return nil, err
	}
	// Free each activation after its last reader.
	last := map[string]int{}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			last[in] = i
		}
	}
	acts := map[string]*Act{}
	var out *Act
	for i, n := range g.Nodes {
		ins := make([]*Act, len(n.Inputs))
		for j, name := range n.Inputs {
			ins[j] = acts[name]
		}
		var err error
		if out, err = forwardNode(n, x, ins); err != nil {
			return nil, err
		}
		if visit != nil {
			visit(n, out)
		}
		acts[n.Name] = out
		for _, name := range n.Inputs {
			if last[name] == i {
				delete(acts, name)
			}
		}
	}
	return out, nil
}

func forwardNode(n *Node, x *Act, ins []*Act) (*Act, error) {
	switch n.Op {
	case OpInput:
		return x, nil
	case OpConv:
		return refConv(n, ins[0]), nil
	case OpBatchNorm:
		return refBatchNorm(n, ins[0]), nil
	case OpReLU:
		return mapAct(ins[0], func(_ int, v float32) float32 { return max(v, 0) }), nil
	case OpReLU6:
		return mapAct(ins[0], func(_ int, v float32) float32 { return min(max(v, 0), 6) }), nil
	case OpPReLU:
		a := n.P("weight")
		return mapAct(ins[0], func(c int, v float32) float32 {
			if v < 0 {
				return a[c] * v
			}
			return v
		}), nil
	case OpMask:
		m := n.P("weight")
		return mapAct(ins[0], func(c int, v float32) float32 { return m[c] * v }), nil
	case OpClamp:
		lo, hi := n.P("min"), n.P("max")
		return mapAct(ins[0], func(c int, v float32) float32 { return min(max(v, lo[c]), hi[c]) }), nil
	case OpAdd:
		y := NewAct(ins[0].N, ins[0].C, ins[0].H, ins[0].W)
		for i := range y.D {
			s := 0.0
			for _, a := range ins {
				s += float64(a.D[i])
			}
			y.D[i] = float32(s)
		}
		return y, nil
	case OpMaxPool, OpAvgPool:
		return refPool(n, ins[0]), nil
	case OpGlobalAvgPool:
		a := ins[0]
		y := NewAct(a.N, a.C, 1, 1)
		for b := 0; b < a.N; b++ {
			for c := 0; c < a.C; c++ {
				s := 0.0
				for _, v := range a.Plane(b, c) {
					s += float64(v)
				}
				y.D[b*a.C+c] = float32(s / float64(a.H*a.W))
			}
		}
		return y, nil
	case OpFlatten:
		a := ins[0]
		return &Act{N: a.N, C: a.C * a.H * a.W, H: 1, W: 1, D: a.D}, nil
	case OpLinear:
		return refLinear(n, ins[0]), nil
	}
	return nil, fmt.Errorf("nn: node %s: unknown op %q", n.Name, n.Op)
}

func mapAct(a *Act, f func(c int, v float32) float32) *Act {
	y := NewAct(a.N, a.C, a.H, a.W)
	hw := a.H * a.W
	for i, v := range a.D {
		y.D[i] = f((i/hw)%a.C, v)
	}
	return y
}

func refConv(n *Node, x *Act) *Act {
	k, s, p, g := n.Kernel, n.Stride, n.Pad, n.G()
	ho, wo := poolOut(x.H, k, s, p), poolOut(x.W, k, s, p)
	y := NewAct(x.N, n.Out, ho, wo)
	w, bias := n.P("weight"), n.P("bias")
	icg, ocg := n.In/g, n.Out/g
	acc := make([]float64, ho*wo)
	for b := 0; b < x.N; b++ {
		for oc := 0; oc < n.Out; oc++ {
			clear(acc)
			grp := oc / ocg
			for ic := 0; ic < icg; ic++ {
				in := x.Plane(b, grp*icg+ic)
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						wv := float64(w[((oc*icg+ic)*k+ky)*k+kx])
						if wv == 0 {
							continue
						}
						for oy := 0; oy < ho; oy++ {
							iy := oy*s - p + ky
							if iy < 0 || iy >= x.H {
								continue
							}
							row := in[iy*x.W:]
							for ox := 0; ox < wo; ox++ {
								ix := ox*s - p + kx
								if ix >= 0 && ix < x.W {
									acc[oy*wo+ox] += wv * float64(row[ix])
								}
							}
						}
					}
				}
			}
			b0 := 0.0
			if bias != nil {
				b0 = float64(bias[oc])
			}
			out := y.Plane(b, oc)
			for i, v := range acc {
				out[i] = float32(v + b0)
			}
		}
	}
	return y
}

// BNScaleShift returns the per-channel affine map of an eval-mode BatchNorm:
// y = scale·x + shift with scale = γ/√(σ²+ε), shift = β − scale·μ (in float64).
func BNScaleShift(n *Node) (scale, shift []float64) {
	gamma, beta := n.P("weight"), n.P("bias")
	mean, vr := n.P("running_mean"), n.P("running_var")
	scale = make([]float64, len(gamma))
	shift = make([]float64, len(gamma))
	for c := range gamma {
		scale[c] = float64(gamma[c]) / math.Sqrt(float64(vr[c])+n.eps())
		shift[c] = float64(beta[c]) - scale[c]*float64(mean[c])
	}
	return scale, shift
}

func (n *Node) eps() float64 {
	if n.Eps == 0 {
		return 1e-5
	}
	return n.Eps
}

func refBatchNorm(n *Node, x *Act) *Act {
	gamma, beta := n.P("weight"), n.P("bias")
	mean, vr := n.P("running_mean"), n.P("running_var")
	y := NewAct(x.N, x.C, x.H, x.W)
	for b := 0; b < x.N; b++ {
		for c := 0; c < x.C; c++ {
			inv := 1 / math.Sqrt(float64(vr[c])+n.eps())
			src, dst := x.Plane(b, c), y.Plane(b, c)
			for i, v := range src {
				dst[i] = float32((float64(v)-float64(mean[c]))*inv*float64(gamma[c]) + float64(beta[c]))
			}
		}
	}
	return y
}

func refPool(n *Node, x *Act) *Act {
	k, s, p := n.Kernel, n.Stride, n.Pad
	ho, wo := poolOut(x.H, k, s, p), poolOut(x.W, k, s, p)
	y := NewAct(x.N, x.C, ho, wo)
	for b := 0; b < x.N; b++ {
		for c := 0; c < x.C; c++ {
			in, out := x.Plane(b, c), y.Plane(b, c)
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					mx, sum := math.Inf(-1), 0.0
					for ky := 0; ky < k; ky++ {
						for kx := 0; kx < k; kx++ {
							iy, ix := oy*s-p+ky, ox*s-p+kx
							if iy < 0 || iy >= x.H || ix < 0 || ix >= x.W {
								continue
							}
							v := float64(in[iy*x.W+ix])
							mx = max(mx, v)
							sum += v
						}
					}
					if n.Op == OpMaxPool {
						out[oy*wo+ox] = float32(mx)
					} else {
						out[oy*wo+ox] = float32(sum / float64(k*k))
					}
				}
			}
		}
	}
	return y
}

func refLinear(n *Node, x *Act) *Act {
	w, bias := n.P("weight"), n.P("bias")
	y := NewAct(x.N, n.Out, 1, 1)
	for b := 0; b < x.N; b++ {
		in := x.D[b*n.In : (b+1)*n.In]
		for o := 0; o < n.Out; o++ {
			s := 0.0
			if bias != nil {
				s = float64(bias[o])
			}
			row := w[o*n.In : (o+1)*n.In]
			for i, v := range in {
				s += float64(row[i]) * float64(v)
			}
			y.D[b*n.Out+o] = float32(s)
		}
	}
	return y
}

// RelError is max|y−r| / max|r| and max|y−r|, the project's tolerance measure.
func RelError(y, r []float32) (rel, abs float64) {
	if len(y) != len(r) {
		return math.Inf(1), math.Inf(1)
	}
	var mr float64
	for i := range y {
		d := math.Abs(float64(y[i]) - float64(r[i]))
		if d > abs || math.IsNaN(d) {
			abs = d
		}
		mr = max(mr, math.Abs(float64(r[i])))
	}
	if mr == 0 {
		if abs == 0 {
			return 0, 0
		}
		return math.Inf(1), abs
	}
	return abs / mr, abs
}
