package onnx

import (
	"fmt"
	"slices"

	"github.com/rmprune/rmprune/nn"
)

// evalModel runs an exported model on x with rmprune's reference ops: each
// ONNX op that has an nn counterpart runs as a one-node nn graph, the others
// (Slice, Gather, Concat, Mul, Add, Max, Min, Clip, Identity) as plain loops.
// It is the test oracle for the copy-aware lowering, which writes ops that
// ToGraph does not import. Rank-2 values are Acts with H = W = 1.
func evalModel(m *Model, x *nn.Act) (*nn.Act, error) {
	inits := map[string]*Tensor{}
	for _, t := range m.Graph.Initializers {
		inits[t.Name] = t
	}
	vals := map[string]*nn.Act{"input": x}
	for _, nd := range m.Graph.Nodes {
		y, err := evalNode(nd, vals, inits)
		if err != nil {
			return nil, fmt.Errorf("node %s (%s): %w", nd.Name, nd.OpType, err)
		}
		vals[nd.Outputs[0]] = y
	}
	y := vals[m.Graph.Outputs[0].Name]
	if y == nil {
		return nil, fmt.Errorf("output %s not computed", m.Graph.Outputs[0].Name)
	}
	return y, nil
}

func evalAttr(nd Node, name string, def int64) int64 {
	for _, a := range nd.Attrs {
		if a.Name == name {
			if a.Type == AttrInts {
				return a.Ints[0]
			}
			return a.I
		}
	}
	return def
}

func evalNode(nd Node, vals map[string]*nn.Act, inits map[string]*Tensor) (*nn.Act, error) {
	in := func(i int) *nn.Act { return vals[nd.Inputs[i]] }
	x := in(0)
	if x == nil {
		return nil, fmt.Errorf("input %s missing", nd.Inputs[0])
	}
	// one runs n on x as a one-node nn graph.
	one := func(n *nn.Node) (*nn.Act, error) {
		n.Name, n.Inputs = "op", []string{"x"}
		g := &nn.Graph{Nodes: []*nn.Node{{Name: "x", Op: nn.OpInput}, n}}
		return g.Forward(x, nil)
	}
	param := func(i int) *Tensor { return inits[nd.Inputs[i]] }
	// per-channel (or scalar) operand i of a binary op.
	operand := func(i int) (func(n, c, p int) float32, error) {
		if v := vals[nd.Inputs[i]]; v != nil {
			if v.N != x.N || v.C != x.C || v.H != x.H || v.W != x.W {
				return nil, fmt.Errorf("operand shapes %v and %v", x.Shape(), v.Shape())
			}
			hw := x.H * x.W
			return func(n, c, p int) float32 { return v.D[(n*v.C+c)*hw+p] }, nil
		}
		t := inits[nd.Inputs[i]]
		if t == nil {
			return nil, fmt.Errorf("operand %s missing", nd.Inputs[i])
		}
		switch len(t.Data) {
		case 1:
			return func(n, c, p int) float32 { return t.Data[0] }, nil
		case x.C:
			return func(n, c, p int) float32 { return t.Data[c] }, nil
		}
		return nil, fmt.Errorf("operand %s has %d values for %d channels", t.Name, len(t.Data), x.C)
	}
	binary := func(f func(a, b float32) float32) (*nn.Act, error) {
		b := func(n, c, p int) float32 { return 0 }
		if len(nd.Inputs) > 1 && nd.OpType != "Clip" {
			var err error
			if b, err = operand(1); err != nil {
				return nil, err
			}
		}
		y := nn.NewAct(x.N, x.C, x.H, x.W)
		hw := x.H * x.W
		for i, v := range x.D {
			y.D[i] = f(v, b(i/(x.C*hw), i/hw%x.C, i%hw))
		}
		return y, nil
	}
	switch nd.OpType {
	case "Conv":
		w := param(1)
		k, g := int(w.Dims[2]), int(evalAttr(nd, "group", 1))
		n := &nn.Node{Op: nn.OpConv, In: x.C, Out: int(w.Dims[0]), Kernel: k, Stride: int(evalAttr(nd, "strides", 1)),
			Pad: int(evalAttr(nd, "pads", 0)), Groups: g}
		n.SetP("weight", []int{int(w.Dims[0]), int(w.Dims[1]), k, k}, w.Data)
		if len(nd.Inputs) > 2 {
			n.SetP("bias", []int{len(param(2).Data)}, param(2).Data)
		}
		return one(n)
	case "Gemm":
		w := param(1)
		n := &nn.Node{Op: nn.OpLinear, In: int(w.Dims[1]), Out: int(w.Dims[0])}
		n.SetP("weight", []int{int(w.Dims[0]), int(w.Dims[1])}, w.Data)
		n.SetP("bias", []int{int(w.Dims[0])}, param(2).Data)
		return one(n)
	case "BatchNormalization":
		n := &nn.Node{Op: nn.OpBatchNorm, Eps: float64(nd.Attrs[0].F)}
		for i, p := range []string{"weight", "bias", "running_mean", "running_var"} {
			n.SetP(p, []int{x.C}, param(i+1).Data)
		}
		return one(n)
	case "MaxPool", "AveragePool":
		op := nn.OpMaxPool
		if nd.OpType == "AveragePool" {
			op = nn.OpAvgPool
		}
		return one(&nn.Node{Op: op, Kernel: int(evalAttr(nd, "kernel_shape", 1)), Stride: int(evalAttr(nd, "strides", 1)), Pad: int(evalAttr(nd, "pads", 0))})
	case "GlobalAveragePool":
		return one(&nn.Node{Op: nn.OpGlobalAvgPool})
	case "Flatten":
		return &nn.Act{N: x.N, C: x.C * x.H * x.W, H: 1, W: 1, D: x.D}, nil
	case "Identity":
		return x, nil
	case "Relu":
		return binary(func(a, _ float32) float32 { return max(a, 0) })
	case "PRelu":
		return binary(func(a, s float32) float32 {
			if a < 0 {
				return a * s
			}
			return a
		})
	case "Add":
		return binary(func(a, b float32) float32 { return a + b })
	case "Mul":
		return binary(func(a, b float32) float32 { return a * b })
	case "Max":
		return binary(func(a, b float32) float32 { return max(a, b) })
	case "Min":
		return binary(func(a, b float32) float32 { return min(a, b) })
	case "Clip":
		lo, hi := param(1).Data[0], param(2).Data[0]
		return binary(func(a, _ float32) float32 { return min(max(a, lo), hi) })
	case "Concat":
		c := 0
		for i := range nd.Inputs {
			c += in(i).C
		}
		y := nn.NewAct(x.N, c, x.H, x.W)
		for n := range x.N {
			at := 0
			for i := range nd.Inputs {
				v := in(i)
				for ch := range v.C {
					copy(y.Plane(n, at), v.Plane(n, ch))
					at++
				}
			}
		}
		return y, nil
	case "Gather":
		idx := param(1).Int64s
		y := nn.NewAct(x.N, len(idx), x.H, x.W)
		for n := range x.N {
			for o, ch := range idx {
				copy(y.Plane(n, o), x.Plane(n, int(ch)))
			}
		}
		return y, nil
	case "Slice":
		starts, ends, axes, steps := param(1).Int64s, param(2).Int64s, param(3).Int64s, param(4).Int64s
		lo, hi, step := [4]int{0, 0, 0, 0}, [4]int{x.N, x.C, x.H, x.W}, [4]int{1, 1, 1, 1}
		for i, a := range axes {
			lo[a], step[a] = int(starts[i]), int(steps[i])
			hi[a] = int(min(ends[i], int64(hi[a])))
		}
		if !slices.Equal(step[:2], []int{1, 1}) || lo[0] != 0 {
			return nil, fmt.Errorf("slice steps %v", step)
		}
		cnt := func(a int) int { return (hi[a] - lo[a] + step[a] - 1) / step[a] }
		y := nn.NewAct(x.N, cnt(1), cnt(2), cnt(3))
		for n := range x.N {
			for c := range y.C {
				src, dst := x.Plane(n, lo[1]+c), y.Plane(n, c)
				for i := range y.H {
					for j := range y.W {
						dst[i*y.W+j] = src[(lo[2]+i*step[2])*x.W+lo[3]+j*step[3]]
					}
				}
			}
		}
		return y, nil
	}
	return nil, fmt.Errorf("op %s: %w", nd.OpType, ErrUnsupported)
}
