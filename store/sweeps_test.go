package store

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
)

func nan() float64 { return math.NaN() }

func testSweep(modelID int64) Sweep {
	return Sweep{
		ModelID: modelID, Dataset: "mnist", Method: "slim", Scope: "global",
		Forms: []string{"rmnet", "resnet"}, Ratios: []float64{0.1, 0.2, 0.1 + 0.2},
		MinChannels: 1, RoundTo: 1, FinetuneEpochs: 0, Batch: 32, Threads: 2, Limit: 2000,
	}
}

func mustSweep(t *testing.T, db *DB, modelID int64) Sweep {
	t.Helper()
	s, err := db.CreateSweep(context.Background(), testSweep(modelID))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSweepLifecycle(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	m := mustModel(t, db, 1)
	s := mustSweep(t, db, m.ID)
	if s.Status != StatusQueued || s.Progress != 0 || !s.StartedAt.IsZero() || !s.FinishedAt.IsZero() {
		t.Errorf("new sweep: got %+v; want queued, progress 0, no start/finish", s)
	}
	if got, want := s.Ratios, []float64{0.1, 0.2, 0.3}; !slices.Equal(got, want) {
		t.Errorf("got ratios %v; want %v (normalised)", got, want)
	}
	if s.Limit != 2000 || s.Batch != 32 || !slices.Equal(s.Forms, []string{"rmnet", "resnet"}) {
		t.Errorf("got %+v; want the settings stored", s)
	}

	j, err := db.NextJob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if j.Kind != JobKindSweep || j.RefID != s.ID || j.Status != StatusRunning {
		t.Errorf("NextJob: got %+v; want the sweep's job, running", j)
	}
	s, _ = db.Sweep(ctx, s.ID)
	if s.Status != StatusRunning || s.StartedAt.IsZero() {
		t.Errorf("claimed sweep: got status %s, started %v; want running, set", s.Status, s.StartedAt)
	}
	started := s.StartedAt

	if err := db.SetSweepProgress(ctx, s.ID, 0.5); err != nil {
		t.Fatal(err)
	}
	j, _ = db.Job(ctx, j.ID)
	s, _ = db.Sweep(ctx, s.ID)
	if j.Progress != 0.5 || s.Progress != 0.5 {
		t.Errorf("got job progress %v, sweep %v; want 0.5, 0.5", j.Progress, s.Progress)
	}

	if err := db.SetSweepStatus(ctx, s.ID, StatusRunning, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSweepStatus(ctx, s.ID, StatusDone, ""); err != nil {
		t.Fatal(err)
	}
	s, _ = db.Sweep(ctx, s.ID)
	j, _ = db.Job(ctx, j.ID)
	if s.Status != StatusDone || s.Progress != 1 || s.FinishedAt.IsZero() || !s.StartedAt.Equal(started) {
		t.Errorf("done sweep: got %+v; want done, progress 1, finished, started unchanged %v", s, started)
	}
	if j.Status != StatusDone || j.Progress != 1 {
		t.Errorf("done job: got %+v; want done, progress 1", j)
	}
	if _, err := db.NextJob(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("NextJob on empty queue: got %v; want ErrNotFound", err)
	}
}

func TestSweepFailedKeepsError(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	s := mustSweep(t, db, mustModel(t, db, 1).ID)
	if err := db.SetSweepStatus(ctx, s.ID, StatusFailed, "eval: out of memory"); err != nil {
		t.Fatal(err)
	}
	s, _ = db.Sweep(ctx, s.ID)
	js, _ := db.Jobs(ctx, StatusFailed)
	if s.Status != StatusFailed || s.Error != "eval: out of memory" || len(js) != 1 || js[0].Error != s.Error {
		t.Errorf("got sweep %+v, failed jobs %+v; want failed with the error on both", s, js)
	}
}

func TestSweepsNewestFirstAndByModel(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	a, b := mustModel(t, db, 1), mustModel(t, db, 2)
	s1 := mustSweep(t, db, a.ID)
	s2 := mustSweep(t, db, b.ID)
	s3 := mustSweep(t, db, a.ID)
	tests := []struct {
		name    string
		modelID int64
		want    []int64
	}{
		{"all", 0, []int64{s3.ID, s2.ID, s1.ID}},
		{"model a", a.ID, []int64{s3.ID, s1.ID}},
		{"model b", b.ID, []int64{s2.ID}},
		{"unknown model", 999, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss, err := db.Sweeps(ctx, tt.modelID)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, s := range ss {
				got = append(got, s.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}

func TestMarkInterruptedAndResume(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	m := mustModel(t, db, 1)
	statuses := []Status{StatusRunning, StatusQueued, StatusDone, StatusRunning, StatusCancelled}
	var ids []int64
	for _, st := range statuses {
		s := mustSweep(t, db, m.ID)
		if err := db.SetSweepStatus(ctx, s.ID, st, ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	other, err := db.CreateJob(ctx, "convert", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetJobStatus(ctx, other.ID, StatusRunning, ""); err != nil {
		t.Fatal(err)
	}

	n, err := db.MarkInterrupted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("got %d sweeps marked; want 2", n)
	}
	want := []Status{StatusInterrupted, StatusQueued, StatusDone, StatusInterrupted, StatusCancelled}
	for i, id := range ids {
		s, _ := db.Sweep(ctx, id)
		js, _ := db.Jobs(ctx)
		var jobStatus Status
		for _, j := range js {
			if j.Kind == JobKindSweep && j.RefID == id {
				jobStatus = j.Status
			}
		}
		if s.Status != want[i] || jobStatus != want[i] {
			t.Errorf("sweep %d (%s): got sweep %s, job %s; want %s", id, statuses[i], s.Status, jobStatus, want[i])
		}
	}
	if j, _ := db.Job(ctx, other.ID); j.Status != StatusInterrupted {
		t.Errorf("convert job: got %s; want interrupted", j.Status)
	}

	rs, err := db.ResumableSweeps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ID != ids[0] || rs[1].ID != ids[3] {
		t.Errorf("got resumable %+v; want sweeps %d and %d, oldest first", rs, ids[0], ids[3])
	}

	resume := []struct {
		name string
		id   int64
		want error
	}{
		{"interrupted", ids[0], nil},
		{"cancelled", ids[4], nil},
		{"queued", ids[1], ErrConflict},
		{"done", ids[2], ErrConflict},
	}
	for _, tt := range resume {
		t.Run("resume "+tt.name, func(t *testing.T) {
			err := db.ResumeSweep(ctx, tt.id)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
			if tt.want == nil {
				s, _ := db.Sweep(ctx, tt.id)
				if s.Status != StatusQueued || !s.FinishedAt.IsZero() {
					t.Errorf("got %s, finished %v; want queued, not finished", s.Status, s.FinishedAt)
				}
			}
		})
	}
	// The resumed sweeps are back in the queue, in order.
	j, err := db.NextJob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if j.RefID != ids[0] {
		t.Errorf("NextJob after resume: got sweep %d; want %d", j.RefID, ids[0])
	}
}

func TestSweepValidation(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	m := mustModel(t, db, 1)
	s := mustSweep(t, db, m.ID)
	tests := []struct {
		name string
		do   func() error
	}{
		{"progress > 1", func() error { return db.SetSweepProgress(ctx, s.ID, 1.5) }},
		{"progress NaN", func() error { return db.SetSweepProgress(ctx, s.ID, nan()) }},
		{"unknown status", func() error { return db.SetSweepStatus(ctx, s.ID, "paused", "") }},
		{"no ratios", func() error {
			x := testSweep(m.ID)
			x.Ratios = nil
			_, err := db.CreateSweep(ctx, x)
			return err
		}},
		{"ratio > 1", func() error {
			x := testSweep(m.ID)
			x.Ratios = []float64{0.5, 1.2}
			_, err := db.CreateSweep(ctx, x)
			return err
		}},
		{"job progress < 0", func() error { return db.SetJobProgress(ctx, 1, -0.1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v; want ErrInvalid", err)
			}
		})
	}
}
