package rm

import (
	"fmt"

	"github.com/rmprune/rmprune/nn"
)

// stat is a per-channel mean and (population) variance.
type stat struct {
	mean, vr []float64
	src      string
}

type statKey struct {
	node   string
	stride int // sampling stride (the activation at [::stride, ::stride])
}

// stats collects the statistics the BN-kept form needs: the block inputs
// (at every cumulative stride a reserved channel is carried at) and the
// pre-activation sums (the add nodes).
type stats struct {
	want     map[statKey]bool
	measured map[statKey]stat
	byName   map[string]*nn.Node
}

func newStats(g *nn.Graph, blocks []*block, keep bool) *stats {
	s := &stats{want: map[statKey]bool{}, measured: map[statKey]stat{}, byName: map[string]*nn.Node{}}
	for _, n := range g.Nodes {
		s.byName[n.Name] = n
	}
	if !keep {
		return s
	}
	for _, b := range blocks {
		s.want[statKey{b.add.Name, 1}] = true
		stride := 1
		for _, u := range b.main {
			stride *= u.conv.Stride
			s.want[statKey{b.input.Name, stride}] = true
		}
	}
	return s
}

// measure runs the reference forward on calib and records every wanted statistic.
func (s *stats) measure(g *nn.Graph, calib *nn.Act) error {
	strides := map[string][]int{}
	for k := range s.want {
		strides[k.node] = append(strides[k.node], k.stride)
	}
	_, err := g.Forward(calib, func(n *nn.Node, out *nn.Act) {
		for _, st := range strides[n.Name] {
			m, v := channelStats(out, st)
			s.measured[statKey{n.Name, st}] = stat{mean: m, vr: v, src: SourceCalib}
		}
	})
	if err != nil {
		return fmt.Errorf("rm: calibration forward: %w", err)
	}
	return nil
}

// channelStats returns per-channel mean and population variance of a sampled
// at [::stride, ::stride] over the batch (two-pass, float64).
func channelStats(a *nn.Act, stride int) (mean, vr []float64) {
	mean = make([]float64, a.C)
	vr = make([]float64, a.C)
	for c := 0; c < a.C; c++ {
		var sum float64
		cnt := 0
		for b := 0; b < a.N; b++ {
			p := a.Plane(b, c)
			for y := 0; y < a.H; y += stride {
				for x := 0; x < a.W; x += stride {
					sum += float64(p[y*a.W+x])
					cnt++
				}
			}
		}
		m := sum / float64(cnt)
		var ss float64
		for b := 0; b < a.N; b++ {
			p := a.Plane(b, c)
			for y := 0; y < a.H; y += stride {
				for x := 0; x < a.W; x += stride {
					d := float64(p[y*a.W+x]) - m
					ss += d * d
				}
			}
		}
		mean[c], vr[c] = m, ss/float64(cnt)
	}
	return mean, vr
}

// get returns the statistic of node (sampled at stride) with c channels:
// measured, else the node's act_mean/act_var, else (0, 1).
func (s *stats) get(node string, stride, c int) stat {
	if st, ok := s.measured[statKey{node, stride}]; ok {
		return st
	}
	if n := s.byName[node]; n != nil {
		m, v := n.P("act_mean"), n.P("act_var")
		if len(m) == c && len(v) == c {
			st := stat{mean: make([]float64, c), vr: make([]float64, c), src: SourceCheckpoint}
			for i := range m {
				st.mean[i], st.vr[i] = float64(m[i]), max(float64(v[i]), 0)
			}
			return st
		}
	}
	st := stat{mean: make([]float64, c), vr: make([]float64, c), src: SourceDefault}
	for i := range st.vr {
		st.vr[i] = 1
	}
	return st
}
