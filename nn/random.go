package nn

import "math/rand/v2"

// RandomizeBN gives every BatchNorm random statistics and affine parameters
// (γ ∈ [0.5, 1.5), β and μ ~ N(0, 0.3²), σ² ∈ [0.5, 2)): fresh BatchNorms
// are identities, so tests and benchmarks of folding, RM and pruning use
// this to make sure they cannot pass by accident.
func RandomizeBN(g *Graph, rng *rand.Rand) {
	for _, n := range g.Nodes {
		if n.Op != OpBatchNorm {
			continue
		}
		for _, p := range []string{"weight", "bias", "running_mean", "running_var"} {
			v := n.P(p)
			for i := range v {
				switch p {
				case "weight":
					v[i] = float32(0.5 + rng.Float64())
				case "running_var":
					v[i] = float32(0.5 + 1.5*rng.Float64())
				default:
					v[i] = float32(rng.NormFloat64() * 0.3)
				}
			}
		}
	}
}
