package web

import (
	"bytes"
	"cmp"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/rmprune/rmprune/store"
)

// Chart size in points; the page scales the image and its overlay together.
const (
	chartW = 760
	chartH = 430
)

// axis is a choice of the Pareto chart's x axis.
type axis struct {
	Key   string // URL value
	Label string
	unit  string
	value func(p store.Point) float64
}

var axes = []axis{
	{"latency", "latency", "ms, batch 1", func(p store.Point) float64 { return p.LatencyMSP50 }},
	{"flops", "FLOPs", "M per image", func(p store.Point) float64 { return float64(p.FLOPs) / 1e6 }},
	{"computed", "computed MACs", "M per image, RM copies excluded", func(p store.Point) float64 { return float64(computedMACs(p)) / 1e6 }},
	{"params", "params", "k", func(p store.Point) float64 { return float64(p.Params) / 1e3 }},
	{"size", "model size", "MB", func(p store.Point) float64 { return float64(p.SizeBytes) / 1e6 }},
}

// computedMACs is what the engine computes for p: RM's copy channels run as
// copies, not as the dense k×k MACs the graph counts (points stored before
// this was measured report their graph MACs).
func computedMACs(p store.Point) int64 {
	if p.MACsComputed > 0 {
		return p.MACsComputed
	}
	return p.MACs
}

// axisOf returns the axis named key; unknown keys get latency.
func axisOf(key string) axis {
	for _, a := range axes {
		if a.Key == key {
			return a
		}
	}
	return axes[0]
}

// series is one curve of the chart: the points of one sweep in one form.
type series struct {
	Label  string
	Form   string
	Method string
	Index  int // colour index for overlays
	Points []store.Point
}

// seriesOf splits a sweep's points by form. prefix names the sweep in overlays.
func seriesOf(sw store.Sweep, points []store.Point, prefix string, index int) []series {
	var out []series
	forms := []string{"rmnet", "resnet"}
	for _, p := range points {
		if !slices.Contains(forms, p.Form) {
			forms = append(forms, p.Form)
		}
	}
	for i, f := range forms {
		var ps []store.Point
		for _, p := range points {
			if p.Form == f && !p.Refused() { // a refused point has no measurement to draw
				ps = append(ps, p)
			}
		}
		if len(ps) == 0 {
			continue
		}
		slices.SortFunc(ps, func(a, b store.Point) int { return cmp.Compare(a.Ratio, b.Ratio) })
		out = append(out, series{Label: strings.TrimSpace(prefix + " " + f + " · " + sw.Method), Form: f,
			Method: sw.Method, Index: 2*index + i, Points: ps})
	}
	return out
}

// front returns the ids of the points on the Pareto front: no other point is
// at least as fast (smaller x) and at least as accurate, one of them strictly.
func front(ss []series, ax axis) map[int64]bool {
	var all []store.Point
	for _, s := range ss {
		all = append(all, s.Points...)
	}
	slices.SortStableFunc(all, func(a, b store.Point) int {
		if c := cmp.Compare(ax.value(a), ax.value(b)); c != 0 {
			return c
		}
		return cmp.Compare(b.Top1, a.Top1)
	})
	on := map[int64]bool{}
	best := -1.0
	for _, p := range all {
		if p.Top1 > best {
			on[p.ID] = true
			best = p.Top1
		}
	}
	return on
}

// Colours: RMNet blues, ResNet oranges; overlays cycle through the palette.
var palette = []color.RGBA{
	{37, 99, 235, 255}, {234, 88, 12, 255}, {22, 163, 74, 255}, {147, 51, 234, 255},
	{8, 145, 178, 255}, {202, 138, 4, 255}, {219, 39, 119, 255}, {71, 85, 105, 255},
}

func seriesColor(s series, overlay bool) color.RGBA {
	if !overlay {
		if s.Form == "resnet" {
			return palette[1]
		}
		return palette[0]
	}
	return palette[s.Index%len(palette)]
}

func glyphFor(method string) draw.GlyphDrawer {
	if method == "l1" {
		return draw.PyramidGlyph{}
	}
	return draw.CircleGlyph{}
}

// paretoPlot draws accuracy against ax for the series, with the front highlighted.
func paretoPlot(ss []series, ax axis, overlay bool) (*plot.Plot, map[int64]bool, error) {
	p := plot.New()
	p.BackgroundColor = color.White
	p.X.Label.Text = fmt.Sprintf("%s (%s)", ax.Label, ax.unit)
	p.Y.Label.Text = "top-1 accuracy (%)"
	p.X.Label.TextStyle.Font = sans(11)
	p.Y.Label.TextStyle.Font = sans(11)
	p.X.Tick.Label.Font = sans(9.5)
	p.Y.Tick.Label.Font = sans(9.5)
	p.Legend.TextStyle.Font = sans(9.5)
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{Y: 230}
	grid.Horizontal.Color = color.Gray{Y: 230}
	p.Add(grid)
	on := front(ss, ax)
	// The front: a wide translucent band under the series.
	var fxy plotter.XYs
	for _, s := range ss {
		for _, pt := range s.Points {
			if on[pt.ID] {
				fxy = append(fxy, plotter.XY{X: ax.value(pt), Y: 100 * pt.Top1})
			}
		}
	}
	slices.SortFunc(fxy, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
	if len(fxy) > 1 {
		l, err := plotter.NewLine(fxy)
		if err != nil {
			return nil, nil, err
		}
		l.LineStyle.Width = vg.Points(7)
		l.LineStyle.Color = color.RGBA{250, 204, 21, 150}
		p.Add(l)
		p.Legend.Add("Pareto front", l)
	}
	for _, s := range ss {
		xy := make(plotter.XYs, len(s.Points))
		for i, pt := range s.Points {
			xy[i] = plotter.XY{X: ax.value(pt), Y: 100 * pt.Top1}
		}
		c := seriesColor(s, overlay)
		l, sc, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, nil, err
		}
		l.LineStyle.Width = vg.Points(1.3)
		l.LineStyle.Color = c
		if s.Form == "resnet" {
			l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		sc.GlyphStyle.Color = c
		sc.GlyphStyle.Radius = vg.Points(3.5)
		sc.GlyphStyle.Shape = glyphFor(s.Method)
		p.Add(l, sc)
		p.Legend.Add(s.Label, l, sc)
		if ax.Key == "latency" { // p25–p75 of the interleaved pass (latency.go)
			if err := addLatencySpread(p, s, c); err != nil {
				return nil, nil, err
			}
		}
		// Ring the front points.
		var ring plotter.XYs
		for i, pt := range s.Points {
			if on[pt.ID] {
				ring = append(ring, xy[i])
			}
		}
		if len(ring) > 0 {
			r, err := plotter.NewScatter(ring)
			if err != nil {
				return nil, nil, err
			}
			r.GlyphStyle.Color = color.RGBA{17, 24, 39, 255}
			r.GlyphStyle.Radius = vg.Points(6)
			r.GlyphStyle.Shape = draw.RingGlyph{}
			p.Add(r)
		}
	}
	if ax.Key == "latency" {
		if _, err := markUnreliable(p, ss, ax); err != nil {
			return nil, nil, err
		}
		p.X.Label.Text = fmt.Sprintf("%s (%s; bars: p25–p75 over rounds)", ax.Label, ax.unit)
	}
	// Room above the best point and below the worst.
	lo, hi := 100.0, 0.0
	for _, s := range ss {
		for _, pt := range s.Points {
			lo, hi = min(lo, 100*pt.Top1), max(hi, 100*pt.Top1)
		}
	}
	if pad := max((hi-lo)*0.06, 0.25); hi >= lo {
		p.Y.Min, p.Y.Max = max(lo-pad, 0), min(hi+pad, 100)
	}
	p.X.Tick.Marker = ticks{}
	p.Y.Tick.Marker = ticks{}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(4)
	p.Legend.YOffs = vg.Points(4)
	p.Legend.Padding = vg.Points(2)
	p.Y.Padding = vg.Points(6)
	p.X.Padding = vg.Points(6)
	return p, on, nil
}

// ticks are gonum's default ticks with labels precise enough to tell
// neighbouring major ticks apart.
type ticks struct{}

func (ticks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	var major []float64
	for _, t := range ts {
		if t.Label != "" {
			major = append(major, t.Value)
		}
	}
	if len(major) < 2 {
		return ts
	}
	step := math.Abs(major[1] - major[0])
	dec := 0
	if step > 0 {
		dec = max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	}
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', dec, 64)
		}
	}
	return ts
}

// sans is the chart font: Liberation Sans (embedded in gonum/plot).
func sans(size float64) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Points(size)}
}

// renderChart writes the plot as svg or png.
func renderChart(p *plot.Plot, format string) ([]byte, error) {
	var buf bytes.Buffer
	switch format {
	case "png":
		cv := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(chartW, chartH), vgimg.UseDPI(144))}
		p.Draw(draw.New(cv))
		if _, err := cv.WriteTo(&buf); err != nil {
			return nil, err
		}
	default:
		cv := vgsvg.New(chartW, chartH)
		p.Draw(draw.New(cv))
		if _, err := cv.WriteTo(&buf); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// marker is a clickable point over the chart image, positioned in percent
// of the image's size.
type marker struct {
	Left, Top float64
	PointID   int64
	Title     string
	Front     bool
}

// markers places every point of the chart as the image draws it.
func markers(p *plot.Plot, ss []series, ax axis, on map[int64]bool) []marker {
	cv := vgsvg.New(chartW, chartH)
	dc := draw.New(cv)
	da := p.DataCanvas(dc)
	tx, ty := p.Transforms(&da)
	var out []marker
	for _, s := range ss {
		for _, pt := range s.Points {
			x, y := tx(ax.value(pt)), ty(100*pt.Top1)
			out = append(out, marker{
				Left: 100 * float64(x) / chartW, Top: 100 * (1 - float64(y)/chartH), PointID: pt.ID, Front: on[pt.ID],
				Title: fmt.Sprintf("%s, ratio %s: top-1 %s, %s, %s FLOPs, %s params", s.Label, fmtRatio(pt.Ratio),
					fmtPct(pt.Top1), latencyTitle(pt), fmtCount(pt.FLOPs), fmtCount(pt.Params)),
			})
		}
	}
	return out
}
