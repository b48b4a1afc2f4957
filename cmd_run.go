package main

import (
	"fmt"
	"io"

	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/npy"
)

func parseShapeFlag(s string) (nn.Shape, error) {
	sh, err := modelio.ParseShape(s)
	if err != nil {
		return sh, fmt.Errorf("--shape: %v", err)
	}
	return sh, nil
}

// readBatch reads an .npy of shape [N,C,H,W] (or [C,H,W] for one image).
func readBatch(path string) (*nn.Act, error) {
	shape, data, err := npy.ReadFile(path)
	if err != nil {
		return nil, err
	}
	switch len(shape) {
	case 3:
		shape = append([]int{1}, shape...)
	case 4:
	default:
		return nil, fmt.Errorf("%s: array of rank %d %v; want [N,C,H,W] or [C,H,W]", path, len(shape), shape)
	}
	if nn.Numel(shape) == 0 {
		return nil, fmt.Errorf("%s: empty array %v", path, shape)
	}
	return &nn.Act{N: shape[0], C: shape[1], H: shape[2], W: shape[3], D: data}, nil
}

func cmdRun(e *env, args []string) error {
	f := newFlags(e, "run", "--model M --input X.npy --out Y.npy [--rm] [--engine ref|simd] [--winograd auto|off|2|4|2c|4c]",
		"Run a model on a batch stored as .npy ([N,C,H,W] float32, already normalised) and write the outputs as .npy.")
	f.modelFlags()
	input := f.String("input", "", "input batch (.npy, float32 [N,C,H,W] or [C,H,W])")
	out := f.String("out", "", "output file (.npy)")
	useRM := f.Bool("rm", false, "apply RM (residual removal) first; the output must not change")
	engineFlag := f.String("engine", "ref", "ref (reference forward) or simd")
	winoFlag := f.String("winograd", "auto", "simd engine, 3×3 stride-1 convs: auto (timed per layer), off, 2 or 4 (force F(2×2,3×3) / F(4×4,3×3)), 2c or 4c (the same, channel-vectorised where the kernels can)")
	if err := f.parse(args); err != nil || helpAsked(args) {
		return err
	}
	return f.fail(func() error {
		if *input == "" || *out == "" {
			return fmt.Errorf("--input and --out are required")
		}
		wino, err := engine.ParseWinograd(*winoFlag)
		if err != nil {
			return fmt.Errorf("--%w", err)
		}
		g, err := f.loadModel()
		if err != nil {
			return err
		}
		x, err := readBatch(*input)
		if err != nil {
			return err
		}
		if want := g.InputShape().C; want != 0 && x.C != want {
			return fmt.Errorf("%s: input has %d channels; the model takes %d", *input, x.C, want)
		}
		badIn := countNonFinite(x.D)
		if badIn > 0 {
			warnf(e.stderr, "run", "%s holds %d non-finite values (NaN or Inf) of %d; the outputs they reach are NaN or Inf", *input, badIn, len(x.D))
		}
		if n := nonFiniteParams(g); n > 0 {
			warnf(e.stderr, "run", "%s has %d non-finite parameters", f.model, n)
		}
		if *useRM {
			if g, err = applyRM(g); err != nil {
				return err
			}
		}
		var y *nn.Act
		switch *engineFlag {
		case "ref":
			y, err = g.Forward(x, nil)
		case "simd":
			y, err = simdForward(g, x, f.threads, wino)
		default:
			return fmt.Errorf("--engine %q: want ref or simd", *engineFlag)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", *input, err)
		}
		if err := npy.WriteFile(*out, []int{y.N, y.C * y.H * y.W}, y.D); err != nil {
			return err
		}
		badOut := countNonFinite(y.D)
		if badOut > 0 && badIn == 0 {
			warnf(e.stderr, "run", "%d of %d outputs are NaN or Inf", badOut, len(y.D))
		}
		return f.report(map[string]any{"out": *out, "shape": []int{y.N, y.C * y.H * y.W},
			"nonfinite_inputs": badIn, "nonfinite_outputs": badOut}, func(w io.Writer) {
			fmt.Fprintf(e.stderr, "wrote %s [%d %d]\n", *out, y.N, y.C*y.H*y.W)
		})
	}())
}
