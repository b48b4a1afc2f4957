// Package rm is the exact RM (Reserving and Merging) conversion: it turns a
// residual network (ResNet BasicBlocks and Bottlenecks, MobileNetV2 inverted
// residuals, RepVGG training-time blocks) into a plain network with the same
// function, in a folded deploy form or in a BN-kept form that pruning can slim
// and fine-tune; it fuses adjacent pointwise convs where that does not cost
// MACs, and reports the conversion's error and cost.
//
// Blocks are found by graph pattern, not by name: an add whose inputs trace
// back to one block input through a main branch (conv[+BN][+activation] units)
// and a shortcut (nothing, a per-channel scale, or a 1×1 conv[+BN]); or an add
// whose every branch is a single conv[+BN], a BN or the identity (RepVGG).
package rm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rmprune/rmprune/nn"
)

// ErrPattern marks a residual block the conversion does not recognise.
var ErrPattern = errors.New("unsupported block pattern")

// FusePolicy says which adjacent 1×1 convs the folded form fuses.
type FusePolicy int

// Fuse policies. The zero value fuses where MACs do not increase.
const (
	FuseNoLoss FusePolicy = iota // fuse where the fused conv costs no more MACs than the pair
	FuseNever                    // report candidates, fuse none
	FuseAll                      // fuse every candidate (MobileNetV2 → MobileNetV1 shape), even at a MAC cost
)

func (p FusePolicy) String() string {
	switch p {
	case FuseNoLoss:
		return "no-loss"
	case FuseNever:
		return "never"
	case FuseAll:
		return "all"
	}
	return fmt.Sprintf("FusePolicy(%d)", int(p))
}

// Options controls Convert.
type Options struct {
	// KeepBN keeps BatchNorm layers (the form pruning slims and fine-tunes);
	// otherwise the result is folded: convs with bias, no BN.
	KeepBN bool
	// Calib, when not nil, is a calibration batch: the block-input and
	// pre-activation-sum statistics of the BN-kept form are measured on it with
	// the reference forward. Otherwise the checkpoint's statistics (act_mean,
	// act_var on the block-input and add nodes) are used, else (0, 1).
	// The folded form needs no statistics.
	Calib *nn.Act
	// Shape is the input shape MACs are counted for (Fusion); zero means the
	// calibration batch's, else g.InputShape(). Fusion decisions do not depend on it.
	Shape nn.Shape
	// Fuse applies to the folded form only (the BN-kept form has a BN between
	// any two convs).
	Fuse FusePolicy
}

// Statistics sources, in order of preference.
const (
	SourceCalib      = "calib"
	SourceCheckpoint = "checkpoint"
	SourceDefault    = "default" // mean 0, variance 1
)

// Kind says what an output channel of a converted conv carries.
type Kind uint8

// Channel kinds.
const (
	KindPlain    Kind = iota // a channel of a layer outside any residual block (stem, transition, head)
	KindInner                // an original inner channel of a block's main branch
	KindReserved             // a reserved channel: carries the block input (Dirac row)
	KindBlockOut             // a block output: main branch and shortcut merged
)

func (k Kind) String() string {
	switch k {
	case KindPlain:
		return "plain"
	case KindInner:
		return "inner"
	case KindReserved:
		return "reserved"
	case KindBlockOut:
		return "block_out"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText makes kinds readable in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Layer describes the output channels of one conv of the converted graph.
type Layer struct {
	Conv  string `json:"conv"`
	BN    string `json:"bn,omitempty"`    // BN after it (BN-kept form), else ""
	Act   string `json:"act,omitempty"`   // activation after it (after the BN), else ""
	Block string `json:"block,omitempty"` // block name, "" outside blocks
	// Kinds has one entry per output channel.
	Kinds []Kind `json:"kinds"`
	// Origin maps each output channel to its source: for reserved channels the
	// channel of the block input (node From) it carries; for the other kinds
	// the output channel of the original layer (for a block output, of the
	// original main branch's last conv).
	Origin []int  `json:"origin"`
	From   string `json:"from,omitempty"` // original node the reserved channels copy
}

// Reserved returns the number of reserved channels (they come first).
func (l *Layer) Reserved() int {
	n := 0
	for _, k := range l.Kinds {
		if k == KindReserved {
			n++
		}
	}
	return n
}

// Block describes one converted residual block.
type Block struct {
	Name     string   `json:"name"`  // prefix, e.g. layer1.0 (the add's name without ".add")
	Kind     string   `json:"kind"`  // basic | bottleneck | inverted | residual | repvgg
	Input    string   `json:"input"` // block input node of the original graph
	Add      string   `json:"add"`   // the original add node
	Reserved int      `json:"reserved"`
	Convs    []string `json:"convs"` // convs of the converted graph that implement the block
	// Output is the node of the converted graph that holds the add's tensor
	// (the pre-activation sum): the merged conv, or its BN in the BN-kept form.
	Output string `json:"output"`
	// InputStats and SumStats name the statistics source of the reserved BNs
	// and of the merged output BN (calib | checkpoint | default). Empty in the
	// folded form, which needs none.
	InputStats string `json:"input_stats,omitempty"`
	SumStats   string `json:"sum_stats,omitempty"`
	// Projection is set when the shortcut is a conv (not the identity).
	Projection bool `json:"projection,omitempty"`
	// Masked is set when the block's mask_res or mask2 went into its
	// reserved or output BatchNorms (BN-kept form of a mask-trained net).
	Masked bool `json:"masked,omitempty"`
}

// Fusion is one candidate pair of adjacent convs without an activation between.
type Fusion struct {
	A, B       string // A feeds B (B is 1×1)
	MACsBefore int64  // both convs, per image
	MACsAfter  int64  // the fused conv
	Fused      bool
}

// Result is a conversion's output.
type Result struct {
	Graph    *nn.Graph
	Blocks   []Block
	Layers   []Layer        // every conv of Graph, in graph order
	Reserved map[string]int // conv name → reserved channel count (the first ones); convs with none are absent
	Fusions  []Fusion
}

// Layer returns the layer of conv name, or nil.
func (r *Result) Layer(conv string) *Layer {
	for i := range r.Layers {
		if r.Layers[i].Conv == conv {
			return &r.Layers[i]
		}
	}
	return nil
}

// StatsSource maps each block to the source of its statistics ("" in the
// folded form); when the input and sum statistics differ it reads
// "input/sum", e.g. "default/checkpoint".
func (r *Result) StatsSource() map[string]string {
	m := make(map[string]string, len(r.Blocks))
	for _, b := range r.Blocks {
		s := b.InputStats
		if b.SumStats != b.InputStats && b.Kind != "repvgg" {
			s = b.InputStats + "/" + b.SumStats
		}
		if b.Kind == "repvgg" {
			s = b.SumStats
		}
		m[b.Name] = s
	}
	return m
}

// Convert applies RM to every residual block of g and returns the plain
// network. g is not modified. A graph without residual blocks converts to a
// copy (BN folded unless KeepBN).
//
// A mask-trained g (nn.OpMask nodes) converts exactly too. The folded form
// folds the masks first (nn.FoldMasks). The BN-kept form puts every mask into
// the BatchNorm of the channels it scales, so that each channel's |γ| is its
// learned importance: inner channels γ·m1 (mask1, mask_mid); reserved
// channels γ = √(v1+ε)·max(m_res,0), β = μ1·max(m_res,0) (the merge column
// then is a plain identity or the folded projection); block outputs
// γ = √(v2+ε)·m2, β = μ2·m2, running (μ2 − b2' − bd', v2), where (μ1, v1)
// are the block input's statistics and (μ2, v2) the residual sum's before
// mask2 (running1/running2, or measured). A zero mask gives γ = β = 0.
func Convert(g *nn.Graph, opt Options) (*Result, error) {
	in := g.InputShape()
	switch {
	case opt.Shape != (nn.Shape{}):
		in = opt.Shape
	case opt.Calib != nil:
		in = opt.Calib.Shape()
	}
	orig := g
	var masks map[string]*blockMasks
	if g.HasMasks() {
		if opt.KeepBN {
			g, masks = unmask(g)
		} else {
			g = nn.FoldMasks(g)
		}
	}
	shapes, err := g.Shapes(in)
	if err != nil {
		return nil, fmt.Errorf("rm: %w", err)
	}
	blocks, err := findBlocks(g)
	if err != nil {
		return nil, err
	}
	st := newStats(g, blocks, opt.KeepBN)
	if opt.KeepBN && opt.Calib != nil {
		// Block inputs and sums keep their names (and values) in the unmasked copy.
		if err := st.measure(orig, opt.Calib); err != nil {
			return nil, err
		}
	}
	c := &converter{g: g, opt: opt, st: st, shapes: shapes, nonneg: NonNegative(g), rename: map[string]string{}, masks: masks}
	res, err := c.run(blocks)
	if err != nil {
		return nil, err
	}
	out := res.Graph
	if _, err := out.Shapes(in); err != nil {
		return nil, fmt.Errorf("rm: converted graph is inconsistent (a bug): %w", err)
	}
	if !opt.KeepBN {
		fuse(res, opt.Fuse, in)
	}
	return res, nil
}

// plainArch names the converted architecture: resnetN → rmnetN, others get a
// "-plain" suffix.
func plainArch(arch string) string {
	switch {
	case arch == "":
		return "plain"
	case strings.Contains(arch, "resnet"):
		return strings.Replace(arch, "resnet", "rmnet", 1)
	}
	return arch + "-plain"
}

// RepVGGDeploy re-parameterises a training-time RepVGG (or RepVGG + RM):
// each block's 3×3 + BN, 1×1 + BN and identity BN become one 3×3 conv with
// bias; RepVGG + RM's reserved channels come out as exact Dirac rows with bias
// 0 (KindReserved in the result). It fails on graphs with other residual blocks.
func RepVGGDeploy(g *nn.Graph) (*Result, error) {
	blocks, err := findBlocks(g)
	if err != nil {
		return nil, err
	}
	for _, b := range blocks {
		if b.kind != "repvgg" {
			return nil, fmt.Errorf("rm: block %s is a %s block, not a RepVGG block: %w", b.name, b.kind, ErrPattern)
		}
	}
	res, err := Convert(g, Options{Fuse: FuseNever})
	if err != nil {
		return nil, err
	}
	res.Graph.Arch = g.Arch + "-deploy"
	if g.Arch == "" {
		res.Graph.Arch = "repvgg-deploy"
	}
	return res, nil
}
