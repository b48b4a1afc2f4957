package web

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
)

// View structs: what the templ components render. They hold display-ready
// strings, never store handles or tensors.

// ModelRow is a model in lists and headers.
type ModelRow struct {
	ID                                   int64
	Name, Arch, Input, Classes, SHA, Ago string
	Params, MACs, FLOPs, Size            string
}

func modelRow(m store.Model) ModelRow {
	arch := m.Arch
	if arch == "" {
		arch = "—"
	}
	return ModelRow{ID: m.ID, Name: m.Name, Arch: arch, Input: m.InputShape, Classes: itoa(m.Classes),
		SHA: m.SourceSHA256, Ago: fmtTime(m.CreatedAt), Params: fmtCount(m.Params), MACs: fmtCount(m.MACs),
		FLOPs: fmtCount(m.FLOPs), Size: fmtBytes(m.SizeBytes)}
}

// SweepRow is a sweep in lists and headers.
type SweepRow struct {
	ID, ModelID                   int64
	ModelName                     string
	Dataset, Method, Scope, Forms string
	Ratios, Limit, Created        string
	Status                        string
	Error                         string
	Progress                      float64
	Active, Resumable             bool
}

func sweepRow(s store.Sweep, modelName string) SweepRow {
	limit := "all"
	if s.Limit > 0 {
		limit = itoa(s.Limit)
	}
	return SweepRow{ID: s.ID, ModelID: s.ModelID, ModelName: modelName, Dataset: s.Dataset, Method: s.Method,
		Scope: s.Scope, Forms: strings.Join(s.Forms, ", "), Ratios: fmtRatios(s.Ratios), Limit: limit,
		Created: fmtTime(s.CreatedAt), Status: string(s.Status), Error: s.Error, Progress: s.Progress,
		Active:    s.Status == store.StatusQueued || s.Status == store.StatusRunning,
		Resumable: s.Status == store.StatusInterrupted || s.Status == store.StatusFailed || s.Status == store.StatusCancelled}
}

// ProgressPct is the progress as a CSS width.
func (s SweepRow) ProgressPct() string { return fmt.Sprintf("%.1f%%", 100*s.Progress) }

// IndexView is the models page.
type IndexView struct {
	Models    []ModelRow
	Sweeps    []SweepRow
	MaxUpload string
	MaxBytes  int64
	Error     string
}

// ConvView is the RM equivalence badge.
type ConvView struct {
	RelErr, AbsErr            string
	Exact                     bool
	ParamsBefore, ParamsAfter string
	FLOPsBefore, FLOPsAfter   string
	ParamsDelta, FLOPsDelta   string
	Channels                  string
}

// LayerView is a row of the architecture table.
type LayerView struct {
	Name, Op, Out, Params, MACs, KS string
	Gamma                           string // |γ| min / median / max
	NearZero                        string
	BN                              bool
	Indent                          bool
}

// HistBar is one bar of the γ histogram (SVG user units).
type HistBar struct {
	X, Y, W, H float64
	Title      string
	Low        bool // |γ| < 1e-2
}

// HistTick is an x axis label of the histogram.
type HistTick struct {
	X     float64
	Label string
}

// HistView is the BN-γ histogram.
type HistView struct {
	Bars            []HistBar
	Ticks           []HistTick
	Count, NearZero int
	MaxCount        int
}

// LatBar is a bar in a per-layer chart.
type LatBar struct {
	Label string
	Value string
	Pct   float64 // width in percent of the largest
	Class string
}

// BarGroup is one layer with a bar per compared network.
type BarGroup struct {
	Layer string
	Bars  []LatBar
}

// LatencyView compares per-layer latency of the unpruned ResNet and RMNet.
type LatencyView struct {
	SweepID       int64
	ResNet, RMNet []LatBar
	ResNetTotal   string
	RMNetTotal    string
	ResNetP50     string
	RMNetP50      string
	Speedup       string
}

// ModelView is the model page.
type ModelView struct {
	Model       ModelRow
	Conv        *ConvView
	ConvRunning bool // the RM equivalence check is still running
	Layers      []LayerView
	Hist        HistView
	Latency     *LatencyView
	Sweeps      []SweepRow
	Masks       *MaskView // mask-trained models only
}

// Option is an entry of a select.
type Option struct {
	Value, Label string
	Selected     bool
}

// NewSweepView is the new-sweep form.
type NewSweepView struct {
	Models      []Option
	ModelID     int64
	Datasets    []Option
	Method      string
	Scope       string
	RMNet       bool
	ResNet      bool
	Ratios      string
	Preview     string
	MinChannels string
	RoundTo     string
	Epochs      string
	// FinetuneLimit caps the training images per fine-tuning epoch ("0": all).
	FinetuneLimit string
	// TrainCopies: form rmnet's fine-tuning trains RM's copy filters too.
	TrainCopies bool
	Batch       string
	Threads     string
	Limit       string
	CanFinetune bool
	Error       string
}

// AxisLink switches the chart's x axis.
type AxisLink struct {
	Label, Href string
	Active      bool
}

// ChartView is a Pareto chart with clickable points.
type ChartView struct {
	SVG, PNG string // image URLs
	Markers  []marker
	Empty    bool
	Axes     []AxisLink
	Note     string // e.g. how many points' latency is flagged unreliable
}

// PointRow is a point in tables.
type PointRow struct {
	ID                              int64
	SweepID                         int64
	Form, Ratio, Params, FLOPs      string
	Top1, Top5, P50, P90, IPS, Size string
	ORTMACs                         string // MACs ONNX Runtime computes with the downloaded file
	Export                          string // that file's form: copy-aware or dense
	Front                           bool
	Reference                       bool
	LatencyTitle                    string // p25–p75, rounds, why unreliable
	Unreliable                      bool
	Refused                         string // why the pruning guards refused the ratio ("" when measured)
}

func pointRow(p store.Point) PointRow {
	size := "—"
	if p.SizeBytes > 0 {
		size = fmtBytes(p.SizeBytes)
	}
	ox, oxForm := onnxCost(p)
	return PointRow{ID: p.ID, SweepID: p.SweepID, Form: p.Form, Ratio: fmtRatio(p.Ratio), Params: fmtCount(p.Params),
		FLOPs: fmtCount(p.FLOPs), Top1: fmtPct(p.Top1), Top5: fmtPct(p.Top5), P50: fmtMS(p.LatencyMSP50),
		P90: fmtMS(p.LatencyMSP90), IPS: fmt.Sprintf("%.0f", p.ImagesPerS), Size: size, Reference: p.Ratio == 0,
		ORTMACs: fmtCount(ox), Export: oxForm, LatencyTitle: latencyTitle(p), Unreliable: p.LatencyUnreliable != "",
		Refused: refusedReason(p)}
}

// refusedReason is why the pruning guards refused p ("" when measured).
func refusedReason(p store.Point) string {
	if !p.Refused() {
		return ""
	}
	return p.Error
}

// SweepView is the sweep page.
type SweepView struct {
	Sweep   SweepRow
	Message string
	X       string
	Chart   ChartView
	Points  []PointRow
	Env     string
	// Remeasure is "queued" or "running" while a latency re-measure is
	// pending; CanRemeasure shows the button.
	Remeasure    string
	CanRemeasure bool
}

// SweepChoice is a sweep offered on the Pareto page.
type SweepChoice struct {
	Row     SweepRow
	Checked bool
}

// ParetoView is the overlay page.
type ParetoView struct {
	Choices  []SweepChoice
	Selected string // "1,2"
	Chart    ChartView
}

// CompareCol is a compared point's header.
type CompareCol struct {
	Point  PointRow
	Title  string
	Sweep  int64
	Model  string
	Method string
}

// MetricRow is one metric across the compared points.
type MetricRow struct {
	Name   string
	Values []string
	Best   int // index of the best value, -1 when none
}

// CompareView is the compare page.
type CompareView struct {
	Cols     []CompareCol
	Metrics  []MetricRow
	Channels []BarGroup
	Latency  []BarGroup
	IDs      string
}

// PointView is a point's detail page.
type PointView struct {
	Point     PointRow
	Sweep     SweepRow
	Method    string
	Env       string
	Channels  []BarGroup
	Latency   []BarGroup
	Compare   string // compare URL with the same form's reference
	HasRecipe bool
}

// Builders.

func convView(c store.Conversion) *ConvView {
	return &ConvView{RelErr: fmtSci(c.MaxRelErr), AbsErr: fmtSci(c.MaxAbsErr), Exact: c.MaxRelErr <= 1e-5,
		ParamsBefore: fmtCount(c.ParamsBefore), ParamsAfter: fmtCount(c.ParamsAfter),
		FLOPsBefore: fmtCount(c.FLOPsBefore), FLOPsAfter: fmtCount(c.FLOPsAfter),
		ParamsDelta: fmtDelta(c.ParamsBefore, c.ParamsAfter), FLOPsDelta: fmtDelta(c.FLOPsBefore, c.FLOPsAfter),
		Channels: fmt.Sprintf("%d → %d", c.ChannelsBefore, c.ChannelsAfter)}
}

// layerViews turns the stored architecture table into rows and the γ histogram.
func layerViews(raw json.RawMessage) ([]LayerView, HistView) {
	var rows []layerRow
	json.Unmarshal(raw, &rows)
	var out []LayerView
	var gammas []float32
	for _, r := range rows {
		if r.Op == nn.OpInput {
			continue
		}
		lv := LayerView{Name: r.Name, Op: string(r.Op), Out: r.Out, Params: fmtCount(r.Params), MACs: fmtCount(r.MACs),
			BN: r.Op == nn.OpBatchNorm, Indent: r.Op != nn.OpConv && r.Op != nn.OpLinear}
		if r.Kernel > 0 {
			lv.KS = fmt.Sprintf("%d×%d/%d", r.Kernel, r.Kernel, max(r.Stride, 1))
			if r.Groups > 1 {
				lv.KS += fmt.Sprintf(" g%d", r.Groups)
			}
		}
		if r.Params == 0 {
			lv.Params = ""
		}
		if r.MACs == 0 {
			lv.MACs = ""
		}
		if g := r.Gamma; g != nil {
			lv.Gamma = fmt.Sprintf("%.3g / %.3g / %.3g", g.Min, g.Median, g.Max)
			lv.NearZero = fmt.Sprintf("%d/%d", g.NearZero, g.Count)
		}
		gammas = append(gammas, r.GammaAbs...)
		out = append(out, lv)
	}
	return out, histogram(gammas)
}

// histogram bins log10|γ| from 1e-4 to 10 (values outside go to the end bins).
func histogram(g []float32) HistView {
	const lo, hi, bins = -4.0, 1.0, 40
	const w, h, left, bottom = 580.0, 160.0, 36.0, 22.0
	hv := HistView{Count: len(g)}
	counts := make([]int, bins)
	for _, v := range g {
		if v < 1e-2 {
			hv.NearZero++
		}
		x := lo
		if v > 0 {
			x = math.Log10(float64(v))
		}
		i := int((x - lo) / (hi - lo) * bins)
		counts[min(max(i, 0), bins-1)]++
	}
	hv.MaxCount = slices.Max(counts)
	if hv.MaxCount == 0 {
		return hv
	}
	bw := (w - left) / bins
	for i, c := range counts {
		if c == 0 {
			continue
		}
		bh := (h - bottom - 8) * float64(c) / float64(hv.MaxCount)
		a := math.Pow(10, lo+(hi-lo)*float64(i)/bins)
		b := math.Pow(10, lo+(hi-lo)*float64(i+1)/bins)
		hv.Bars = append(hv.Bars, HistBar{X: left + float64(i)*bw + 0.5, Y: h - bottom - bh, W: bw - 1, H: bh,
			Title: fmt.Sprintf("%d channels with |γ| in [%.2g, %.2g)", c, a, b), Low: b <= 1e-2+1e-12})
	}
	for e := -4; e <= 1; e++ {
		hv.Ticks = append(hv.Ticks, HistTick{X: left + (float64(e)-lo)/(hi-lo)*(w-left), Label: fmt.Sprintf("1e%d", e)})
	}
	return hv
}

// bars scales values into LatBars.
func bars(labels []string, values []float64, format func(float64) string, class string) []LatBar {
	m := 0.0
	for _, v := range values {
		m = max(m, v)
	}
	out := make([]LatBar, len(values))
	for i, v := range values {
		pct := 0.0
		if m > 0 {
			pct = 100 * v / m
		}
		out[i] = LatBar{Label: labels[i], Value: format(v), Pct: pct, Class: class}
	}
	return out
}

// channelGroups lays out per-layer channels (after / before) of several
// points, layers in order of first appearance.
func channelGroups(ps []store.Point) []BarGroup {
	var order []string
	idx := map[string]int{}
	for _, p := range ps {
		for _, c := range p.Channels {
			if _, ok := idx[c.Layer]; !ok {
				idx[c.Layer] = len(order)
				order = append(order, c.Layer)
			}
		}
	}
	maxC := 1
	for _, p := range ps {
		for _, c := range p.Channels {
			maxC = max(maxC, c.Before, c.After)
		}
	}
	groups := make([]BarGroup, len(order))
	for i, l := range order {
		groups[i].Layer = l
		groups[i].Bars = make([]LatBar, len(ps))
		for j := range ps {
			groups[i].Bars[j] = LatBar{Value: "—", Class: fmt.Sprintf("s%d", j)}
		}
	}
	for j, p := range ps {
		for _, c := range p.Channels {
			b := &groups[idx[c.Layer]].Bars[j]
			b.Value = fmt.Sprintf("%d/%d", c.After, c.Before)
			b.Pct = 100 * float64(c.After) / float64(maxC)
		}
	}
	return groups
}

// latencyGroups lays out per-layer latency of several points.
func latencyGroups(ps []store.Point) []BarGroup {
	var order []string
	idx := map[string]int{}
	m := 0.0
	for _, p := range ps {
		for _, l := range p.LayerMS {
			if _, ok := idx[l.Layer]; !ok {
				idx[l.Layer] = len(order)
				order = append(order, l.Layer)
			}
			m = max(m, l.MS)
		}
	}
	groups := make([]BarGroup, len(order))
	for i, l := range order {
		groups[i].Layer = l
		groups[i].Bars = make([]LatBar, len(ps))
		for j := range ps {
			groups[i].Bars[j] = LatBar{Value: "—", Class: fmt.Sprintf("s%d", j)}
		}
	}
	for j, p := range ps {
		for _, l := range p.LayerMS {
			b := &groups[idx[l.Layer]].Bars[j]
			b.Value = fmtMS(l.MS)
			if m > 0 {
				b.Pct = 100 * l.MS / m
			}
		}
	}
	return groups
}

// axisLinks builds the x axis switch, keeping the other query values.
func axisLinks(path string, q url.Values, current string) []AxisLink {
	var out []AxisLink
	for _, a := range axes {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("x", a.Key)
		out = append(out, AxisLink{Label: a.Label, Href: path + "?" + v.Encode(), Active: a.Key == current})
	}
	return out
}

// envString describes where points were measured.
func envString(ps []store.Point) string {
	for _, p := range ps {
		if p.CPU != "" || p.ISA != "" {
			s := fmt.Sprintf("%s · %s · %d threads · rmprune %s", p.CPU, p.ISA, p.Threads, p.Version)
			if len(ps) == 1 && p.Worker != "" {
				s += " · worker " + p.Worker
			}
			return s
		}
	}
	return ""
}
