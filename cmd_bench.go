package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/rmprune/rmprune/bench"
	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/nn"
)

// ortCompare is set in binaries built with -tags ort (see bench_ort.go).
var ortCompare func(ctx context.Context, g *nn.Graph, opt bench.Options) (any, error)

func cmdBench(e *env, args []string) error {
	f := newFlags(e, "bench", "--model M [--rm] [--batch N] [--threads N] [--shape CxHxW] [--winograd auto|off|2|4|2c|4c] [--per-layer] [--json] | --kernels [--json]",
		"Measure a model on the SIMD engine (median and p90 after warm-up), or the kernels' GFLOP/s.")
	f.modelFlags()
	useRM := f.Bool("rm", false, "apply RM (residual removal) first")
	batch := f.Int("batch", 1, "images per run")
	shape := f.String("shape", "", "input shape CxHxW (default: the model's)")
	perLayer := f.Bool("per-layer", false, "also report per-layer milliseconds")
	dense := f.Bool("dense", false, "run every conv as a dense GEMM (turns off the RM Dirac/identity shortcuts), for comparison")
	withORT := f.Bool("ort", false, "also run the model in ONNX Runtime 1.30, side by side (binaries built with -tags ort)")
	winoFlag := f.String("winograd", "auto", "3×3 stride-1 convs: auto (timed per layer), off, 2 or 4 (force F(2×2,3×3) / F(4×4,3×3)), 2c or 4c (the same, channel-vectorised where the kernels can)")
	kern := f.Bool("kernels", false, "measure the FMA peak and GEMM kernels instead of a model")
	if err := f.parse(args); err != nil || helpAsked(args) {
		return err
	}
	return f.fail(func() error {
		if *kern {
			r, err := bench.Kernels(e.ctx)
			if err != nil {
				return err
			}
			return f.report(r, func(w io.Writer) {
				fmt.Fprintf(w, "cpu %s  isa %s  FMA peak %.1f GFLOP/s (one core)\n", r.CPU, r.ISA, r.PeakGFLOP)
				tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "gemm\tM\tK\tN\tGFLOP/s\t% peak")
				for _, g := range r.Gemm {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.0f%%\n", g.Name, g.M, g.K, g.N, g.GFLOPS, g.PctPeak)
				}
				tw.Flush()
				fmt.Fprintln(w, "\n3×3 conv, pad 1, one image (GFLOP/s counted as direct convolution; the engine also checks the whole network)")
				tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "layer\tC=OutC\tH=W\tdirect\tF(2×2,3×3)\tF(4×4,3×3)\tfastest")
				for _, c := range r.Conv {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%s\n", c.Name, c.C, c.HW, c.Direct, c.F2, c.F4, c.Fastest)
				}
				tw.Flush()
			})
		}
		g, err := f.loadModel()
		if err != nil {
			return err
		}
		if *useRM {
			if g, err = applyRM(g); err != nil {
				return err
			}
		}
		in, err := inputShape(g, *shape)
		if err != nil {
			return err
		}
		if *batch < 1 {
			return fmt.Errorf("--batch %d: want ≥ 1", *batch)
		}
		wino, err := engine.ParseWinograd(*winoFlag)
		if err != nil {
			return fmt.Errorf("--%w", err)
		}
		if *withORT {
			if ortCompare == nil {
				return fmt.Errorf("--ort: this binary was built without ONNX Runtime support (go build -tags ort; the library comes from scripts/ort.sh)")
			}
			fmt.Fprintf(e.stderr, "comparing the engine with ONNX Runtime on %s (%s) batch %d, %d threads…\n", f.model, in, *batch, f.threads)
			c, err := ortCompare(e.ctx, g, bench.Options{Batch: *batch, Threads: f.threads, Shape: in, Dense: *dense, Winograd: wino})
			if err != nil {
				return err
			}
			return f.report(c, func(w io.Writer) {
				b, _ := json.MarshalIndent(c, "", "  ")
				fmt.Fprintln(w, string(b))
			})
		}
		fmt.Fprintf(e.stderr, "benchmarking %s (%s) batch %d, %d threads…\n", f.model, in, *batch, f.threads)
		r, err := bench.Model(e.ctx, g, bench.Options{Batch: *batch, Threads: f.threads, Shape: in, PerLayer: *perLayer, Dense: *dense, Winograd: wino})
		if err != nil {
			return err
		}
		return f.report(r, func(w io.Writer) {
			fmt.Fprintf(w, "%.1f images/s  latency p50 %.3f ms  p90 %.3f ms  (batch %d, %d threads, %s, %s, %d runs)\n",
				r.ImagesPerS, r.LatencyMsP50, r.LatencyMsP90, r.Batch, r.Threads, r.ISA, r.CPU, r.Runs)
			fmt.Fprintf(w, "convs: %s\n", algoSummary(r.Algorithms))
			if len(r.Layers) > 0 {
				tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				for _, l := range r.Layers {
					fmt.Fprintf(tw, "%s\t%.4f ms\t%s\n", l.Name, l.Ms, l.Algo)
				}
				tw.Flush()
			}
		})
	}())
}

// algoSummary lists conv algorithms by count, e.g. "17 direct, 2 winograd F4".
func algoSummary(a map[string]int) string {
	names := slices.Sorted(maps.Keys(a))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%d %s", a[n], n)
	}
	return strings.Join(parts, ", ")
}
