package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rmprune/rmprune/nn/onnx"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// findChromium returns the path of a Chromium or Chrome binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowserEndToEnd drives the dashboard in headless Chromium: upload a
// model, start a 3-ratio sweep evaluated on 1,000 MNIST test images, watch
// it finish live, see both series on the Pareto chart, open compare, and
// download an ONNX file that parses.
func TestBrowserEndToEnd(t *testing.T) {
	chrome := findChromium()
	if chrome == "" {
		t.Skip("chromium not found (install the Debian package chromium): skipping the browser test")
	}
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "db", "rmprune.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runner := &sweep.Runner{DB: db, NoFinetune: true, BenchTime: 100 * time.Millisecond,
		Latency: sweep.LatencyOptions{Rounds: 40}} // a pass long enough to watch (below)
	qctx, stopQueue := context.WithCancel(ctx)
	queue := NewQueue(db, runner, 1, nil)
	queue.Start(qctx)
	defer func() { stopQueue(); queue.Wait() }()
	srv := httptest.NewServer(NewServer(Deps{DB: db, Runner: runner, Queue: queue, Datasets: []string{"mnist", "fashion-mnist"}}))
	defer srv.Close()

	modelPath := filepath.Join(dir, "resnet20-mnist.safetensors")
	if err := os.WriteFile(modelPath, newEnv(t, 0).model, 0o600); err != nil {
		t.Fatal(err)
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(dir, "chrome")),
		chromedp.WindowSize(1360, 1000),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	step := func(name string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, timeout)
		defer cancel()
		if err := chromedp.Do(c, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}

	// A corrupt file is refused with a message, and nothing is stored.
	bad := filepath.Join(dir, "broken.safetensors")
	if err := os.WriteFile(bad, []byte("\x20\x00\x00\x00\x00\x00\x00\x00{\"a\": truncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	step("corrupt upload", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS("#upload")),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{bad}),
		chromedp.WaitVisible(chromedp.CSS("#upload-error")),
	)
	if msg := eval(`document.getElementById("upload-error").textContent`); !strings.Contains(msg, "not a usable model file") {
		t.Errorf("upload error %q; want a clear refusal", msg)
	}
	if ms, _ := db.Models(ctx); len(ms) != 0 {
		t.Errorf("%d models stored after a corrupt upload; want 0", len(ms))
	}

	// Upload through the file input: the page's script posts it and opens the model page.
	step("upload", 60*time.Second,
		chromedp.WaitVisible(chromedp.CSS("#upload")),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{modelPath}),
		chromedp.WaitVisible(chromedp.CSS("#rm-badge")),
	)
	if badge := eval(`document.getElementById("rm-badge").textContent`); !strings.Contains(badge, "exact") {
		t.Errorf("RM badge %q; want exact", badge)
	}

	// New sweep: three ratios, 1,000 test images.
	step("new sweep form", 30*time.Second,
		chromedp.Click(chromedp.CSS(`a.btn[href^="/sweeps/new"]`)),
		chromedp.WaitVisible(chromedp.CSS("#sweep-form")),
		chromedp.WaitVisible(chromedp.CSS("#estimate .est")), // the live estimate arrived
		chromedp.SetValue(chromedp.CSS("#ratios"), "0.3,0.5,0.7"),
		chromedp.SetValue(chromedp.CSS(`input[name="limit"]`), "1000"),
		chromedp.SetValue(chromedp.CSS(`input[name="batch"]`), "16"),
		chromedp.Click(chromedp.CSS("#start")),
		chromedp.WaitVisible(chromedp.CSS("#status-card")),
	)

	// Watch it run: the progress text changes without reloads (SSE). The
	// marker survives until the page reloads itself at the end.
	eval(`String(window.rmpruneLive = true)`)
	seen := map[string]bool{}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		c, cancel := context.WithTimeout(bctx, 5*time.Second)
		v, err := chromedp.Run(c, chromedp.Evaluate[string](
			`(document.getElementById("status-card")||{dataset:{}}).dataset.status + "|" + (document.getElementById("pct")||{}).textContent`))
		cancel()
		if err == nil {
			st, pct, _ := strings.Cut(v, "|")
			seen[pct] = true
			if st == "done" && pct == "100.0%" {
				break
			}
			if st == "failed" {
				t.Fatalf("sweep failed: %s", eval(`document.body.innerText`))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sweep did not finish in time; last seen %v", seen)
		}
		time.Sleep(300 * time.Millisecond)
	}
	intermediate := 0
	for pct := range seen {
		if pct != "0.0%" && pct != "100.0%" && pct != "" {
			intermediate++
		}
	}
	if intermediate == 0 {
		t.Errorf("no live progress seen between 0 and 100%%: %v", seen)
	}

	// Both series on the chart, every point clickable: the page refreshes
	// itself when the sweep ends.
	waitFor := func(expr, want string, timeout time.Duration) string {
		t.Helper()
		var v string
		for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			c, cancel := context.WithTimeout(bctx, 5*time.Second)
			v, _ = chromedp.Run(c, chromedp.Evaluate[string](expr))
			cancel()
			if v == want {
				break
			}
		}
		return v
	}
	if v := waitFor(`String(window.rmpruneLive === undefined && document.readyState === "complete")`, "true", 15*time.Second); v != "true" {
		t.Fatalf("the sweep page did not reload itself at the end")
	}
	waitFor(`String(document.querySelectorAll(".chart .pt").length)`, "8", 15*time.Second)
	step("chart", 30*time.Second, chromedp.WaitVisible(chromedp.CSS(".chart img")))
	if n := eval(`String(document.querySelectorAll(".chart .pt").length)`); n != "8" {
		resp, err := http.Get(srv.URL + "/api/sweeps/1")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("sweep: %s", b)
		}
		t.Errorf("chart points %s; want 8 (2 references + 2 forms × 3 ratios)", n)
	}
	titles := eval(`[...document.querySelectorAll(".chart .pt")].map(a => a.title).join("\n")`)
	for _, s := range []string{"rmnet · slim", "resnet · slim"} {
		if !strings.Contains(titles, s) {
			t.Errorf("chart lacks series %q: %s", s, titles)
		}
	}
	if ok := eval(`String(document.querySelector(".chart img").complete && document.querySelector(".chart img").naturalWidth > 0)`); ok != "true" {
		t.Errorf("chart image not loaded")
	}
	if rows := eval(`String(document.querySelectorAll("#points tbody tr").length)`); rows != "8" {
		t.Errorf("points table rows %s; want 8", rows)
	}

	// Re-measure latency: the button queues it, the page follows it over SSE
	// and reloads itself when it is done.
	step("remeasure", 30*time.Second,
		chromedp.Click(chromedp.CSS("#remeasure")),
		chromedp.WaitVisible(chromedp.CSS(`#status-card:not([data-remeasure=""])`)),
	)
	eval(`String(window.rmpruneRemeasure = true)`)
	if v := waitFor(`String(window.rmpruneRemeasure === undefined && document.readyState === "complete" && !!document.getElementById("remeasure"))`,
		"true", 2*time.Minute); v != "true" {
		t.Fatalf("the sweep page did not reload itself after the re-measure")
	}
	if js, _ := db.Jobs(ctx, store.StatusDone); len(js) == 0 || js[len(js)-1].Kind != store.JobKindRemeasure {
		t.Errorf("done jobs %+v; want the remeasure job last", js)
	}

	// Compare the unpruned RMNet with its most pruned point.
	step("compare", 30*time.Second,
		chromedp.Click(chromedp.CSS(`#points tbody tr:nth-child(5) input[type="checkbox"]`)),
		chromedp.Click(chromedp.CSS(`#points tbody tr:nth-child(8) input[type="checkbox"]`)),
		chromedp.Click(chromedp.CSS("#compare-btn")),
		chromedp.WaitVisible(chromedp.CSS("#compare")),
	)
	if cols := eval(`String(document.querySelectorAll("#compare thead th").length)`); cols != "3" {
		t.Errorf("compare columns %s; want 3 (label + 2 points)", cols)
	}
	if body := eval(`document.body.innerText`); !strings.Contains(body, "rmnet @ 0.7") || !strings.Contains(body, "Channels per layer") {
		t.Errorf("compare page lacks the pruned point or the channel bars")
	}

	// Download the ONNX the page links to and parse it.
	href := eval(`document.querySelectorAll("a.dl-onnx")[1].getAttribute("href")`)
	resp, err := http.Get(srv.URL + href)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("download %s: status %d, %v", href, resp.StatusCode, err)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, ".onnx") {
		t.Errorf("Content-Disposition %q; want an .onnx file name", cd)
	}
	m, err := onnx.Decode(b)
	if err != nil {
		t.Fatalf("downloaded ONNX does not parse: %v", err)
	}
	// The pruned RMNet, copy-aware: its reserved channels are Gathers and
	// Adds, not dense convs (as the page says).
	md := map[string]string{}
	for _, e := range m.Metadata {
		md[e.Key] = e.Value
	}
	if md["rmprune.form"] != "rmnet" || md["rmprune.export"] != onnx.ExportCopyAware {
		t.Errorf("downloaded ONNX metadata form %q export %q; want rmnet, %s", md["rmprune.form"], md["rmprune.export"], onnx.ExportCopyAware)
	}
	ops := map[string]int{}
	for _, n := range m.Graph.Nodes {
		ops[n.OpType]++
	}
	if ops["Conv"] == 0 || ops["Gather"] == 0 {
		t.Errorf("downloaded ONNX ops %v; want Conv and Gather", ops)
	}
	if title := eval(`document.querySelectorAll("a.dl-onnx")[1].title`); !strings.Contains(title, "copy-aware") {
		t.Errorf("download link title %q; want it to name the copy-aware form", title)
	}
	t.Logf("downloaded %s: %d bytes, ops %v", href, len(b), ops)

	// Mask-sparsity training from the model page (a short one): the job
	// page follows it without reloads and links the stored model.
	step("mask training", 60*time.Second,
		chromedp.Navigate(srv.URL+"/models/1"),
		chromedp.WaitVisible(chromedp.CSS("#masktrain-form")),
		chromedp.SetValue(chromedp.CSS(`#masktrain-form input[name="limit"]`), "256"),
		chromedp.SetValue(chromedp.CSS(`#masktrain-form input[name="eval_limit"]`), "200"),
		chromedp.SetValue(chromedp.CSS(`#masktrain-form input[name="batch"]`), "64"),
		chromedp.Click(chromedp.CSS("#masktrain-start")),
		chromedp.WaitVisible(chromedp.CSS("#mt-live")),
	)
	eval(`String(window.rmpruneJob = true)`)
	if st := waitFor(`document.getElementById("mt-live").dataset.status`, "done", 3*time.Minute); st != "done" {
		t.Fatalf("mask training: status %q; want done: %s", st, eval(`document.body.innerText`))
	}
	if v := eval(`String(window.rmpruneJob === true)`); v != "true" {
		t.Errorf("the job page reloaded; want it updated in place")
	}
	step("mask-trained model", 30*time.Second,
		chromedp.Click(chromedp.CSS("#mt-result-link")),
		chromedp.WaitVisible(chromedp.CSS("#masks")),
	)
	if h := eval(`document.querySelector("h1").textContent`); !strings.Contains(h, "(mask-trained)") {
		t.Errorf("result model page title %q; want it named after its source", h)
	}
}
