package pruning

import (
	"math"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// Criteria.
const (
	Slim = "slim" // |γ| of the channel's BatchNorm in the BN-kept form
	L1   = "l1"   // L1 norm of the BN-folded filter, relative to its layer's mean
)

// LayerScores are the importances of one prunable layer's output channels.
type LayerScores struct {
	Layer    string    `json:"layer"`           // the conv that makes the channels
	Kinds    []rm.Kind `json:"kinds,omitempty"` // per channel (form rmnet): plain, inner, reserved, block_out
	Scores   []float64 `json:"scores"`
	Prunable bool      `json:"prunable"`
}

// slimScores returns, per channel of s, the smallest |γ| over the
// BatchNorms of the space (one in the usual conv→BN→act unit; an inverted
// residual's expansion and depthwise BNs share a space, and a channel is as
// strong as its weakest gate). It returns nil for a space without a
// BatchNorm: slim has nothing to rank it by, and it is not pruned.
func slimScores(s *space) []float64 {
	var sc []float64
	for _, n := range s.nodes {
		if n.Op != nn.OpBatchNorm {
			continue
		}
		if sc == nil {
			sc = make([]float64, s.n)
			for c := range sc {
				sc[c] = math.Inf(1)
			}
		}
		for c, g := range n.P("weight") {
			sc[c] = min(sc[c], math.Abs(float64(g)))
		}
	}
	return sc
}

// l1Scores returns the L1 norms of the creator's filters folded with the
// BatchNorm right after it, divided by the mean over the layer's own
// (non-reserved) filters, so that 1 is an average filter of any layer and a
// global ranking compares like with like. A reserved channel's filter is a
// Dirac copy of input channel c: its folded L1 norm is the reserved BN's
// scale, 1, whatever the channel carries, which says nothing. It inherits
// instead the score of the channel it copies (from, the scores of the
// creator's input space; 1 when that space has no scores, e.g. the network
// input): a copy is as important as the channel it carries.
func l1Scores(s *space, kinds []rm.Kind, from []float64) []float64 {
	conv := s.creator
	w := conv.P("weight")
	per := len(w) / conv.Out
	scale := make([]float64, conv.Out)
	for i := range scale {
		scale[i] = 1
	}
	for _, n := range s.nodes[1:] {
		if n.Op == nn.OpBatchNorm && n.Inputs[0] == conv.Name {
			sc, _ := nn.BNScaleShift(n)
			copy(scale, sc)
			break
		}
	}
	raw := make([]float64, conv.Out)
	var sum float64
	cnt := 0
	for o := range raw {
		var a float64
		for _, v := range w[o*per : (o+1)*per] {
			a += math.Abs(float64(v))
		}
		raw[o] = a * math.Abs(scale[o])
		if !reserved(kinds, o) {
			sum += raw[o]
			cnt++
		}
	}
	mean := 0.0
	if cnt > 0 {
		mean = sum / float64(cnt)
	}
	sc := make([]float64, conv.Out)
	for o := range sc {
		switch {
		case reserved(kinds, o):
			sc[o] = 1
			if o < len(from) {
				sc[o] = from[o]
			}
		case mean > 0:
			sc[o] = raw[o] / mean
		}
	}
	return sc
}

func reserved(kinds []rm.Kind, o int) bool { return o < len(kinds) && kinds[o] == rm.KindReserved }

// score computes the criterion's importances for every space with a
// creator, in graph order (l1 needs the scores of earlier spaces).
func score(method string, g *nn.Graph, byNode map[string]*space, list []*space, kinds map[string][]rm.Kind) map[*space][]float64 {
	out := map[*space][]float64{}
	for _, s := range list {
		if s.creator == nil {
			continue
		}
		switch method {
		case Slim:
			out[s] = slimScores(s)
		case L1:
			in := byNode[s.creator.Inputs[0]]
			out[s] = l1Scores(s, kinds[s.creator.Name], out[in])
		}
	}
	return out
}
