package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/rmprune/rmprune/nn"
)

// ref64 is the test oracle: a training-mode forward pass in float64 with
// plain loops, written independently of the package's code. Finite
// differences of its loss are the reference gradients.
type ref64 struct {
	g *nn.Graph
	p map[string][]float64 // <node>.<param> → values
}

func newRef64(g *nn.Graph) *ref64 {
	r := &ref64{g: g, p: map[string][]float64{}}
	for _, n := range g.Nodes {
		for name := range n.Params {
			src := n.P(name)
			d := make([]float64, len(src))
			for i, v := range src {
				d[i] = float64(v)
			}
			r.p[n.Name+"."+name] = d
		}
	}
	return r
}

type act64 struct {
	n, c, h, w int
	d          []float64
}

func (a act64) at(b, c, y, x int) float64 { return a.d[((b*a.c+c)*a.h+y)*a.w+x] }

// forward returns the output of the last node for n images x (NCHW).
func (r *ref64) forward(x []float64, n int, in nn.Shape) act64 {
	acts := map[string]act64{}
	var out act64
	for _, nd := range r.g.Nodes {
		var ins []act64
		for _, name := range nd.Inputs {
			ins = append(ins, acts[name])
		}
		P := func(name string) []float64 { return r.p[nd.Name+"."+name] }
		switch nd.Op {
		case nn.OpInput:
			out = act64{n, in.C, in.H, in.W, x}
		case nn.OpConv:
			a := ins[0]
			k, s, pd, g := nd.Kernel, nd.Stride, nd.Pad, nd.G()
			ho, wo := (a.h+2*pd-k)/s+1, (a.w+2*pd-k)/s+1
			out = act64{n, nd.Out, ho, wo, make([]float64, n*nd.Out*ho*wo)}
			w, bias := P("weight"), P("bias")
			icg, ocg := nd.In/g, nd.Out/g
			for b := 0; b < n; b++ {
				for oc := 0; oc < nd.Out; oc++ {
					for oy := 0; oy < ho; oy++ {
						for ox := 0; ox < wo; ox++ {
							sum := 0.0
							if bias != nil {
								sum = bias[oc]
							}
							for ic := 0; ic < icg; ic++ {
								ci := oc/ocg*icg + ic
								for ky := 0; ky < k; ky++ {
									for kx := 0; kx < k; kx++ {
										iy, ix := oy*s-pd+ky, ox*s-pd+kx
										if iy >= 0 && iy < a.h && ix >= 0 && ix < a.w {
											sum += w[((oc*icg+ic)*k+ky)*k+kx] * a.at(b, ci, iy, ix)
										}
									}
								}
							}
							out.d[((b*nd.Out+oc)*ho+oy)*wo+ox] = sum
						}
					}
				}
			}
		case nn.OpBatchNorm:
			a := ins[0]
			out = act64{a.n, a.c, a.h, a.w, make([]float64, len(a.d))}
			gm, bt := P("weight"), P("bias")
			eps := nd.Eps
			if eps == 0 {
				eps = 1e-5
			}
			hw := a.h * a.w
			for c := 0; c < a.c; c++ {
				mean, vr := 0.0, 0.0
				for b := 0; b < n; b++ {
					for i := 0; i < hw; i++ {
						mean += a.d[(b*a.c+c)*hw+i]
					}
				}
				mean /= float64(n * hw)
				for b := 0; b < n; b++ {
					for i := 0; i < hw; i++ {
						d := a.d[(b*a.c+c)*hw+i] - mean
						vr += d * d
					}
				}
				vr /= float64(n * hw)
				for b := 0; b < n; b++ {
					for i := 0; i < hw; i++ {
						j := (b*a.c+c)*hw + i
						out.d[j] = (a.d[j]-mean)/math.Sqrt(vr+eps)*gm[c] + bt[c]
					}
				}
			}
		case nn.OpReLU, nn.OpReLU6, nn.OpPReLU, nn.OpClamp, nn.OpMask:
			a := ins[0]
			out = act64{a.n, a.c, a.h, a.w, make([]float64, len(a.d))}
			hw := a.h * a.w
			for j, v := range a.d {
				c := j / hw % a.c
				switch nd.Op {
				case nn.OpReLU:
					v = math.Max(v, 0)
				case nn.OpReLU6:
					v = math.Min(math.Max(v, 0), 6)
				case nn.OpPReLU:
					if v < 0 {
						v *= P("weight")[c]
					}
				case nn.OpClamp:
					v = math.Min(math.Max(v, P("min")[c]), P("max")[c])
				case nn.OpMask:
					v *= P("weight")[c]
				}
				out.d[j] = v
			}
		case nn.OpAdd:
			a := ins[0]
			out = act64{a.n, a.c, a.h, a.w, make([]float64, len(a.d))}
			for _, in := range ins {
				for j, v := range in.d {
					out.d[j] += v
				}
			}
		case nn.OpMaxPool, nn.OpAvgPool:
			a := ins[0]
			k, s, pd := nd.Kernel, nd.Stride, nd.Pad
			ho, wo := (a.h+2*pd-k)/s+1, (a.w+2*pd-k)/s+1
			out = act64{n, a.c, ho, wo, make([]float64, n*a.c*ho*wo)}
			for b := 0; b < n; b++ {
				for c := 0; c < a.c; c++ {
					for oy := 0; oy < ho; oy++ {
						for ox := 0; ox < wo; ox++ {
							mx, sum := math.Inf(-1), 0.0
							for ky := 0; ky < k; ky++ {
								for kx := 0; kx < k; kx++ {
									iy, ix := oy*s-pd+ky, ox*s-pd+kx
									if iy >= 0 && iy < a.h && ix >= 0 && ix < a.w {
										mx = math.Max(mx, a.at(b, c, iy, ix))
										sum += a.at(b, c, iy, ix)
									}
								}
							}
							v := sum / float64(k*k)
							if nd.Op == nn.OpMaxPool {
								v = mx
							}
							out.d[((b*a.c+c)*ho+oy)*wo+ox] = v
						}
					}
				}
			}
		case nn.OpGlobalAvgPool:
			a := ins[0]
			out = act64{n, a.c, 1, 1, make([]float64, n*a.c)}
			hw := a.h * a.w
			for j := range out.d {
				for i := 0; i < hw; i++ {
					out.d[j] += a.d[j*hw+i]
				}
				out.d[j] /= float64(hw)
			}
		case nn.OpFlatten:
			a := ins[0]
			out = act64{n, a.c * a.h * a.w, 1, 1, a.d}
		case nn.OpLinear:
			a := ins[0]
			w, bias := P("weight"), P("bias")
			out = act64{n, nd.Out, 1, 1, make([]float64, n*nd.Out)}
			for b := 0; b < n; b++ {
				for o := 0; o < nd.Out; o++ {
					s := 0.0
					if bias != nil {
						s = bias[o]
					}
					for i := 0; i < nd.In; i++ {
						s += w[o*nd.In+i] * a.d[b*nd.In+i]
					}
					out.d[b*nd.Out+o] = s
				}
			}
		default:
			panic(fmt.Sprintf("ref64: op %s", nd.Op))
		}
		acts[nd.Name] = out
	}
	return out
}

// crossEntropy64 is the mean softmax cross-entropy of logits y (n × k).
func crossEntropy64(y act64, labels []int) float64 {
	k := y.c
	loss := 0.0
	for b, lab := range labels {
		z := y.d[b*k : (b+1)*k]
		m := math.Inf(-1)
		for _, v := range z {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range z {
			s += math.Exp(v - m)
		}
		loss += math.Log(s) + m - z[lab]
	}
	return loss / float64(len(labels))
}

// graphBuilder assembles small test graphs with random parameters.
type graphBuilder struct {
	g   *nn.Graph
	rng *rand.Rand
}

func newGraphBuilder(c, h, w int, seed uint64) *graphBuilder {
	g := &nn.Graph{Nodes: []*nn.Node{{Name: "input", Op: nn.OpInput, Out: c}}, Input: [3]int{c, h, w}}
	return &graphBuilder{g: g, rng: rand.New(rand.NewPCG(seed, 1))}
}

func (b *graphBuilder) randn(n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(b.rng.NormFloat64() * scale)
	}
	return v
}

func (b *graphBuilder) add(n *nn.Node) string {
	b.g.Nodes = append(b.g.Nodes, n)
	return n.Name
}

func (b *graphBuilder) conv(name, in string, cin, cout, k, s, p, groups int, bias bool) string {
	n := &nn.Node{Name: name, Op: nn.OpConv, Inputs: []string{in}, In: cin, Out: cout, Kernel: k, Stride: s, Pad: p, Groups: groups}
	fan := cin / groups * k * k
	n.SetP("weight", []int{cout, cin / groups, k, k}, b.randn(cout*fan, 1/math.Sqrt(float64(fan))))
	if bias {
		n.SetP("bias", []int{cout}, b.randn(cout, 0.1))
	}
	return b.add(n)
}

func (b *graphBuilder) bn(name, in string, c int) string {
	n := &nn.Node{Name: name, Op: nn.OpBatchNorm, Inputs: []string{in}, Eps: 1e-5}
	g := make([]float32, c)
	for i := range g {
		g[i] = float32(0.5 + b.rng.Float64())
	}
	n.SetP("weight", []int{c}, g)
	n.SetP("bias", []int{c}, b.randn(c, 0.2))
	n.SetP("running_mean", []int{c}, make([]float32, c))
	v := make([]float32, c)
	for i := range v {
		v[i] = 1
	}
	n.SetP("running_var", []int{c}, v)
	return b.add(n)
}

func (b *graphBuilder) op(name string, op nn.Op, ins ...string) string {
	return b.add(&nn.Node{Name: name, Op: op, Inputs: ins})
}

func (b *graphBuilder) prelu(name, in string, c int) string {
	n := &nn.Node{Name: name, Op: nn.OpPReLU, Inputs: []string{in}}
	n.SetP("weight", []int{c}, b.randn(c, 0.3))
	return b.add(n)
}

func (b *graphBuilder) clamp(name, in string, c int, lo, hi float32) string {
	n := &nn.Node{Name: name, Op: nn.OpClamp, Inputs: []string{in}}
	l, h := make([]float32, c), make([]float32, c)
	for i := range l {
		l[i], h[i] = lo-0.1*float32(i), hi+0.1*float32(i)
	}
	n.SetP("min", []int{c}, l)
	n.SetP("max", []int{c}, h)
	return b.add(n)
}

func (b *graphBuilder) pool(name string, op nn.Op, in string, k, s, p int) string {
	return b.add(&nn.Node{Name: name, Op: op, Inputs: []string{in}, Kernel: k, Stride: s, Pad: p})
}

func (b *graphBuilder) linear(name, in string, cin, cout int) string {
	n := &nn.Node{Name: name, Op: nn.OpLinear, Inputs: []string{in}, In: cin, Out: cout}
	n.SetP("weight", []int{cout, cin}, b.randn(cout*cin, 1/math.Sqrt(float64(cin))))
	n.SetP("bias", []int{cout}, b.randn(cout, 0.1))
	return b.add(n)
}
