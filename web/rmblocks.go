package web

import (
	"fmt"
	"runtime"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
	"github.com/rmprune/rmprune/store"
)

// blockwiseAbove is the parameter count above which the RM check converts
// and compares a network group by group (convertReportBlockwise) instead of
// whole: RM's dense form of a torchvision ResNet-50 has 277M parameters
// (1.1 GB), and only one block's worth needs to exist at a time.
const blockwiseAbove = 2_000_000

// paramFloats counts every stored number of g (weights and statistics).
func paramFloats(g *nn.Graph) int {
	n := 0
	for _, nd := range g.Nodes {
		for _, t := range nd.Params {
			n += t.Len()
		}
	}
	return n
}

// rmGroup is a run of nodes g.Nodes[lo:hi] that only the node before lo
// feeds (the graph input for the first group).
type rmGroup struct{ lo, hi int }

// rmGroups cuts g into groups, each holding whole residual blocks and the
// nodes up to the activation after the block's add: a cut is a node whose
// output is the only value later nodes read from it and everything before
// it (and not a conv, whose BN must fold into it), and a group ends at the
// first cut past an add.
func rmGroups(g *nn.Graph) []rmGroup {
	pos := g.Index()
	n := len(g.Nodes)
	// minIn[j]: the earliest node that node j or any later node reads.
	minIn := make([]int, n+1)
	minIn[n] = n
	for j := n - 1; j >= 0; j-- {
		m := minIn[j+1]
		for _, in := range g.Nodes[j].Inputs {
			m = min(m, pos[in])
		}
		minIn[j] = m
	}
	var gs []rmGroup
	lo, addAt := 1, -1
	for i := 1; i < n; i++ {
		if g.Nodes[i].Op == nn.OpAdd && addAt < 0 {
			addAt = i
		}
		// Never between a conv and the BN that folds into it.
		cut := minIn[i+1] >= i && g.Nodes[i].Op != nn.OpConv
		if i == n-1 || cut && addAt >= 0 && i > addAt {
			gs = append(gs, rmGroup{lo, i + 1})
			lo, addAt = i+1, -1
		}
	}
	return gs
}

// groupGraph returns group gr of g as a network of its own whose input is
// the node before the group (shape s). A non-negative cut gets a ReLU after
// the input — the identity on its values — so that RM can prove the block
// input non-negative as it does in the whole network. The nodes are shared
// with g, not copied.
func groupGraph(g *nn.Graph, gr rmGroup, s nn.Shape, nonneg map[string]bool) *nn.Graph {
	sub := &nn.Graph{Input: [3]int{s.C, s.H, s.W}, Arch: g.Arch, Form: g.Form}
	if gr.lo == 1 {
		sub.Nodes = append(sub.Nodes, g.Nodes[0])
	} else {
		cut := g.Nodes[gr.lo-1].Name
		if nonneg[cut] {
			sub.Nodes = append(sub.Nodes, &nn.Node{Name: "rmcheck.input", Op: nn.OpInput, Out: s.C},
				&nn.Node{Name: cut, Op: nn.OpReLU, Inputs: []string{"rmcheck.input"}})
		} else {
			sub.Nodes = append(sub.Nodes, &nn.Node{Name: cut, Op: nn.OpInput, Out: s.C})
		}
	}
	sub.Nodes = append(sub.Nodes, g.Nodes[gr.lo:gr.hi]...)
	return sub
}

// convertReportBlockwise is convertReport one group of blocks at a time:
// the original and the converted network each run on their own stream of
// activations, group by group (the converted stream feeds the next
// converted group, so the final error is the whole network's, as before),
// and each group's dense RM form is dropped before the next is built. Peak
// memory is the source network plus one group's conversion (~0.3 GB for
// ResNet-50's last blocks) instead of the whole dense RMNet.
func convertReportBlockwise(g *nn.Graph, in nn.Shape) (c store.Conversion, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rm: %v", r)
		}
	}()
	shapes, err := g.Shapes(in)
	if err != nil {
		return c, fmt.Errorf("rm: %w", err)
	}
	before, err := g.Summarize(in)
	if err != nil {
		return c, fmt.Errorf("rm: %w", err)
	}
	nonneg := rm.NonNegative(g)
	xo := rm.RandomInput(2, in, 1)
	xc := xo
	var after nn.Summary
	chAfter := 0
	for _, gr := range rmGroups(g) {
		s := in
		if gr.lo > 1 {
			s = shapes[g.Nodes[gr.lo-1].Name]
		}
		sub := groupGraph(g, gr, s, nonneg)
		res, err := rm.Convert(sub, rm.Options{})
		if err != nil {
			return c, err
		}
		yo, err := sub.Forward(xo, nil)
		if err != nil {
			return c, fmt.Errorf("rm: original forward: %w", err)
		}
		yc, err := res.Graph.Forward(xc, nil)
		if err != nil {
			return c, fmt.Errorf("rm: converted forward: %w", err)
		}
		sum, err := res.Graph.Summarize(s)
		if err != nil {
			return c, fmt.Errorf("rm: %w", err)
		}
		after.Params += sum.Params
		after.MACs += sum.MACs
		after.FLOPs += sum.FLOPs
		chAfter += rm.Channels(res.Graph)
		xo, xc = yo, yc
		res = nil
		runtime.GC() // the group's dense form is garbage: free it before the next
	}
	rel, abs := nn.RelError(xc.D, xo.D)
	return store.Conversion{Form: "rmnet", MaxAbsErr: abs, MaxRelErr: rel,
		ParamsSource: before.Params, ParamsBefore: before.Params, ParamsAfter: after.Params,
		MACsBefore: before.MACs, MACsAfter: after.MACs, FLOPsBefore: before.FLOPs, FLOPsAfter: after.FLOPs,
		ChannelsBefore: int64(rm.Channels(g)), ChannelsAfter: int64(chAfter),
		StatsSource: "folded (needs no statistics); checked block by block"}, nil
}
