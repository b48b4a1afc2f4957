package onnx

import (
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// Helpers for the external test package (onnx_test), whose ONNX Runtime tests
// import bench/ort, which imports this package.

// NetCase is one network of testCases.
type NetCase struct {
	Name string
	G    *nn.Graph
	In   nn.Shape
}

func NetCases(t testing.TB) []NetCase {
	var out []NetCase
	for _, tc := range testCases(t) {
		out = append(out, NetCase{tc.name, tc.g, tc.in})
	}
	return out
}

var (
	BuildNet   = buildNet
	RandFloats = func(rng *rand.Rand, n int, std float64) []float32 { return randFloats(rng, n, std) }
)
