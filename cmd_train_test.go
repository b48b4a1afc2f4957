package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/internal/fixture"
)

// TestTrainMaskFlags: the mask flags are validated (one-line errors, nothing
// written), --masks on a loaded ResNet trains it with masks, and the report
// lists the mask counts.
func TestTrainMaskFlags(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "m.safetensors")
	mb := filepath.Join(dir, "mb.safetensors")
	if _, stderr, err := runCLI(t, "train", "--arch", "mobilenet_v2", "--data", "mnist", "--max-steps", "1", "--limit", "8", "--batch", "4", "--out", mb); err != nil {
		t.Skipf("mnist: %v: %s", err, stderr)
	}
	model := fixture.Path("resnet20_cifar.pth")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"penalty without masks", []string{"train", "--arch", "resnet20", "--data", "mnist", "--mask-sparsity", "1e-4", "--out", out}, "--masks"},
		{"negative penalty", []string{"train", "--arch", "resnet20", "--data", "mnist", "--masks", "--mask-sparsity", "-1", "--out", out}, "mask sparsity"},
		{"threshold 1", []string{"finetune", "--model", model, "--data", "mnist", "--masks", "--mask-threshold", "1", "--out", out}, "mask threshold"},
		{"not a resnet", []string{"finetune", "--model", mb, "--data", "mnist", "--masks", "--out", out}, "not a ResNet"},
		{"neither arch nor model", []string{"train", "--data", "mnist", "--out", out}, "--model"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runCLI(t, append(tt.args, "--json")...)
			if err == nil {
				t.Fatal("got nil error")
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tt.want) {
				t.Errorf("error got %q; want one line mentioning %q", msg, tt.want)
			}
			var j struct{ Error string }
			if json.Unmarshal([]byte(stdout), &j) != nil || j.Error == "" {
				t.Errorf("--json stdout got %q; want {\"error\": ...}", stdout)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatalf("%s written despite the error", out)
			}
		})
	}
	base := filepath.Join(dir, "base.safetensors")
	if _, stderr, err := runCLI(t, "train", "--arch", "resnet20", "--data", "mnist", "--max-steps", "1", "--limit", "16", "--batch", "8", "--out", base); err != nil {
		t.Fatalf("train: %v: %s", err, stderr)
	}
	stdout, stderr, err := runCLI(t, "train", "--model", base, "--masks", "--mask-sparsity", "1e-3", "--mask-threshold", "1e-3",
		"--data", "mnist", "--max-steps", "2", "--limit", "32", "--batch", "8", "--out", out, "--json")
	if err != nil {
		t.Fatalf("train --model --masks: %v: %s", err, stderr)
	}
	var rep struct {
		Masks []struct {
			Kind     string
			Channels int
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, m := range rep.Masks {
		kinds[m.Kind] = m.Channels
	}
	// ResNet-20: stem 16; mask1 and mask2 3×(16+32+64); mask_res the block inputs.
	want := map[string]int{"stem mask1": 16, "mask1": 336, "mask_res.0": 288, "mask2": 336}
	for k, v := range want {
		if kinds[k] != v {
			t.Errorf("%s masks: got %d; want %d (report %s)", k, kinds[k], v, stdout)
		}
	}
}
