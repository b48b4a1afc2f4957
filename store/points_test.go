package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
)

func testPoint(sweepID int64, form string, ratio float64) Point {
	return Point{
		SweepID: sweepID, Form: form, Ratio: ratio,
		Channels: []LayerChannels{{Layer: "layer1.0.conv1", Before: 32, After: 20}},
		Params:   200000, MACs: 30_000_000, MACsComputed: 12_000_000, MACsONNX: 13_000_000, ONNXExport: "copy-aware",
		FLOPs: 60_000_000, SizeBytes: 800_000,
		Top1: 0.991, Top5: 0.9999, LatencyMSP50: 0.42, LatencyMSP90: 0.47, ImagesPerS: 5100,
		LayerMS: []LayerLatency{{Layer: "layer1.0.conv1", MS: 0.01}},
		CPU:     "Test CPU", ISA: "avx2", Threads: 2, Version: "v0.0.0-test", Status: PointDone,
	}
}

func TestAddPointIsIdempotent(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	s := mustSweep(t, db, mustModel(t, db, 1).ID)
	first, created, err := db.AddPoint(ctx, testPoint(s.ID, "rmnet", 0.3))
	if err != nil || !created {
		t.Fatalf("first AddPoint: created %v, %v", created, err)
	}
	tests := []struct {
		name  string
		form  string
		ratio float64
		new   bool
	}{
		{"same", "rmnet", 0.3, false},
		{"same after float noise", "rmnet", 0.1 + 0.2, false},
		{"other form", "resnet", 0.3, true},
		{"other ratio", "rmnet", 0.5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPoint(s.ID, tt.form, tt.ratio)
			p.Top1 = 0.5 // must not overwrite a stored point
			got, created, err := db.AddPoint(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if created != tt.new {
				t.Errorf("got created %v; want %v", created, tt.new)
			}
			if !tt.new && (got.ID != first.ID || got.Top1 != first.Top1) {
				t.Errorf("got id %d top1 %v; want the stored point %d top1 %v", got.ID, got.Top1, first.ID, first.Top1)
			}
		})
	}
	ps, err := db.Points(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%s@%g", p.Form, p.Ratio))
	}
	if want := []string{"resnet@0.3", "rmnet@0.3", "rmnet@0.5"}; !slices.Equal(got, want) {
		t.Errorf("got points %v; want %v", got, want)
	}
}

func TestPointRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	s := mustSweep(t, db, mustModel(t, db, 1).ID)
	in := testPoint(s.ID, "rmnet", 0)
	p, _, err := db.AddPoint(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Point(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	in.ID, in.CreatedAt = p.ID, got.CreatedAt
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", in) {
		t.Errorf("got %+v; want %+v", got, in)
	}
	if got.CreatedAt.IsZero() {
		t.Errorf("got zero created_at; want set")
	}
}

func TestAddPointValidation(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	s := mustSweep(t, db, mustModel(t, db, 1).ID)
	tests := []struct {
		name string
		edit func(*Point)
	}{
		{"top1 > 1", func(p *Point) { p.Top1 = 99.1 }},
		{"top5 NaN", func(p *Point) { p.Top5 = nan() }},
		{"latency NaN", func(p *Point) { p.LatencyMSP50 = nan() }},
		{"ratio < 0", func(p *Point) { p.Ratio = -0.1 }},
		{"layer latency NaN", func(p *Point) { p.LayerMS[0].MS = nan() }},
		{"unknown status", func(p *Point) { p.Status = "skipped" }},
		{"refused without a reason", func(p *Point) { p.Status, p.Error = PointRefused, " " }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPoint(s.ID, "rmnet", 0.1)
			tt.edit(&p)
			if _, _, err := db.AddPoint(ctx, p); !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v; want ErrInvalid", err)
			}
		})
	}
}

func TestPointsByIDsKeepsOrder(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	s := mustSweep(t, db, mustModel(t, db, 1).ID)
	var ids []int64
	for _, r := range []float64{0, 0.1, 0.2, 0.3} {
		p, _, err := db.AddPoint(ctx, testPoint(s.ID, "rmnet", r))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	tests := []struct {
		name string
		ask  []int64
	}{
		{"reversed", []int64{ids[3], ids[0]}},
		{"repeat", []int64{ids[1], ids[1], ids[2]}},
		{"none", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := db.PointsByIDs(ctx, tt.ask)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, p := range ps {
				got = append(got, p.ID)
			}
			if !slices.Equal(got, tt.ask) {
				t.Errorf("got %v; want %v", got, tt.ask)
			}
		})
	}
	if _, err := db.PointsByIDs(ctx, []int64{ids[0], 999}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing id: got %v; want ErrNotFound", err)
	}
}

func TestArtifacts(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	m := mustModel(t, db, 1)
	s := mustSweep(t, db, m.ID)
	p, _, _ := db.AddPoint(ctx, testPoint(s.ID, "rmnet", 0.5))
	onnx, created, err := db.AddArtifact(ctx, Artifact{PointID: p.ID, Kind: KindONNX, Path: "p/1.onnx", SizeBytes: 10, SHA256: sha(7)})
	if err != nil || !created {
		t.Fatalf("AddArtifact: created %v, %v", created, err)
	}
	again, created, err := db.AddArtifact(ctx, Artifact{PointID: p.ID, Kind: KindONNX, Path: "p/2.onnx", SHA256: sha(8)})
	if err != nil || created || again.ID != onnx.ID || again.Path != "p/1.onnx" {
		t.Errorf("second onnx: got %+v, created %v, %v; want the first one, not created", again, created, err)
	}
	if _, _, err := db.AddArtifact(ctx, Artifact{PointID: p.ID, Kind: KindRecipe, Path: "p/1.json", SHA256: sha(9)}); err != nil {
		t.Fatal(err)
	}
	// Models may hold several artifacts of a kind.
	for range 2 {
		if _, created, err := db.AddArtifact(ctx, Artifact{ModelID: m.ID, Kind: KindONNX, Path: "m.onnx", SHA256: sha(1)}); err != nil || !created {
			t.Fatalf("model artifact: created %v, %v", created, err)
		}
	}
	as, err := db.Artifacts(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range as {
		kinds = append(kinds, a.Kind)
	}
	if want := []string{KindONNX, KindRecipe}; !slices.Equal(kinds, want) {
		t.Errorf("got kinds %v; want %v", kinds, want)
	}
	if ma, _ := db.ModelArtifacts(ctx, m.ID); len(ma) != 2 || ma[0].PointID != 0 || ma[0].ModelID != m.ID {
		t.Errorf("got model artifacts %+v; want 2 owned by the model", ma)
	}
	got, err := db.PointArtifact(ctx, p.ID, KindONNX)
	if err != nil || got.ID != onnx.ID || got.SizeBytes != 10 || got.SHA256 != sha(7) {
		t.Errorf("PointArtifact: got %+v, %v; want %+v", got, err, onnx)
	}
	if _, err := db.PointArtifact(ctx, p.ID, KindSafetensors); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing kind: got %v; want ErrNotFound", err)
	}
	for _, a := range []Artifact{{Kind: KindONNX, Path: "x", SHA256: sha(1)}, {PointID: p.ID, ModelID: m.ID, Kind: KindONNX, Path: "x", SHA256: sha(1)}} {
		if _, _, err := db.AddArtifact(ctx, a); !errors.Is(err, ErrInvalid) {
			t.Errorf("owner point %d model %d: got %v; want ErrInvalid", a.PointID, a.ModelID, err)
		}
	}
}

// TestConcurrentWriters runs writers in several goroutines on one pool and on
// a second pool (as a second process would): WAL and busy_timeout must keep
// every write from failing with SQLITE_BUSY.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	other, err := Open(ctx, db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	m := mustModel(t, db, 1)
	s := mustSweep(t, db, m.ID)

	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*4)
	for w := range workers {
		h := db
		if w%2 == 1 {
			h = other
		}
		wg.Go(func() {
			for i := range each {
				r := float64(w*each+i) / 1000
				if _, _, err := h.AddPoint(ctx, testPoint(s.ID, "rmnet", r)); err != nil {
					errs <- err
				}
				if err := h.SetSweepProgress(ctx, s.ID, r); err != nil {
					errs <- err
				}
				if err := h.SetMeta(ctx, fmt.Sprintf("w%d", w), fmt.Sprint(i)); err != nil {
					errs <- err
				}
				if _, err := h.Points(ctx, s.ID); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write: %v", err)
	}
	ps, err := db.Points(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(ps), workers*each; got != want {
		t.Errorf("got %d points; want %d", got, want)
	}
}

// TestConcurrentNextJob checks that claiming is exclusive: every job is
// handed out once.
func TestConcurrentNextJob(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	other, err := Open(ctx, filepath.Clean(db.Path()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	m := mustModel(t, db, 1)
	const jobs = 20
	for range jobs {
		mustSweep(t, db, m.ID)
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		h := db
		if w%2 == 1 {
			h = other
		}
		wg.Go(func() {
			for {
				j, err := h.NextJob(ctx)
				if errors.Is(err, ErrNotFound) {
					return
				}
				if err != nil {
					t.Errorf("NextJob: %v", err)
					return
				}
				mu.Lock()
				seen[j.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Errorf("got %d distinct jobs claimed; want %d", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %d: claimed %d times; want 1", id, n)
		}
	}
}

// A database of schema 1 migrates: a point stored before migration 0002
// reads back with macs_computed 0 (unknown), before 0004 with macs_onnx 0
// and onnx_export "" (unknown), a sweep before 0003 with finetune_limit 0
// (all), before 0008 with train_copies set (sweeps then trained RM's copy
// filters); new rows keep theirs.
func TestMigrationsKeepOldRows(t *testing.T) {
	ctx := context.Background()
	init, err := migrationFS.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rmprune.db")
	old, err := open(ctx, path, fstest.MapFS{"migrations/0001_init.sql": {Data: init}})
	if err != nil {
		t.Fatal(err)
	}
	m := mustModel(t, old, 1)
	var sweepID int64
	if err := old.db.QueryRowContext(ctx, `INSERT INTO sweeps (model_id, dataset, method, scope, forms, ratios,
		min_channels, round_to, finetune_epochs, batch, threads, eval_limit, created_at)
		VALUES (?, 'mnist', 'slim', 'global', '["rmnet"]', '[0.5]', 1, 1, 2, 32, 2, 0, '2026-11-27T00:00:00Z')
		RETURNING id`, m.ID).Scan(&sweepID); err != nil {
		t.Fatal(err)
	}
	if _, err := old.db.ExecContext(ctx, `INSERT INTO points (sweep_id, form, ratio, params, macs, flops, top1, top5,
		latency_ms_p50, latency_ms_p90, images_per_s, created_at) VALUES (?, 'rmnet', 0.5, 1, 1000, 2000, 0.9, 1, 1, 1, 1, '2026-11-27T00:00:00Z')`, sweepID); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	all, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := db.SchemaVersion(ctx); v != len(all) {
		t.Errorf("schema version %d; want %d", v, len(all))
	}
	// The old sweep reads back with finetune_limit 0 (all); new ones keep theirs.
	sw, err := db.Sweep(ctx, sweepID)
	if err != nil || sw.FinetuneEpochs != 2 || sw.FinetuneLimit != 0 || !sw.TrainCopies {
		t.Errorf("old sweep %+v, %v; want finetune_epochs 2, finetune_limit 0, train_copies", sw, err)
	}
	nw := testSweep(m.ID)
	nw.FinetuneLimit = 3000
	if got, err := db.CreateSweep(ctx, nw); err != nil || got.FinetuneLimit != 3000 || got.TrainCopies {
		t.Errorf("new sweep finetune_limit %d train_copies %v, %v; want 3000, false", got.FinetuneLimit, got.TrainCopies, err)
	}
	nw.TrainCopies = true
	if got, err := db.CreateSweep(ctx, nw); err != nil || !got.TrainCopies {
		t.Errorf("new sweep train_copies %v, %v; want true", got.TrainCopies, err)
	}
	p := testPoint(sweepID, "resnet", 0.5)
	if _, _, err := db.AddPoint(ctx, p); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Points(ctx, sweepID)
	if err != nil || len(ps) != 2 {
		t.Fatalf("points %v, %v", ps, err)
	}
	for _, q := range ps {
		want := map[string]int64{"rmnet": 0, "resnet": p.MACsComputed}[q.Form]
		if q.MACsComputed != want || q.MACs == 0 {
			t.Errorf("%s: macs_computed %d, macs %d; want %d", q.Form, q.MACsComputed, q.MACs, want)
		}
		wantONNX, wantExport := map[string]int64{"rmnet": 0, "resnet": p.MACsONNX}[q.Form], map[string]string{"rmnet": "", "resnet": p.ONNXExport}[q.Form]
		if q.MACsONNX != wantONNX || q.ONNXExport != wantExport {
			t.Errorf("%s: macs_onnx %d, onnx_export %q; want %d, %q", q.Form, q.MACsONNX, q.ONNXExport, wantONNX, wantExport)
		}
		if q.Status != PointDone || q.Error != "" {
			t.Errorf("%s: status %q, error %q; want done and no error", q.Form, q.Status, q.Error)
		}
		if q.LatencyRounds != 0 || q.LatencyMSP25 != 0 || q.LatencyUnreliable != "" {
			t.Errorf("%s: latency rounds %d, p25 %v, unreliable %q; want none (timed alone)", q.Form,
				q.LatencyRounds, q.LatencyMSP25, q.LatencyUnreliable)
		}
	}
}
