package main

import (
	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// applyRM converts g to its plain (RMNet) deploy form.
func applyRM(g *nn.Graph) (*nn.Graph, error) {
	res, err := rm.Convert(g, rm.Options{})
	if err != nil {
		return nil, err
	}
	copyMeta(res.Graph, g)
	return res.Graph, nil
}

// simdForward runs g on the SIMD engine.
func simdForward(g *nn.Graph, x *nn.Act, threads int, wino engine.WinogradMode) (*nn.Act, error) {
	e, err := engine.Compile(g, engine.Options{Threads: threads, MaxBatch: x.N, Shape: x.Shape(), Winograd: wino})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	y, err := e.Run(x.D, x.N)
	if err != nil {
		return nil, err
	}
	s := e.OutputShape()
	return &nn.Act{N: x.N, C: s.C, H: s.H, W: s.W, D: append([]float32(nil), y...)}, nil
}
