package nn

import (
	"math"
	"slices"
)

// Mask kinds: which channels a mask scales (DESIGN, "Mask-sparsity training").
const (
	MaskStem     = "stem"      // the stem's mask1, after its BN
	MaskInner    = "inner"     // a block's mask1 (and a Bottleneck's mask_mid), after a BN inside the block
	MaskReserved = "reserved"  // mask_res: the block input as the shortcut reads it (reserved channels after RM)
	MaskBlockOut = "block_out" // mask2: the residual sum (block outputs after RM)
)

// MaskKinds lists the kinds in report order.
var MaskKinds = []string{MaskStem, MaskInner, MaskReserved, MaskBlockOut}

// MaskStats summarises |m| of one mask node or of every mask of one kind.
type MaskStats struct {
	Name      string  `json:"name,omitempty"` // the mask node (per-layer rows)
	Kind      string  `json:"kind"`
	Count     int     `json:"count"`
	Zero      int     `json:"zero"`       // exactly 0: frozen by the hard threshold, removed exactly by prune --threshold 0
	ZeroShare float64 `json:"zero_share"` // Zero / Count
	Negative  int     `json:"negative"`
	Min       float64 `json:"min_abs"`
	Median    float64 `json:"median_abs"`
	Max       float64 `json:"max_abs"`
}

// MaskReport is the mask statistics of a mask-trained network: per kind (in
// MaskKinds order, kinds without masks left out) and per mask node.
type MaskReport struct {
	Kinds  []MaskStats `json:"kinds"`
	Layers []MaskStats `json:"layers"`
}

// ZeroShares maps each kind to its share of exactly-zero masks.
func (r *MaskReport) ZeroShares() map[string]float64 {
	m := make(map[string]float64, len(r.Kinds))
	for _, k := range r.Kinds {
		m[k.Kind] = k.ZeroShare
	}
	return m
}

// MaskKind tells what mask node n scales, from the graph's structure: a
// mask on a residual sum scales block outputs; a mask on a tensor that
// others read too is a shortcut's view of a block input (mask_res); any
// other mask scales the layer before it — a block's inner channels when the
// path on from the mask (nodes with one reader) reaches a residual sum, else
// the stem's (or another layer outside the blocks).
func MaskKind(g *Graph, n *Node) string {
	cons := g.Consumers()
	in := g.Node(n.Inputs[0])
	switch {
	case in.Op == OpAdd:
		return MaskBlockOut
	case len(cons[in.Name]) > 1:
		return MaskReserved
	}
	for cur := n; len(cons[cur.Name]) == 1; {
		cur = cons[cur.Name][0]
		if cur.Op == OpAdd {
			return MaskInner
		}
	}
	return MaskStem
}

// MaskSummary returns the statistics of g's masks, or nil when g has none.
func MaskSummary(g *Graph) *MaskReport {
	if !g.HasMasks() {
		return nil
	}
	r := &MaskReport{}
	byKind := map[string][]float32{}
	for _, n := range g.Nodes {
		if n.Op != OpMask {
			continue
		}
		kind := MaskKind(g, n)
		m := n.P("weight")
		byKind[kind] = append(byKind[kind], m...)
		s := maskStats(kind, m)
		s.Name = n.Name
		r.Layers = append(r.Layers, s)
	}
	for _, k := range MaskKinds {
		if m := byKind[k]; len(m) > 0 {
			r.Kinds = append(r.Kinds, maskStats(k, m))
		}
	}
	return r
}

// MaskStatsOf summarises the mask values m of one kind.
func MaskStatsOf(kind string, m []float32) MaskStats { return maskStats(kind, m) }

func maskStats(kind string, m []float32) MaskStats {
	s := MaskStats{Kind: kind, Count: len(m)}
	if len(m) == 0 {
		return s
	}
	a := make([]float64, len(m))
	for i, v := range m {
		a[i] = math.Abs(float64(v))
		if v == 0 {
			s.Zero++
		}
		if v < 0 {
			s.Negative++
		}
	}
	slices.Sort(a)
	s.Min, s.Median, s.Max = a[0], a[len(a)/2], a[len(a)-1]
	s.ZeroShare = float64(s.Zero) / float64(len(m))
	return s
}
