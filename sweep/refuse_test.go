package sweep

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/store"
)

// register stores g as a model of f's database.
func (f *fixture) register(t *testing.T, name string, g *nn.Graph) store.Model {
	t.Helper()
	ctx := context.Background()
	file := name + ".safetensors"
	if err := modelio.SaveSafetensors(filepath.Join(f.db.ArtifactDir(), file), g); err != nil {
		t.Fatal(err)
	}
	sum, err := g.Summarize(g.InputShape())
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := f.db.CreateModel(ctx, store.Model{Name: name, Arch: g.Arch, Params: sum.Params, MACs: sum.MACs,
		FLOPs: sum.FLOPs, SourceSHA256: nn.SourceSHA256(g.StateDict()), Path: file, InputShape: g.InputShape().String(), Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRefusedPointsDoNotFailSweep: a ratio the pruning guards refuse is
// stored as a refused point with its reason, and the other points are
// measured; the sweep ends done, and running it again measures nothing.
func TestRefusedPointsDoNotFailSweep(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Every channel provably dead (γ = 0, β < 0 before each ReLU): pruning
	// removes nearly all of them whatever the ratio (ErrDestroyed).
	dead := f.g.Clone()
	for _, n := range dead.Nodes {
		if n.Op == nn.OpBatchNorm {
			gamma, beta := n.P("weight"), n.P("bias")
			for c := range gamma {
				gamma[c], beta[c] = 0, -1
			}
		}
	}
	deadModel := f.register(t, "dead", dead)

	tests := []struct {
		name    string
		model   int64
		calib   int // Runner.CalibImages: -1 measures no statistics
		refused map[Key]error
	}{
		// The random model carries no block statistics: without
		// calibration a slim ratio on the RMNet form has nothing to rank
		// reserved channels and block outputs by.
		{"no statistics", f.model.ID, -1, map[Key]error{{FormRMNet, 0.3}: pruning.ErrNoStats}},
		{"destroyed", deadModel.ID, MinCalibImages, map[Key]error{{FormRMNet, 0.3}: pruning.ErrDestroyed, {FormResNet, 0.3}: pruning.ErrDestroyed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Dataset: "mnist", Ratios: []float64{0.3}, Limit: 50, Batch: 8}
			cfg.Defaults()
			s, err := f.db.CreateSweep(ctx, cfg.Sweep(tt.model))
			if err != nil {
				t.Fatal(err)
			}
			r := f.runner()
			r.CalibImages = tt.calib
			var msgs []string
			if err := r.Run(ctx, s.ID, func(_ float64, msg string) { msgs = append(msgs, msg) }); err != nil {
				t.Fatalf("Run: %v; want the sweep to go on past refused points", err)
			}
			got, _ := f.db.Sweep(ctx, s.ID)
			if got.Status != store.StatusDone || got.Error != "" {
				t.Errorf("sweep status %s error %q; want done", got.Status, got.Error)
			}
			ps, err := f.db.Points(ctx, s.ID)
			if err != nil || len(ps) != 4 {
				t.Fatalf("points %d, %v; want 4 (2 references + 2 forms × 1 ratio)", len(ps), err)
			}
			for _, p := range ps {
				k := Key{p.Form, p.Ratio}
				as, _ := f.db.Artifacts(ctx, p.ID)
				if want, ok := tt.refused[k]; ok {
					if !p.Refused() || p.Top1 != 0 || len(as) != 0 {
						t.Errorf("%s: status %q top1 %v %d artifacts; want refused, no measurement, no files", k, p.Status, p.Top1, len(as))
					}
					_, wantMsg := Refusal(want)
					if !wantMsg || !strings.Contains(p.Error, want.Error()) || strings.Contains(p.Error, "\n") {
						t.Errorf("%s: reason %q; want one line naming %q", k, p.Error, want)
					}
					continue
				}
				if p.Refused() || p.Error != "" || p.LatencyMSP50 <= 0 || len(as) == 0 {
					t.Errorf("%s: status %q error %q latency %v %d artifacts; want measured", k, p.Status, p.Error, p.LatencyMSP50, len(as))
				}
			}
			if !strings.Contains(strings.Join(msgs, "\n"), "refused") {
				t.Errorf("progress messages do not mention the refusal: %q", msgs)
			}
			// A second run (as a resume would) finds every point stored and
			// repairs nothing for the refused ones.
			measured := 0
			r.OnPoint = func(store.Point) { measured++ }
			if err := r.Run(ctx, s.ID, nil); err != nil || measured != 0 {
				t.Errorf("second run: %v, %d points measured; want nil, 0", err, measured)
			}
		})
	}
}

func TestRefusal(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		ok   bool
	}{
		{"nil", nil, false},
		{"other", pruning.ErrOptions, false},
		{"no stats", pruning.ErrNoStats, true},
		{"destroyed, wrapped over lines", errorsJoin("pruning: ratio 0.3\nwould keep 1", pruning.ErrDestroyed), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reason, ok := Refusal(tt.err)
			if ok != tt.ok || (ok && (reason == "" || strings.Contains(reason, "\n"))) {
				t.Errorf("got %q, %v; want ok %v and one line", reason, ok, tt.ok)
			}
		})
	}
}

func errorsJoin(msg string, err error) error { return &wrapped{msg, err} }

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg + ": " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }
