package web

import (
	"encoding/json"
	"fmt"

	"github.com/rmprune/rmprune/nn"
)

// maskReport rebuilds a mask-trained model's mask statistics from its stored
// architecture table. masked reports whether the model has mask nodes at
// all; the report is nil when it has none, or when the rows predate stored
// mask values.
func maskReport(raw json.RawMessage) (masked bool, r *nn.MaskReport) {
	var rows []layerRow
	if json.Unmarshal(raw, &rows) != nil {
		return false, nil
	}
	byKind := map[string][]float32{}
	r = &nn.MaskReport{}
	for _, l := range rows {
		if l.Op != nn.OpMask {
			continue
		}
		masked = true
		if l.MaskKind == "" || len(l.MaskValues) == 0 {
			continue
		}
		s := nn.MaskStatsOf(l.MaskKind, l.MaskValues)
		s.Name = l.Name
		r.Layers = append(r.Layers, s)
		byKind[l.MaskKind] = append(byKind[l.MaskKind], l.MaskValues...)
	}
	for _, k := range nn.MaskKinds {
		if v := byKind[k]; len(v) > 0 {
			r.Kinds = append(r.Kinds, nn.MaskStatsOf(k, v))
		}
	}
	if len(r.Layers) == 0 {
		r = nil
	}
	return masked, r
}

// MaskView is the model page's mask section (mask-trained models).
type MaskView struct {
	Kinds  []MaskRow
	Layers []MaskRow
}

// MaskRow is one kind or one mask layer.
type MaskRow struct {
	Name, Kind, Count, Zero, ZeroPct, Negative string
	MinMedMax                                  string
	ZeroWidth                                  string // CSS width of the zero-share bar
}

func maskRow(s nn.MaskStats) MaskRow {
	return MaskRow{Name: s.Name, Kind: s.Kind, Count: itoa(s.Count), Zero: itoa(s.Zero),
		ZeroPct: fmt.Sprintf("%.1f%%", 100*s.ZeroShare), Negative: itoa(s.Negative),
		MinMedMax: fmt.Sprintf("%.3g / %.3g / %.3g", s.Min, s.Median, s.Max),
		ZeroWidth: fmt.Sprintf("%.1f%%", 100*s.ZeroShare)}
}

// maskView builds the mask section from the stored architecture table, or
// nil for a model without mask statistics.
func maskView(raw json.RawMessage) *MaskView {
	_, r := maskReport(raw)
	if r == nil {
		return nil
	}
	v := &MaskView{}
	for _, k := range r.Kinds {
		v.Kinds = append(v.Kinds, maskRow(k))
	}
	for _, l := range r.Layers {
		v.Layers = append(v.Layers, maskRow(l))
	}
	return v
}
