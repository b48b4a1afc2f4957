package pruning

import (
	"github.com/rmprune/rmprune/nn"
)

// A space is one set of coupled channels: the output channels of an
// ungrouped conv (its creator) and every tensor that carries them one to one
// through channel-wise layers (BatchNorm, activations, pooling, flatten,
// depthwise convs, whose groups follow the channels). Removing channel c of a
// space removes it from every node of the space and removes the matching
// input columns of its consumers (the ungrouped convs and linears that read
// a node of the space).
type space struct {
	creator *nn.Node   // the ungrouped conv that makes the channels; nil when none
	nodes   []*nn.Node // the nodes of the space in graph order, creator first
	fixed   string     // why the space cannot be pruned ("" when it can)
	n       int        // channel count

	// consumers: (node of the space read, reader) pairs, readers being ungrouped
	// convs or linears; block is the number of reader input columns per
	// channel (H·W for a linear after a flatten, else 1).
	reads []read
}

type read struct {
	at     *nn.Node
	reader *nn.Node
	block  int
}

func (s *space) name() string {
	if s.creator != nil {
		return s.creator.Name
	}
	return s.nodes[0].Name
}

func (s *space) prunable() bool { return s.fixed == "" }

// channelWise reports whether op maps channel c of its input to channel c of
// its output and nothing else.
func channelWise(n *nn.Node) bool {
	switch n.Op {
	case nn.OpBatchNorm, nn.OpReLU, nn.OpReLU6, nn.OpPReLU, nn.OpClamp,
		nn.OpMaxPool, nn.OpAvgPool, nn.OpGlobalAvgPool, nn.OpFlatten:
		return true
	case nn.OpConv:
		return depthwise(n)
	}
	return false
}

func depthwise(n *nn.Node) bool { return n.G() > 1 && n.G() == n.In && n.In == n.Out }

// spaces partitions g's nodes into channel spaces. inner, when not nil,
// restricts pruning to spaces whose creator it contains (form resnet).
func spaces(g *nn.Graph, shapes map[string]nn.Shape, inner map[string]bool) (byNode map[string]*space, list []*space) {
	// Union-find over node positions.
	idx := g.Index()
	parent := make([]int, len(g.Nodes))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b int) {
		ra, rb := find(a), find(b)
		if ra == rb {
			return
		}
		if ra < rb {
			parent[rb] = ra
		} else {
			parent[ra] = rb
		}
	}
	fixed := map[int]string{} // node position → reason (resolved to roots below)
	for i, n := range g.Nodes {
		switch {
		case n.Op == nn.OpInput:
			fixed[i] = "network input"
		case n.Op == nn.OpAdd:
			for _, in := range n.Inputs {
				union(i, idx[in])
			}
			fixed[i] = "residual add"
		case channelWise(n):
			union(i, idx[n.Inputs[0]])
		case n.Op == nn.OpConv && n.G() > 1:
			fixed[i] = "grouped conv"
			fixed[idx[n.Inputs[0]]] = "read by a grouped conv"
		case n.Op == nn.OpLinear:
			fixed[i] = "linear output"
		}
	}
	fixed[len(g.Nodes)-1] = "network output"
	byRoot := map[int]*space{}
	byNode = map[string]*space{}
	for i, n := range g.Nodes {
		r := find(i)
		s := byRoot[r]
		if s == nil {
			s = &space{}
			byRoot[r] = s
			list = append(list, s)
		}
		s.nodes = append(s.nodes, n)
		byNode[n.Name] = s
		if n.Op == nn.OpConv && n.G() == 1 {
			if s.creator != nil {
				s.fixed = "several creators"
			}
			s.creator = n
		}
	}
	for i := range g.Nodes {
		if why, ok := fixed[i]; ok {
			if s := byRoot[find(i)]; s.fixed == "" {
				s.fixed = why
			}
		}
	}
	for _, s := range list {
		if s.creator == nil {
			if s.fixed == "" {
				s.fixed = "no conv makes it"
			}
			continue
		}
		s.n = s.creator.Out
		if s.fixed == "" && inner != nil && !inner[s.creator.Name] {
			s.fixed = "residual trunk or outside blocks"
		}
	}
	for _, n := range g.Nodes {
		if !(n.Op == nn.OpConv && n.G() == 1) && n.Op != nn.OpLinear {
			continue
		}
		at := g.Nodes[idx[n.Inputs[0]]]
		s := byNode[at.Name]
		if s.creator == nil || s.n == 0 {
			continue
		}
		block := 1
		if n.Op == nn.OpLinear {
			block = shapes[at.Name].Numel() / s.n
		}
		s.reads = append(s.reads, read{at: at, reader: n, block: block})
	}
	for _, s := range list {
		if s.fixed == "" && len(s.reads) == 0 {
			s.fixed = "no conv or linear reads it"
		}
		if s.fixed == "" {
			for _, r := range s.reads {
				sh := shapes[r.at.Name]
				ok := r.block == 1 && sh.C == s.n
				if r.reader.Op == nn.OpLinear {
					ok = r.block >= 1 && r.block*s.n == sh.Numel()
				}
				if !ok {
					s.fixed = "unsupported reader layout"
				}
			}
		}
	}
	return byNode, list
}

// innerConvs returns the convs inside residual blocks whose outputs stay in
// the block: walking back from each input of every add along nodes with one
// input and one reader, every conv met except the one nearest to the add
// (BasicBlock conv1; Bottleneck conv1 and conv2; the expansion and depthwise
// convs of an inverted residual).
func innerConvs(g *nn.Graph) map[string]bool {
	byName := map[string]*nn.Node{}
	for _, n := range g.Nodes {
		byName[n.Name] = n
	}
	cons := g.Consumers()
	inner := map[string]bool{}
	for _, add := range g.Nodes {
		if add.Op != nn.OpAdd {
			continue
		}
		for _, in := range add.Inputs {
			var convs []*nn.Node
			for n := byName[in]; n != nil && len(n.Inputs) == 1 && len(cons[n.Name]) == 1; n = byName[n.Inputs[0]] {
				if n.Op == nn.OpConv {
					convs = append(convs, n)
				}
			}
			for _, c := range convs[min(1, len(convs)):] {
				inner[c.Name] = true
			}
		}
	}
	return inner
}
