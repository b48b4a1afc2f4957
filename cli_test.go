package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/internal/fixture"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/npy"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

func TestVersionAndHelp(t *testing.T) {
	out, _, err := runCLI(t, "--version")
	if err != nil || !strings.HasPrefix(out, "rmprune ") {
		t.Errorf("--version got %q, %v; want a version line", out, err)
	}
	for _, cmd := range []string{"inspect", "run", "convert", "prune", "eval", "bench"} {
		_, stderr, err := runCLI(t, cmd, "--help")
		if err != nil || !strings.Contains(stderr, "usage: rmprune "+cmd) {
			t.Errorf("%s --help got %q, %v; want its usage", cmd, stderr, err)
		}
	}
}

// run --rm and --engine simd reproduce PyTorch on the fixtures.
func TestRunMatchesPyTorch(t *testing.T) {
	dir := t.TempDir()
	for _, net := range fixture.Nets(t) {
		for _, flags := range [][]string{nil, {"--rm"}, {"--engine", "simd"}, {"--rm", "--engine", "simd"},
			{"--winograd", "2", "--engine", "simd"}, {"--winograd", "4", "--rm", "--engine", "simd"}} {
			name := net.Name + strings.Join(flags, "")
			t.Run(name, func(t *testing.T) {
				out := filepath.Join(dir, name+".npy")
				args := append([]string{"run", "--model", fixture.Path(net.File), "--input", fixture.Path(net.Input), "--out", out}, flags...)
				if _, stderr, err := runCLI(t, args...); err != nil {
					t.Fatalf("%v: %s", err, stderr)
				}
				_, got, err := npy.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				want := fixture.Act(t, net.Output)
				tol := 1e-5
				if len(flags) > 0 && flags[len(flags)-1] == "simd" {
					tol = 1e-4
				}
				if rel, _ := nn.RelError(got, want.D); rel > tol {
					t.Errorf("rel error vs PyTorch got %g; want ≤ %g", rel, tol)
				}
			})
		}
	}
}

// Bad input: one line on stderr naming the file, non-zero exit, JSON error
// with --json, nothing written.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not a model"), 0o644)
	wrongRank := filepath.Join(dir, "rank2.npy")
	npy.WriteFile(wrongRank, []int{2, 3}, make([]float32, 6))
	model := fixture.Path("resnet20_cifar.pth")
	out := filepath.Join(dir, "out.npy")
	plain := filepath.Join(dir, "plain.safetensors")
	if _, stderr, err := runCLI(t, "convert", "--model", model, "--out", plain); err != nil {
		t.Fatalf("convert: %v: %s", err, stderr)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing model", []string{"inspect", "--model", filepath.Join(dir, "nope.pth")}, "nope.pth"},
		{"not a model", []string{"inspect", "--model", text}, "notes.txt"},
		{"bad arch", []string{"inspect", "--model", model, "--arch", "resnet56"}, "resnet56"},
		{"wrong rank", []string{"run", "--model", model, "--input", wrongRank, "--out", out}, "rank2.npy"},
		{"wrong channels", []string{"run", "--model", fixture.Path("resnet18_tv.pth"), "--input", fixture.Path("resnet20_cifar.input.npy"), "--out", out}, "channels"},
		{"bad shape", []string{"inspect", "--model", model, "--shape", "1x28"}, "shape"},
		{"bad ratio", []string{"prune", "--model", model, "--method", "slim", "--ratio", "1", "--out", filepath.Join(dir, "p.safetensors")}, "ratio"},
		{"unknown method", []string{"prune", "--model", model, "--method", "magic", "--ratio", "0.5", "--out", filepath.Join(dir, "p.safetensors")}, "magic"},
		{"resnet form on plain", []string{"prune", "--model", plain, "--method", "slim", "--ratio", "0.5", "--form", "resnet", "--out", filepath.Join(dir, "p.onnx")}, "residual"},
		{"bad dataset", []string{"eval", "--model", model, "--data", "folder:" + filepath.Join(dir, "none")}, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runCLI(t, append(tt.args, "--json")...)
			if err == nil {
				t.Fatal("got nil error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, tt.want) {
				t.Errorf("error got %q; want one line mentioning %q", msg, tt.want)
			}
			var j struct{ Error string }
			if json.Unmarshal([]byte(stdout), &j) != nil || j.Error == "" {
				t.Errorf("--json stdout got %q; want {\"error\": ...}", stdout)
			}
		})
	}
	for _, f := range []string{out, filepath.Join(dir, "p.safetensors"), filepath.Join(dir, "p.onnx")} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was written despite the error", f)
		}
	}
}

func TestInspectJSON(t *testing.T) {
	stdout, _, err := runCLI(t, "inspect", "--model", fixture.Path("resnet56_rm.pth"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Params, MACs, FLOPs int64
		Layers              []json.RawMessage
		Arch                string
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Arch != "resnet56" || r.Params <= 0 || r.FLOPs != 2*r.MACs || len(r.Layers) == 0 {
		t.Errorf("inspect got %+v", r)
	}
}

// Pruning exactly the dead channels (γ = 0, threshold just above zero) and
// running the pruned net on the SIMD engine still reproduces PyTorch.
func TestPrunedFixturesOnEngine(t *testing.T) {
	dir := t.TempDir()
	for _, net := range fixture.Nets(t) {
		for _, form := range []string{"rmnet", "resnet"} {
			t.Run(net.Name+"/"+form, func(t *testing.T) {
				pruned := filepath.Join(dir, net.Name+form+".safetensors")
				out := filepath.Join(dir, net.Name+form+".npy")
				stdout, stderr, err := runCLI(t, "prune", "--model", fixture.Path(net.File), "--method", "slim", "--threshold", "1e-9",
					"--form", form, "--out", pruned, "--json")
				if err != nil {
					t.Fatalf("%v: %s", err, stderr)
				}
				var rep struct {
					ChannelsBefore int   `json:"channels_before"`
					ChannelsAfter  int   `json:"channels_after"`
					MACsAfter      int64 `json:"macs_after"`
					MACsComputed   int64 `json:"macs_computed_after"`
				}
				json.Unmarshal([]byte(stdout), &rep)
				if rep.ChannelsAfter >= rep.ChannelsBefore {
					t.Errorf("channels %d → %d; want the dead ones removed", rep.ChannelsBefore, rep.ChannelsAfter)
				}
				// RM's copy channels are not computed as MACs; a ResNet has none.
				if (form == "rmnet" && (rep.MACsComputed <= 0 || rep.MACsComputed >= rep.MACsAfter)) ||
					(form == "resnet" && rep.MACsComputed != rep.MACsAfter) {
					t.Errorf("%s: macs_computed_after %d, macs_after %d", form, rep.MACsComputed, rep.MACsAfter)
				}
				for _, wino := range []string{"auto", "4"} {
					if _, stderr, err := runCLI(t, "run", "--model", pruned, "--input", fixture.Path(net.Input), "--out", out, "--engine", "simd", "--winograd", wino); err != nil {
						t.Fatalf("%v: %s", err, stderr)
					}
					_, got, err := npy.ReadFile(out)
					if err != nil {
						t.Fatal(err)
					}
					if rel, _ := nn.RelError(got, fixture.Act(t, net.Output).D); rel > 1e-4 {
						t.Errorf("pruned net on the engine (winograd %s) vs PyTorch: rel error %g; want ≤ 1e-4", wino, rel)
					}
				}
			})
		}
	}
}

// convert reports DESIGN's keys, proves the conversion exact, and writes a
// model that runs to the same output (BN-kept and folded, safetensors and ONNX).
func TestConvertReport(t *testing.T) {
	dir := t.TempDir()
	model := fixture.Path("resnet56_rm.pth")
	resnetMACs := 0.0 // of the ResNet's own export (baseline.onnx, run first)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"baseline.onnx", []string{"--no-rm"}},
		{"folded.safetensors", nil},
		{"keptbn.safetensors", []string{"--keep-bn"}},
		{"plain.onnx", nil},
		{"plain-dense.onnx", []string{"--dense"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name)
			stdout, stderr, err := runCLI(t, append([]string{"convert", "--model", model, "--out", out, "--json"}, tt.args...)...)
			if err != nil {
				t.Fatalf("%v: %s", err, stderr)
			}
			var r map[string]any
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"max_abs_err", "max_rel_err", "params_source", "params_before", "params_after", "macs_before",
				"macs_after", "flops_before", "flops_after", "channels_before", "channels_after", "layers"} {
				if _, ok := r[k]; !ok {
					t.Errorf("report lacks %q", k)
				}
			}
			if rel := r["max_rel_err"].(float64); rel > 1e-5 {
				t.Errorf("max_rel_err got %g; want ≤ 1e-5", rel)
			}
			rm := len(tt.args) == 0 || tt.args[0] != "--no-rm"
			if grew := r["params_after"].(float64) > r["params_before"].(float64); grew != rm {
				t.Errorf("params %v → %v; want growth only with RM", r["params_before"], r["params_after"])
			}
			if _, err := os.Stat(out); err != nil {
				t.Fatal(err)
			}
			if filepath.Ext(out) != ".safetensors" {
				// The copy-aware export computes at most the ResNet's export
				// (its residual masks are depthwise convs); the dense one the
				// RMNet's MACs.
				dense := !rm || len(tt.args) > 0 && tt.args[0] == "--dense"
				wantForm := map[bool]string{false: "copy-aware", true: "dense"}[dense]
				macs, _ := r["macs_onnx"].(float64)
				if !rm {
					resnetMACs = macs
				}
				if r["export"] != wantForm || dense && macs != r["macs_after"] || !dense && !(macs > 0 && macs <= resnetMACs) {
					t.Errorf("export %v, macs_onnx %v; want %s and the %v MACs of the RMNet (dense) or at most the %v of the ResNet's export",
						r["export"], r["macs_onnx"], wantForm, r["macs_after"], resnetMACs)
				}
				return
			}
			y := filepath.Join(dir, tt.name+".npy")
			if _, stderr, err := runCLI(t, "run", "--model", out, "--input", fixture.Path("resnet56_rm.input.npy"), "--out", y); err != nil {
				t.Fatalf("%v: %s", err, stderr)
			}
			_, got, _ := npy.ReadFile(y)
			if rel, _ := nn.RelError(got, fixture.Act(t, "resnet56_rm.output.npy").D); rel > 1e-5 {
				t.Errorf("converted model vs PyTorch: rel error %g; want ≤ 1e-5", rel)
			}
		})
	}
}

// bench --kernels reports the GEMM shapes and direct vs Winograd per layer.
func TestBenchKernelsJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for ~5 s")
	}
	stdout, stderr, err := runCLI(t, "bench", "--kernels", "--json")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	var r struct {
		ISA  string `json:"isa"`
		Gemm []struct {
			GFLOPS float64 `json:"gflops"`
		} `json:"gemm"`
		Conv []struct {
			Direct  float64 `json:"direct_gflops"`
			F2      float64 `json:"winograd_f2_gflops"`
			F4      float64 `json:"winograd_f4_gflops"`
			Fastest string  `json:"fastest"`
		} `json:"conv"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if r.ISA == "" || len(r.Gemm) == 0 || len(r.Conv) != 5 {
		t.Fatalf("report %s", stdout)
	}
	for _, c := range r.Conv {
		best := map[string]float64{"direct": c.Direct, "winograd F2": c.F2, "winograd F4": c.F4}[c.Fastest]
		if c.Direct <= 0 || c.F2 <= 0 || c.F4 <= 0 || best != max(c.Direct, c.F2, c.F4) {
			t.Errorf("conv row %+v", c)
		}
	}
}
