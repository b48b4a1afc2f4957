package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn/onnx"
	"github.com/rmprune/rmprune/pruning"
)

func cmdPrune(e *env, args []string) error {
	f := newFlags(e, "prune", "--model M --method slim|l1 (--ratio R | --threshold T | --recipe FILE) [--scope global|uniform]\n"+
		"        [--form rmnet|resnet] [--min-channels K] [--round-to N] [--calib DATASET] [--shape CxHxW] [--force] [--dense] --out OUT.{safetensors,onnx} [--json]",
		"Prune channels. Form rmnet (default) applies RM first, so every channel prunes freely; form resnet prunes\n"+
			"only inside residual blocks (the baseline). safetensors output is the BN-kept net (fine-tunable); ONNX is BN-folded.")
	f.modelFlags()
	method := f.String("method", "", "importance criterion: slim (BN |γ|) or l1 (filter L1 norm)")
	ratio := f.String("ratio", "", "share of the form's prunable channels to remove, in [0,1)")
	threshold := f.String("threshold", "", "remove every channel whose importance is at or below this (0: exactly the zero-scale channels, e.g. zero masks: exact)")
	recipe := f.String("recipe", "", "replay a pruning recipe (JSON)")
	scope := f.String("scope", "", "global or uniform (default: slim → global, l1 → uniform)")
	form := f.String("form", "rmnet", "rmnet or resnet")
	minCh := f.Int("min-channels", 1, "never keep fewer channels in a layer")
	roundTo := f.Int("round-to", 1, "keep a multiple of N channels per layer")
	calib := f.String("calib", "", "measure reserved-channel and block-output statistics on this data set (a slim ratio needs them: else the model's, else its own data set's)")
	force := f.Bool("force", false, "accept a ratio ≤ 0.5 whose result keeps under 5% of the prunable channels")
	shape := f.String("shape", "", "input shape CxHxW (default: the model's)")
	out := f.String("out", "", "output file: .safetensors or .onnx")
	dense := f.Bool("dense", false, "ONNX: write RM's copy channels as dense convolutions, not the copy-aware form")
	if err := f.parse(args); err != nil || helpAsked(args) {
		return err
	}
	return f.fail(func() error {
		ext := strings.ToLower(filepath.Ext(*out))
		if *out == "" || (ext != ".onnx" && ext != ".safetensors") {
			return fmt.Errorf("--out must name a .onnx or .safetensors file")
		}
		if *dense && ext != ".onnx" {
			return fmt.Errorf("--dense applies to ONNX output only")
		}
		opt := pruning.Options{Method: *method, Scope: *scope, Form: *form, MinChannels: *minCh, RoundTo: *roundTo, Force: *force}
		var err error
		if opt.Ratio, err = optFloat("--ratio", *ratio); err != nil {
			return err
		}
		if opt.Threshold, err = optFloat("--threshold", *threshold); err != nil {
			return err
		}
		if *recipe != "" {
			data, err := os.ReadFile(*recipe)
			if err != nil {
				return err
			}
			if opt.Recipe, err = pruning.ParseRecipe(data); err != nil {
				return fmt.Errorf("%s: %w", *recipe, err)
			}
		}
		g, err := f.loadModel()
		if err != nil {
			return err
		}
		if opt.Shape, err = inputShape(g, *shape); err != nil {
			return err
		}
		if *calib != "" {
			if opt.Calib, err = calibBatch(g, *calib, opt.Shape, 256); err != nil {
				return err
			}
		}
		res, err := pruning.Prune(g, opt)
		autoCalib := ""
		if errors.Is(err, pruning.ErrNoStats) {
			// The model carries no block statistics: calibrate on its own
			// data set when it names a built-in one, else refuse.
			if !builtinDataset(g.Dataset) {
				if g.Dataset != "" {
					return fmt.Errorf("%s: %w (the model was trained on %q: --calib %s)", f.model, err, g.Dataset, g.Dataset)
				}
				return fmt.Errorf("%s: %w", f.model, err)
			}
			if opt.Calib, err = calibBatch(g, g.Dataset, opt.Shape, autoCalibImages); err != nil {
				return err
			}
			autoCalib = g.Dataset
			fmt.Fprintf(e.stderr, "note: the model carries no block statistics; measured them on %d training images of %s, its data set (--calib for more)\n", autoCalibImages, g.Dataset)
			res, err = pruning.Prune(g, opt)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.model, err)
		}
		p := res.Graph
		copyMeta(p, g)
		p.Recipe = res.Graph.Recipe
		// The work the engine does: RM's copy channels are not dense MACs.
		// (Before writing: a shape the engine refuses leaves no file.)
		computed, err := engine.ComputedMACs(p, opt.Shape)
		if err != nil {
			return err
		}
		var export string
		var macsONNX int64
		if ext == ".onnx" {
			export, macsONNX, err = writeONNX(*out, p, onnx.Options{Shape: opt.Shape, Dense: *dense})
		} else {
			err = modelio.SaveSafetensors(*out, p)
		}
		if err != nil {
			return err
		}
		r := res.Report
		rep := struct {
			*pruning.Report
			MACsComputed int64  `json:"macs_computed_after"`
			CalibDataset string `json:"calib_dataset,omitempty"`
			Export       string `json:"export,omitempty"`    // ONNX: copy-aware or dense
			MACsONNX     int64  `json:"macs_onnx,omitempty"` // ONNX: MACs per image the written graph computes
		}{&r, computed, cmp.Or(*calib, autoCalib), export, macsONNX}
		if *calib == "" && autoCalib == "" && strings.Contains(r.StatsSource, "default") {
			fmt.Fprintln(e.stderr, "note: some reserved channels and block outputs were scored with fallback statistics (variance 1),\n"+
				"      which carry no information and can make slim remove inner channels first; pass --calib DATASET")
		}
		return f.report(rep, func(w io.Writer) {
			fmt.Fprintf(w, "wrote %s: %s, form %s, statistics %s\n", *out, r.Method, r.Form, r.StatsSource)
			fmt.Fprintf(w, "removed %.1f%% of prunable channels (%d → %d), %.1f%% of all channels\n",
				100*r.RemovedSharePrunable, r.ChannelsBefore, r.ChannelsAfter, 100*r.RemovedShareAll)
			fmt.Fprintf(w, "params %d → %d (source %d), MACs %d → %d", r.ParamsBefore, r.ParamsAfter, r.ParamsSource, r.MACsBefore, r.MACsAfter)
			if computed != r.MACsAfter {
				fmt.Fprintf(w, " (the engine computes %d: RM's copy channels run as copies)", computed)
			}
			fmt.Fprintln(w)
			if export != "" {
				fmt.Fprintf(w, "ONNX export: %s, %d MACs per image in the runtime\n", export, macsONNX)
			}
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "layer\tbefore\tafter\t")
			for _, l := range r.Layers {
				if l.Before != l.After {
					fmt.Fprintf(tw, "%s\t%d\t%d\t\n", l.Name, l.Before, l.After)
				}
			}
			tw.Flush()
		})
	}())
}

func optFloat(name, s string) (*float64, error) {
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("%s %q: not a number", name, s)
	}
	return &v, nil
}

// autoCalibImages is the calibration batch prune draws from a model's own
// data set when the model carries no block statistics (as the sweep's
// sweep.MaxCalibImages: the reference forward measures them).
const autoCalibImages = 64

// builtinDataset reports whether name is a data set rmprune finds by name
// alone (no path), so that a model file's dataset key may pick it.
func builtinDataset(name string) bool {
	return name == "mnist" || name == "fashion-mnist"
}
