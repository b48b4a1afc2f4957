package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/store"
)

// TestRefusedPoint: a point the pruning guards refused shows its reason on
// the sweep page, in the points API and in points.csv, and stays off the chart.
func TestRefusedPoint(t *testing.T) {
	e, _, sweepID, _, _ := seeded(t)
	reason := "pruning: ratio 0.6 would keep 3 of 976 prunable channels (0.3%), under 5% of the network: refusing: pruning would destroy the network"
	p, _, err := e.db.AddPoint(context.Background(), store.Point{SweepID: sweepID, Form: "rmnet", Ratio: 0.6,
		Status: store.PointRefused, Error: reason})
	if err != nil {
		t.Fatal(err)
	}
	id := itoa(sweepID)

	w := e.do(http.MethodGet, "/api/sweeps/"+id, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/sweeps/%s: status %d", id, w.Code)
	}
	var s apiSweep
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, q := range s.Points {
		switch {
		case q.ID == p.ID:
			refused++
			if q.Status != store.PointRefused || q.Error != reason {
				t.Errorf("API point %d: status %q error %q; want refused with its reason", q.ID, q.Status, q.Error)
			}
		case q.Status != store.PointDone || q.Error != "":
			t.Errorf("API point %d: status %q error %q; want done", q.ID, q.Status, q.Error)
		}
	}
	if refused != 1 {
		t.Errorf("API lists the refused point %d times; want 1", refused)
	}

	w = e.do(http.MethodGet, "/api/sweeps/"+id+"/points.csv", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("points.csv: status %d", w.Code)
	}
	recs, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := recs[0]
	if head[len(head)-2] != "status" || head[len(head)-1] != "error" {
		t.Fatalf("CSV header ends %v; want status, error", head[len(head)-2:])
	}
	found := false
	for _, r := range recs[1:] {
		if r[0] == itoa(p.ID) {
			found = r[len(r)-2] == "refused" && r[len(r)-1] == reason
		} else if r[len(r)-2] != "done" {
			t.Errorf("CSV row %v: status %q; want done", r[0], r[len(r)-2])
		}
	}
	if !found {
		t.Errorf("CSV has no refused row with its reason:\n%s", w.Body)
	}

	w = e.do(http.MethodGet, "/sweeps/"+id, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("sweep page: status %d", w.Code)
	}
	body := w.Body.String()
	if !strings.Contains(body, "pruning would destroy the network") || !strings.Contains(body, `class="refused"`) {
		t.Errorf("sweep page does not show the refused point's reason")
	}
	if strings.Contains(body, `/api/points/`+itoa(p.ID)+`/model`) {
		t.Errorf("sweep page offers downloads of the refused point, which has no files")
	}
	// The chart's clickable markers: every measured point, not the refused one.
	if n := strings.Count(body, `class="pt`); n != 4 {
		t.Errorf("chart markers %d; want 4 (the measured points only)", n)
	}
	w = e.do(http.MethodGet, "/points/"+itoa(p.ID), nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "refused this ratio") {
		t.Errorf("point page: status %d, refusal shown %v; want 200 with the reason", w.Code, strings.Contains(w.Body.String(), "refused this ratio"))
	}
}
