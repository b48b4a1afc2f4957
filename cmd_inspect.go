package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/rmprune/rmprune/nn"
)

type inspectReport struct {
	Arch         string         `json:"arch"`
	Form         string         `json:"form"`
	InputShape   string         `json:"input_shape"`
	Classes      int            `json:"classes"`
	SourceSHA256 string         `json:"source_sha256,omitempty"`
	Params       int64          `json:"params"`
	MACs         int64          `json:"macs"`
	FLOPs        int64          `json:"flops"`
	Layers       []nn.LayerInfo `json:"layers"`
	// Masks summarises a mask-trained model's masks (absent otherwise).
	Masks   *nn.MaskReport `json:"masks,omitempty"`
	Dataset string         `json:"dataset,omitempty"`
}

func cmdInspect(e *env, args []string) error {
	f := newFlags(e, "inspect", "--model M [--arch A] [--shape CxHxW] [--json]", "Print the architecture table, params, MACs, FLOPs, BN-γ statistics and, for mask-trained models,\n"+
		"per-kind and per-layer mask statistics (share exactly zero, min/median/max |m|).")
	f.modelFlags()
	shape := f.String("shape", "", "input shape CxHxW (default: the model's)")
	if err := f.parse(args); err != nil || helpAsked(args) {
		return err
	}
	return f.fail(func() error {
		g, err := f.loadModel()
		if err != nil {
			return err
		}
		in, err := inputShape(g, *shape)
		if err != nil {
			return err
		}
		s, err := g.Summarize(in)
		if err != nil {
			return fmt.Errorf("%s: %w", f.model, err)
		}
		r := inspectReport{Arch: g.Arch, Form: g.Form, InputShape: in.String(), Classes: g.Classes,
			SourceSHA256: g.SourceSHA256, Params: s.Params, MACs: s.MACs, FLOPs: s.FLOPs, Layers: s.Layers,
			Masks: nn.MaskSummary(g), Dataset: g.Dataset}
		return f.report(r, func(w io.Writer) { printInspect(w, r) })
	}())
}

func printInspect(w io.Writer, r inspectReport) {
	fmt.Fprintf(w, "arch %s  form %s  input %s  classes %d\n", r.Arch, r.Form, r.InputShape, r.Classes)
	if r.SourceSHA256 != "" {
		fmt.Fprintf(w, "source sha256 %s\n", r.SourceSHA256)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "layer\top\tout\tparams\tMACs\t|γ| min\tmedian\tmax\t<0.01\t")
	for _, l := range r.Layers {
		if l.Op == nn.OpInput {
			continue
		}
		g := "\t\t\t\t"
		if l.Gamma != nil {
			g = fmt.Sprintf("%.3g\t%.3g\t%.3g\t%d/%d\t", l.Gamma.Min, l.Gamma.Median, l.Gamma.Max, l.Gamma.NearZero, l.Gamma.Count)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", l.Name, l.Op, l.Out, l.Params, l.MACs, g)
	}
	tw.Flush()
	fmt.Fprintf(w, "params %d  MACs %d  FLOPs %d\n", r.Params, r.MACs, r.FLOPs)
	if r.Dataset != "" {
		fmt.Fprintf(w, "trained on %s\n", r.Dataset)
	}
	if r.Masks != nil {
		printMasks(w, r.Masks)
	}
}

// printMasks prints the mask statistics of a mask-trained model: per kind,
// then per mask layer.
func printMasks(w io.Writer, m *nn.MaskReport) {
	fmt.Fprintln(w, "\nmasks (mask-trained: exactly-zero masks prune exactly with prune --threshold 0)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	row := func(name string, k nn.MaskStats) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f%%\t%d\t%.3g\t%.3g\t%.3g\t\n", name, k.Kind, k.Count, k.Zero, 100*k.ZeroShare, k.Negative, k.Min, k.Median, k.Max)
	}
	fmt.Fprintln(tw, "\tkind\tcount\tzero\tzero %\t<0\t|m| min\tmedian\tmax\t")
	for _, k := range m.Kinds {
		row("all", k)
	}
	for _, l := range m.Layers {
		row(l.Name, l)
	}
	tw.Flush()
}

// inputShape is --shape, else the model's recorded or default shape.
func inputShape(g *nn.Graph, flag string) (nn.Shape, error) {
	if flag == "" {
		return g.InputShape(), nil
	}
	s, err := parseShapeFlag(flag)
	if err != nil {
		return s, err
	}
	if c := g.InputShape().C; c != 0 && c != s.C {
		return s, fmt.Errorf("--shape %s has %d channels; the model takes %d", flag, s.C, c)
	}
	return s, nil
}
