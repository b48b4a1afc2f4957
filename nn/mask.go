package nn

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// AddMasks returns a copy of the ResNet g with the RMNet reference code's
// masks added at 1 (the function is unchanged), named and placed as
// ResNetSpec.Masks builds them: the stem's mask after its BatchNorm, in
// every block mask1 after bn1 (mask_mid after a Bottleneck's bn2),
// mask_res.0 and its ReLU mask_res.1 on the block input as the shortcut
// reads it (before the projection, if any), and mask2 after the residual sum.
// Blocks are found by structure (an add of a conv/BN/ReLU chain and a
// shortcut from the same input), names by the add's prefix ("layer1.0.add"
// gives "layer1.0.mask1"), so graphs loaded from torchvision or the
// reference code work too. A graph that is not a ResNet of BasicBlocks or
// Bottlenecks, or already has masks, is refused.
func AddMasks(g *Graph) (*Graph, error) {
	if g.HasMasks() {
		return nil, errors.New("nn: add masks: the model already has masks")
	}
	c := g.Clone()
	cons := c.Consumers()
	var blocks []maskBlock
	inBlock := map[string]bool{}
	for _, n := range c.Nodes {
		if n.Op != OpAdd {
			continue
		}
		if len(n.Inputs) != 2 {
			return nil, fmt.Errorf("nn: add masks: %s adds %d inputs; want a ResNet block's 2", n.Name, len(n.Inputs))
		}
		var b maskBlock
		ok := false
		for _, j := range []int{1, 0} {
			if b, ok = matchBlock(c, cons, n, j); ok {
				break
			}
		}
		if !ok {
			return nil, fmt.Errorf("nn: add masks: %s is not a ResNet BasicBlock or Bottleneck (conv-BN-ReLU branch and identity or projection shortcut)", n.Name)
		}
		b.prefix = n.Name + "."
		if s, ok := strings.CutSuffix(n.Name, "add"); ok {
			b.prefix = s
		}
		blocks = append(blocks, b)
		for _, x := range b.inner {
			inBlock[x.Name] = true
		}
	}
	if len(blocks) == 0 {
		return nil, errors.New("nn: add masks: the model has no residual blocks (not a ResNet)")
	}
	// The stem: the first BatchNorm, outside every block, read by a ReLU alone.
	for _, n := range c.Nodes {
		if n.Op != OpBatchNorm {
			continue
		}
		if r := cons[n.Name]; !inBlock[n.Name] && len(r) == 1 && r[0].Op == OpReLU {
			name := n.Name + ".mask"
			if s, ok := strings.CutSuffix(n.Name, "bn1"); ok {
				name = s + "mask1"
			}
			c.insertMaskAfter(n, name)
		}
		break
	}
	for _, b := range blocks {
		for i, bn := range b.inner {
			name := b.prefix + "mask1"
			if i == 1 {
				name = b.prefix + "mask_mid"
			}
			c.insertMaskAfter(bn, name)
		}
		m := &Node{Name: b.prefix + "mask_res.0", Op: OpMask, Inputs: []string{b.root.Name}}
		m.SetP("weight", []int{b.channels}, maskOnes(b.channels))
		r := &Node{Name: b.prefix + "mask_res.1", Op: OpReLU, Inputs: []string{m.Name}}
		i := slices.Index(c.Nodes, b.scFirst)
		c.Nodes = slices.Insert(c.Nodes, i, m, r)
		for j, in := range b.scFirst.Inputs {
			if in == b.root.Name {
				b.scFirst.Inputs[j] = r.Name
			}
		}
		c.insertMaskAfter(b.add, b.prefix+"mask2")
	}
	for _, n := range c.Nodes {
		if c.Node(n.Name) != n {
			return nil, fmt.Errorf("nn: add masks: node name %s is taken", n.Name)
		}
	}
	return c, nil
}

// maskBlock is one residual block found by AddMasks.
type maskBlock struct {
	prefix   string
	add      *Node
	root     *Node   // the block input
	scFirst  *Node   // the shortcut's node reading root (the add itself for identity)
	inner    []*Node // the branch's BatchNorms before a ReLU
	channels int     // of the block input
}

// matchBlock reads add as a ResNet block whose shortcut is input sc.
func matchBlock(g *Graph, cons map[string][]*Node, add *Node, sc int) (maskBlock, bool) {
	b := maskBlock{add: add, scFirst: add}
	s := g.Node(add.Inputs[sc])
	root := s
	if s.Op == OpBatchNorm {
		if p := g.Node(s.Inputs[0]); p.Op == OpConv && len(cons[s.Name]) == 1 && len(cons[p.Name]) == 1 {
			root, b.scFirst = g.Node(p.Inputs[0]), p
		}
	} else if s.Op == OpConv && len(cons[s.Name]) == 1 {
		root, b.scFirst = g.Node(s.Inputs[0]), s
	}
	b.root = root
	// The branch: BN ← conv (← ReLU ← BN ← conv)* back to root.
	var bns []*Node
	n := g.Node(add.Inputs[1-sc])
	for steps := 0; n != root; steps++ {
		if steps > 12 || len(n.Inputs) != 1 || len(cons[n.Name]) != 1 {
			return b, false
		}
		switch n.Op {
		case OpBatchNorm:
			bns = append([]*Node{n}, bns...)
		case OpConv:
			if g.Node(n.Inputs[0]) == root {
				b.channels = n.In
			}
		case OpReLU:
		default:
			return b, false
		}
		n = g.Node(n.Inputs[0])
		if n == nil {
			return b, false
		}
	}
	if len(bns) < 2 || len(bns) > 3 || b.channels == 0 || bns[len(bns)-1].Name != add.Inputs[1-sc] {
		return b, false
	}
	for _, bn := range bns[:len(bns)-1] {
		if r := cons[bn.Name]; len(r) != 1 || r[0].Op != OpReLU {
			return b, false
		}
	}
	b.inner = bns[:len(bns)-1]
	return b, true
}

// insertMaskAfter puts a mask at 1 named name after n; n's readers read it.
func (g *Graph) insertMaskAfter(n *Node, name string) {
	c := len(n.P("weight"))
	if n.Op == OpAdd {
		c = 0
		for _, in := range n.Inputs {
			if p := g.Node(in); p.Op == OpBatchNorm {
				c = len(p.P("weight"))
			}
		}
	}
	m := &Node{Name: name, Op: OpMask, Inputs: []string{n.Name}}
	m.SetP("weight", []int{c}, maskOnes(c))
	for _, o := range g.Nodes {
		for j, in := range o.Inputs {
			if in == n.Name {
				o.Inputs[j] = name
			}
		}
	}
	i := slices.Index(g.Nodes, n)
	g.Nodes = slices.Insert(g.Nodes, i+1, m)
}

func maskOnes(c int) []float32 {
	v := make([]float32, c)
	for i := range v {
		v[i] = 1
	}
	return v
}
