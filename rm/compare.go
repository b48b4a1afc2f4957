package rm

import (
	"fmt"
	"math/rand/v2"

	"github.com/rmprune/rmprune/nn"
)

// Report compares a converted network with its original on one input.
type Report struct {
	MaxAbsErr float64 `json:"max_abs_err"`
	MaxRelErr float64 `json:"max_rel_err"` // max|Δ| / max|original output|

	ParamsBefore       int64 `json:"params_before"`
	ParamsAfter        int64 `json:"params_after"`
	MACsBefore         int64 `json:"macs_before"`
	MACsAfter          int64 `json:"macs_after"`
	FLOPsBefore        int64 `json:"flops_before"`
	FLOPsAfter         int64 `json:"flops_after"`
	ChannelsBefore     int   `json:"channels_before"` // prunable channels of each form (see Channels)
	ChannelsAfter      int   `json:"channels_after"`
	ConvChannelsBefore int   `json:"conv_channels_before"` // all conv output channels
	ConvChannelsAfter  int   `json:"conv_channels_after"`

	Before *nn.Summary `json:"-"`
	After  *nn.Summary `json:"-"`
}

// Compare runs orig and conv on x with the reference forward and reports the
// output error and the size and cost of both networks for x's shape.
func Compare(orig, conv *nn.Graph, x *nn.Act) (*Report, error) {
	want, err := orig.Forward(x, nil)
	if err != nil {
		return nil, fmt.Errorf("rm: original forward: %w", err)
	}
	got, err := conv.Forward(x, nil)
	if err != nil {
		return nil, fmt.Errorf("rm: converted forward: %w", err)
	}
	r := &Report{}
	r.MaxRelErr, r.MaxAbsErr = nn.RelError(got.D, want.D)
	if r.Before, err = orig.Summarize(x.Shape()); err != nil {
		return nil, fmt.Errorf("rm: %w", err)
	}
	if r.After, err = conv.Summarize(x.Shape()); err != nil {
		return nil, fmt.Errorf("rm: %w", err)
	}
	r.ParamsBefore, r.ParamsAfter = r.Before.Params, r.After.Params
	r.MACsBefore, r.MACsAfter = r.Before.MACs, r.After.MACs
	r.FLOPsBefore, r.FLOPsAfter = r.Before.FLOPs, r.After.FLOPs
	r.ChannelsBefore, r.ChannelsAfter = Channels(orig), Channels(conv)
	r.ConvChannelsBefore, r.ConvChannelsAfter = convChannels(orig), convChannels(conv)
	return r, nil
}

// Channels counts the prunable channels of a network's form: the output
// channels of every conv whose output does not reach an add through
// channel-wise layers (BN, activations, pools, other adds) — an add couples
// the channels of all its inputs, so a residual network (--form resnet) can
// prune only inside its blocks. In a plain network every conv channel counts.
func Channels(g *nn.Graph) int {
	cons := g.Consumers()
	reach := map[string]bool{}
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		n := g.Nodes[i]
		for _, c := range cons[n.Name] {
			switch c.Op {
			case nn.OpAdd:
				reach[n.Name] = true
			case nn.OpBatchNorm, nn.OpReLU, nn.OpReLU6, nn.OpPReLU, nn.OpClamp, nn.OpMaxPool, nn.OpAvgPool, nn.OpMask:
				reach[n.Name] = reach[n.Name] || reach[c.Name]
			}
		}
	}
	total := 0
	for _, n := range g.Nodes {
		if n.Op == nn.OpConv && !reach[n.Name] {
			total += n.Out
		}
	}
	return total
}

func convChannels(g *nn.Graph) int {
	n := 0
	for _, x := range g.Nodes {
		if x.Op == nn.OpConv {
			n += x.Out
		}
	}
	return n
}

// RandomInput returns a batch of n standard-normal images of shape s (any
// sign: RM assumes nothing about the network input; block inputs are
// post-activation by construction).
func RandomInput(n int, s nn.Shape, seed uint64) *nn.Act {
	rng := rand.New(rand.NewPCG(seed, 0x726d))
	a := nn.NewAct(n, s.C, s.H, s.W)
	for i := range a.D {
		a.D[i] = float32(rng.NormFloat64())
	}
	return a
}
