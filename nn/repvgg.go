package nn

import (
	"fmt"
	"math"
)

// RepVGGStage is one stage of a RepVGG: Blocks blocks of width Width, the
// first with stride Stride, the others with stride 1.
type RepVGGStage struct {
	Width, Blocks, Stride int
}

// RepVGGSpec describes a training-time RepVGG with the official key names:
// blocks stage0 and stageN.i, each a 3×3 conv+BN (rbr_dense.conv/.bn), a 1×1
// conv+BN (rbr_1x1.conv/.bn) and, when widths are equal and the stride is 1,
// an identity BN (rbr_identity), summed by one add (<block>.add) and followed
// by a ReLU (<block>.nonlinearity); head gap, flatten, linear.
//
// Reserve > 0 builds RepVGG + RM instead: in every identity block of width C
// the first R = int(C·Reserve) channels pass through unchanged (the block input
// is ≥ 0, so the ReLU keeps them), and the 3×3 and 1×1 branches and the
// identity BN produce only the other C − R outputs:
//
//	y = ReLU([x[:R] ; BN(W3∗x) + BN(W1∗x) + BN(x[R:])])
//
// This is a different network from plain RepVGG, built that way from the
// start. The graph has no concat, so the block keeps full-width branches whose
// first R rows are structural: conv rows zero, their BN γ = β = 0, and the
// identity BN the identity on them (γ = √(1+ε), β = 0, μ = 0, σ² = 1). A
// trainer must keep those rows fixed; Reserved lists R per block.
type RepVGGSpec struct {
	InChannels int
	Stages     []RepVGGStage // stage0 first; it has one block
	Classes    int
	Reserve    float64 // RepVGG + RM reserving ratio r in [0, 1); 0 is plain RepVGG
}

// StandardRepVGG returns a named spec: repvgg-a0 (ImageNet, widths
// 48/48/96/192/1280, blocks 1/2/4/14/1, every stage stride 2) or repvgg-cifar
// (a small CIFAR variant: widths 16/16/32/64, blocks 1/2/2/2, strides 1/1/2/2).
func StandardRepVGG(arch string, inC, classes int, reserve float64) (RepVGGSpec, error) {
	s := RepVGGSpec{InChannels: inC, Classes: classes, Reserve: reserve}
	switch arch {
	case "repvgg-a0":
		s.Stages = []RepVGGStage{{48, 1, 2}, {48, 2, 2}, {96, 4, 2}, {192, 14, 2}, {1280, 1, 2}}
	case "repvgg-cifar":
		s.Stages = []RepVGGStage{{16, 1, 1}, {16, 2, 1}, {32, 2, 2}, {64, 2, 2}}
	default:
		return s, fmt.Errorf("nn: unknown RepVGG architecture %q (repvgg-a0, repvgg-cifar)", arch)
	}
	if reserve < 0 || reserve >= 1 {
		return s, fmt.Errorf("nn: RepVGG reserving ratio %g outside [0, 1)", reserve)
	}
	return s, nil
}

// repvggBlock is one block's name, widths and stride.
type repvggBlock struct {
	name          string
	in, out, strd int
}

func (s RepVGGSpec) blocks() []repvggBlock {
	var bs []repvggBlock
	in := s.InChannels
	for i, st := range s.Stages {
		for j := 0; j < st.Blocks; j++ {
			name := fmt.Sprintf("stage%d.%d", i, j)
			if i == 0 && st.Blocks == 1 {
				name = "stage0"
			}
			strd := 1
			if j == 0 {
				strd = st.Stride
			}
			bs = append(bs, repvggBlock{name, in, st.Width, strd})
			in = st.Width
		}
	}
	return bs
}

// Reserved maps each identity block to its reserved channel count R
// (RepVGG + RM); blocks without reserved channels are absent.
func (s RepVGGSpec) Reserved() map[string]int {
	m := map[string]int{}
	for _, b := range s.blocks() {
		if b.in == b.out && b.strd == 1 {
			if r := int(float64(b.out) * s.Reserve); r > 0 {
				m[b.name] = r
			}
		}
	}
	return m
}

// Build makes the training-time graph with freshly initialised weights (seeded).
func (s RepVGGSpec) Build(seed uint64) *Graph {
	b := newBuilder(s.InChannels, seed)
	x := "input"
	c := s.InChannels
	res := s.Reserved()
	for _, bl := range s.blocks() {
		p := bl.name + "."
		d := b.conv(p+"rbr_dense.conv", x, bl.in, bl.out, 3, bl.strd, 1, 1, false)
		d = b.bn(p+"rbr_dense.bn", d, bl.out)
		o := b.conv(p+"rbr_1x1.conv", x, bl.in, bl.out, 1, bl.strd, 0, 1, false)
		o = b.bn(p+"rbr_1x1.bn", o, bl.out)
		ins := []string{d, o}
		if bl.in == bl.out && bl.strd == 1 {
			ins = append(ins, b.bn(p+"rbr_identity", x, bl.out))
		}
		if r := res[bl.name]; r > 0 {
			g := b.g
			for _, conv := range []string{p + "rbr_dense.conv", p + "rbr_1x1.conv"} {
				n := g.Node(conv)
				w := n.P("weight")
				clear(w[:r*len(w)/n.Out])
			}
			for _, bn := range []string{p + "rbr_dense.bn", p + "rbr_1x1.bn"} {
				clear(g.Node(bn).P("weight")[:r])
			}
			id := g.Node(p + "rbr_identity")
			gamma := id.P("weight")
			for i := 0; i < r; i++ {
				gamma[i] = float32(math.Sqrt(1 + id.Eps))
			}
		}
		y := b.add(&Node{Name: p + "add", Op: OpAdd, Inputs: ins})
		x = b.act(p+"nonlinearity", y, OpReLU)
		c = bl.out
	}
	x = b.act("gap", x, OpGlobalAvgPool)
	x = b.act("flatten", x, OpFlatten)
	b.linear("linear", x, c, s.Classes)
	b.g.Form = "resnet"
	return b.g
}

// BuildRepVGG returns a freshly initialised RepVGG (reserve 0) or RepVGG + RM
// by name (see StandardRepVGG). Its Arch is the name, with "-rm<r>" appended
// for RepVGG + RM.
func BuildRepVGG(arch string, inC, classes int, reserve float64, seed uint64) (*Graph, error) {
	s, err := StandardRepVGG(arch, inC, classes, reserve)
	if err != nil {
		return nil, err
	}
	g := s.Build(seed)
	g.Arch, g.Classes = arch, classes
	if reserve > 0 {
		g.Arch = fmt.Sprintf("%s-rm%g", arch, reserve)
	}
	return g, nil
}
