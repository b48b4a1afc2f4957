package train

import "github.com/rmprune/rmprune/nn"

// WithMasks returns g ready for mask-sparsity training: g itself when it has
// masks already (they keep training), else a copy with the RMNet reference
// code's masks added at 1 (nn.AddMasks: a ResNet of BasicBlocks or
// Bottlenecks; anything else is refused). The CLI's train --masks and the
// dashboard's mask-training job both start here.
func WithMasks(g *nn.Graph) (*nn.Graph, error) {
	if g.HasMasks() {
		return g, nil
	}
	return nn.AddMasks(g)
}
