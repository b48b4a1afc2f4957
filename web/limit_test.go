package web

import (
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmprune/rmprune/store"
)

// TestUploadsInFlight holds one upload open (its body still arriving) on a
// server that parses one at a time: another upload is refused at once with
// 503 and Retry-After, on the API and the HTML form, and is accepted again
// once the first is done.
func TestUploadsInFlight(t *testing.T) {
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "rmprune.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := NewServer(Deps{DB: db, Datasets: []string{"mnist"}, MaxUploads: 1})

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	first := make(chan int, 1)
	go func() {
		req := httptest.NewRequest(http.MethodPost, "/api/models", pr)
		req.Host = "127.0.0.1:8080"
		req.Header.Set("Content-Type", mw.FormDataContentType())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		first <- w.Code
	}()
	fw, _ := mw.CreateFormFile("file", "slow.safetensors")
	fw.Write([]byte("partial")) // the upload is now being streamed to disk

	other := func(target string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader("not multipart"))
		req.Host = "127.0.0.1:8080"
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	var w *httptest.ResponseRecorder
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if w = other("/api/models"); w.Code == http.StatusServiceUnavailable {
			break
		}
	}
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"error"`) {
		t.Fatalf("second API upload: status %d, Retry-After %q, body %s; want 503 with Retry-After and a JSON error", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if w := other("/models"); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("second form upload: status %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	mw.Close()
	pw.Close()
	if code := <-first; code != http.StatusUnprocessableEntity {
		t.Errorf("first upload: status %d; want 422 (not a model)", code)
	}
	if w := other("/api/models"); w.Code != http.StatusBadRequest {
		t.Errorf("upload after the first finished: status %d; want 400 (served again)", w.Code)
	}
}
