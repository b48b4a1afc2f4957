package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/rmprune/rmprune/nn"
)

// lowering turns a folded nn graph into ONNX nodes and initializers.
type lowering struct {
	g      *nn.Graph
	shapes map[string]nn.Shape
	used   map[string]bool   // every tensor name taken
	value  map[string]string // nn node name → ONNX value name
	rank   map[string]int    // nn node name → rank of its ONNX value (2 or 4)
	nodes  []Node
	inits  []*Tensor
	relu6  [2]string // shared Clip bounds 0 and 6, once made

	// Copy-aware form (see copies.go).
	dense   bool
	segs    map[string][]seg // nn node → its channels, when not one ONNX value
	chans   map[string]int   // ONNX value (rank 4) → channels
	nonneg  map[string]bool  // ONNX value → provably ≥ 0
	real    map[string]int   // zero-padded ONNX value → its real (leading) channels
	written map[string]bool  // initializer names written
	copies  int              // rows, columns and activations written as copies
	macs    int64            // per image, of the Conv and Gemm nodes written
	// For absorbed: the folded graph's consumers, and per conv its
	// centre-only columns (over all rows).
	consumers map[string][]*nn.Node
	centre    map[string][]bool
}

// supported lists the nn ops the exporter knows.
var supported = map[nn.Op]bool{
	nn.OpInput: true, nn.OpConv: true, nn.OpBatchNorm: true, nn.OpReLU: true, nn.OpReLU6: true,
	nn.OpPReLU: true, nn.OpClamp: true, nn.OpAdd: true, nn.OpMaxPool: true, nn.OpAvgPool: true,
	nn.OpGlobalAvgPool: true, nn.OpFlatten: true, nn.OpLinear: true,
	nn.OpMask: true, // folded by FoldBN (FoldMasks) before lowering
}

// ExportInfo describes the ONNX graph an export writes.
type ExportInfo struct {
	// Form is ExportCopyAware when copies were written as such, else
	// ExportDense.
	Form string `json:"export"`
	// MACs per image of the Conv and Gemm nodes: the work ONNX Runtime
	// computes for the file. For the copy-aware export of an RM-converted net
	// this is less than g's MACs, which charge the copies as dense k×k convs.
	// Zero channels the copy-aware export pads convs with (to ONNX Runtime's
	// NCHWc block, see copies.go) are not counted, as the runtime's own
	// rounding of output channels is not.
	MACs int64 `json:"macs_onnx"`
}

// Describe returns what exporting g with opt writes, without writing it.
func Describe(g *nn.Graph, opt Options) (ExportInfo, error) {
	m, macs, err := export(g, opt)
	if err != nil {
		return ExportInfo{}, fmt.Errorf("onnx: %w", err)
	}
	info := ExportInfo{Form: ExportDense, MACs: macs}
	for _, e := range m.Metadata {
		if e.Key == "rmprune.export" {
			info.Form = e.Value
		}
	}
	return info, nil
}

// export builds the ONNX model of g (BatchNorms folded first) and counts its
// MACs per image.
func export(g *nn.Graph, opt Options) (*Model, int64, error) {
	m, l, err := lowerGraph(g, opt)
	if err != nil {
		return nil, 0, err
	}
	return m, l.macs, nil
}

func lowerGraph(g *nn.Graph, opt Options) (*Model, *lowering, error) {
	if g == nil || len(g.Nodes) == 0 {
		return nil, nil, errors.New("empty graph")
	}
	for i, n := range g.Nodes {
		if (n.Op == nn.OpInput) != (i == 0) {
			return nil, nil, fmt.Errorf("node %s: the graph needs exactly one input node, first", n.Name)
		}
	}
	if len(g.Nodes) < 2 {
		return nil, nil, errors.New("graph has no layers")
	}
	in := opt.Shape
	if in == (nn.Shape{}) {
		in = g.InputShape()
	}
	// Masks and BatchNorms fold first (a mask left over is a depthwise conv).
	f := nn.FoldBN(g)
	for _, n := range f.Nodes {
		if !supported[n.Op] {
			return nil, nil, fmt.Errorf("node %s: op %q: %w", n.Name, n.Op, ErrUnsupported)
		}
	}
	shapes, err := f.Shapes(in)
	if err != nil {
		return nil, nil, err
	}
	l := &lowering{g: f, shapes: shapes, used: map[string]bool{"input": true, "logits": true},
		value: map[string]string{}, rank: map[string]int{}, dense: opt.Dense,
		segs: map[string][]seg{}, chans: map[string]int{}, nonneg: map[string]bool{}, real: map[string]int{}, written: map[string]bool{}, centre: map[string][]bool{}}
	for _, n := range f.Nodes {
		for p := range n.Params {
			l.used[n.Name+"."+p] = true
		}
	}
	out := f.Output()
	for _, n := range f.Nodes {
		name := ""
		switch n {
		case f.Nodes[0]:
			name = "input"
		case out:
			name = "logits"
		default:
			name = l.unique(n.Name)
		}
		if err := l.lower(n, name); err != nil {
			return nil, nil, fmt.Errorf("node %s (%s): %w", n.Name, n.Op, err)
		}
	}
	if v := l.plain(out.Name); v != "logits" {
		// The output node's channels are copies or another node's value.
		l.emit("Identity", "logits", []string{v}, "logits")
	}

	m := &Model{
		IRVersion:       IRVersion,
		ProducerName:    "rmprune",
		ProducerVersion: opt.ProducerVersion,
		Opsets:          []Opset{{Version: Opset13}},
		Graph: Graph{
			Name:         cmpOr(g.Arch, "rmprune"),
			Nodes:        l.nodes,
			Initializers: l.inits,
			Inputs:       []ValueInfo{{Name: "input", ElemType: Float, Dims: []Dim{{Param: "N"}, {Value: int64(in.C)}, {Value: int64(in.H)}, {Value: int64(in.W)}}}},
		},
	}
	osh := shapes[out.Name]
	outDims := []Dim{{Param: "N"}, {Value: int64(osh.C)}}
	if l.rank[out.Name] == 4 {
		outDims = append(outDims, Dim{Value: int64(osh.H)}, Dim{Value: int64(osh.W)})
	}
	m.Graph.Outputs = []ValueInfo{{Name: "logits", ElemType: Float, Dims: outDims}}
	form := ExportDense
	if l.copies > 0 {
		form = ExportCopyAware
	}
	m.Metadata, err = metadata(g, form)
	if err != nil {
		return nil, nil, err
	}
	return m, l, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// metadata returns the metadata_props, sorted by key.
func metadata(g *nn.Graph, form string) ([]Entry, error) {
	var md []Entry
	add := func(k, v string) {
		if v != "" {
			md = append(md, Entry{"rmprune." + k, v})
		}
	}
	add("arch", g.Arch)
	add("form", g.Form)
	add("export", form)
	add("recipe", g.Recipe)
	add("source_sha256", g.SourceSHA256)
	if g.Classes > 0 {
		add("classes", strconv.Itoa(g.Classes))
	}
	if len(g.Labels) > 0 {
		b, err := json.Marshal(g.Labels)
		if err != nil {
			return nil, err
		}
		add("labels", string(b))
	}
	if len(g.Mean) > 0 || len(g.Std) > 0 {
		b, err := json.Marshal(struct {
			Mean []float32 `json:"mean"`
			Std  []float32 `json:"std"`
		}{g.Mean, g.Std})
		if err != nil {
			return nil, err
		}
		add("normalize", string(b))
	}
	slices.SortFunc(md, func(a, b Entry) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return md, nil
}

// unique returns name, or name_1, name_2, ... when taken, and marks it taken.
func (l *lowering) unique(name string) string {
	s := name
	for i := 1; l.used[s]; i++ {
		s = name + "_" + strconv.Itoa(i)
	}
	l.used[s] = true
	return s
}

func (l *lowering) emit(op, name string, inputs []string, output string, attrs ...Attr) {
	l.nodes = append(l.nodes, Node{Name: name, OpType: op, Inputs: inputs, Outputs: []string{output}, Attrs: attrs})
}

// lower lowers n: copy-aware unless the export is dense, with the values
// holding copies materialised for the ops that need one tensor.
func (l *lowering) lower(n *nn.Node, out string) error {
	if !l.dense {
		switch n.Op {
		case nn.OpConv:
			if l.copyConv(n, out) {
				return nil
			}
		case nn.OpReLU, nn.OpPReLU, nn.OpClamp:
			if l.copyAct(n, out) {
				return nil
			}
		}
		for _, in := range n.Inputs {
			l.plain(in)
		}
	}
	if err := l.node(n, out); err != nil {
		return err
	}
	if l.rank[n.Name] == 4 {
		l.chans[out] = l.shapes[n.Name].C
	}
	switch n.Op {
	case nn.OpInput, nn.OpConv, nn.OpBatchNorm, nn.OpPReLU, nn.OpAdd, nn.OpLinear:
	case nn.OpReLU, nn.OpReLU6:
		l.nonneg[out] = true
	case nn.OpClamp:
		nonneg := true
		for _, v := range n.P("min") {
			nonneg = nonneg && v >= 0
		}
		l.nonneg[out] = nonneg
	default: // pools, flatten
		l.nonneg[out] = l.nonneg[l.value[n.Inputs[0]]]
	}
	return nil
}

// tensor adds a float initializer named name when that name is free (a
// parameter name of the node being lowered, not written yet), else a unique
// variant.
func (l *lowering) tensor(name string, dims []int, data []float32) string {
	if l.written[name] {
		return l.constant(name, dims, data)
	}
	l.written[name] = true
	l.inits = append(l.inits, &Tensor{Name: name, Dims: int64s(dims), DataType: Float, Data: data})
	return name
}

// param adds parameter p of n as an initializer of the given dims (nil: the
// parameter's own shape) and returns its name.
func (l *lowering) param(n *nn.Node, p string, dims ...int) string {
	t := n.Params[p]
	if dims == nil {
		dims = nn.ShapeOf(t)
	}
	name := n.Name + "." + p
	l.written[name] = true
	l.inits = append(l.inits, &Tensor{Name: name, Dims: int64s(dims), DataType: Float, Data: nn.Floats(t)})
	return name
}

// constant adds a generated float initializer.
func (l *lowering) constant(name string, dims []int, data []float32) string {
	name = l.unique(name)
	l.written[name] = true
	l.inits = append(l.inits, &Tensor{Name: name, Dims: int64s(dims), DataType: Float, Data: data})
	return name
}

func int64s(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func ints(name string, v ...int64) Attr { return Attr{Name: name, Type: AttrInts, Ints: v} }
func intAttr(name string, v int64) Attr { return Attr{Name: name, Type: AttrInt, I: v} }

// channelDims is the shape of a per-channel constant broadcasting over a value
// of the given rank: [C,1,1] for NCHW, [C] for NC.
func channelDims(c, rank int) []int {
	if rank == 4 {
		return []int{c, 1, 1}
	}
	return []int{c}
}

// node lowers n, whose output value is named out.
func (l *lowering) node(n *nn.Node, out string) error {
	var x string
	rank := 4
	if len(n.Inputs) > 0 {
		x, rank = l.value[n.Inputs[0]], l.rank[n.Inputs[0]]
	}
	c := l.shapes[n.Name].C
	need4 := func() error {
		if rank != 4 {
			return fmt.Errorf("reads a flattened value: %w", ErrUnsupported)
		}
		return nil
	}
	switch n.Op {
	case nn.OpInput:
		// The graph input itself: no node.
	case nn.OpConv:
		if err := need4(); err != nil {
			return err
		}
		k, s, p := int64(n.Kernel), int64(n.Stride), int64(n.Pad)
		ins := []string{x, l.param(n, "weight")}
		if n.Params["bias"] != nil {
			ins = append(ins, l.param(n, "bias"))
		}
		sh := l.shapes[n.Name]
		l.macs += int64(n.Out) * int64(n.In/n.G()) * int64(n.Kernel*n.Kernel) * int64(sh.H*sh.W)
		l.emit("Conv", n.Name, ins, out,
			ints("dilations", 1, 1), intAttr("group", int64(n.G())), ints("kernel_shape", k, k),
			ints("pads", p, p, p, p), ints("strides", s, s))
	case nn.OpBatchNorm:
		eps := n.Eps
		if eps == 0 {
			eps = 1e-5
		}
		l.emit("BatchNormalization", n.Name,
			[]string{x, l.param(n, "weight"), l.param(n, "bias"), l.param(n, "running_mean"), l.param(n, "running_var")},
			out, Attr{Name: "epsilon", Type: AttrFloat, F: float32(eps)})
	case nn.OpReLU:
		l.emit("Relu", n.Name, []string{x}, out)
	case nn.OpReLU6:
		if l.relu6[0] == "" {
			l.relu6[0] = l.constant("relu6.min", nil, []float32{0})
			l.relu6[1] = l.constant("relu6.max", nil, []float32{6})
		}
		l.emit("Clip", n.Name, []string{x, l.relu6[0], l.relu6[1]}, out)
	case nn.OpPReLU:
		l.emit("PRelu", n.Name, []string{x, l.param(n, "weight", channelDims(c, rank)...)}, out)
	case nn.OpClamp:
		// Clip takes scalar bounds only: a per-channel clamp is Max then Min
		// with broadcast [C,1,1] bounds.
		mid := l.unique(n.Name + "/max")
		l.emit("Max", n.Name+"/max", []string{x, l.param(n, "min", channelDims(c, rank)...)}, mid)
		l.emit("Min", n.Name+"/min", []string{mid, l.param(n, "max", channelDims(c, rank)...)}, out)
	case nn.OpAdd:
		acc := x
		for i, in := range n.Inputs[1:] {
			if l.rank[in] != rank {
				return fmt.Errorf("adds values of rank %d and %d: %w", rank, l.rank[in], ErrUnsupported)
			}
			dst, name := out, n.Name
			if i < len(n.Inputs)-2 {
				dst = l.unique(fmt.Sprintf("%s/sum%d", n.Name, i+1))
				name = dst
			}
			l.emit("Add", name, []string{acc, l.value[in]}, dst)
			acc = dst
		}
	case nn.OpMaxPool, nn.OpAvgPool:
		if err := need4(); err != nil {
			return err
		}
		k, s, p := int64(n.Kernel), int64(n.Stride), int64(n.Pad)
		attrs := []Attr{ints("kernel_shape", k, k), ints("pads", p, p, p, p), ints("strides", s, s)}
		op := "MaxPool"
		if n.Op == nn.OpAvgPool {
			// nn divides by K·K everywhere, counting padding, as PyTorch's default.
			op = "AveragePool"
			attrs = append([]Attr{intAttr("count_include_pad", 1)}, attrs...)
		}
		l.emit(op, n.Name, []string{x}, out, attrs...)
	case nn.OpGlobalAvgPool:
		if err := need4(); err != nil {
			return err
		}
		l.emit("GlobalAveragePool", n.Name, []string{x}, out)
	case nn.OpFlatten:
		l.emit("Flatten", n.Name, []string{x}, out, intAttr("axis", 1))
		rank = 2
	case nn.OpLinear:
		if rank != 2 {
			flat := l.unique(n.Name + "/flatten")
			l.emit("Flatten", flat, []string{x}, flat, intAttr("axis", 1))
			x = flat
		}
		ins := []string{x, l.param(n, "weight")}
		if n.Params["bias"] != nil {
			ins = append(ins, l.param(n, "bias"))
		}
		l.macs += int64(n.In) * int64(n.Out)
		l.emit("Gemm", n.Name, ins, out,
			Attr{Name: "alpha", Type: AttrFloat, F: 1}, Attr{Name: "beta", Type: AttrFloat, F: 1},
			intAttr("transA", 0), intAttr("transB", 1))
		rank = 2
	default:
		return ErrUnsupported
	}
	l.value[n.Name] = out
	l.rank[n.Name] = rank
	return nil
}
