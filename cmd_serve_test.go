package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeStartup starts a real server: partial uploads left by a crash are
// removed before it serves, a forged Host is refused and --allowed-host
// admits a name.
func TestServeStartup(t *testing.T) {
	dir := t.TempDir()
	art := filepath.Join(dir, "artifacts")
	os.MkdirAll(filepath.Join(art, "models"), 0o750)
	stale := []string{filepath.Join(art, ".upload-123.pth"), filepath.Join(art, ".upload-456")}
	for _, p := range stale {
		os.WriteFile(p, []byte("partial"), 0o600)
	}
	keep := filepath.Join(art, "models", "kept.safetensors")
	os.WriteFile(keep, []byte("model"), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--no-demo", "--db", filepath.Join(dir, "rm.db"),
			"--allowed-host", "rm.example.com"}, func(string) string { return "" }, strings.NewReader(""), &bytes.Buffer{}, &stderr)
	}()
	re := regexp.MustCompile(`dashboard on http://([0-9.:]+)/`)
	var addr string
	for end := time.Now().Add(20 * time.Second); addr == "" && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("server did not start: %s", stderr.String())
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: still there after start-up (err %v); want removed", p, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("stored model removed: %v", err)
	}
	tests := []struct {
		host string
		want int
	}{
		{addr, 200},
		{"evil.example:" + addr[strings.LastIndex(addr, ":")+1:], 403},
		{"rm.example.com", 200},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/models", nil)
		req.Host = tt.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Host %q: status %d; want %d", tt.host, resp.StatusCode, tt.want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}
