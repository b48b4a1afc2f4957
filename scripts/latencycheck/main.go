// Command latencycheck checks issue 14's latency targets against a real
// rmprune server, each run on a fresh database whose demo sweep (resnet20 on
// MNIST, ratios 0.3/0.5/0.7, both forms) the server computes at start-up:
//
//   - idle: -runs fresh servers; in each, the demo sweep's batch-1 latency
//     p50 must fall strictly with the ratio within each form (0 → 0.3 → 0.5
//     → 0.7). Run it on an idle machine.
//   - loaded: one fresh server; its demo sweep's figures are the idle ones;
//     then -clients concurrent clients fetch dashboard pages, charts and the
//     API in a loop while POST /api/sweeps/{id}/remeasure re-times the
//     points; every re-measured point must be flagged unreliable or within
//     -tolerance of its idle figure.
//
// Every run prints the host's uptime/load before and after. Usage (see
// scripts/latency_check.sh, which builds the binary):
//
//	go run ./scripts/latencycheck -bin /tmp/rmprune [-mode idle|loaded|both] [-runs 5] [-clients 20] [-tolerance 0.15]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type point struct {
	ID         int64    `json:"id"`
	Form       string   `json:"form"`
	Ratio      float64  `json:"ratio"`
	P50        float64  `json:"latency_ms_p50"`
	P25        *float64 `json:"latency_ms_p25"`
	P75        *float64 `json:"latency_ms_p75"`
	Rounds     int      `json:"latency_rounds"`
	Load       float64  `json:"latency_load"`
	Unreliable bool     `json:"latency_unreliable"`
	Note       string   `json:"latency_note"`
	Params     int64    `json:"params"`
	MACs       int64    `json:"macs_computed"`
}

// sameNet tells two points whose pruning left the same network (the
// residual-constrained form of a mask-trained model removes exactly its
// zero-mask channels at several ratios): their latencies may tie.
func sameNet(a, b point) bool { return a.Params == b.Params && a.MACs == b.MACs }

// falls tells whether latency falls from a to the next ratio's b: strictly
// for different networks; for the same network, their p25–p75 ranges must
// overlap (the figures must not claim a difference that does not exist).
func falls(a, b point) bool {
	if !sameNet(a, b) {
		return b.P50 < a.P50
	}
	if a.P25 == nil || a.P75 == nil || b.P25 == nil || b.P75 == nil {
		return true
	}
	return *b.P25 <= *a.P75 && *a.P25 <= *b.P75
}

type sweepResp struct {
	ID     int64   `json:"id"`
	Status string  `json:"status"`
	Error  string  `json:"error"`
	Points []point `json:"points"`
}

func main() {
	bin := flag.String("bin", "", "the rmprune binary (required)")
	mode := flag.String("mode", "both", "idle, loaded or both")
	runs := flag.Int("runs", 5, "idle: fresh demo sweeps")
	clients := flag.Int("clients", 20, "loaded: concurrent dashboard clients")
	tol := flag.Float64("tolerance", 0.15, "loaded: allowed relative change of an unflagged point")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "latencycheck: -bin is required")
		os.Exit(2)
	}
	ok := true
	if *mode == "idle" || *mode == "both" {
		ok = idle(*bin, *runs) && ok
	}
	if *mode == "loaded" || *mode == "both" {
		ok = loaded(*bin, *clients, *tol) && ok
	}
	if !ok {
		os.Exit(1)
	}
}

func uptime() string {
	b, err := exec.Command("uptime").Output()
	if err != nil {
		return "uptime: " + err.Error()
	}
	return strings.TrimSpace(string(b))
}

// server is a running `rmprune serve` on a fresh database.
type server struct {
	cmd  *exec.Cmd
	base string
	dir  string
	log  bytes.Buffer
}

func start(bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "latencycheck")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &server{base: "http://" + addr, dir: dir}
	s.cmd = exec.Command(bin, "serve", "--addr", addr, "--db", filepath.Join(dir, "rmprune.db"))
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(s.base + "/api/sweeps"); err == nil {
			resp.Body.Close()
			return s, nil
		}
	}
	s.stop()
	return nil, fmt.Errorf("server did not answer within 60 s:\n%s", s.log.String())
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// demoSweep waits for the demo sweep to finish and returns it.
func (s *server) demoSweep(timeout time.Duration) (sweepResp, error) {
	var list struct {
		Sweeps []struct{ ID int64 } `json:"sweeps"`
	}
	end := time.Now().Add(timeout)
	for ; time.Now().Before(end); time.Sleep(time.Second) {
		if err := getJSON(s.base+"/api/sweeps", &list); err != nil || len(list.Sweeps) == 0 {
			continue
		}
		var sw sweepResp
		if err := getJSON(fmt.Sprintf("%s/api/sweeps/%d", s.base, list.Sweeps[len(list.Sweeps)-1].ID), &sw); err != nil {
			return sw, err
		}
		switch sw.Status {
		case "done":
			return sw, nil
		case "failed", "cancelled", "interrupted":
			return sw, fmt.Errorf("demo sweep %d %s: %s", sw.ID, sw.Status, sw.Error)
		}
	}
	return sweepResp{}, errors.New("demo sweep not done in time")
}

// byForm lists a form's points by ratio.
func byForm(ps []point, form string) []point {
	var out []point
	for _, p := range ps {
		if p.Form == form {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b point) int {
		if a.Ratio < b.Ratio {
			return -1
		}
		if a.Ratio > b.Ratio {
			return 1
		}
		return 0
	})
	return out
}

func describe(ps []point) string {
	var b strings.Builder
	for _, p := range ps {
		flag := ""
		if p.Unreliable {
			flag = " [UNRELIABLE: " + p.Note + "]"
		}
		spread := ""
		if p.P25 != nil && p.P75 != nil {
			spread = fmt.Sprintf(" (p25–p75 %.3f–%.3f, %d rounds, load %.2f)", *p.P25, *p.P75, p.Rounds, p.Load)
		}
		fmt.Fprintf(&b, "    %s@%g: %.3f ms%s, %d params, %.1fM MACs%s\n", p.Form, p.Ratio, p.P50, spread, p.Params, float64(p.MACs)/1e6, flag)
	}
	return b.String()
}

func idle(bin string, runs int) bool {
	fmt.Printf("== idle: %d fresh demo sweeps; p50 must fall with the ratio in each form (ties allowed for identical networks)\n", runs)
	good := 0
	for i := range runs {
		fmt.Printf("run %d start  %s  (%s UTC)\n", i+1, uptime(), time.Now().UTC().Format(time.TimeOnly))
		s, err := start(bin)
		if err != nil {
			fmt.Println("  error:", err)
			continue
		}
		sw, err := s.demoSweep(10 * time.Minute)
		s.stop()
		fmt.Printf("run %d end    %s\n", i+1, uptime())
		if err != nil {
			fmt.Println("  error:", err)
			continue
		}
		mono := true
		for _, f := range []string{"rmnet", "resnet"} {
			ps := byForm(sw.Points, f)
			for j := 1; j < len(ps); j++ {
				if !falls(ps[j-1], ps[j]) {
					mono = false
				}
			}
			fmt.Print(describe(ps))
		}
		if mono {
			good++
		}
		fmt.Printf("  monotonic: %v\n", mono)
	}
	fmt.Printf("idle: monotonic in %d of %d runs\n", good, runs)
	return good == runs
}

func loaded(bin string, clients int, tol float64) bool {
	fmt.Printf("== loaded: %d dashboard clients during a re-measure; each point flagged or within %.0f%% of idle\n", clients, 100*tol)
	fmt.Printf("start  %s  (%s UTC)\n", uptime(), time.Now().UTC().Format(time.TimeOnly))
	s, err := start(bin)
	if err != nil {
		fmt.Println("  error:", err)
		return false
	}
	defer s.stop()
	base, err := s.demoSweep(10 * time.Minute)
	if err != nil {
		fmt.Println("  error:", err)
		return false
	}
	fmt.Printf("idle figures (the demo sweep's own pass)  %s\n", uptime())
	fmt.Print(describe(base.Points))

	ctx, cancel := context.WithCancel(context.Background())
	var reqs, errs atomic.Int64
	var wg sync.WaitGroup
	urls := []string{"/", fmt.Sprintf("/sweeps/%d", base.ID), fmt.Sprintf("/sweeps/%d/pareto.svg", base.ID),
		fmt.Sprintf("/sweeps/%d/pareto.png", base.ID), fmt.Sprintf("/api/sweeps/%d", base.ID), "/api/models",
		fmt.Sprintf("/pareto?sweeps=%d", base.ID), fmt.Sprintf("/sweeps/%d/live", base.ID)}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 30 * time.Second}
			for i := c; ctx.Err() == nil; i++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+urls[i%len(urls)], nil)
				resp, err := cl.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				reqs.Add(1)
				if resp.StatusCode != 200 {
					errs.Add(1)
				}
			}
		}()
	}
	time.Sleep(2 * time.Second) // let the load build up
	t0 := time.Now()
	resp, err := http.Post(fmt.Sprintf("%s/api/sweeps/%d/remeasure", s.base, base.ID), "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		cancel()
		wg.Wait()
		fmt.Println("  remeasure:", err, resp)
		return false
	}
	resp.Body.Close()
	var after sweepResp
	for end := time.Now().Add(30 * time.Minute); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		// The figures change when the job is done: wait until no re-measure is pending.
		var sw struct {
			sweepResp
			Remeasure string `json:"remeasure"`
		}
		if err := getJSON(fmt.Sprintf("%s/api/sweeps/%d", s.base, base.ID), &sw); err == nil && sw.Remeasure == "" {
			after = sw.sweepResp
			break
		}
	}
	up := uptime()
	cancel()
	wg.Wait()
	if len(after.Points) == 0 {
		fmt.Printf("  the re-measure did not finish within 30 minutes  %s\n", up)
		return false
	}
	fmt.Printf("under load (%d requests, %d errors, %.1f s)  %s\n", reqs.Load(), errs.Load(), time.Since(t0).Seconds(), up)
	fmt.Print(describe(after.Points))
	idleBy := map[int64]point{}
	for _, p := range base.Points {
		idleBy[p.ID] = p
	}
	ok, flagged := true, 0
	for _, p := range after.Points {
		i := idleBy[p.ID]
		rel := p.P50/i.P50 - 1
		switch {
		case p.Unreliable:
			flagged++
		case rel > tol || rel < -tol:
			ok = false
			fmt.Printf("  FAIL %s@%g: %.3f ms vs idle %.3f ms (%+.0f%%), not flagged\n", p.Form, p.Ratio, p.P50, i.P50, 100*rel)
		}
	}
	fmt.Printf("loaded: %d of %d points flagged; every unflagged point within %.0f%%: %v\n", flagged, len(after.Points), 100*tol, ok)
	return ok
}
