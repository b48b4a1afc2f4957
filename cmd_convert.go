package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/onnx"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/rm"
)

type convertReport struct {
	rm.Report
	ParamsSource int64             `json:"params_source"`
	Out          string            `json:"out"`
	Form         string            `json:"form"`
	StatsSource  map[string]string `json:"stats_source,omitempty"`
	Fusions      []rm.Fusion       `json:"fusions,omitempty"`
	Export       string            `json:"export,omitempty"`    // ONNX: copy-aware or dense
	MACsONNX     int64             `json:"macs_onnx,omitempty"` // ONNX: MACs per image the written graph computes
	Layers       []nn.LayerInfo    `json:"layers"`
}

func cmdConvert(e *env, args []string) error {
	f := newFlags(e, "convert", "--model M --out OUT.{onnx,safetensors} [--no-rm] [--keep-bn] [--dense] [--calib DATASET] [--shape CxHxW] [--json]",
		"Apply RM (exact residual removal) and write the plain network: ONNX (BN folded) or our safetensors\n(folded deploy form, or BN-kept with --keep-bn). Reports the equivalence error on a random input and the cost.")
	f.modelFlags()
	out := f.String("out", "", "output file: .onnx or .safetensors")
	noRM := f.Bool("no-rm", false, "export the original network (BN folded): the ResNet baseline")
	keepBN := f.Bool("keep-bn", false, "keep BatchNorm layers (safetensors only): the form pruning slims and fine-tunes")
	dense := f.Bool("dense", false, "ONNX: write RM's copy channels as dense convolutions, not the copy-aware form")
	calib := f.String("calib", "", "measure block statistics for the BN-kept form on this data set's training images")
	shape := f.String("shape", "", "input shape CxHxW (default: the model's)")
	if err := f.parse(args); err != nil || helpAsked(args) {
		return err
	}
	return f.fail(func() error {
		ext := strings.ToLower(filepath.Ext(*out))
		if *out == "" || (ext != ".onnx" && ext != ".safetensors") {
			return fmt.Errorf("--out must name a .onnx or .safetensors file")
		}
		if *keepBN && ext == ".onnx" {
			return fmt.Errorf("--keep-bn applies to safetensors only: ONNX output is always BN-folded")
		}
		if *dense && ext != ".onnx" {
			return fmt.Errorf("--dense applies to ONNX output only")
		}
		g, err := f.loadModel()
		if err != nil {
			return err
		}
		in, err := inputShape(g, *shape)
		if err != nil {
			return err
		}
		g.Input = [3]int{in.C, in.H, in.W}
		r := &convertReport{Out: *out}
		conv := nn.FoldBN(g)
		r.Form = "resnet"
		if *keepBN {
			conv = g.Clone()
		}
		if !*noRM {
			opt := rm.Options{KeepBN: *keepBN, Shape: in}
			if *calib != "" {
				if opt.Calib, err = calibBatch(g, *calib, in, 256); err != nil {
					return err
				}
			}
			res, err := rm.Convert(g, opt)
			if err != nil {
				return fmt.Errorf("%s: %w", f.model, err)
			}
			conv, r.Form, r.Fusions = res.Graph, "rmnet", res.Fusions
			if *keepBN {
				r.StatsSource = res.StatsSource()
			}
			copyMeta(conv, g)
		}
		rep, err := rm.Compare(g, conv, rm.RandomInput(2, in, 1))
		if err != nil {
			return err
		}
		r.Report = *rep
		r.ParamsSource = rep.ParamsBefore
		// Count prunable channels as prune does (DESIGN's "channels").
		before := pruning.FormRMNet
		if g.HasResidual() {
			before = pruning.FormResNet
		}
		if r.ChannelsBefore, err = pruning.Channels(g, before); err != nil {
			return err
		}
		after := pruning.FormRMNet
		if conv.HasResidual() {
			after = pruning.FormResNet
		}
		if r.ChannelsAfter, err = pruning.Channels(conv, after); err != nil {
			return err
		}
		r.Layers = rep.After.Layers
		if ext == ".onnx" {
			r.Export, r.MACsONNX, err = writeONNX(*out, conv, onnx.Options{Shape: in, Dense: *dense})
		} else {
			err = modelio.SaveSafetensors(*out, conv)
		}
		if err != nil {
			return err
		}
		return f.report(r, func(w io.Writer) { printConvert(w, r) })
	}())
}

// writeONNX exports g to path and returns the export form (copy-aware or
// dense) and the MACs per image the written graph computes.
func writeONNX(path string, g *nn.Graph, opt onnx.Options) (form string, macs int64, err error) {
	if err := onnx.WriteFile(path, g, opt); err != nil {
		return "", 0, err
	}
	info, err := onnx.Describe(g, opt)
	return info.Form, info.MACs, err
}

// copyMeta carries the model-level metadata over to a derived network.
func copyMeta(dst, src *nn.Graph) {
	dst.Input, dst.Mean, dst.Std = src.Input, src.Mean, src.Std
	dst.Classes, dst.Labels, dst.SourceSHA256 = src.Classes, src.Labels, src.SourceSHA256
	dst.Dataset = src.Dataset
}

func printConvert(w io.Writer, r *convertReport) {
	fmt.Fprintf(w, "wrote %s (%s form)\n", r.Out, r.Form)
	if r.Export != "" {
		fmt.Fprintf(w, "ONNX export: %s, %d MACs per image in the runtime\n", r.Export, r.MACsONNX)
	}
	fmt.Fprintf(w, "equivalence on a random input: max |Δ| %.3g, rel error %.3g\n", r.MaxAbsErr, r.MaxRelErr)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tbefore\tafter\tratio\t")
	row := func(name string, a, b int64) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f×\t\n", name, a, b, float64(b)/float64(max(a, 1)))
	}
	row("params", r.ParamsBefore, r.ParamsAfter)
	row("MACs", r.MACsBefore, r.MACsAfter)
	row("prunable channels", int64(r.ChannelsBefore), int64(r.ChannelsAfter))
	tw.Flush()
	for b, s := range r.StatsSource {
		if s != rm.SourceCheckpoint && s != rm.SourceCalib {
			fmt.Fprintf(w, "note: block %s uses %s statistics (pass --calib for measured ones)\n", b, s)
			break
		}
	}
}

// calibBatch reads n training images of a data set, shaped and normalised for g.
func calibBatch(g *nn.Graph, spec string, in nn.Shape, n int) (*nn.Act, error) {
	d, err := dataset.Open(spec)
	if err != nil {
		return nil, err
	}
	split := d.Train
	if split == nil || split.Len() == 0 {
		split = d.Test
	}
	l, err := dataset.NewLoader(split, dataset.LoaderOptions{Batch: n, Shape: [3]int{in.C, in.H, in.W},
		Mean: g.Mean, Std: g.Std, Shuffle: true, Seed: 1, Limit: 0})
	if err != nil {
		return nil, err
	}
	b := l.NewBatch()
	l.Fill(b, 0, 0)
	return &nn.Act{N: b.N(), C: in.C, H: in.H, W: in.W, D: b.X}, nil
}
