package rm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rmprune/rmprune/nn"
)

// unit is conv [+ BN] [+ activation]; conv or BN may be missing in a
// shortcut or RepVGG branch (all missing: the identity).
type unit struct {
	conv, bn, act *nn.Node
}

// block is one residual block found in the original graph.
type block struct {
	name  string
	kind  string
	add   *nn.Node
	input *nn.Node // block input (original graph)
	// residual blocks
	main  []unit
	short unit
	// RepVGG blocks: every branch of the add
	branches []unit
	members  map[string]bool // nodes replaced by the conversion (branches and add)
}

func isAct(op nn.Op) bool {
	return op == nn.OpReLU || op == nn.OpReLU6 || op == nn.OpPReLU || op == nn.OpClamp
}

func blockName(add *nn.Node) string {
	return strings.TrimSuffix(add.Name, ".add")
}

// findBlocks finds every add of g and recognises its block, or says which
// node breaks the pattern.
func findBlocks(g *nn.Graph) ([]*block, error) {
	byName := map[string]*nn.Node{}
	for _, n := range g.Nodes {
		byName[n.Name] = n
	}
	cons := g.Consumers()
	// chain returns name and its single-input ancestors, nearest first.
	chain := func(name string) []*nn.Node {
		var c []*nn.Node
		for n := byName[name]; n != nil; {
			c = append(c, n)
			if len(n.Inputs) != 1 {
				break
			}
			n = byName[n.Inputs[0]]
		}
		return c
	}
	var blocks []*block
	for _, add := range g.Nodes {
		if add.Op != nn.OpAdd {
			continue
		}
		b, err := recognise(add, chain, cons)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	// A node may belong to one block only.
	seen := map[string]string{}
	for _, b := range blocks {
		for m := range b.members {
			if o, dup := seen[m]; dup {
				return nil, fmt.Errorf("rm: node %s belongs to blocks %s and %s: %w", m, o, b.name, ErrPattern)
			}
			seen[m] = b.name
		}
	}
	return blocks, nil
}

func recognise(add *nn.Node, chain func(string) []*nn.Node, cons map[string][]*nn.Node) (*block, error) {
	b := &block{name: blockName(add), add: add, members: map[string]bool{add.Name: true}}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("rm: block at %s: %s: %w", add.Name, fmt.Sprintf(format, args...), ErrPattern)
	}
	chains := make([][]*nn.Node, len(add.Inputs))
	for i, in := range add.Inputs {
		chains[i] = chain(in)
	}
	// The block input: the nearest node of the first chain that every chain reaches.
	var x *nn.Node
	for _, n := range chains[0] {
		all := true
		for _, c := range chains[1:] {
			if !slices.Contains(c, n) {
				all = false
				break
			}
		}
		if all {
			x = n
			break
		}
	}
	if x == nil {
		return nil, fail("its inputs %v do not start from one block input", add.Inputs)
	}
	b.input = x
	branches := make([][]unit, len(chains))
	for i, c := range chains {
		k := slices.Index(c, x)
		path := slices.Clone(c[:k])
		slices.Reverse(path) // block input side first
		for _, n := range path {
			if cs := cons[n.Name]; len(cs) != 1 {
				return nil, fail("node %s (%s) inside a branch has %d readers, want 1", n.Name, n.Op, len(cs))
			}
			b.members[n.Name] = true
		}
		us, err := parseUnits(path)
		if err != nil {
			return nil, fail("%v", err)
		}
		branches[i] = us
	}
	// Residual: one main branch of ≥ 2 units, one shortcut of ≤ 1 unit.
	if len(branches) == 2 {
		mi := -1
		for i, us := range branches {
			if len(us) >= 2 {
				if mi >= 0 {
					return nil, fail("both branches have several convs")
				}
				mi = i
			}
		}
		if mi >= 0 {
			b.main = branches[mi]
			if s := branches[1-mi]; len(s) == 1 {
				b.short = s[0]
			}
			return b, b.checkResidual()
		}
	}
	for _, us := range branches {
		switch {
		case len(us) > 1:
			return nil, fail("a branch of a %d-input add has several convs", len(add.Inputs))
		case len(us) == 1 && us[0].act != nil:
			return nil, fail("branch activation %s before the add", us[0].act.Name)
		case len(us) == 1:
			b.branches = append(b.branches, us[0])
		default:
			b.branches = append(b.branches, unit{})
		}
	}
	b.kind = "repvgg"
	return b, b.checkRepVGG()
}

// parseUnits splits a branch into conv [+BN] [+act] units.
func parseUnits(path []*nn.Node) ([]unit, error) {
	var us []unit
	for i := 0; i < len(path); {
		var u unit
		n := path[i]
		if n.Op == nn.OpConv {
			u.conv = n
			i++
		}
		if i < len(path) && path[i].Op == nn.OpBatchNorm {
			u.bn = path[i]
			i++
		}
		if u.conv == nil && u.bn == nil {
			return nil, fmt.Errorf("node %s (%s) is not a conv, batchnorm or activation after one", n.Name, n.Op)
		}
		if i < len(path) && isAct(path[i].Op) {
			u.act = path[i]
			i++
		}
		us = append(us, u)
	}
	return us, nil
}

func (b *block) checkResidual() error {
	fail := func(n *nn.Node, format string, args ...any) error {
		return fmt.Errorf("rm: block %s: node %s: %s: %w", b.name, n.Name, fmt.Sprintf(format, args...), ErrPattern)
	}
	stride := 1
	for i, u := range b.main {
		if u.conv == nil {
			return fail(u.bn, "a main-branch BatchNorm without a conv before it")
		}
		c := u.conv
		if c.Kernel%2 != 1 || c.Pad != c.Kernel/2 {
			return fail(c, "kernel %d with pad %d: reserved channels need an odd kernel with pad kernel/2", c.Kernel, c.Pad)
		}
		if i == len(b.main)-1 && u.act != nil {
			return fail(u.act, "activation before the add")
		}
		stride *= c.Stride
	}
	last := b.main[len(b.main)-1].conv
	cin := b.main[0].conv.In
	sc := b.short
	switch {
	case sc.conv != nil:
		c := sc.conv
		if c.Kernel != 1 || c.Pad != 0 {
			return fail(c, "shortcut conv %d×%d pad %d, want 1×1 pad 0", c.Kernel, c.Kernel, c.Pad)
		}
		if c.Stride != stride {
			return fail(c, "shortcut stride %d, main branch stride %d", c.Stride, stride)
		}
		if c.G() != 1 && !(c.G() == c.In && c.In == c.Out) {
			return fail(c, "grouped shortcut conv (groups %d)", c.G())
		}
	case stride != 1:
		return fail(b.add, "identity shortcut with main-branch stride %d", stride)
	}
	if sc.conv == nil && last.Out != cin {
		return fail(b.add, "identity shortcut adds %d channels to %d", cin, last.Out)
	}
	b.kind = "residual"
	ks := make([]int, len(b.main))
	dw := false
	for i, u := range b.main {
		ks[i] = u.conv.Kernel
		dw = dw || (u.conv.G() > 1 && u.conv.G() == u.conv.In)
	}
	switch {
	case dw:
		b.kind = "inverted"
	case slices.Equal(ks, []int{3, 3}):
		b.kind = "basic"
	case slices.Equal(ks, []int{1, 3, 1}):
		b.kind = "bottleneck"
	}
	return nil
}

func (b *block) checkRepVGG() error {
	stride, k := 0, 1
	for _, u := range b.branches {
		if u.conv == nil {
			continue
		}
		c := u.conv
		if c.Kernel%2 != 1 || c.Pad != c.Kernel/2 {
			return fmt.Errorf("rm: block %s: node %s: kernel %d with pad %d: branches merge only with pad kernel/2: %w", b.name, c.Name, c.Kernel, c.Pad, ErrPattern)
		}
		if stride != 0 && c.Stride != stride {
			return fmt.Errorf("rm: block %s: node %s: branch strides differ: %w", b.name, c.Name, ErrPattern)
		}
		stride = c.Stride
		k = max(k, c.Kernel)
	}
	if stride == 0 {
		return fmt.Errorf("rm: block %s: add of identities and BatchNorms only: %w", b.name, ErrPattern)
	}
	return nil
}

// NonNegative reports, per node of g, whether its output is ≥ 0 for every
// input: activations that clamp at 0 and pools of such (the rule that proves
// RM's reserved channels exact).
func NonNegative(g *nn.Graph) map[string]bool {
	m := map[string]bool{}
	for _, n := range g.Nodes {
		switch n.Op {
		case nn.OpReLU, nn.OpReLU6:
			m[n.Name] = true
		case nn.OpClamp:
			ok := true
			for _, v := range n.P("min") {
				ok = ok && v >= 0
			}
			m[n.Name] = ok
		case nn.OpMaxPool, nn.OpAvgPool, nn.OpGlobalAvgPool, nn.OpFlatten:
			m[n.Name] = m[n.Inputs[0]]
		}
	}
	return m
}
