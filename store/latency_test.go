package store

import (
	"context"
	"errors"
	"math"
	"testing"
)

func TestSetPointLatencyRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	s := mustSweep(t, db, mustModel(t, db, 1).ID)
	a, _, err := db.AddPoint(ctx, testPoint(s.ID, "rmnet", 0))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := db.AddPoint(ctx, testPoint(s.ID, "rmnet", 0.5))
	if err != nil {
		t.Fatal(err)
	}
	if a.LatencyRounds != 0 || a.LatencyMSP25 != 0 || a.LatencyUnreliable != "" {
		t.Errorf("new point got rounds %d p25 %v unreliable %q; want zeros", a.LatencyRounds, a.LatencyMSP25, a.LatencyUnreliable)
	}
	in := []PointLatency{
		{PointID: a.ID, P25: 0.61, P50: 0.63, P75: 0.66, P90: 0.8, Rounds: 15, Load: 0.02},
		{PointID: b.ID, P25: 0.3, P50: 0.4, P75: 0.6, P90: 0.9, Rounds: 15, Load: 0.4, Unreliable: "host busy"},
	}
	if err := db.SetPointLatency(ctx, in); err != nil {
		t.Fatal(err)
	}
	for _, l := range in {
		p, err := db.Point(ctx, l.PointID)
		if err != nil {
			t.Fatal(err)
		}
		got := PointLatency{PointID: p.ID, P25: p.LatencyMSP25, P50: p.LatencyMSP50, P75: p.LatencyMSP75,
			P90: p.LatencyMSP90, Rounds: p.LatencyRounds, Load: p.LatencyLoad, Unreliable: p.LatencyUnreliable}
		if got != l {
			t.Errorf("got %+v; want %+v", got, l)
		}
		if p.Top1 != 0.991 || p.ImagesPerS != 5100 {
			t.Errorf("point %d: other fields changed: top1 %v images/s %v", p.ID, p.Top1, p.ImagesPerS)
		}
	}

	bad := []struct {
		name string
		ls   []PointLatency
		want error
	}{
		{"missing point", []PointLatency{{PointID: a.ID, P25: 1, P50: 1, P75: 1}, {PointID: 999, P25: 1, P50: 1, P75: 1}}, ErrNotFound},
		{"nan", []PointLatency{{PointID: a.ID, P25: 1, P50: math.NaN(), P75: 1}}, ErrInvalid},
		{"negative", []PointLatency{{PointID: a.ID, P25: -1, P50: 1, P75: 1}}, ErrInvalid},
		{"order", []PointLatency{{PointID: a.ID, P25: 2, P50: 1, P75: 3}}, ErrInvalid},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.SetPointLatency(ctx, tt.ls); !errors.Is(err, tt.want) {
				t.Errorf("got %v; want %v", err, tt.want)
			}
			p, _ := db.Point(ctx, a.ID)
			if p.LatencyMSP50 != 0.63 {
				t.Errorf("after a refused write got p50 %v; want 0.63 (all or nothing)", p.LatencyMSP50)
			}
		})
	}
}

func TestActiveJob(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	s := mustSweep(t, db, mustModel(t, db, 1).ID)
	if _, err := db.ActiveJob(ctx, JobKindRemeasure, s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no job: got %v; want ErrNotFound", err)
	}
	j, err := db.CreateJob(ctx, JobKindRemeasure, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.ActiveJob(ctx, JobKindRemeasure, s.ID)
	if err != nil || got.ID != j.ID {
		t.Fatalf("got job %d, %v; want %d", got.ID, err, j.ID)
	}
	if err := db.SetJobStatus(ctx, j.ID, StatusDone, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActiveJob(ctx, JobKindRemeasure, s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("done job: got %v; want ErrNotFound", err)
	}
	// A remeasure job goes with its sweep.
	if _, err := db.CreateJob(ctx, JobKindRemeasure, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteModel(ctx, s.ModelID); err != nil {
		t.Fatal(err)
	}
	if js, err := db.Jobs(ctx); err != nil || len(js) != 0 {
		t.Errorf("after deleting the sweep got %d jobs, %v; want none", len(js), err)
	}
}
