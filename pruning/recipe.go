package pruning

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/rmprune/rmprune/nn"
)

// RecipeVersion is the version of the recipe format this package writes and reads.
const RecipeVersion = 1

// Recipe records a pruning so that it can be replayed: on the same source
// model (same tensors, same calibration batch) it reproduces the same
// network bit for bit.
type Recipe struct {
	Version      int           `json:"version"`
	SourceSHA256 string        `json:"source_sha256"` // nn.SourceSHA256 of the source model's tensors
	Criterion    string        `json:"criterion"`     // slim | l1
	Scope        string        `json:"scope,omitempty"`
	Ratio        *float64      `json:"ratio,omitempty"`
	Threshold    *float64      `json:"threshold,omitempty"`
	MinChannels  int           `json:"min_channels"`
	RoundTo      int           `json:"round_to"`
	Form         string        `json:"form"`                   // rmnet | resnet
	StatsSource  string        `json:"stats_source,omitempty"` // calib | checkpoint | default (form rmnet)
	CalibSHA256  string        `json:"calib_sha256,omitempty"` // of the calibration batch, when one was used
	Layers       []RecipeLayer `json:"layers"`
}

// RecipeLayer is one prunable layer: the conv that makes the channels, its
// channel count in the source form, the channels the policy kept (after the
// guards), and the channels left after dead-channel propagation. Indices
// refer to the unpruned form (for form rmnet, the RM-converted BN-kept net).
type RecipeLayer struct {
	Name     string `json:"name"`
	Channels int    `json:"channels"`
	Kept     []int  `json:"kept"`
	Final    []int  `json:"final,omitempty"`
}

// ParseRecipe decodes and checks a recipe.
func ParseRecipe(data []byte) (*Recipe, error) {
	var r Recipe
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("pruning: recipe: %w", err)
	}
	if r.Version != RecipeVersion {
		return nil, fmt.Errorf("pruning: recipe version %d, this rmprune reads version %d", r.Version, RecipeVersion)
	}
	if r.SourceSHA256 == "" {
		return nil, fmt.Errorf("pruning: recipe has no source_sha256")
	}
	if r.Form != FormRMNet && r.Form != FormResNet {
		return nil, fmt.Errorf("pruning: recipe form %q, want %s or %s", r.Form, FormRMNet, FormResNet)
	}
	seen := map[string]bool{}
	for _, l := range r.Layers {
		if seen[l.Name] {
			return nil, fmt.Errorf("pruning: recipe lists layer %s twice", l.Name)
		}
		seen[l.Name] = true
		for _, idx := range [][]int{l.Kept, l.Final} {
			if !slices.IsSorted(idx) || len(slices.Compact(slices.Clone(idx))) != len(idx) {
				return nil, fmt.Errorf("pruning: recipe layer %s: channel indices must be increasing", l.Name)
			}
			if len(idx) > 0 && (idx[0] < 0 || idx[len(idx)-1] >= l.Channels) {
				return nil, fmt.Errorf("pruning: recipe layer %s: channel index out of range [0,%d)", l.Name, l.Channels)
			}
		}
		if len(l.Kept) == 0 {
			return nil, fmt.Errorf("pruning: recipe layer %s keeps no channel", l.Name)
		}
	}
	return &r, nil
}

// JSON encodes the recipe compactly.
func (r *Recipe) JSON() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain structs of numbers and strings
	}
	return string(b)
}

// actSHA256 hashes a calibration batch: its shape and values (float32 LE).
func actSHA256(a *nn.Act) string {
	if a == nil {
		return ""
	}
	h := sha256.New()
	var buf []byte
	for _, d := range []int{a.N, a.C, a.H, a.W} {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(d))
	}
	for _, v := range a.D {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))
}
