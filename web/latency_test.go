package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rmprune/rmprune/store"
)

// remeasureFake re-measures like sweep.Runner.Remeasure would store it, from
// fixed numbers: every point gets p25/p50/p75 = 0.9/1/1.1 × its p50 over 9
// rounds, and the pruned points are flagged. It waits for gate before
// storing, so a test can watch it run.
type remeasureFake struct {
	*fakeRunner
	gate chan struct{}
}

func (f *remeasureFake) Remeasure(ctx context.Context, id int64, progress func(float64, string)) error {
	ps, err := f.db.Points(ctx, id)
	if err != nil {
		return err
	}
	progress(0.5, "round 5 of 9")
	select {
	case <-f.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	var ls []store.PointLatency
	for _, p := range ps {
		l := store.PointLatency{PointID: p.ID, P25: 0.9 * p.LatencyMSP50, P50: p.LatencyMSP50, P75: 1.1 * p.LatencyMSP50,
			P90: p.LatencyMSP90, Rounds: 9, Load: 0.01}
		if p.Ratio > 0 {
			l.Load, l.Unreliable = 0.4, "CPU busy: other work waited 40% of the time"
		}
		ls = append(ls, l)
	}
	if err := f.db.SetPointLatency(ctx, ls); err != nil {
		return err
	}
	progress(1, "done")
	return nil
}

func TestRemeasureRoute(t *testing.T) {
	e, _, s, _, _ := seeded(t)
	rf := &remeasureFake{fakeRunner: e.queue.runner.(*fakeRunner), gate: make(chan struct{})}
	e.queue.runner = rf
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.queue.Wait() }()
	e.queue.Start(ctx)
	srv := httptest.NewServer(e.h)
	defer srv.Close()

	// The sweep page offers the button; nothing is flagged yet.
	w := e.do(http.MethodGet, fmt.Sprintf("/sweeps/%d", s), nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `id="remeasure"`) || strings.Contains(w.Body.String(), "latency-note") {
		t.Fatalf("sweep page: status %d, button %v, note %v; want 200, a button, no note", w.Code,
			strings.Contains(w.Body.String(), `id="remeasure"`), strings.Contains(w.Body.String(), "latency-note"))
	}

	post := func() (int, map[string]any) {
		w := e.do(http.MethodPost, fmt.Sprintf("/api/sweeps/%d/remeasure", s), nil)
		var out map[string]any
		json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	code, first := post()
	if code != http.StatusAccepted || first["job_id"] == nil || first["id"] != float64(s) {
		t.Fatalf("remeasure: status %d body %v; want 202 with id and job_id", code, first)
	}
	// Asking again while it is pending returns the same job.
	code, again := post()
	if code != http.StatusAccepted || again["job_id"] != first["job_id"] {
		t.Errorf("second remeasure: status %d body %v; want 202 with job %v", code, again, first["job_id"])
	}

	// The SSE stream stays open while it runs and shows its progress, then ends.
	resp, err := http.Get(fmt.Sprintf("%s/api/sweeps/%d/events", srv.URL, s))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: status %d; want 200", resp.StatusCode)
	}
	deadline := time.AfterFunc(20*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	sc := bufio.NewScanner(resp.Body)
	var ev string
	sawRunning, ended := false, false
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			ev = v
			continue
		}
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var got sseEvent
		json.Unmarshal([]byte(d), &got)
		if ev == "progress" && got.Remeasure == "running" && got.RemeasureProgress == 0.5 && strings.Contains(got.Message, "round 5 of 9") && !sawRunning {
			sawRunning = true
			close(rf.gate)
		}
		if ev == "end" {
			ended = true
			if got.Status != "done" || got.Remeasure != "" {
				t.Errorf("end event %s; want status done and no pending remeasure", d)
			}
			break
		}
	}
	if !sawRunning || !ended {
		t.Fatalf("events: saw running remeasure %v, end %v; want both", sawRunning, ended)
	}
	j, err := e.db.Job(context.Background(), int64(first["job_id"].(float64)))
	if err != nil || j.Status != store.StatusDone {
		t.Errorf("remeasure job: %+v, %v; want done", j, err)
	}

	// The API's points carry the new figures.
	w = e.do(http.MethodGet, fmt.Sprintf("/api/sweeps/%d", s), nil)
	var sw struct {
		Points []map[string]any `json:"points"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &sw); err != nil || w.Code != http.StatusOK || len(sw.Points) != 4 {
		t.Fatalf("sweep: status %d, %d points, %v", w.Code, len(sw.Points), err)
	}
	for _, p := range sw.Points {
		p50 := p["latency_ms_p50"].(float64)
		flagged := p["ratio"].(float64) > 0
		if p["latency_rounds"] != float64(9) || p["latency_ms_p25"] != 0.9*p50 || p["latency_ms_p75"] != 1.1*p50 {
			t.Errorf("point %v: rounds %v p25 %v p75 %v; want 9, %v, %v", p["id"], p["latency_rounds"], p["latency_ms_p25"],
				p["latency_ms_p75"], 0.9*p50, 1.1*p50)
		}
		if p["latency_unreliable"] != flagged || (flagged && !strings.Contains(fmt.Sprint(p["latency_note"]), "CPU busy")) {
			t.Errorf("point %v: unreliable %v note %v; want %v", p["id"], p["latency_unreliable"], p["latency_note"], flagged)
		}
	}

	// The page and the chart say so.
	w = e.do(http.MethodGet, fmt.Sprintf("/sweeps/%d", s), nil)
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(body, `id="latency-note"`) || !strings.Contains(body, "2 points&#39; latency") ||
		!strings.Contains(body, `class="tag warn"`) || !strings.Contains(body, "UNRELIABLE: CPU busy") {
		t.Errorf("sweep page after: status %d; want the note, the tags and the reasons in titles", w.Code)
	}
	for _, format := range []string{"svg", "png"} {
		w = e.do(http.MethodGet, fmt.Sprintf("/sweeps/%d/pareto.%s", s, format), nil)
		if w.Code != http.StatusOK || w.Body.Len() == 0 {
			t.Errorf("chart %s: status %d, %d bytes; want 200", format, w.Code, w.Body.Len())
		}
	}
	w = e.do(http.MethodGet, fmt.Sprintf("/sweeps/%d/pareto.svg", s), nil)
	if !strings.Contains(w.Body.String(), "latency unreliable") || !strings.Contains(w.Body.String(), "p25–p75") {
		t.Errorf("chart svg: want the legend entry and the bars' label")
	}
}

func TestRemeasureRefused(t *testing.T) {
	e, m, s, _, _ := seeded(t)
	ctx := context.Background()
	queued := e.createSweep(fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "ratios": [0.5]}`, m))
	empty := e.createSweep(fmt.Sprintf(`{"model_id": %d, "dataset": "mnist", "ratios": [0.5]}`, m))
	if err := e.db.SetSweepStatus(ctx, empty, store.StatusDone, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		method string
		target string
		status int
	}{
		{"unknown sweep", http.MethodPost, "/api/sweeps/999/remeasure", http.StatusNotFound},
		{"bad id", http.MethodPost, "/api/sweeps/x/remeasure", http.StatusBadRequest},
		{"queued sweep", http.MethodPost, fmt.Sprintf("/api/sweeps/%d/remeasure", queued), http.StatusConflict},
		{"no points", http.MethodPost, fmt.Sprintf("/api/sweeps/%d/remeasure", empty), http.StatusConflict},
		{"get", http.MethodGet, fmt.Sprintf("/api/sweeps/%d/remeasure", s), http.StatusMethodNotAllowed},
		{"form", http.MethodPost, fmt.Sprintf("/sweeps/%d/remeasure", s), http.StatusSeeOther},
		{"form queued", http.MethodPost, fmt.Sprintf("/sweeps/%d/remeasure", queued), http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w := e.do(tt.method, tt.target, nil); w.Code != tt.status {
				t.Errorf("got status %d (%s); want %d", w.Code, strings.TrimSpace(w.Body.String()), tt.status)
			}
		})
	}
	// The form queued a job; the page shows it pending and hides the button.
	w := e.do(http.MethodGet, fmt.Sprintf("/sweeps/%d", s), nil)
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `id="remeasure"`) || !strings.Contains(w.Body.String(), `data-remeasure="queued"`) {
		t.Errorf("sweep page with a queued remeasure: status %d; want no button and data-remeasure=queued", w.Code)
	}
	var api apiSweep
	w = e.do(http.MethodGet, fmt.Sprintf("/api/sweeps/%d", s), nil)
	if err := json.Unmarshal(w.Body.Bytes(), &api); err != nil || api.Remeasure != "queued" {
		t.Errorf("api sweep with a queued remeasure: remeasure %q, %v; want queued", api.Remeasure, err)
	}
	// A queue whose runner cannot re-measure fails the job.
	qctx, cancel := context.WithCancel(ctx)
	e.queue.Start(qctx)
	defer func() { cancel(); e.queue.Wait() }()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if _, err := e.db.ActiveJob(ctx, store.JobKindRemeasure, s); err != nil {
			break
		}
	}
	js, _ := e.db.Jobs(ctx, store.StatusFailed)
	if len(js) != 1 || js[0].Kind != store.JobKindRemeasure || !strings.Contains(js[0].Error, "cannot re-measure") {
		t.Errorf("failed jobs %+v; want the remeasure job, failed", js)
	}
}

// The chart draws p25–p75 bars for points timed in rounds, only on the
// latency axis.
func TestChartLatencyBars(t *testing.T) {
	pts := func(rounds int) []store.Point {
		var ps []store.Point
		for i, r := range []float64{0, 0.3, 0.6} {
			ps = append(ps, store.Point{ID: int64(i + 1), Form: "rmnet", Ratio: r, Top1: 0.99 - r/10, FLOPs: 1e6,
				Params: 1000, LatencyMSP50: 1 - r, LatencyMSP25: 0.8 - r, LatencyMSP75: 1.3 - r, LatencyRounds: rounds})
		}
		return ps
	}
	svg := func(ps []store.Point, x string) string {
		ss := seriesOf(store.Sweep{Method: "slim"}, ps, "", 0)
		p, _, err := paretoPlot(ss, axisOf(x), false)
		if err != nil {
			t.Fatal(err)
		}
		b, err := renderChart(p, "svg")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	with, without := svg(pts(9), "latency"), svg(pts(0), "latency")
	// Each bar is a horizontal line and two caps: three more path elements per point.
	if got, base := strings.Count(with, "<path"), strings.Count(without, "<path"); got < base+9 {
		t.Errorf("with bars %d paths, without %d; want at least 9 more (3 bars with 2 caps)", got, base)
	}
	if a, b := strings.Count(svg(pts(9), "flops"), "<path"), strings.Count(svg(pts(0), "flops"), "<path"); a != b {
		t.Errorf("flops axis: %d paths with rounds, %d without; want no bars off the latency axis", a, b)
	}
}
