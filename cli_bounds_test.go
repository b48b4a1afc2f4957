package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmprune/rmprune/internal/fixture"
)

// TestFlagBounds runs every command that takes --batch, --threads, --limit
// or --epochs with out-of-range values: each must fail at once with one line
// naming the flag (and {"error": ...} with --json), before loading anything.
func TestFlagBounds(t *testing.T) {
	dir := t.TempDir()
	model := fixture.Path("resnet20_cifar.pth")
	out := filepath.Join(dir, "out.safetensors")
	in := fixture.Path("resnet20_cifar.input.npy")
	tests := []struct {
		args []string
		flag string
	}{
		{[]string{"bench", "--model", model, "--batch", "10000000"}, "--batch"},
		{[]string{"bench", "--model", model, "--batch", "0"}, "--batch"},
		{[]string{"bench", "--model", model, "--threads", "100000"}, "--threads"},
		{[]string{"bench", "--model", model, "--threads", "0"}, "--threads"},
		{[]string{"eval", "--model", model, "--data", "mnist", "--batch", "100000000"}, "--batch"},
		{[]string{"eval", "--model", model, "--data", "mnist", "--limit", "-1"}, "--limit"},
		{[]string{"eval", "--model", model, "--data", "mnist", "--threads", "-3"}, "--threads"},
		{[]string{"run", "--model", model, "--input", in, "--out", filepath.Join(dir, "y.npy"), "--threads", "1000000"}, "--threads"},
		{[]string{"inspect", "--model", model, "--threads", "257"}, "--threads"},
		{[]string{"convert", "--model", model, "--out", out, "--threads", "1000"}, "--threads"},
		{[]string{"prune", "--model", model, "--method", "slim", "--ratio", "0.5", "--out", out, "--threads", "999"}, "--threads"},
		{[]string{"train", "--arch", "resnet20", "--data", "mnist", "--out", out, "--batch", "100000000"}, "--batch"},
		{[]string{"train", "--arch", "resnet20", "--data", "mnist", "--out", out, "--epochs", "0"}, "--epochs"},
		{[]string{"train", "--arch", "resnet20", "--data", "mnist", "--out", out, "--epochs", "1000000"}, "--epochs"},
		{[]string{"train", "--arch", "resnet20", "--data", "mnist", "--out", out, "--threads", "1000000"}, "--threads"},
		{[]string{"train", "--arch", "resnet20", "--data", "mnist", "--out", out, "--limit", "-5"}, "--limit"},
		{[]string{"train", "--arch", "resnet20", "--data", "mnist", "--out", out, "--max-steps", "-1"}, "--max-steps"},
		{[]string{"finetune", "--model", model, "--data", "mnist", "--out", out, "--epochs", "100000"}, "--epochs"},
		{[]string{"finetune", "--model", model, "--data", "mnist", "--out", out, "--epochs", "1", "--batch", "5000"}, "--batch"},
		{[]string{"finetune", "--model", model, "--data", "mnist", "--out", out, "--epochs", "1", "--limit", "-1"}, "--limit"},
		{[]string{"sweep", "--model", model, "--data", "mnist", "--method", "slim", "--ratios", "0.5", "--batch", "100000"}, "--batch"},
		{[]string{"sweep", "--model", model, "--data", "mnist", "--method", "slim", "--ratios", "0.5", "--threads", "300"}, "--threads"},
		{[]string{"sweep", "--model", model, "--data", "mnist", "--method", "slim", "--ratios", "0.5", "--limit", "-1"}, "--limit"},
		{[]string{"sweep", "--model", model, "--data", "mnist", "--method", "slim", "--ratios", "0.5", "--finetune-epochs", "5000"}, "--finetune-epochs"},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "x.db"), "--jobs", "0"}, "--jobs"},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "x.db"), "--jobs", "1000"}, "--jobs"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:1], "")+" "+tt.flag+" "+tt.args[len(tt.args)-1], func(t *testing.T) {
			start := time.Now()
			stdout, stderr, err := runCLI(t, tt.args...)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v; want under 5 s", took)
			}
			if err == nil {
				t.Fatal("got nil error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, tt.flag+" "+tt.args[len(tt.args)-1]) || !strings.Contains(msg, "want") {
				t.Errorf("error got %q; want one line naming %s and the range", msg, tt.flag)
			}
			if exitCode(err) == 0 || stdout != "" || strings.Contains(stderr, "goroutine") {
				t.Errorf("exit %d, stdout %q, stderr %q; want non-zero, nothing on stdout, no trace", exitCode(err), stdout, stderr)
			}
			if tt.args[0] == "serve" {
				return
			}
			stdout, _, _ = runCLI(t, append(tt.args, "--json")...)
			var j struct{ Error string }
			if json.Unmarshal([]byte(stdout), &j) != nil || !strings.Contains(j.Error, tt.flag) {
				t.Errorf("--json stdout got %q; want {\"error\": ...} naming %s", stdout, tt.flag)
			}
		})
	}
	if fs, _ := filepath.Glob(filepath.Join(dir, "*")); len(fs) != 0 {
		t.Errorf("files written: %v", fs)
	}
}

// TestShapeTooLarge: an input shape whose buffers pass half the machine's
// memory is refused at once with one line naming the shape, for every
// command that compiles the engine at a --shape.
func TestShapeTooLarge(t *testing.T) {
	dir := t.TempDir()
	model := fixture.Path("resnet20_cifar.pth")
	for _, args := range [][]string{
		{"bench", "--model", model, "--shape", "1x30000x30000"},
		{"bench", "--model", model, "--shape", "1x4000x4000", "--batch", "4096"},
		{"prune", "--model", model, "--method", "l1", "--ratio", "0.3", "--shape", "1x60000x60000", "--out", filepath.Join(dir, "p.safetensors")},
	} {
		t.Run(strings.Join(args[len(args)-2:], " "), func(t *testing.T) {
			start := time.Now()
			stdout, stderr, err := runCLI(t, args...)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v; want under 5 s", took)
			}
			if err == nil {
				t.Fatalf("got nil error; stdout %q", stdout)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, "memory") || exitCode(err) == 0 || strings.Contains(stderr, "goroutine") {
				t.Errorf("error %q, exit %d, stderr %.300q; want one line about memory, non-zero exit, no trace", msg, exitCode(err), stderr)
			}
		})
	}
	if fs, _ := filepath.Glob(filepath.Join(dir, "*")); len(fs) != 0 {
		t.Errorf("files written: %v", fs)
	}
}
