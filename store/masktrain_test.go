package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestRefusedPointRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	s := mustSweep(t, db, mustModel(t, db, 1).ID)
	reason := "pruning: ratio 0.1 would keep 3 of 976 prunable channels: pruning would destroy the network"
	p, created, err := db.AddPoint(ctx, Point{SweepID: s.ID, Form: "rmnet", Ratio: 0.1, Status: PointRefused, Error: reason})
	if err != nil || !created {
		t.Fatalf("AddPoint: created %v, %v", created, err)
	}
	ok, _, err := db.AddPoint(ctx, testPoint(s.ID, "resnet", 0.1)) // status "" is done
	if err != nil {
		t.Fatal(err)
	}
	ps, err := db.Points(ctx, s.ID)
	if err != nil || len(ps) != 2 {
		t.Fatalf("points %v, %v; want 2", ps, err)
	}
	for _, q := range ps {
		switch q.ID {
		case p.ID:
			if !q.Refused() || q.Error != reason || q.Top1 != 0 || q.LatencyMSP50 != 0 {
				t.Errorf("refused point: got status %q error %q top1 %v latency %v; want refused with its reason and zeros",
					q.Status, q.Error, q.Top1, q.LatencyMSP50)
			}
		case ok.ID:
			if q.Refused() || q.Status != PointDone || q.Error != "" {
				t.Errorf("measured point: got status %q error %q; want done", q.Status, q.Error)
			}
		}
	}
}

func TestMaskTrainingLifecycle(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	src := mustModel(t, db, 1)
	cfg := json.RawMessage(`{"dataset":"mnist","epochs":1}`)
	mt, err := db.CreateMaskTraining(ctx, src.ID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if mt.ModelID != src.ID || mt.Status != StatusQueued || mt.JobID == 0 || string(mt.Live) != "{}" || mt.ResultModelID != 0 {
		t.Fatalf("created %+v; want queued on model %d with a job, live {} and no result", mt, src.ID)
	}
	var got map[string]any
	if err := json.Unmarshal(mt.Config, &got); err != nil || got["dataset"] != "mnist" {
		t.Errorf("config %s; want it back", mt.Config)
	}

	// The queue claims it like any job.
	j, err := db.NextJob(ctx)
	if err != nil || j.ID != mt.JobID || j.Kind != JobKindMaskTrain || j.RefID != mt.ID {
		t.Fatalf("NextJob %+v, %v; want the mask training's job", j, err)
	}
	if err := db.SetMaskTrainingLive(ctx, mt.ID, json.RawMessage(`{"step":3}`), 0.25); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.MaskTrainingByJob(ctx, j.ID); got.ID != mt.ID || got.Status != StatusRunning || got.Progress != 0.25 || string(got.Live) != `{"step":3}` {
		t.Errorf("after progress: %+v; want running, 0.25, live {step:3}", got)
	}
	for _, tt := range []struct {
		name string
		live string
		frac float64
	}{{"bad JSON", `{"step":`, 0.3}, {"progress > 1", `{}`, 1.5}} {
		if err := db.SetMaskTrainingLive(ctx, mt.ID, json.RawMessage(tt.live), tt.frac); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v; want ErrInvalid", tt.name, err)
		}
	}
	if err := db.ResumeMaskTraining(ctx, mt.ID); !errors.Is(err, ErrConflict) {
		t.Errorf("resume while running: got %v; want ErrConflict", err)
	}

	// A server stopped mid-run leaves it interrupted; resuming queues it again.
	if _, err := db.MarkInterrupted(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.MaskTraining(ctx, mt.ID); got.Status != StatusInterrupted {
		t.Errorf("after MarkInterrupted: status %s; want interrupted", got.Status)
	}
	if err := db.SetJobStatus(ctx, mt.JobID, StatusFailed, "train: loss diverged"); err != nil {
		t.Fatal(err)
	}
	if err := db.ResumeMaskTraining(ctx, mt.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.MaskTraining(ctx, mt.ID); got.Status != StatusQueued || got.Error != "" {
		t.Errorf("after resume: status %s error %q; want queued without error", got.Status, got.Error)
	}

	// Done: the result model is recorded and the job is done.
	res := mustModel(t, db, 2)
	if err := db.FinishMaskTraining(ctx, mt.ID, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("finish with a missing model: got %v; want ErrNotFound", err)
	}
	if err := db.FinishMaskTraining(ctx, mt.ID, res.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.MaskTraining(ctx, mt.ID); got.Status != StatusDone || got.Progress != 1 || got.ResultModelID != res.ID {
		t.Errorf("after finish: %+v; want done, progress 1, result %d", got, res.ID)
	}
	if err := db.ResumeMaskTraining(ctx, mt.ID); !errors.Is(err, ErrConflict) {
		t.Errorf("resume when done: got %v; want ErrConflict", err)
	}

	// Listing: by model and all, newest first.
	other, err := db.CreateMaskTraining(ctx, res.ID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ms, err := db.MaskTrainings(ctx, src.ID); err != nil || len(ms) != 1 || ms[0].ID != mt.ID {
		t.Errorf("trainings of model %d: %+v, %v; want [%d]", src.ID, ms, err, mt.ID)
	}
	if ms, err := db.MaskTrainings(ctx, 0); err != nil || len(ms) != 2 || ms[0].ID != other.ID {
		t.Errorf("all trainings: %+v, %v; want 2, newest (%d) first", ms, err, other.ID)
	}

	// Deleting the result model keeps the training (without a result);
	// deleting the source removes the training and its job.
	if _, err := db.DeleteModel(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := db.MaskTraining(ctx, mt.ID); err != nil || got.ResultModelID != 0 {
		t.Errorf("after deleting the result model: %+v, %v; want the training without result", got, err)
	}
	if _, err := db.MaskTraining(ctx, other.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("training of a deleted model: got %v; want ErrNotFound", err)
	}
	if _, err := db.DeleteModel(ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	if js, _ := db.Jobs(ctx); len(js) != 0 {
		t.Errorf("jobs left after deleting both models: %+v; want none", js)
	}
}

func TestMaskTrainingRefused(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	m := mustModel(t, db, 1)
	for _, tt := range []struct {
		name  string
		model int64
		cfg   string
		want  error
	}{
		{"missing model", 42, `{}`, ErrNotFound},
		{"config not an object", m.ID, `[1]`, ErrInvalid},
		{"config not JSON", m.ID, `{`, ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.CreateMaskTraining(ctx, tt.model, json.RawMessage(tt.cfg)); !errors.Is(err, tt.want) {
				t.Errorf("got %v; want %v", err, tt.want)
			}
		})
	}
	for _, id := range []int64{7} {
		if _, err := db.MaskTraining(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("MaskTraining(%d): got %v; want ErrNotFound", id, err)
		}
		if err := db.ResumeMaskTraining(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("ResumeMaskTraining(%d): got %v; want ErrNotFound", id, err)
		}
		if err := db.SetMaskTrainingLive(ctx, id, nil, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetMaskTrainingLive(%d): got %v; want ErrNotFound", id, err)
		}
	}
}
