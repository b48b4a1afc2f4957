package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// sha returns a valid 64-hex-digit hash derived from n.
func sha(n int) string { return fmt.Sprintf("%064x", n) }

func testModel(n int) Model {
	return Model{
		Name: fmt.Sprintf("resnet20-%d", n), Arch: "resnet20", Params: 272474, MACs: 40_000_000, FLOPs: 80_000_000,
		SourceSHA256: sha(n), Path: fmt.Sprintf("models/%d.safetensors", n), SizeBytes: 1_100_000,
		InputShape: "1x28x28", Classes: 10, Layers: json.RawMessage(`[{"name":"conv1","op":"conv"}]`),
	}
}

func mustModel(t *testing.T, db *DB, n int) Model {
	t.Helper()
	m, created, err := db.CreateModel(context.Background(), testModel(n))
	if err != nil || !created {
		t.Fatalf("CreateModel(%d): created %v, %v", n, created, err)
	}
	return m
}

func TestCreateModelRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	in := testModel(1)
	in.SourceSHA256 = strings.ToUpper(in.SourceSHA256)
	m, created, err := db.CreateModel(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !created || m.ID == 0 {
		t.Errorf("got created %v, id %d; want true, non-zero", created, m.ID)
	}
	got, err := db.Model(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := testModel(1)
	want.ID, want.CreatedAt = m.ID, time.Date(2026, 11, 27, 12, 0, 1, 123456000, time.UTC)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) || got.Path != want.Path {
		t.Errorf("got %s; want %s", gj, wj)
	}
	if bySHA, err := db.ModelBySHA(ctx, strings.ToUpper(sha(1))); err != nil || bySHA.ID != m.ID {
		t.Errorf("ModelBySHA: got id %d, %v; want %d", bySHA.ID, err, m.ID)
	}
}

func TestCreateModelSameHashReturnsExisting(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	first := mustModel(t, db, 1)
	again := testModel(1)
	again.Name, again.Path = "copy", "models/copy.safetensors"
	got, created, err := db.CreateModel(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if created || got.ID != first.ID || got.Name != first.Name || got.Path != first.Path {
		t.Errorf("got created %v, id %d, name %q, path %q; want false, %d, %q, %q",
			created, got.ID, got.Name, got.Path, first.ID, first.Name, first.Path)
	}
	ms, _ := db.Models(ctx)
	if len(ms) != 1 {
		t.Errorf("got %d models; want 1", len(ms))
	}
}

func TestModelsNewestFirst(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	var want []int64
	for i := range 4 {
		want = append(want, mustModel(t, db, i+1).ID)
	}
	slices.Reverse(want)
	ms, err := db.Models(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range ms {
		got = append(got, m.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got ids %v; want %v", got, want)
	}
	for i := 1; i < len(ms); i++ {
		if !ms[i-1].CreatedAt.After(ms[i].CreatedAt) {
			t.Errorf("got created_at %v before %v; want newest first", ms[i-1].CreatedAt, ms[i].CreatedAt)
		}
	}
}

func TestConstraintErrors(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	m := mustModel(t, db, 1)
	tests := []struct {
		name string
		do   func() error
		want ConstraintKind
	}{
		{"sha not hex", func() error {
			x := testModel(2)
			x.SourceSHA256 = strings.Repeat("z", 64)
			_, _, err := db.CreateModel(ctx, x)
			return err
		}, ConstraintCheck},
		{"empty name", func() error {
			x := testModel(3)
			x.Name = ""
			_, _, err := db.CreateModel(ctx, x)
			return err
		}, ConstraintCheck},
		{"round_to 0", func() error {
			s := testSweep(m.ID)
			s.RoundTo = 0
			_, err := db.CreateSweep(ctx, s)
			return err
		}, ConstraintCheck},
		{"artifact kind", func() error {
			_, _, err := db.AddArtifact(ctx, Artifact{ModelID: m.ID, Kind: "exe", Path: "x", SHA256: sha(1)})
			return err
		}, ConstraintCheck},
		{"meta primary key via raw insert", func() error {
			db.SetMeta(ctx, "k", "v")
			_, err := db.db.ExecContext(ctx, "INSERT INTO meta (key, value, updated_at) VALUES ('k', 'w', '')")
			return mapErr(err)
		}, ConstraintUnique},
		{"foreign key via raw insert", func() error {
			_, err := db.db.ExecContext(ctx, `INSERT INTO conversions (model_id, form, max_abs_err, max_rel_err,
				params_source, params_before, params_after, macs_before, macs_after, flops_before, flops_after,
				channels_before, channels_after, created_at) VALUES (999, 'rmnet', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '')`)
			return mapErr(err)
		}, ConstraintForeignKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			var ce *ConstraintError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v; want a *ConstraintError", err)
			}
			if ce.Kind != tt.want {
				t.Errorf("got kind %v; want %v (%v)", ce.Kind, tt.want, err)
			}
			if got := errors.Is(err, ErrConflict); got != (tt.want == ConstraintUnique) {
				t.Errorf("got errors.Is(ErrConflict) %v; want %v", got, tt.want == ConstraintUnique)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	const missing = 12345
	tests := []struct {
		name string
		do   func() error
		want string
	}{
		{"Model", func() error { _, err := db.Model(ctx, missing); return err }, "store: model 12345: not found"},
		{"ModelBySHA", func() error { _, err := db.ModelBySHA(ctx, sha(9)); return err }, "not found"},
		{"DeleteModel", func() error { _, err := db.DeleteModel(ctx, missing); return err }, "store: delete model 12345: not found"},
		{"CreateConversion", func() error {
			_, err := db.CreateConversion(ctx, Conversion{ModelID: missing, Form: "rmnet"})
			return err
		}, "model 12345: not found"},
		{"CreateSweep", func() error { _, err := db.CreateSweep(ctx, testSweep(missing)); return err }, "model 12345: not found"},
		{"Sweep", func() error { _, err := db.Sweep(ctx, missing); return err }, "store: sweep 12345: not found"},
		{"SetSweepStatus", func() error { return db.SetSweepStatus(ctx, missing, StatusDone, "") }, "not found"},
		{"SetSweepProgress", func() error { return db.SetSweepProgress(ctx, missing, 0.5) }, "not found"},
		{"ResumeSweep", func() error { return db.ResumeSweep(ctx, missing) }, "not found"},
		{"AddPoint", func() error { _, _, err := db.AddPoint(ctx, testPoint(missing, "rmnet", 0.1)); return err }, "sweep 12345: not found"},
		{"Point", func() error { _, err := db.Point(ctx, missing); return err }, "store: point 12345: not found"},
		{"PointsByIDs", func() error { _, err := db.PointsByIDs(ctx, []int64{missing}); return err }, "point 12345: not found"},
		{"AddArtifact", func() error {
			_, _, err := db.AddArtifact(ctx, Artifact{PointID: missing, Kind: KindONNX, Path: "p", SHA256: sha(1)})
			return err
		}, "point 12345: not found"},
		{"PointArtifact", func() error { _, err := db.PointArtifact(ctx, missing, KindONNX); return err }, "not found"},
		{"Job", func() error { _, err := db.Job(ctx, missing); return err }, "store: job 12345: not found"},
		{"NextJob", func() error { _, err := db.NextJob(ctx); return err }, "store: next job: not found"},
		{"SetJobStatus", func() error { return db.SetJobStatus(ctx, missing, StatusDone, "") }, "not found"},
		{"SetJobProgress", func() error { return db.SetJobProgress(ctx, missing, 0.1) }, "not found"},
		{"Meta", func() error { _, err := db.Meta(ctx, "nope"); return err }, `store: meta "nope": not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("got %v; want errors.Is ErrNotFound", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDeleteModelCascades(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	keep := mustModel(t, db, 1)
	m := mustModel(t, db, 2)
	for _, owner := range []int64{keep.ID, m.ID} {
		if _, err := db.CreateConversion(ctx, Conversion{ModelID: owner, Form: "rmnet"}); err != nil {
			t.Fatal(err)
		}
		s, err := db.CreateSweep(ctx, testSweep(owner))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []float64{0, 0.5} {
			p, _, err := db.AddPoint(ctx, testPoint(s.ID, "rmnet", r))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.AddArtifact(ctx, Artifact{PointID: p.ID, Kind: KindONNX,
				Path: fmt.Sprintf("m%d/p%d.onnx", owner, p.ID), SHA256: sha(int(p.ID))}); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := db.AddArtifact(ctx, Artifact{ModelID: owner, Kind: KindONNX,
			Path: fmt.Sprintf("m%d/model.onnx", owner), SHA256: sha(1)}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() map[string]int {
		c := map[string]int{}
		for _, table := range []string{"models", "conversions", "sweeps", "points", "artifacts", "jobs"} {
			var n int
			if err := db.db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			c[table] = n
		}
		return c
	}
	before := count()

	paths, err := db.DeleteModel(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := []string{m.Path, fmt.Sprintf("m%d/model.onnx", m.ID)}
	if len(paths) != 4 || paths[0] != wantPaths[0] || !slices.Contains(paths, wantPaths[1]) {
		t.Errorf("got paths %q; want the model file first, then its 3 artifacts (incl. %q)", paths, wantPaths[1])
	}
	after := count()
	for table, n := range before {
		if got, want := after[table], n/2; got != want {
			t.Errorf("%s: got %d rows; want %d (the other model's)", table, got, want)
		}
	}
	if _, err := db.Model(ctx, keep.ID); err != nil {
		t.Errorf("other model: %v", err)
	}
	if _, err := db.DeleteModel(ctx, m.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: got %v; want ErrNotFound", err)
	}
}

func TestConversionsForModel(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	m := mustModel(t, db, 1)
	in := Conversion{ModelID: m.ID, Form: "rmnet", MaxAbsErr: 1.5e-6, MaxRelErr: 2e-7, ParamsSource: 272474,
		ParamsBefore: 272474, ParamsAfter: 300000, MACsBefore: 40, MACsAfter: 45, FLOPsBefore: 80, FLOPsAfter: 90,
		ChannelsBefore: 700, ChannelsAfter: 900, StatsSource: "checkpoint", Layers: json.RawMessage(`[{"layer":"b1"}]`)}
	first, err := db.CreateConversion(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	in.Form = "rmnet-folded"
	second, err := db.CreateConversion(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := db.ConversionsForModel(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].ID != second.ID || cs[1].ID != first.ID {
		t.Fatalf("got %+v; want [second, first]", cs)
	}
	got := cs[1]
	if got.MaxAbsErr != 1.5e-6 || got.MaxRelErr != 2e-7 || got.ChannelsAfter != 900 || got.StatsSource != "checkpoint" ||
		string(got.Layers) != `[{"layer":"b1"}]` {
		t.Errorf("got %+v; want the stored report", got)
	}

	bad := in
	bad.MaxRelErr = nan()
	if _, err := db.CreateConversion(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("NaN error: got %v; want ErrInvalid", err)
	}
	bad = in
	bad.Layers = json.RawMessage(`{`)
	if _, err := db.CreateConversion(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad layers JSON: got %v; want ErrInvalid", err)
	}
}
