package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestConcurrentClients: 20 clients read pages and the API (a bounded number
// of requests each, loopback only) while a sweep runs; every request
// succeeds. The p95 page time is logged.
func TestConcurrentClients(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	e := newEnv(t, 0)
	e.queue.runner.(*fakeRunner).delay = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.queue.Wait() }()
	e.queue.Start(ctx)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	m := e.mustUpload()
	s := e.createSweep(fmt.Sprintf(`{"model_id": %d, "dataset": "mnist"}`, m))
	waitStatus(t, e.db, s, "running")
	targets := []string{"/", fmt.Sprintf("/models/%d", m), fmt.Sprintf("/sweeps/%d", s), fmt.Sprintf("/api/sweeps/%d", s),
		"/api/models", fmt.Sprintf("/sweeps/%d/pareto.svg", s), fmt.Sprintf("/pareto?sweeps=%d", s), fmt.Sprintf("/sweeps/%d/live", s)}
	const clients, perClient = 20, 12
	var mu sync.Mutex
	var times []time.Duration
	var failures []string
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				target := targets[(c+i)%len(targets)]
				start := time.Now()
				resp, err := client.Get(srv.URL + target)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				d := time.Since(start)
				mu.Lock()
				times = append(times, d)
				if err != nil || resp.StatusCode != http.StatusOK {
					failures = append(failures, fmt.Sprintf("GET %s: %v %v", target, err, resp))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed, e.g. %s", len(failures), clients*perClient, failures[0])
	}
	slices.Sort(times)
	p95 := times[len(times)*95/100]
	t.Logf("%d clients × %d requests while a sweep ran: p50 %v, p95 %v, max %v", clients, perClient,
		times[len(times)/2], p95, times[len(times)-1])
	if st, _ := e.db.Sweep(context.Background(), s); st.Status != "running" && st.Status != "done" {
		t.Errorf("sweep status %s during the load; want running or done", st.Status)
	}
}
