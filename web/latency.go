package web

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/rmprune/rmprune/store"
)

// The latency figures of the interleaved pass (sweep/latency.go) on charts
// and pages: p25–p75 error bars and a mark on points whose figure is flagged
// unreliable.

// unreliableColor marks flagged points.
var unreliableColor = color.RGBA{220, 38, 38, 255}

// spreadBars are a series' p25–p75 latency bars (points timed in rounds).
type spreadBars struct {
	plotter.XYs
	plotter.XErrors
}

// addLatencySpread draws p25–p75 bars for the points of s that have them.
func addLatencySpread(p *plot.Plot, s series, c color.Color) error {
	var b spreadBars
	for _, pt := range s.Points {
		if pt.LatencyRounds == 0 || pt.LatencyMSP75 <= 0 {
			continue
		}
		b.XYs = append(b.XYs, plotter.XY{X: pt.LatencyMSP50, Y: 100 * pt.Top1})
		b.XErrors = append(b.XErrors, struct{ Low, High float64 }{pt.LatencyMSP50 - pt.LatencyMSP25, pt.LatencyMSP75 - pt.LatencyMSP50})
	}
	if len(b.XYs) == 0 {
		return nil
	}
	eb, err := plotter.NewXErrorBars(b)
	if err != nil {
		return err
	}
	eb.LineStyle.Color = c
	eb.LineStyle.Width = vg.Points(1.1)
	eb.CapWidth = vg.Points(5)
	p.Add(eb)
	return nil
}

// markUnreliable rings the points whose latency is flagged with a red cross
// and says so in the legend; it reports how many there are.
func markUnreliable(p *plot.Plot, ss []series, ax axis) (int, error) {
	var xy plotter.XYs
	for _, s := range ss {
		for _, pt := range s.Points {
			if pt.LatencyUnreliable != "" {
				xy = append(xy, plotter.XY{X: ax.value(pt), Y: 100 * pt.Top1})
			}
		}
	}
	if len(xy) == 0 {
		return 0, nil
	}
	sc, err := plotter.NewScatter(xy)
	if err != nil {
		return 0, err
	}
	sc.GlyphStyle.Color = unreliableColor
	sc.GlyphStyle.Radius = vg.Points(6)
	sc.GlyphStyle.Shape = draw.CrossGlyph{}
	p.Add(sc)
	p.Legend.Add("latency unreliable", sc)
	return len(xy), nil
}

// latencyNote explains the flagged points under a chart ("" when none).
func latencyNote(ps []store.Point) string {
	n := 0
	for _, p := range ps {
		if p.LatencyUnreliable != "" {
			n++
		}
	}
	switch n {
	case 0:
		return ""
	case 1:
		return "1 point's latency (red cross) is flagged unreliable — hover it for why; re-measure it on a quieter machine."
	}
	return fmt.Sprintf("%d points' latency (red crosses) is flagged unreliable — hover them for why; re-measure on a quieter machine.", n)
}

// latencyTitle describes a point's latency for tooltips.
func latencyTitle(p store.Point) string {
	s := fmtMS(p.LatencyMSP50) + " p50"
	if p.LatencyRounds > 0 {
		s += fmt.Sprintf(" (p25–p75 %s–%s over %d rounds)", fmtMS(p.LatencyMSP25), fmtMS(p.LatencyMSP75), p.LatencyRounds)
	}
	if p.LatencyUnreliable != "" {
		s += ", UNRELIABLE: " + p.LatencyUnreliable
	}
	return s
}

// apiLatency are a point's interleaved-pass fields in the JSON API:
// latency_ms_p25/p75 are null for a point timed alone (latency_rounds 0).
type apiLatency struct {
	LatencyMSP25      *float64 `json:"latency_ms_p25"`
	LatencyMSP75      *float64 `json:"latency_ms_p75"`
	LatencyRounds     int      `json:"latency_rounds"`
	LatencyLoad       float64  `json:"latency_load"`
	LatencyUnreliable bool     `json:"latency_unreliable"`
	LatencyNote       string   `json:"latency_note,omitempty"` // why it is unreliable
}

func toAPILatency(p store.Point) apiLatency {
	l := apiLatency{LatencyRounds: p.LatencyRounds, LatencyLoad: p.LatencyLoad,
		LatencyUnreliable: p.LatencyUnreliable != "", LatencyNote: p.LatencyUnreliable}
	if p.LatencyRounds > 0 {
		p25, p75 := p.LatencyMSP25, p.LatencyMSP75
		l.LatencyMSP25, l.LatencyMSP75 = &p25, &p75
	}
	return l
}
