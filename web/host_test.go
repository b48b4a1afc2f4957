package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestHostAllowList sends one request of every route class with a forged
// Host (a DNS-rebinding page: Origin and Host agree on the attacker's name)
// and checks it is refused before any handler runs, then the same request
// with an allowed Host. (The port check is TestHostGuard's and
// TestServeStartup's: this server, like httptest's, accepts any port.)
func TestHostAllowList(t *testing.T) {
	e, m, s, ref, _ := seeded(t)
	tests := []struct {
		class, method, target string
		body                  string
		ok                    int // status with an allowed host
	}{
		{"HTML", "GET", "/models/" + fmt.Sprint(m), "", 200},
		{"JSON GET", "GET", "/api/models", "", 200},
		{"JSON POST", "POST", fmt.Sprintf("/api/sweeps/%d/cancel", s), "", 409},
		{"JSON DELETE", "DELETE", "/api/models/999", "", 404},
		{"SSE", "GET", fmt.Sprintf("/api/sweeps/%d/events", s), "", 200},
		{"download", "GET", fmt.Sprintf("/api/points/%d/model?format=safetensors", ref), "", 200},
		{"CSV", "GET", fmt.Sprintf("/api/sweeps/%d/points.csv", s), "", 200},
		{"chart", "GET", fmt.Sprintf("/sweeps/%d/pareto.svg", s), "", 200},
		{"static", "GET", "/static/app.css", "", 200},
		{"unknown route", "GET", "/nope", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.class, func(t *testing.T) {
			for _, host := range []string{"evil.example:8080", "evil.example", "localhost.evil.example:8080", "127.0.0.1.evil.example:8080", ""} {
				w := e.do(tt.method, tt.target, strings.NewReader(tt.body), "Host", host, "Origin", "http://"+host, "Sec-Fetch-Site", "same-origin")
				if w.Code != http.StatusForbidden {
					t.Errorf("Host %q: status %d; want 403", host, w.Code)
				}
				if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !strings.Contains(w.Body.String(), `"error"`) {
					t.Errorf("Host %q: %s %s; want a JSON error", host, ct, w.Body)
				}
			}
			for _, host := range []string{"127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST:8080"} {
				w := e.do(tt.method, tt.target, strings.NewReader(tt.body), "Host", host, "Origin", "http://"+host)
				if w.Code != tt.ok {
					t.Errorf("Host %q: status %d; want %d: %s", host, w.Code, tt.ok, w.Body)
				}
			}
		})
	}
	if _, err := e.db.Model(context.Background(), m); err != nil {
		t.Errorf("model gone: %v", err)
	}
}

func TestHostGuard(t *testing.T) {
	tests := []struct {
		addr    string
		allowed []string
		host    string
		want    bool
	}{
		{"127.0.0.1:8080", nil, "127.0.0.1:8080", true},
		{"127.0.0.1:8080", nil, "localhost:8080", true},
		{"127.0.0.1:8080", nil, "[::1]:8080", true},
		{"127.0.0.1:8080", nil, "localhost:8081", false},
		{"127.0.0.1:8080", nil, "localhost", false},
		{"127.0.0.1:8080", nil, "evil.example:8080", false},
		{"127.0.0.1:8080", nil, "10.0.0.5:8080", false},
		{"127.0.0.1:80", nil, "localhost", true},
		{"10.0.0.5:8080", nil, "10.0.0.5:8080", true},
		{"10.0.0.5:8080", nil, "10.0.0.6:8080", false},
		{"0.0.0.0:8080", nil, "10.0.0.6:8080", true},
		{"0.0.0.0:8080", nil, "[fe80::1]:8080", true},
		{"0.0.0.0:8080", nil, "box.lan:8080", false},
		{"[::]:8080", nil, "192.168.1.2:8080", true},
		{"127.0.0.1:8080", []string{"rm.example.com"}, "rm.example.com", true},
		{"127.0.0.1:8080", []string{"rm.example.com"}, "RM.example.com:443", true},
		{"127.0.0.1:8080", []string{"rm.example.com:8443"}, "rm.example.com:8443", true},
		{"127.0.0.1:8080", []string{"rm.example.com:8443"}, "rm.example.com:8080", false},
		{"127.0.0.1:8080", []string{"rm.example.com"}, "x.rm.example.com:8080", false},
		{"", nil, "127.0.0.1:1234", true},
		{"", nil, "evil.example:1234", false},
		{"127.0.0.1:8080", nil, "", false},
		{"127.0.0.1:8080", nil, ":8080", false},
	}
	for _, tt := range tests {
		if got := newHostGuard(tt.addr, tt.allowed).allows(tt.host); got != tt.want {
			t.Errorf("addr %q allowed %q: Host %q: got %v; want %v", tt.addr, tt.allowed, tt.host, got, tt.want)
		}
	}
}
