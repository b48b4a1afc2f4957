package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/internal/fixture"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/npy"
)

// runTo runs a CLI command that writes --out y.npy and returns y.
func runTo(t *testing.T, y string, args ...string) []float32 {
	t.Helper()
	if _, stderr, err := runCLI(t, append(args, "--out", y)...); err != nil {
		t.Fatalf("%v: %v: %s", args, err, stderr)
	}
	_, got, err := npy.ReadFile(y)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func argmaxRows(d []float32, classes int) []int {
	out := make([]int, len(d)/classes)
	for i := range out {
		row := d[i*classes : (i+1)*classes]
		for j, v := range row {
			if v > row[out[i]] {
				out[i] = j
			}
		}
	}
	return out
}

// The RMNet reference code's ordinary training layout (resnet56_rmtrain:
// running1/running2 on every block, no masks, {'epoch','best_acc1',
// 'state_dict'} with module. prefixes) loads, converts and prunes, matching
// PyTorch 1.13's own output (tol 1e-5).
func TestReferenceTrainingLayout(t *testing.T) {
	dir := t.TempDir()
	model := fixture.Path("resnet56_rmtrain.pth")
	input := fixture.Path("resnet56_rmtrain.input.npy")
	want := fixture.Act(t, "resnet56_rmtrain.output.npy").D
	check := func(name string, got []float32, tol float64) {
		t.Helper()
		if rel, _ := nn.RelError(got, want); rel > tol {
			t.Errorf("%s vs PyTorch: rel error %g; want ≤ %g", name, rel, tol)
		} else {
			t.Logf("%s vs PyTorch: rel error %.2g", name, rel)
		}
	}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"convert-folded", []string{"convert"}},
		{"convert-keep-bn", []string{"convert", "--keep-bn"}},
		{"prune-threshold0-rmnet", []string{"prune", "--method", "slim", "--threshold", "0"}},
		{"prune-threshold0-resnet", []string{"prune", "--method", "slim", "--threshold", "0", "--form", "resnet"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name+".safetensors")
			stdout, stderr, err := runCLI(t, append(tt.args, "--model", model, "--out", out, "--json")...)
			if err != nil {
				t.Fatalf("%v: %s", err, stderr)
			}
			var r struct {
				MaxRelErr   *float64          `json:"max_rel_err"`
				StatsSource json.RawMessage   `json:"stats_source"`
				Layers      []json.RawMessage `json:"layers"`
			}
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatal(err)
			}
			if r.MaxRelErr != nil && *r.MaxRelErr > 1e-5 {
				t.Errorf("max_rel_err %g; want ≤ 1e-5", *r.MaxRelErr)
			}
			if tt.name == "convert-keep-bn" {
				var src map[string]string
				json.Unmarshal(r.StatsSource, &src)
				if src["layer1.1"] != "checkpoint" || src["layer2.0"] != "default/checkpoint" {
					t.Errorf("stats_source %v; want checkpoint on identity blocks, default/checkpoint on projections", src)
				}
			}
			check(tt.name, runTo(t, filepath.Join(dir, tt.name+".npy"), "run", "--model", out, "--input", input), 1e-5)
			check(tt.name+" (simd)", runTo(t, filepath.Join(dir, tt.name+".s.npy"), "run", "--model", out, "--input", input, "--engine", "simd"), 1e-4)
		})
	}
	// A slim ratio works from the checkpoint's statistics (running1 of the two
	// projection blocks was never updated: the reference code's own (0, 1)).
	stdout, stderr, err := runCLI(t, "prune", "--model", model, "--method", "slim", "--ratio", "0.3", "--out", filepath.Join(dir, "r.safetensors"), "--json")
	if err != nil {
		t.Fatalf("prune --ratio 0.3: %v: %s", err, stderr)
	}
	var r struct {
		StatsSource    string `json:"stats_source"`
		ChannelsBefore int    `json:"channels_before"`
		ChannelsAfter  int    `json:"channels_after"`
	}
	json.Unmarshal([]byte(stdout), &r)
	if r.StatsSource != "checkpoint+default" || r.ChannelsAfter >= r.ChannelsBefore || r.ChannelsAfter < r.ChannelsBefore/2 {
		t.Errorf("prune --ratio 0.3 got %+v; want checkpoint+default statistics and about 30%% removed", r)
	}
}

// maskedModel writes a mask-trained-looking model (random BN, masks with
// exact zeros and negatives) for MNIST-shaped input in our format.
func maskedModel(t *testing.T, dir string, dataset string) (string, *nn.Graph) {
	t.Helper()
	spec, err := nn.StandardResNet("resnet20", 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	spec.Masks = true
	g := spec.Build(3)
	rng := rand.New(rand.NewPCG(3, 4))
	nn.RandomizeBN(g, rng)
	for _, n := range g.Nodes {
		if n.Op == nn.OpMask {
			m := n.P("weight")
			for i := range m {
				m[i] = float32(1.6*rng.Float64() - 0.3)
				if rng.IntN(4) == 0 {
					m[i] = 0
				}
			}
		}
	}
	g.Arch, g.Classes, g.Input = "resnet20", 10, [3]int{1, 28, 28}
	g.Dataset = dataset
	path := filepath.Join(dir, "masked.safetensors")
	if err := modelio.SaveSafetensors(path, g); err != nil {
		t.Fatal(err)
	}
	return path, g
}

// Every command takes a mask-trained model: inspect shows the masks; run,
// run --rm, convert and prune --threshold 0 reproduce the reference
// forward of the masked graph; eval and ONNX export run.
func TestMaskedModelCommands(t *testing.T) {
	dir := t.TempDir()
	model, g := maskedModel(t, dir, "")
	rng := rand.New(rand.NewPCG(8, 9))
	x := nn.NewAct(4, 1, 28, 28)
	for i := range x.D {
		x.D[i] = float32(rng.NormFloat64())
	}
	input := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(input, []int{4, 1, 28, 28}, x.D); err != nil {
		t.Fatal(err)
	}
	ref, err := g.Forward(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got []float32, tol float64) {
		t.Helper()
		if rel, _ := nn.RelError(got, ref.D); rel > tol {
			t.Errorf("%s vs the masked graph's reference forward: rel error %g; want ≤ %g", name, rel, tol)
		}
	}

	stdout, stderr, err := runCLI(t, "inspect", "--model", model, "--json")
	if err != nil {
		t.Fatalf("inspect: %v: %s", err, stderr)
	}
	var ins struct {
		Masks *nn.MaskReport `json:"masks"`
	}
	json.Unmarshal([]byte(stdout), &ins)
	if ins.Masks == nil || len(ins.Masks.Kinds) != 4 || ins.Masks.Kinds[1].Zero == 0 {
		t.Errorf("inspect --json masks got %+v; want 4 kinds with zeros", ins.Masks)
	}
	text, _, _ := runCLI(t, "inspect", "--model", model)
	for _, w := range []string{"masks (mask-trained", "reserved", "block_out", "layer1.0.mask_res.0"} {
		if !strings.Contains(text, w) {
			t.Errorf("inspect text lacks %q", w)
		}
	}

	check("run", runTo(t, filepath.Join(dir, "a.npy"), "run", "--model", model, "--input", input), 1e-5)
	check("run --rm", runTo(t, filepath.Join(dir, "b.npy"), "run", "--model", model, "--input", input, "--rm"), 1e-5)
	check("run --engine simd", runTo(t, filepath.Join(dir, "c.npy"), "run", "--model", model, "--input", input, "--engine", "simd"), 1e-4)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"convert.safetensors", []string{"convert"}},
		{"convert-keep-bn.safetensors", []string{"convert", "--keep-bn"}},
		{"convert-no-rm.safetensors", []string{"convert", "--no-rm", "--keep-bn"}},
		{"prune0.safetensors", []string{"prune", "--method", "slim", "--threshold", "0"}},
		{"prune0-resnet.safetensors", []string{"prune", "--method", "slim", "--threshold", "0", "--form", "resnet"}},
		{"convert.onnx", []string{"convert"}},
		{"prune0.onnx", []string{"prune", "--method", "l1", "--threshold", "0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name)
			if _, stderr, err := runCLI(t, append(tt.args, "--model", model, "--out", out, "--json")...); err != nil {
				t.Fatalf("%v: %s", err, stderr)
			}
			if filepath.Ext(out) == ".onnx" {
				if st, err := os.Stat(out); err != nil || st.Size() == 0 {
					t.Errorf("no ONNX file: %v", err)
				}
				return
			}
			got := runTo(t, out+".npy", "run", "--model", out, "--input", input)
			check(tt.name, got, 1e-5)
			if !slices.Equal(argmaxRows(got, 10), argmaxRows(ref.D, 10)) {
				t.Errorf("%s: predictions differ", tt.name)
			}
		})
	}
	stdout, stderr, err = runCLI(t, "eval", "--model", model, "--data", "mnist", "--limit", "32", "--json")
	if err != nil {
		t.Fatalf("eval: %v: %s", err, stderr)
	}
	if !strings.Contains(stdout, `"top1"`) {
		t.Errorf("eval got %s; want a top1", stdout)
	}
}

// A slim ratio without statistics is refused with one line naming --calib
// (nothing written), unless the model names its data set: then prune
// calibrates on it. A network pruned to under 5% needs --force.
func TestPruneStatsGuard(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "p.safetensors")
	// The demo without the block statistics its trainer recorded and
	// without its data set's name: nothing to rank carried channels by.
	g, err := modelio.Load(filepath.Join("demo", "resnet20-mnist.safetensors"), modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		delete(n.Params, "act_mean")
		delete(n.Params, "act_var")
	}
	g.Dataset = ""
	demo := filepath.Join(dir, "nostats.safetensors")
	if err := modelio.SaveSafetensors(demo, g); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCLI(t, "prune", "--model", demo, "--method", "slim", "--ratio", "0.4", "--out", out)
	if err == nil || !strings.Contains(err.Error(), "--calib") || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), demo) {
		t.Errorf("demo without --calib: err %v; want one line naming the file and --calib", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output written despite the refusal")
	}
	g.Dataset = "mnist"
	named := filepath.Join(dir, "named.safetensors")
	if err := modelio.SaveSafetensors(named, g); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCLI(t, "prune", "--model", named, "--method", "slim", "--ratio", "0.4", "--out", out, "--json")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	var r struct {
		StatsSource    string `json:"stats_source"`
		CalibDataset   string `json:"calib_dataset"`
		ChannelsBefore int    `json:"channels_before"`
		ChannelsAfter  int    `json:"channels_after"`
	}
	json.Unmarshal([]byte(stdout), &r)
	if r.StatsSource != "calib" || r.CalibDataset != "mnist" || !strings.Contains(stderr, "mnist") ||
		float64(r.ChannelsAfter) < 0.5*float64(r.ChannelsBefore) {
		t.Errorf("named data set: got %+v, stderr %q; want calibration on mnist and about 40%% removed", r, stderr)
	}
	t.Logf("demo, slim 0.4 calibrated on its data set: %d → %d channels", r.ChannelsBefore, r.ChannelsAfter)
}

// A ratio ≤ 0.5 whose result keeps under 5% of the channels (here: a net
// whose every channel is dead) is refused unless --force.
func TestPruneForce(t *testing.T) {
	dir := t.TempDir()
	_, g := maskedModel(t, dir, "")
	shapes, err := g.Shapes(g.InputShape())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		switch n.Op {
		case nn.OpBatchNorm:
			gamma, beta := n.P("weight"), n.P("bias")
			for c := range gamma {
				gamma[c], beta[c] = 0, -1
			}
		case nn.OpMask:
			for c, v := range n.P("weight") {
				n.P("weight")[c] = max(v, -v)
			}
		case nn.OpReLU, nn.OpAdd: // block statistics, so that the ratio is not refused for lack of them
			c := shapes[n.Name].C
			ones := make([]float32, c)
			for i := range ones {
				ones[i] = 1
			}
			n.SetP("act_mean", []int{c}, ones)
			n.SetP("act_var", []int{c}, ones)
		}
	}
	model := filepath.Join(dir, "dead.safetensors")
	if err := modelio.SaveSafetensors(model, g); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "p.safetensors")
	_, _, err = runCLI(t, "prune", "--model", model, "--method", "slim", "--ratio", "0.2", "--out", out)
	if err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), model) {
		t.Errorf("got %v; want a refusal naming the file and --force", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output written despite the refusal")
	}
	if _, stderr, err := runCLI(t, "prune", "--model", model, "--method", "slim", "--ratio", "0.2", "--force", "--out", out); err != nil {
		t.Errorf("--force: %v: %s", err, stderr)
	}
}
