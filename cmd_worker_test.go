package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterFlags: bad scale-out flags stop with a one-line error before
// anything is opened or listened on.
func TestClusterFlags(t *testing.T) {
	db := filepath.Join(t.TempDir(), "rm.db")
	tests := []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"worker without server", []string{"worker"}, "--server", true},
		{"worker bad url", []string{"worker", "--server", "http://x:1"}, "nats://", false},
		{"worker bad target", []string{"worker", "--server", "nats://127.0.0.1:1", "--target", "Bad Target"}, "target", false},
		{"public without flag", []string{"serve", "--db", db, "--cluster", "--nats", "0.0.0.0:0"}, "not loopback", false},
		{"public without token", []string{"serve", "--db", db, "--cluster", "--nats", "0.0.0.0:0", "--nats-public"}, "token", false},
		{"missing token file", []string{"serve", "--db", db, "--cluster", "--nats-token-file", filepath.Join(t.TempDir(), "none")}, "none", false},
		{"ack wait", []string{"serve", "--db", db, "--cluster", "--ack-wait", "1ms"}, "--ack-wait", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := runCLI(t, tt.args...)
			if err == nil {
				t.Fatal("got nil error")
			}
			if tt.usage {
				if !errors.Is(err, errUsage) || !strings.Contains(stderr, tt.want) {
					t.Errorf("got %v, stderr %q; want a usage error naming %s", err, stderr, tt.want)
				}
				return
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tt.want) {
				t.Errorf("error got %q; want one line mentioning %q", msg, tt.want)
			}
		})
	}
}
