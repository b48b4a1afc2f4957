package main

import (
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/rmprune/rmprune/nn"
)

// countNonFinite counts the NaN and ±Inf values in x.
func countNonFinite(x []float32) int {
	n := 0
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			n++
		}
	}
	return n
}

// nonFiniteParams counts g's NaN parameters and its infinite ones outside
// clamp bounds (RM's reserved channels clamp to ±Inf on purpose).
func nonFiniteParams(g *nn.Graph) int {
	n := 0
	for _, nd := range g.Nodes {
		names := make([]string, 0, len(nd.Params))
		for k := range nd.Params {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			for _, v := range nd.P(k) {
				f := float64(v)
				if math.IsNaN(f) || math.IsInf(f, 0) && nd.Op != nn.OpClamp {
					n++
				}
			}
		}
	}
	return n
}

// warnf prints one warning line on stderr.
func warnf(w io.Writer, cmd, format string, a ...any) {
	fmt.Fprintf(w, "rmprune %s: warning: %s\n", cmd, fmt.Sprintf(format, a...))
}
