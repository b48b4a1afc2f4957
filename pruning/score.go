package pruning

import (
	"math"
	"slices"

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
	Layer    string    `json:"layer"`            // the conv that makes the channels
	Kinds    []rm.Kind `json:"kinds,omitempty"`  // per channel (form rmnet): plain, inner, reserved, block_out
	Scores   []float64 `json:"scores"`           // what the ranking compares
	Scales   []float64 `json:"scales,omitempty"` // slim: the channel's scale (|γ|, or the BN-kept form's folded std)
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
// creator, in graph order (l1 needs the scores of earlier spaces), and, for
// slim, the scales they come from. With share (slim in form rmnet) a
// channel's score is its share of what its readers compute (shareScores)
// rather than its scale.
func score(method string, share bool, g *nn.Graph, byNode map[string]*space, list []*space, kinds map[string][]rm.Kind) (scores, scales map[*space][]float64) {
	scores, scales = map[*space][]float64{}, map[*space][]float64{}
	for _, s := range list {
		if s.creator == nil {
			continue
		}
		switch method {
		case Slim:
			sc := slimScores(s)
			scales[s], scores[s] = sc, sc
			if share && sc != nil {
				scores[s] = shareScores(s, sc)
			}
		case L1:
			in := byNode[s.creator.Inputs[0]]
			scores[s] = l1Scores(s, kinds[s.creator.Name], scores[in])
		}
	}
	return scores, scales
}

// shareScores ranks the channels of s by how much of their readers' output
// they make: for each output o of a conv or linear reading the space, the
// share of o's variance that channel c contributes, ‖W[o,c]‖²·σc² over
// Σc' ‖W[o,c']‖²·σc'² (inputs taken as independent), averaged over every
// reader output and scaled so that an average channel of the space scores 1:
// score = √(n · mean share). σc is the std of the channel where it is read:
// its BatchNorm's output N(β, γ²), through the ReLU when one lies between.
//
// Why, in form rmnet: the scales (scale, slimScores) are stds in the units
// of each layer's own stream, and RM makes every stream prunable — a
// block output or reserved channel's std is that of the residual stream at
// that depth, which the next BatchNorm renormalises anyway. A global ranking
// of raw stds cut stage-2 block outputs of the MNIST demo down to one channel
// at ratio 0.7 while keeping far weaker channels of stage 3 (README,
// "Pruning"). A share is unit-free and counts what the next layer does with
// the channel. A channel with scale 0, or that no reader weight reads, scores
// 0, so a threshold of 0 still removes exactly the channels that contribute
// nothing (and is exact).
func shareScores(s *space, scale []float64) []float64 {
	bn := -1
	for i, n := range s.nodes {
		if n.Op == nn.OpBatchNorm {
			bn = i
		}
	}
	sigma := make([]float64, s.n)
	if bn < 0 {
		copy(sigma, scale)
	} else {
		relu := slices.ContainsFunc(s.nodes[bn+1:], func(n *nn.Node) bool {
			return n.Op == nn.OpReLU || n.Op == nn.OpReLU6
		})
		gamma, beta := s.nodes[bn].P("weight"), s.nodes[bn].P("bias")
		for c := range sigma {
			if scale[c] == 0 {
				continue // a zero scale anywhere in the space: the channel is constant
			}
			sigma[c] = math.Abs(float64(gamma[c]))
			if relu {
				sigma[c] = reluStd(float64(beta[c]), sigma[c])
			}
		}
	}
	share := make([]float64, s.n)
	outputs := 0
	e := make([]float64, s.n)
	for _, r := range s.reads {
		w := r.reader.P("weight")
		per := len(w) / r.reader.Out
		blk := per / s.n // weights per (output, channel): k·k, or H·W for a linear after a flatten
		if blk*s.n != per {
			return scale
		}
		for o := range r.reader.Out {
			row := w[o*per : (o+1)*per]
			var tot float64
			for c := range e {
				var q float64
				for _, v := range row[c*blk : (c+1)*blk] {
					q += float64(v) * float64(v)
				}
				e[c] = q * sigma[c] * sigma[c]
				tot += e[c]
			}
			outputs++
			if tot == 0 {
				continue
			}
			for c := range e {
				share[c] += e[c] / tot
			}
		}
	}
	if outputs == 0 {
		return scale
	}
	for c := range share {
		share[c] = math.Sqrt(float64(s.n) * share[c] / float64(outputs))
	}
	return share
}

// reluStd is the standard deviation of max(x, 0) for x ~ N(mu, sd²).
func reluStd(mu, sd float64) float64 {
	if sd == 0 {
		return 0
	}
	a := mu / sd
	cdf := 0.5 * math.Erfc(-a/math.Sqrt2)
	pdf := math.Exp(-a*a/2) / math.Sqrt(2*math.Pi)
	m1 := mu*cdf + sd*pdf
	m2 := (mu*mu+sd*sd)*cdf + mu*sd*pdf
	return math.Sqrt(max(m2-m1*m1, 0))
}
