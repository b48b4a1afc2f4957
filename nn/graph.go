// Package nn is rmprune's network graph: layers with shapes, parameter and
// MAC counts, graph transforms such as BatchNorm folding, builders for the
// supported architectures, architecture inference from checkpoint keys, and
// the reference forward pass that every fast path is tested against.
package nn

import (
	"errors"
	"fmt"
	"slices"

	"gorgonia.org/tensor"
)

// Op names a layer type. The string values appear in model files.
type Op string

// The layer types of the graph.
const (
	OpInput         Op = "input"
	OpConv          Op = "conv"      // params weight [Out, In/Groups, K, K], bias [Out] (optional)
	OpBatchNorm     Op = "batchnorm" // params weight, bias, running_mean, running_var [C]
	OpReLU          Op = "relu"
	OpReLU6         Op = "relu6"
	OpPReLU         Op = "prelu"   // params weight [C]
	OpClamp         Op = "clamp"   // params min, max [C]: per-channel clamp
	OpAdd           Op = "add"     // elementwise sum of all inputs
	OpMaxPool       Op = "maxpool" // Kernel, Stride, Pad (floor mode, pad is -inf)
	OpAvgPool       Op = "avgpool" // Kernel, Stride, Pad (padding counted, as PyTorch's default)
	OpGlobalAvgPool Op = "gap"     // mean over H×W
	OpFlatten       Op = "flatten"
	OpLinear        Op = "linear" // params weight [Out, In], bias [Out]
	// OpMask is a learned per-channel scale y = m_c·x (params weight [C]): the
	// RMNet reference code's depthwise 1×1 masks, trained with an L1 penalty
	// so that every channel kind of the RM'd net carries a learned importance.
	OpMask Op = "mask"
)

// Param names that are statistics or constants rather than learnable weights.
var nonLearnable = map[string]bool{
	"running_mean": true, "running_var": true, "min": true, "max": true,
	"act_mean": true, "act_var": true,
}

// IsLearnable reports whether a parameter name counts towards params.
func IsLearnable(param string) bool { return !nonLearnable[param] }

// Node is one layer. Every node has one output; Inputs name the nodes it reads.
type Node struct {
	Name   string   `json:"name"`
	Op     Op       `json:"op"`
	Inputs []string `json:"inputs,omitempty"`

	Out    int     `json:"out,omitempty"`    // conv/linear output channels; input channel count for OpInput
	In     int     `json:"in,omitempty"`     // conv/linear input channels (all groups)
	Kernel int     `json:"kernel,omitempty"` // conv and pooling window (square)
	Stride int     `json:"stride,omitempty"`
	Pad    int     `json:"pad,omitempty"`
	Groups int     `json:"groups,omitempty"` // conv; 0 means 1
	Eps    float64 `json:"eps,omitempty"`    // batchnorm

	// Params holds the weights, keyed by PyTorch parameter name (weight, bias,
	// running_mean, ...). act_mean/act_var, when present, are measured statistics
	// of this node's output (the RMNet reference code's running1/running2).
	Params map[string]*tensor.Dense `json:"-"`
}

// P returns the float32 data of parameter name, or nil.
func (n *Node) P(name string) []float32 {
	t := n.Params[name]
	if t == nil {
		return nil
	}
	return Floats(t)
}

// SetP sets parameter name to a tensor of shape holding data.
func (n *Node) SetP(name string, shape []int, data []float32) {
	if n.Params == nil {
		n.Params = map[string]*tensor.Dense{}
	}
	n.Params[name] = NewTensor(shape, data)
}

// G returns the conv group count (at least 1).
func (n *Node) G() int {
	if n.Groups < 1 {
		return 1
	}
	return n.Groups
}

// Clone deep-copies the node and its parameters.
func (n *Node) Clone() *Node {
	c := *n
	c.Inputs = slices.Clone(n.Inputs)
	if n.Params != nil {
		c.Params = make(map[string]*tensor.Dense, len(n.Params))
		for k, v := range n.Params {
			c.Params[k] = Clone(v)
		}
	}
	return &c
}

// Graph is a network: nodes in topological order, the first being the input.
// The output is the last node. Metadata travels with the graph into model files.
type Graph struct {
	Nodes []*Node

	Input        [3]int    // C, H, W of one image (H, W may be 0 when unknown)
	Arch         string    // architecture name, e.g. resnet20; after RM rmnet20 (or <arch>-plain)
	Form         string    // "resnet" (has residual adds), "rmnet" (plain, after RM) or "" (unknown)
	Mean, Std    []float32 // per-channel normalisation, empty when unknown
	Classes      int
	Labels       []string
	SourceSHA256 string
	Recipe       string // JSON pruning recipe, empty for unpruned nets
	// Dataset names the data set the model was trained on, as the trainer
	// was given it (e.g. "mnist", "fashion-mnist"); empty when unknown.
	// Pruning calibrates on it when the model carries no statistics.
	Dataset string
}

// Node returns the node named name, or nil.
func (g *Graph) Node(name string) *Node {
	for _, n := range g.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Index returns a name → position map.
func (g *Graph) Index() map[string]int {
	m := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		m[n.Name] = i
	}
	return m
}

// Consumers maps each node name to the nodes that read it, in graph order.
func (g *Graph) Consumers() map[string][]*Node {
	m := map[string][]*Node{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			m[in] = append(m[in], n)
		}
	}
	return m
}

// Output returns the output node.
func (g *Graph) Output() *Node { return g.Nodes[len(g.Nodes)-1] }

// Clone deep-copies the graph.
func (g *Graph) Clone() *Graph {
	c := *g
	c.Nodes = make([]*Node, len(g.Nodes))
	for i, n := range g.Nodes {
		c.Nodes[i] = n.Clone()
	}
	c.Mean = slices.Clone(g.Mean)
	c.Std = slices.Clone(g.Std)
	c.Labels = slices.Clone(g.Labels)
	return &c
}

// HasResidual reports whether the graph contains an add.
func (g *Graph) HasResidual() bool {
	for _, n := range g.Nodes {
		if n.Op == OpAdd {
			return true
		}
	}
	return false
}

// HasMasks reports whether the graph contains mask nodes (a mask-trained model).
func (g *Graph) HasMasks() bool {
	for _, n := range g.Nodes {
		if n.Op == OpMask {
			return true
		}
	}
	return false
}

// ErrShape marks an inconsistent graph (shapes that do not fit together).
var ErrShape = errors.New("inconsistent shapes")

// Shape is the C×H×W of one image's activation at a node.
type Shape struct{ C, H, W int }

func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W) }

// Numel is C·H·W.
func (s Shape) Numel() int { return s.C * s.H * s.W }

func poolOut(x, k, s, p int) int { return (x+2*p-k)/s + 1 }

func shapeErr(n *Node, format string, args ...any) error {
	return fmt.Errorf("nn: node %s (%s): %s: %w", n.Name, n.Op, fmt.Sprintf(format, args...), ErrShape)
}

func wantParam(n *Node, name string, shape ...int) error {
	t := n.Params[name]
	if t == nil {
		return shapeErr(n, "missing parameter %s", name)
	}
	if got := ShapeOf(t); !slices.Equal(got, shape) {
		return shapeErr(n, "parameter %s has shape %v, want %v", name, got, shape)
	}
	return nil
}

// Shapes checks the graph and returns every node's output shape for an input
// of shape in. It validates parameter shapes against the layer attributes.
func (g *Graph) Shapes(in Shape) (map[string]Shape, error) {
	if len(g.Nodes) == 0 || g.Nodes[0].Op != OpInput {
		return nil, fmt.Errorf("nn: graph has no input node: %w", ErrShape)
	}
	out := make(map[string]Shape, len(g.Nodes))
	for i, n := range g.Nodes {
		ins := make([]Shape, len(n.Inputs))
		for j, name := range n.Inputs {
			s, ok := out[name]
			if !ok {
				return nil, shapeErr(n, "input %q is not an earlier node", name)
			}
			ins[j] = s
		}
		if i > 0 && len(ins) == 0 {
			return nil, shapeErr(n, "no inputs")
		}
		if _, dup := out[n.Name]; dup {
			return nil, shapeErr(n, "duplicate node name")
		}
		s, err := nodeShape(n, in, ins)
		if err != nil {
			return nil, err
		}
		if s.C <= 0 || s.H <= 0 || s.W <= 0 {
			return nil, shapeErr(n, "output shape %v is empty", s)
		}
		out[n.Name] = s
	}
	return out, nil
}

func nodeShape(n *Node, in Shape, ins []Shape) (Shape, error) {
	var x Shape
	if len(ins) > 0 {
		x = ins[0]
		if n.Op != OpAdd && len(ins) != 1 {
			return x, shapeErr(n, "%d inputs, want 1", len(ins))
		}
	}
	switch n.Op {
	case OpInput:
		if n.Out != 0 && n.Out != in.C {
			return x, shapeErr(n, "model takes %d input channels, got %d", n.Out, in.C)
		}
		return in, nil
	case OpConv:
		g := n.G()
		if x.C != n.In {
			return x, shapeErr(n, "input has %d channels, layer expects %d", x.C, n.In)
		}
		if n.In%g != 0 || n.Out%g != 0 || n.Kernel < 1 || n.Stride < 1 || n.Pad < 0 {
			return x, shapeErr(n, "bad attributes in=%d out=%d groups=%d kernel=%d stride=%d pad=%d", n.In, n.Out, g, n.Kernel, n.Stride, n.Pad)
		}
		if err := wantParam(n, "weight", n.Out, n.In/g, n.Kernel, n.Kernel); err != nil {
			return x, err
		}
		if n.Params["bias"] != nil {
			if err := wantParam(n, "bias", n.Out); err != nil {
				return x, err
			}
		}
		return Shape{n.Out, poolOut(x.H, n.Kernel, n.Stride, n.Pad), poolOut(x.W, n.Kernel, n.Stride, n.Pad)}, nil
	case OpBatchNorm:
		for _, p := range []string{"weight", "bias", "running_mean", "running_var"} {
			if err := wantParam(n, p, x.C); err != nil {
				return x, err
			}
		}
		return x, nil
	case OpPReLU, OpMask:
		return x, wantParam(n, "weight", x.C)
	case OpClamp:
		if err := wantParam(n, "min", x.C); err != nil {
			return x, err
		}
		return x, wantParam(n, "max", x.C)
	case OpReLU, OpReLU6:
		return x, nil
	case OpAdd:
		if len(ins) < 2 {
			return x, shapeErr(n, "add needs at least 2 inputs")
		}
		for _, s := range ins[1:] {
			if s != x {
				return x, shapeErr(n, "adds %v and %v", x, s)
			}
		}
		return x, nil
	case OpMaxPool, OpAvgPool:
		if n.Kernel < 1 || n.Stride < 1 || n.Pad < 0 || 2*n.Pad > n.Kernel {
			return x, shapeErr(n, "bad pooling window kernel=%d stride=%d pad=%d", n.Kernel, n.Stride, n.Pad)
		}
		return Shape{x.C, poolOut(x.H, n.Kernel, n.Stride, n.Pad), poolOut(x.W, n.Kernel, n.Stride, n.Pad)}, nil
	case OpGlobalAvgPool:
		return Shape{x.C, 1, 1}, nil
	case OpFlatten:
		return Shape{x.Numel(), 1, 1}, nil
	case OpLinear:
		if x.H != 1 || x.W != 1 || x.C != n.In {
			return x, shapeErr(n, "input %v, layer expects %d features", x, n.In)
		}
		if err := wantParam(n, "weight", n.Out, n.In); err != nil {
			return x, err
		}
		if n.Params["bias"] != nil {
			if err := wantParam(n, "bias", n.Out); err != nil {
				return x, err
			}
		}
		return Shape{n.Out, 1, 1}, nil
	}
	return x, shapeErr(n, "unknown op")
}

// InputShape returns the graph's input shape, with H and W defaulting by stem
// (32×32 for a 3×3 stride-1 stem, 224×224 otherwise) when the graph does not
// record them.
func (g *Graph) InputShape() Shape {
	s := Shape{g.Input[0], g.Input[1], g.Input[2]}
	if s.C == 0 && len(g.Nodes) > 0 {
		s.C = g.Nodes[0].Out
	}
	if s.H == 0 || s.W == 0 {
		s.H, s.W = 224, 224
		for _, n := range g.Nodes {
			if n.Op == OpConv {
				if n.Kernel == 3 && n.Stride == 1 {
					s.H, s.W = 32, 32
				}
				break
			}
		}
	}
	return s
}

// StateDict returns the graph's tensors named <node>.<param>, in graph order
// (parameters sorted within a node). Tensors are shared, not copied.
func (g *Graph) StateDict() *StateDict {
	sd := NewStateDict()
	for _, n := range g.Nodes {
		names := make([]string, 0, len(n.Params))
		for p := range n.Params {
			names = append(names, p)
		}
		slices.Sort(names)
		for _, p := range names {
			sd.Add(n.Name+"."+p, n.Params[p])
		}
	}
	return sd
}
