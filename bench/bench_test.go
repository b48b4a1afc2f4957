package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rmprune/rmprune/nn"
)

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct{ q, want float64 }{{0.5, 5.5}, {0.9, 9.1}, {0, 1}, {1, 10}}
	for _, tt := range tests {
		if got := quantile(s, tt.q); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("quantile(%v) got %v; want %v", tt.q, got, tt.want)
		}
	}
	st := Summarize([]float64{3, 1, 2}, time.Second)
	if st.MedianMs != 2 || st.MinMs != 1 || st.Runs != 3 {
		t.Errorf("Summarize got %+v; want median 2, min 1, 3 runs", st)
	}
}

func TestTimeCountsWarmupAndRuns(t *testing.T) {
	calls := 0
	st, err := Time(context.Background(), 7, 7, 0, func() error { calls++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if calls != Warmup+7 || st.Runs != 7 {
		t.Errorf("got %d calls and %d timed runs; want %d and 7", calls, st.Runs, Warmup+7)
	}
	boom := errors.New("boom")
	if _, err := Time(context.Background(), 5, 5, 0, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("error got %v; want boom", err)
	}
}

func TestModel(t *testing.T) {
	g, err := nn.Build("resnet20", 1, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Model(context.Background(), g, Options{Batch: 4, Threads: 2, Shape: nn.Shape{C: 1, H: 16, W: 16}, MinRuns: 5, MaxRuns: 5, MinTime: time.Millisecond, PerLayer: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Runs != 5 || r.Batch != 4 || r.Threads != 2 || r.ISA == "" || r.CPU == "" {
		t.Errorf("result got %+v", r)
	}
	if want := 4 / (r.LatencyMsP50 / 1e3); r.ImagesPerS < want*0.999 || r.ImagesPerS > want*1.001 {
		t.Errorf("images_per_s got %v; want batch/median = %v", r.ImagesPerS, want)
	}
	if r.LatencyMsP90 < r.LatencyMsP50 || len(r.Layers) == 0 {
		t.Errorf("p90 %v < p50 %v or no per-layer times", r.LatencyMsP90, r.LatencyMsP50)
	}
}
