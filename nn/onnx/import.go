package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rmprune/rmprune/nn"
)

// ReadGraph reads the ONNX model at path (external data included) and
// converts it to an nn graph with [ToGraph].
func ReadGraph(path string) (*nn.Graph, error) {
	m, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	g, err := ToGraph(m)
	if err != nil {
		return nil, fmt.Errorf("onnx: read %s: %w", path, err)
	}
	return g, nil
}

// ToGraph converts a decoded model back to an nn graph: the inverse of the
// export for the models this package writes, and a best effort for others
// built from the same operators (opset ≤ 13 semantics, float32, one NCHW
// input, square kernels, symmetric padding). Clip(0,6) becomes relu6, other
// Clips and Max/Min with per-channel constants become clamps, Sum and Add
// become adds, Identity and Dropout vanish. Node names are the ONNX node
// names (the output's name when empty); the graph's metadata comes from the
// rmprune.* metadata_props.
func ToGraph(m *Model) (*nn.Graph, error) {
	im, err := newImporter(m)
	if err == nil {
		err = im.run()
	}
	if err != nil {
		return nil, fmt.Errorf("onnx: import: %w", err)
	}
	return im.g, nil
}

type importer struct {
	m      *Model
	g      *nn.Graph
	inits  map[string]*Tensor
	node   map[string]string // ONNX value → nn node name
	names  map[string]bool   // nn node names taken
	uses   map[string]int    // ONNX value → number of readers
	in     nn.Shape
	merged map[int]bool // ONNX nodes already absorbed (Min after Max)
}

func newImporter(m *Model) (*importer, error) {
	gr := &m.Graph
	im := &importer{m: m, g: &nn.Graph{}, inits: map[string]*Tensor{}, node: map[string]string{},
		names: map[string]bool{}, uses: map[string]int{}, merged: map[int]bool{}}
	for _, t := range gr.Initializers {
		im.inits[t.Name] = t
	}
	var inputs []ValueInfo
	for _, v := range gr.Inputs {
		if im.inits[v.Name] == nil { // old IRs list initializers as inputs
			inputs = append(inputs, v)
		}
	}
	if len(inputs) != 1 || len(gr.Outputs) != 1 {
		return nil, fmt.Errorf("model has %d inputs and %d outputs, want 1 and 1", len(inputs), len(gr.Outputs))
	}
	in := inputs[0]
	if in.ElemType != Float || len(in.Dims) != 4 {
		return nil, fmt.Errorf("input %s: want a float32 NCHW tensor", in.Name)
	}
	var chw [3]int
	for i, d := range in.Dims[1:] {
		if d.Param != "" || d.Value <= 0 {
			continue
		}
		// The same bound as a --shape flag: a file must not make the
		// importer size per-channel tables by a dimension it made up.
		if d.Value > maxInputDim {
			return nil, fmt.Errorf("input %s: dimension %d is over %d", in.Name, d.Value, maxInputDim)
		}
		chw[i] = int(d.Value)
	}
	if chw[0] == 0 {
		return nil, fmt.Errorf("input %s: channel count is not static", in.Name)
	}
	im.in = nn.Shape{C: chw[0], H: chw[1], W: chw[2]}
	im.g.Input = chw
	im.g.Nodes = []*nn.Node{{Name: in.Name, Op: nn.OpInput, Out: chw[0]}}
	im.names[in.Name] = true
	im.node[in.Name] = in.Name
	for _, n := range gr.Nodes {
		for _, v := range n.Inputs {
			im.uses[v]++
		}
	}
	for _, v := range gr.Outputs {
		im.uses[v.Name]++
	}
	if err := im.metadata(); err != nil {
		return nil, err
	}
	return im, nil
}

// maxInputDim bounds each of the input's C, H and W (as modelio.ParseShape does).
const maxInputDim = 1 << 16

func (im *importer) metadata() error {
	g := im.g
	for _, e := range im.m.Metadata {
		k, ok := strings.CutPrefix(e.Key, "rmprune.")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "arch":
			g.Arch = e.Value
		case "form":
			g.Form = e.Value
		case "recipe":
			g.Recipe = e.Value
		case "source_sha256":
			g.SourceSHA256 = e.Value
		case "classes":
			g.Classes, err = strconv.Atoi(e.Value)
		case "labels":
			err = json.Unmarshal([]byte(e.Value), &g.Labels)
		case "normalize":
			var v struct{ Mean, Std []float32 }
			err = json.Unmarshal([]byte(e.Value), &v)
			g.Mean, g.Std = v.Mean, v.Std
		}
		if err != nil {
			return fmt.Errorf("metadata %s: %w", e.Key, err)
		}
	}
	return nil
}

// errSkip marks an ONNX node that maps to no nn node (its output aliases its input).
var errSkip = errors.New("skip")

func (im *importer) run() error {
	nodes := im.m.Graph.Nodes
	for i := range nodes {
		if im.merged[i] {
			continue
		}
		n := &nodes[i]
		if n.Domain != "" && n.Domain != "ai.onnx" {
			return fmt.Errorf("node %s: domain %q: %w", n.Name, n.Domain, ErrUnsupported)
		}
		if len(n.Outputs) < 1 {
			return fmt.Errorf("node %s: no output", n.Name)
		}
		nd, out, err := im.convert(i, n)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return fmt.Errorf("node %s (%s): %w", n.Name, n.OpType, err)
		}
		name := nd.Name
		if name == "" || im.names[name] {
			name = n.Outputs[0]
		}
		for k, base := 1, name; im.names[name]; k++ {
			name = base + "_" + strconv.Itoa(k)
		}
		nd.Name = name
		im.names[name] = true
		im.node[out] = name
		im.g.Nodes = append(im.g.Nodes, nd)
	}
	out := im.m.Graph.Outputs[0].Name
	if len(im.g.Nodes) < 2 || im.node[out] != im.g.Output().Name {
		return fmt.Errorf("output %s is not the last node's", out)
	}
	if _, err := im.g.Shapes(im.g.InputShape()); err != nil {
		return err
	}
	return nil
}

// input returns the nn node reading ONNX value v.
func (im *importer) input(v string) (string, error) {
	if s, ok := im.node[v]; ok {
		return s, nil
	}
	return "", fmt.Errorf("input %q is not an earlier value (or is a constant where data is expected)", v)
}

// constant returns initializer v as float32 data.
func (im *importer) constant(v string) (*Tensor, error) {
	t := im.inits[v]
	if t == nil {
		return nil, fmt.Errorf("%q is not an initializer: %w", v, ErrUnsupported)
	}
	if t.DataType != Float || slices.ContainsFunc(t.Dims, func(d int64) bool { return d < 1 || d > math.MaxInt32 }) ||
		int64(len(t.Data)) != t.Numel() {
		return nil, fmt.Errorf("initializer %s: want float32 data", v)
	}
	return t, nil
}

// channels returns the channel count of nn node name's output.
func (im *importer) channels(name string) (int, error) {
	shapes, err := im.g.Shapes(im.g.InputShape())
	if err != nil {
		return 0, err
	}
	return shapes[name].C, nil
}

// perChannel reads a constant broadcasting over the channels of x ([C,1,1],
// [C], or a single value) as C values.
func (im *importer) perChannel(v, x string) ([]float32, error) {
	t, err := im.constant(v)
	if err != nil {
		return nil, err
	}
	c, err := im.channels(x)
	if err != nil {
		return nil, err
	}
	switch {
	case len(t.Data) == 1:
		out := make([]float32, c)
		for i := range out {
			out[i] = t.Data[0]
		}
		return out, nil
	case len(t.Data) == c && len(t.Dims) >= 1 && t.Dims[0] == int64(c):
		return slices.Clone(t.Data), nil
	}
	return nil, fmt.Errorf("constant %s of dims %v does not broadcast per channel over %d channels", v, t.Dims, c)
}

func attrOr(n *Node, name string) *Attr {
	if a := n.Attr(name); a != nil {
		return a
	}
	return &Attr{}
}

// window reads kernel_shape, strides and pads of a conv or pool as square,
// symmetric values; dilations must be 1 and auto_pad unset.
func window(n *Node) (k, s, p int, err error) {
	ks := attrOr(n, "kernel_shape").Ints
	st := attrOr(n, "strides").Ints
	pd := attrOr(n, "pads").Ints
	if len(st) == 0 {
		st = []int64{1, 1}
	}
	if len(pd) == 0 {
		pd = []int64{0, 0, 0, 0}
	}
	for _, d := range attrOr(n, "dilations").Ints {
		if d != 1 {
			return 0, 0, 0, fmt.Errorf("dilation %d: %w", d, ErrUnsupported)
		}
	}
	if ap := string(attrOr(n, "auto_pad").S); ap != "" && ap != "NOTSET" {
		return 0, 0, 0, fmt.Errorf("auto_pad %s: %w", ap, ErrUnsupported)
	}
	same := func(v []int64, n int) bool {
		return len(v) == n && !slices.ContainsFunc(v, func(x int64) bool { return x != v[0] })
	}
	if !same(ks, 2) || !same(st, 2) || !same(pd, 4) {
		return 0, 0, 0, fmt.Errorf("kernel %v strides %v pads %v: want square and symmetric: %w", ks, st, pd, ErrUnsupported)
	}
	return int(ks[0]), int(st[0]), int(pd[0]), nil
}

func cloneParam(nd *nn.Node, name string, dims []int, t *Tensor) {
	nd.SetP(name, dims, slices.Clone(t.Data))
}

func dimsOf(t *Tensor) []int {
	d := make([]int, len(t.Dims))
	for i, v := range t.Dims {
		d[i] = int(v)
	}
	return d
}

// convert maps ONNX node i to an nn node and returns the ONNX value its
// output stands for; errSkip when the node only aliases its input.
func (im *importer) convert(i int, n *Node) (*nn.Node, string, error) {
	out := n.Outputs[0]
	if len(n.Inputs) == 0 {
		return nil, "", errors.New("no inputs")
	}
	x, err := im.input(n.Inputs[0])
	if err != nil {
		return nil, "", err
	}
	nd := &nn.Node{Name: n.Name, Inputs: []string{x}}
	switch n.OpType {
	case "Conv", "Gemm", "PRelu":
		if len(n.Inputs) < 2 {
			return nil, "", fmt.Errorf("%d inputs", len(n.Inputs))
		}
	}
	switch n.OpType {
	case "Identity", "Dropout":
		if len(n.Outputs) > 1 && im.uses[n.Outputs[1]] > 0 {
			return nil, "", fmt.Errorf("dropout mask is read: %w", ErrUnsupported)
		}
		im.node[out] = x
		return nil, "", errSkip
	case "Conv":
		k, s, p, err := window(n)
		if err != nil {
			return nil, "", err
		}
		w, err := im.constant(n.Inputs[1])
		if err != nil {
			return nil, "", err
		}
		g := int(attrOr(n, "group").I)
		if g == 0 {
			g = 1
		}
		if len(w.Dims) != 4 || w.Dims[2] != int64(k) || w.Dims[3] != int64(k) {
			return nil, "", fmt.Errorf("weight dims %v for kernel %d", w.Dims, k)
		}
		nd.Op, nd.Out, nd.In, nd.Kernel, nd.Stride, nd.Pad = nn.OpConv, int(w.Dims[0]), int(w.Dims[1])*g, k, s, p
		if g > 1 {
			nd.Groups = g
		}
		cloneParam(nd, "weight", dimsOf(w), w)
		if len(n.Inputs) > 2 && n.Inputs[2] != "" {
			b, err := im.constant(n.Inputs[2])
			if err != nil {
				return nil, "", err
			}
			if len(b.Data) != nd.Out {
				return nil, "", fmt.Errorf("bias %s of %d values for %d output channels", b.Name, len(b.Data), nd.Out)
			}
			cloneParam(nd, "bias", []int{nd.Out}, b)
		}
	case "BatchNormalization":
		if len(n.Inputs) != 5 || len(n.Outputs) > 1 && im.uses[n.Outputs[1]] > 0 {
			return nil, "", fmt.Errorf("training-mode BatchNormalization: %w", ErrUnsupported)
		}
		nd.Op = nn.OpBatchNorm
		nd.Eps = 1e-5
		if a := n.Attr("epsilon"); a != nil {
			nd.Eps = float64(a.F)
		}
		for j, p := range []string{"weight", "bias", "running_mean", "running_var"} {
			t, err := im.constant(n.Inputs[j+1])
			if err != nil {
				return nil, "", err
			}
			cloneParam(nd, p, []int{len(t.Data)}, t)
		}
	case "Relu":
		nd.Op = nn.OpReLU
	case "Clip":
		lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
		for j, b := range []*float32{&lo, &hi} {
			if len(n.Inputs) <= j+1 || n.Inputs[j+1] == "" {
				continue
			}
			t, err := im.constant(n.Inputs[j+1])
			if err != nil {
				return nil, "", err
			}
			if len(t.Data) != 1 {
				return nil, "", fmt.Errorf("Clip bound %s is not a scalar", t.Name)
			}
			*b = t.Data[0]
		}
		switch {
		case lo == 0 && hi == 6:
			nd.Op = nn.OpReLU6
		case lo == 0 && math.IsInf(float64(hi), 1):
			nd.Op = nn.OpReLU
		default:
			c, err := im.channels(x)
			if err != nil {
				return nil, "", err
			}
			mins, maxs := make([]float32, c), make([]float32, c)
			for j := range mins {
				mins[j], maxs[j] = lo, hi
			}
			nd.Op = nn.OpClamp
			nd.SetP("min", []int{c}, mins)
			nd.SetP("max", []int{c}, maxs)
		}
	case "Max", "Min":
		// Max(x, lo) then Min(·, hi), the exporter's per-channel clamp;
		// either alone is a one-sided clamp.
		if len(n.Inputs) != 2 {
			return nil, "", fmt.Errorf("%d inputs: %w", len(n.Inputs), ErrUnsupported)
		}
		bound, err := im.perChannel(n.Inputs[1], x)
		if err != nil {
			return nil, "", err
		}
		c := len(bound)
		lo, hi := make([]float32, c), make([]float32, c)
		for j := range lo {
			lo[j], hi[j] = float32(math.Inf(-1)), float32(math.Inf(1))
		}
		if n.OpType == "Max" {
			copy(lo, bound)
			if next := im.nextMin(i, out); next >= 0 {
				mn := &im.m.Graph.Nodes[next]
				b, err := im.perChannel(mn.Inputs[1], x)
				if err != nil {
					return nil, "", err
				}
				copy(hi, b)
				im.merged[next] = true
				out = mn.Outputs[0]
				if base, ok := strings.CutSuffix(n.Name, "/max"); ok && mn.Name == base+"/min" {
					nd.Name = base
				}
			}
		} else {
			copy(hi, bound)
		}
		nd.Op = nn.OpClamp
		nd.SetP("min", []int{c}, lo)
		nd.SetP("max", []int{c}, hi)
	case "PRelu":
		slope, err := im.perChannel(n.Inputs[1], x)
		if err != nil {
			return nil, "", err
		}
		nd.Op = nn.OpPReLU
		nd.SetP("weight", []int{len(slope)}, slope)
	case "Add", "Sum":
		if n.OpType == "Add" && len(n.Inputs) != 2 {
			return nil, "", fmt.Errorf("%d inputs", len(n.Inputs))
		}
		nd.Op = nn.OpAdd
		for _, v := range n.Inputs[1:] {
			y, err := im.input(v)
			if err != nil {
				return nil, "", err
			}
			nd.Inputs = append(nd.Inputs, y)
		}
	case "MaxPool", "AveragePool":
		k, s, p, err := window(n)
		if err != nil {
			return nil, "", err
		}
		if attrOr(n, "ceil_mode").I != 0 || len(n.Outputs) > 1 && im.uses[n.Outputs[1]] > 0 {
			return nil, "", fmt.Errorf("ceil_mode or indices: %w", ErrUnsupported)
		}
		nd.Op, nd.Kernel, nd.Stride, nd.Pad = nn.OpMaxPool, k, s, p
		if n.OpType == "AveragePool" {
			nd.Op = nn.OpAvgPool
			if p > 0 && attrOr(n, "count_include_pad").I == 0 {
				return nil, "", fmt.Errorf("padding not counted (count_include_pad=0): %w", ErrUnsupported)
			}
		}
	case "GlobalAveragePool":
		nd.Op = nn.OpGlobalAvgPool
	case "Flatten":
		if a := n.Attr("axis"); a != nil && a.I != 1 {
			return nil, "", fmt.Errorf("axis %d: %w", a.I, ErrUnsupported)
		}
		nd.Op = nn.OpFlatten
	case "Gemm":
		w, err := im.constant(n.Inputs[1])
		if err != nil {
			return nil, "", err
		}
		if attrOr(n, "transA").I != 0 || len(w.Dims) != 2 {
			return nil, "", fmt.Errorf("transA or weight dims %v: %w", w.Dims, ErrUnsupported)
		}
		for _, name := range []string{"alpha", "beta"} {
			if a := n.Attr(name); a != nil && a.F != 1 {
				return nil, "", fmt.Errorf("%s %g: %w", name, a.F, ErrUnsupported)
			}
		}
		nOut, nIn := int(w.Dims[0]), int(w.Dims[1])
		data := slices.Clone(w.Data)
		if attrOr(n, "transB").I == 0 { // weight is [In, Out]
			nIn, nOut = nOut, nIn
			for o := range nOut {
				for j := range nIn {
					data[o*nIn+j] = w.Data[j*nOut+o]
				}
			}
		}
		nd.Op, nd.In, nd.Out = nn.OpLinear, nIn, nOut
		nd.SetP("weight", []int{nOut, nIn}, data)
		if len(n.Inputs) > 2 && n.Inputs[2] != "" {
			b, err := im.constant(n.Inputs[2])
			if err != nil {
				return nil, "", err
			}
			if len(b.Data) != nOut {
				return nil, "", fmt.Errorf("bias %s of dims %v, want [%d]: %w", b.Name, b.Dims, nOut, ErrUnsupported)
			}
			cloneParam(nd, "bias", []int{nOut}, b)
		}
	default:
		return nil, "", fmt.Errorf("op %q: %w", n.OpType, ErrUnsupported)
	}
	return nd, out, nil
}

// nextMin returns the index of the Min node that alone reads value v with a
// constant second input, or -1.
func (im *importer) nextMin(i int, v string) int {
	if im.uses[v] != 1 {
		return -1
	}
	nodes := im.m.Graph.Nodes
	for j := i + 1; j < len(nodes); j++ {
		if slices.Contains(nodes[j].Inputs, v) {
			if nodes[j].OpType == "Min" && len(nodes[j].Inputs) == 2 && len(nodes[j].Outputs) >= 1 && nodes[j].Inputs[0] == v && im.inits[nodes[j].Inputs[1]] != nil {
				return j
			}
			return -1
		}
	}
	return -1
}
