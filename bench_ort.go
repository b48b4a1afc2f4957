//go:build ort

package main

import (
	"context"

	"github.com/rmprune/rmprune/bench"
	"github.com/rmprune/rmprune/bench/ort"
	"github.com/rmprune/rmprune/nn"
)

func init() {
	ortCompare = func(ctx context.Context, g *nn.Graph, opt bench.Options) (any, error) {
		return ort.Compare(ctx, g, opt)
	}
}
