package pruning

import (
	"fmt"
	"math"
	"slices"

	"github.com/rmprune/rmprune/nn"
	"gorgonia.org/tensor"
)

// cut returns a copy of g without the channels remove lists (current
// indices, per space). A removed channel that is a known non-zero constant
// where a foldable reader (a linear, or a conv without padding) reads it
// moves into that reader's bias — or, for a conv without bias that only a
// BatchNorm reads, into the BatchNorm's running mean (BN(z+d) with μ is
// BN(z) with μ−d), which keeps the BN-kept form free of conv biases. Every
// other removed channel is dropped: pruning.
//
// The copy shares the tensors cut leaves alone with g (it never writes into
// a tensor in place); Prune deep-copies what it hands out when g is the
// caller's.
func cut(g *nn.Graph, remove map[*space][]int, vals map[string][]float64) (*nn.Graph, error) {
	c := shallowClone(g)
	byName := map[string]*nn.Node{}
	for _, n := range c.Nodes {
		byName[n.Name] = n
	}
	cons := c.Consumers()
	order := make([]*space, 0, len(remove))
	for s := range remove {
		order = append(order, s)
	}
	pos := g.Index()
	slices.SortFunc(order, func(a, b *space) int { return pos[a.name()] - pos[b.name()] })
	// Readers first (their rows are still whole), then the spaces' own nodes.
	for _, s := range order {
		gone := remove[s]
		if len(gone) == 0 {
			continue
		}
		if len(gone) >= s.n {
			return nil, fmt.Errorf("pruning: layer %s would lose all %d channels", s.name(), s.n)
		}
		for _, r := range s.reads {
			reader := byName[r.reader.Name]
			var folds []int
			for _, c := range gone {
				if foldable(r, c) {
					folds = append(folds, c)
				}
			}
			fold(reader, cons, r, folds, vals[r.at.Name])
			dropColumns(reader, s.n, r.block, gone)
		}
	}
	for _, s := range order {
		gone := remove[s]
		if len(gone) == 0 {
			continue
		}
		keep := complement(s.n, gone)
		for _, orig := range s.nodes {
			n := byName[orig.Name]
			for name, t := range n.Params {
				if sh := nn.ShapeOf(t); len(sh) > 0 && sh[0] == s.n {
					n.Params[name] = sliceRows(t, keep)
				}
			}
			switch {
			case n == byName[s.creator.Name]:
				n.Out = len(keep)
			case n.Op == nn.OpConv: // depthwise
				n.In, n.Out, n.Groups = len(keep), len(keep), len(keep)
			}
		}
	}
	return c, nil
}

// fold adds the contribution of removed constant channels to reader's bias
// (or its BatchNorm's running mean).
func fold(reader *nn.Node, cons map[string][]*nn.Node, r read, rm []int, vals []float64) {
	w := reader.P("weight")
	per := 1
	if reader.Op == nn.OpConv {
		per = reader.Kernel * reader.Kernel
	}
	in := reader.In
	d := make([]float64, reader.Out)
	folded := false
	for _, c := range rm {
		v := vals[c]
		if math.IsNaN(v) || v == 0 {
			continue
		}
		for o := range d {
			row := w[o*in*per : (o+1)*in*per]
			for _, x := range row[c*r.block*per : (c+1)*r.block*per] {
				d[o] += float64(x) * v
			}
		}
		folded = true
	}
	if !folded {
		return
	}
	if reader.Op == nn.OpConv && reader.Params["bias"] == nil {
		if cs := cons[reader.Name]; len(cs) == 1 && cs[0].Op == nn.OpBatchNorm {
			cs[0].Params["running_mean"] = nn.Clone(cs[0].Params["running_mean"])
			mean := cs[0].P("running_mean")
			for o, v := range d {
				mean[o] = float32(float64(mean[o]) - v)
			}
			return
		}
	}
	b := make([]float32, reader.Out)
	copy(b, reader.P("bias"))
	reader.SetP("bias", []int{reader.Out}, b)
	for o, v := range d {
		b[o] = float32(float64(b[o]) + v)
	}
}

// dropColumns removes the input columns of channels rm (n channels, block
// columns each) from a conv or linear.
func dropColumns(reader *nn.Node, n, block int, rm []int) {
	keep := complement(n, rm)
	cols := make([]int, 0, len(keep)*block)
	for _, c := range keep {
		for j := c * block; j < (c+1)*block; j++ {
			cols = append(cols, j)
		}
	}
	t := reader.Params["weight"]
	sh := nn.ShapeOf(t)
	src := nn.Floats(t)
	inner := 1
	for _, d := range sh[2:] {
		inner *= d
	}
	out := make([]float32, 0, sh[0]*len(cols)*inner)
	for o := 0; o < sh[0]; o++ {
		row := src[o*sh[1]*inner : (o+1)*sh[1]*inner]
		for _, j := range cols {
			out = append(out, row[j*inner:(j+1)*inner]...)
		}
	}
	sh[1] = len(cols)
	reader.SetP("weight", sh, out)
	reader.In = len(cols)
}

// sliceRows keeps the rows keep (along the first dimension) of t.
func sliceRows(t *tensor.Dense, keep []int) *tensor.Dense {
	sh := nn.ShapeOf(t)
	src := nn.Floats(t)
	per := len(src) / sh[0]
	out := make([]float32, 0, len(keep)*per)
	for _, c := range keep {
		out = append(out, src[c*per:(c+1)*per]...)
	}
	sh[0] = len(keep)
	return nn.NewTensor(sh, out)
}

func complement(n int, rm []int) []int {
	gone := make([]bool, n)
	for _, c := range rm {
		gone[c] = true
	}
	keep := make([]int, 0, n-len(rm))
	for c := 0; c < n; c++ {
		if !gone[c] {
			keep = append(keep, c)
		}
	}
	return keep
}

// shallowClone copies g's nodes and parameter maps but shares the tensors.
func shallowClone(g *nn.Graph) *nn.Graph {
	c := *g
	c.Nodes = make([]*nn.Node, len(g.Nodes))
	for i, n := range g.Nodes {
		m := *n
		m.Inputs = slices.Clone(n.Inputs)
		if n.Params != nil {
			m.Params = make(map[string]*tensor.Dense, len(n.Params))
			for k, v := range n.Params {
				m.Params[k] = v
			}
		}
		c.Nodes[i] = &m
	}
	c.Mean, c.Std, c.Labels = slices.Clone(g.Mean), slices.Clone(g.Std), slices.Clone(g.Labels)
	return &c
}
