package store

import (
	"context"
	"errors"
	"testing"
)

func TestMeta(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	if _, err := db.Meta(ctx, MetaDemoInstalled); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fresh database: got %v; want ErrNotFound", err)
	}
	steps := []struct {
		name    string
		do      func() (bool, error)
		wantSet bool
		want    string
	}{
		{"first claim", func() (bool, error) { return db.SetMetaIfAbsent(ctx, MetaDemoInstalled, "1") }, true, "1"},
		{"second claim", func() (bool, error) { return db.SetMetaIfAbsent(ctx, MetaDemoInstalled, "2") }, false, "1"},
		{"overwrite", func() (bool, error) { return true, db.SetMeta(ctx, MetaDemoInstalled, "3") }, true, "3"},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			set, err := tt.do()
			if err != nil {
				t.Fatal(err)
			}
			if set != tt.wantSet {
				t.Errorf("got set %v; want %v", set, tt.wantSet)
			}
			if got, err := db.Meta(ctx, MetaDemoInstalled); err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestJobsOfOtherKinds(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	m := mustModel(t, db, 1)
	j, err := db.CreateJob(ctx, "convert", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	s := mustSweep(t, db, m.ID)
	if got, err := db.NextJob(ctx); err != nil || got.ID != j.ID || got.Status != StatusRunning {
		t.Fatalf("NextJob: got %+v, %v; want the convert job running", got, err)
	}
	if err := db.SetJobProgress(ctx, j.ID, 0.25); err != nil {
		t.Fatal(err)
	}
	if err := db.SetJobStatus(ctx, j.ID, StatusDone, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Job(ctx, j.ID); got.Status != StatusDone || got.Progress != 1 {
		t.Errorf("got %+v; want done, progress 1", got)
	}
	// A sweep job driven through the job API moves its sweep along.
	sj, err := db.NextJob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetJobProgress(ctx, sj.ID, 0.75); err != nil {
		t.Fatal(err)
	}
	if err := db.SetJobStatus(ctx, sj.ID, StatusCancelled, "cancelled by user"); err != nil {
		t.Fatal(err)
	}
	got, _ := db.Sweep(ctx, s.ID)
	if got.Status != StatusCancelled || got.Progress != 0.75 || got.Error != "cancelled by user" || got.FinishedAt.IsZero() {
		t.Errorf("got sweep %+v; want cancelled at 0.75 with the message", got)
	}
	queued, _ := db.Jobs(ctx, StatusQueued, StatusRunning)
	all, _ := db.Jobs(ctx)
	if len(queued) != 0 || len(all) != 2 {
		t.Errorf("got %d queued/running of %d jobs; want 0 of 2", len(queued), len(all))
	}
}
