package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
)

// tinyResNet is a two-stage ResNet (widths 8 and 16, one BasicBlock each)
// for 1×28×28 images: ~1.7M MACs, a few seconds to train on 512 images.
func tinyResNet(t testing.TB, seed uint64) *nn.Graph {
	t.Helper()
	spec := nn.ResNetSpec{InChannels: 1, StemWidth: 8, StemKernel: 3, Classes: 10,
		Blocks: nn.ResNetBlocks([]int{1, 1}, []int{8, 16}, 8, false)}
	g := spec.Build(seed)
	g.Arch, g.Classes = "tiny-resnet", 10
	return g
}

func openMNIST(t testing.TB) *dataset.Dataset {
	t.Helper()
	d, err := dataset.Open("mnist")
	if err != nil {
		t.Skipf("mnist not available: %v", err)
	}
	return d
}

func TestTinyRunLearns(t *testing.T) {
	data := openMNIST(t)
	g := tinyResNet(t, 1)
	out := filepath.Join(t.TempDir(), "tiny.safetensors")
	var epochs []Progress
	opt := DefaultOptions()
	opt.Epochs, opt.Batch, opt.LR, opt.Seed, opt.Threads = 5, 32, 0.2, 1, 2
	opt.Limit, opt.EvalLimit, opt.Out = 512, 500, out
	opt.Augment = &dataset.Augment{} // none: few steps, fast learning
	opt.Progress = func(p Progress) {
		if p.EpochDone {
			epochs = append(epochs, p)
		}
	}
	rep, err := Run(context.Background(), g, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(epochs) != 5 {
		t.Fatalf("got %d epoch reports; want 5", len(epochs))
	}
	for _, p := range epochs {
		t.Logf("epoch %d: loss %.4f train acc %.3f test top-1 %.3f", p.Epoch, p.Loss, p.Acc, p.Top1)
	}
	first, last := epochs[0], epochs[len(epochs)-1]
	if !(last.Loss < 0.75*first.Loss) {
		t.Errorf("training loss: first epoch %.4f, last %.4f; want a drop of 25%% or more", first.Loss, last.Loss)
	}
	if !(last.Acc > first.Acc) {
		t.Errorf("training accuracy: first epoch %.3f, last %.3f; want a rise", first.Acc, last.Acc)
	}
	if rep.Top1 == nil {
		t.Fatal("no test top-1")
	}
	if *rep.Top1 < 0.3 || *rep.Top1 < first.Top1+0.05 {
		t.Errorf("test top-1 %.3f (after epoch 1: %.3f); want ≥ 0.3 and a rise of 0.05", *rep.Top1, first.Top1)
	}
	if rep.Top5 == nil || *rep.Top5 < *rep.Top1 {
		t.Errorf("top-5 %v; want ≥ top-1", rep.Top5)
	}
	// The checkpoint is a model file --model accepts, with the data's metadata.
	m, err := modelio.Load(out, modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Input != [3]int{1, 28, 28} || m.Classes != 10 || len(m.Mean) != 1 || len(m.Std) != 1 {
		t.Errorf("saved model: input %v classes %d mean %v std %v; want 1x28x28, 10, MNIST normalisation", m.Input, m.Classes, m.Mean, m.Std)
	}
	ev, err := Evaluate(m, data.Test, EvalOptions{Batch: 100, Threads: 2, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Top1 != *rep.Top1 {
		t.Errorf("reloaded model top-1 %.4f; want %.4f as reported", ev.Top1, *rep.Top1)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("output directory holds %v; want the model and its state only", names)
	}
}

// TestResumeExact stops a run mid-epoch (MaxSteps) and resumes it: the
// result must equal an uninterrupted run bit for bit.
func TestResumeExact(t *testing.T) {
	data := openMNIST(t)
	dir := t.TempDir()
	opt := DefaultOptions()
	opt.Epochs, opt.Batch, opt.Seed, opt.Threads, opt.Sparsity = 2, 64, 5, 2, 1e-4
	opt.Limit, opt.EvalLimit = 256, 100

	a := tinyResNet(t, 3)
	opt.Out = filepath.Join(dir, "a.safetensors")
	if _, err := Run(context.Background(), a, data, opt); err != nil {
		t.Fatal(err)
	}

	b := tinyResNet(t, 3)
	opt.Out = filepath.Join(dir, "b.safetensors")
	opt.MaxSteps = 3
	rep, err := Run(context.Background(), b, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Top1 != nil || rep.Steps != 3 {
		t.Fatalf("stopped run: top1 %v steps %d; want nil and 3", rep.Top1, rep.Steps)
	}
	b = tinyResNet(t, 3) // a fresh process: weights come from the checkpoint
	opt.MaxSteps, opt.Resume = 0, true
	rep, err = Run(context.Background(), b, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Steps != 8 || rep.Top1 == nil {
		t.Fatalf("resumed run: steps %d top1 %v; want 8 and a value", rep.Steps, rep.Top1)
	}
	sa, sb := a.StateDict(), b.StateDict()
	for _, k := range sa.Keys {
		x, y := nn.Floats(sa.Tensors[k]), nn.Floats(sb.Tensors[k])
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%s[%d]: resumed %g; uninterrupted %g", k, i, y[i], x[i])
			}
		}
	}
	// Resuming a finished run trains nothing and reports its accuracy.
	rep, err = Run(context.Background(), tinyResNet(t, 3), data, opt)
	if err != nil || rep.Steps != 8 || rep.Top1 == nil {
		t.Fatalf("resuming a finished run: %v, err %v; want 8 steps and a top-1", rep, err)
	}
	// Changed settings are refused.
	opt.LR = 0.05
	if _, err := Run(context.Background(), tinyResNet(t, 3), data, opt); err == nil || !strings.Contains(err.Error(), "lr") {
		t.Errorf("resume with another lr: err %v; want a settings error naming lr", err)
	}
}

func TestBadInput(t *testing.T) {
	data := openMNIST(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "m.safetensors")
	if err := os.WriteFile(out, []byte("previous model"), 0o644); err != nil {
		t.Fatal(err)
	}
	rgb, err := nn.Build("resnet20", 3, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	rgb.Input = [3]int{3, 32, 32}
	wrongClasses, _ := nn.Build("resnet20", 1, 100, 1)
	small := tinyResNet(t, 1)
	small.Input = [3]int{1, 32, 32}
	opt := DefaultOptions()
	opt.Epochs, opt.Out, opt.Limit = 1, out, 64
	tests := []struct {
		name string
		g    *nn.Graph
		opt  func(o *Options)
		want string
	}{
		{"3-channel model on MNIST", rgb, nil, "does not match"},
		{"32x32 model on 28x28 data", small, nil, "does not match"},
		{"100 classes on 10", wrongClasses, nil, "100 outputs"},
		{"resume without state", tinyResNet(t, 1), func(o *Options) { o.Resume = true }, "no checkpoint state"},
		{"zero lr", tinyResNet(t, 1), func(o *Options) { o.LR = 0 }, "learning rate"},
		{"diverging lr", tinyResNet(t, 1), func(o *Options) { o.LR, o.Batch = 1e30, 16 }, "diverged"},
		{"missing output dir", tinyResNet(t, 1), func(o *Options) { o.Out = filepath.Join(dir, "no", "m.safetensors") }, "cannot write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opt
			if tt.opt != nil {
				tt.opt(&o)
			}
			_, err := Run(context.Background(), tt.g, data, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "train: ") {
				t.Fatalf("err %v; want a train: error containing %q", err, tt.want)
			}
			b, _ := os.ReadFile(out)
			if string(b) != "previous model" {
				t.Errorf("output overwritten after a failed run")
			}
		})
	}
}

func TestCancelCheckpoints(t *testing.T) {
	data := openMNIST(t)
	out := filepath.Join(t.TempDir(), "m.safetensors")
	ctx, cancel := context.WithCancel(context.Background())
	opt := DefaultOptions()
	opt.Epochs, opt.Batch, opt.Out, opt.Limit, opt.Threads = 1, 32, out, 256, 2
	opt.Progress = func(p Progress) {
		if p.Step == 2 {
			cancel()
		}
	}
	_, err := Run(ctx, tinyResNet(t, 1), data, opt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v; want context.Canceled", err)
	}
	if _, err := modelio.Load(out, modelio.Options{}); err != nil {
		t.Errorf("checkpoint after cancel: %v", err)
	}
}

func TestBatchNormRunningStats(t *testing.T) {
	b := newGraphBuilder(2, 3, 3, 1)
	b.bn("bn", "input", 2)
	g := b.g
	n := g.Nodes[1]
	copy(n.P("running_mean"), []float32{0.5, -1})
	copy(n.P("running_var"), []float32{2, 3})
	net, err := NewNet(g, nn.Shape{C: 2, H: 3, W: 3}, NetOptions{MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	x := make([]float32, 36)
	for i := range x {
		x[i] = float32(i%7) - 2 + float32(i/9)
	}
	net.Forward(x, 2, true)
	for c := 0; c < 2; c++ {
		var vals []float64
		for bi := 0; bi < 2; bi++ {
			for i := 0; i < 9; i++ {
				vals = append(vals, float64(x[(bi*2+c)*9+i]))
			}
		}
		mean, vr := 0.0, 0.0
		for _, v := range vals {
			mean += v
		}
		mean /= 18
		for _, v := range vals {
			vr += (v - mean) * (v - mean)
		}
		vr /= 17 // unbiased, as PyTorch's running_var
		wantM := 0.9*[]float64{0.5, -1}[c] + 0.1*mean
		wantV := 0.9*[]float64{2, 3}[c] + 0.1*vr
		if got := float64(n.P("running_mean")[c]); math.Abs(got-wantM) > 1e-6 {
			t.Errorf("running_mean[%d]: got %g; want %g", c, got, wantM)
		}
		if got := float64(n.P("running_var")[c]); math.Abs(got-wantV) > 1e-5 {
			t.Errorf("running_var[%d]: got %g; want %g", c, got, wantV)
		}
	}
	// Eval mode leaves them alone.
	rm := n.P("running_mean")[0]
	net.Forward(x, 2, false)
	if n.P("running_mean")[0] != rm {
		t.Errorf("eval-mode forward changed running_mean")
	}
}

func TestSGDStep(t *testing.T) {
	p := &Param{Data: []float32{1, -2, 0}, Grad: []float32{0.5, 0.5, 0.5}, Mom: []float32{0.1, 0, 0}, Gamma: true}
	SGD{Momentum: 0.9, WeightDecay: 0.01, Sparsity: 0.1}.Step([]*Param{p}, 0.1)
	// g = grad + s·sign(p) + wd·p; m = 0.9·m + g; p -= lr·m
	want := []float64{
		1 - 0.1*(0.9*0.1+0.5+0.1+0.01),
		-2 - 0.1*(0.5-0.1-0.02),
		0 - 0.1*0.5,
	}
	for i, w := range want {
		if math.Abs(float64(p.Data[i])-w) > 1e-6 {
			t.Errorf("param %d: got %g; want %g", i, p.Data[i], w)
		}
	}
}

func TestCosineLR(t *testing.T) {
	tests := []struct {
		step, total int
		want        float64
	}{{0, 100, 0.1}, {50, 100, 0.05}, {100, 100, 0}, {25, 100, 0.1 * (1 + math.Sqrt2/2) / 2}}
	for _, tt := range tests {
		if got := CosineLR(0.1, tt.step, tt.total); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("CosineLR(0.1, %d, %d) = %g; want %g", tt.step, tt.total, got, tt.want)
		}
	}
}

// plainNet is a residual-free net in the BN-kept form pruning writes, with
// every activation kind: conv → BN → ReLU6 → conv → BN → PReLU → clamp →
// max-pool → conv → BN → ReLU → GAP → linear.
func plainNet(seed uint64) *nn.Graph {
	b := newGraphBuilder(1, 28, 28, seed)
	x := b.conv("c1", "input", 1, 8, 3, 2, 1, 1, false)
	x = b.bn("bn1", x, 8)
	x = b.op("r1", nn.OpReLU6, x)
	x = b.conv("c2", x, 8, 12, 3, 1, 1, 1, false)
	x = b.bn("bn2", x, 12)
	x = b.prelu("p2", x, 12)
	x = b.clamp("cl2", x, 12, -1, 4)
	x = b.pool("mp", nn.OpMaxPool, x, 3, 2, 1)
	x = b.conv("c3", x, 12, 16, 3, 1, 1, 4, false)
	x = b.bn("bn3", x, 16)
	x = b.op("r3", nn.OpReLU, x)
	x = b.op("gap", nn.OpGlobalAvgPool, x)
	x = b.op("flatten", nn.OpFlatten, x)
	b.linear("fc", x, 16, 10)
	b.g.Arch, b.g.Form = "plain", "rmnet"
	return b.g
}

// TestFinetuneLoadedModel fine-tunes a plain net read back from a model
// file, as rmprune finetune does.
func TestFinetuneLoadedModel(t *testing.T) {
	data := openMNIST(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "pruned.safetensors")
	g := plainNet(2)
	g.Input, g.Classes = [3]int{1, 28, 28}, 10
	g.Mean, g.Std = []float32{0.5}, []float32{0.25} // the model's own normalisation wins
	if err := modelio.SaveSafetensors(src, g); err != nil {
		t.Fatal(err)
	}
	m, err := modelio.Load(src, modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opt := DefaultOptions()
	opt.Epochs, opt.Batch, opt.Threads, opt.LR = 2, 32, 2, 0.05
	opt.Limit, opt.EvalLimit, opt.Out = 256, 200, filepath.Join(dir, "ft.safetensors")
	var losses []float64
	opt.Progress = func(p Progress) {
		if p.EpochDone {
			losses = append(losses, p.Loss)
		}
	}
	rep, err := Run(context.Background(), m, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Top1 == nil || len(losses) != 2 || !(losses[1] < losses[0]) {
		t.Fatalf("top1 %v, epoch losses %v; want a value and a falling loss", rep.Top1, losses)
	}
	ft, err := modelio.Load(opt.Out, modelio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ft.Mean[0] != 0.5 || ft.Std[0] != 0.25 || ft.Form != "rmnet" || len(ft.Nodes) != len(g.Nodes) {
		t.Errorf("fine-tuned model: mean %v std %v form %q, %d nodes; want the source's metadata", ft.Mean, ft.Std, ft.Form, len(ft.Nodes))
	}
	// The weights moved; clamp bounds (constants) did not.
	if nn.Floats(ft.Node("c2").Params["weight"])[0] == nn.Floats(g.Node("c2").Params["weight"])[0] {
		t.Errorf("c2.weight unchanged by fine-tuning")
	}
	if nn.Floats(ft.Node("cl2").Params["max"])[3] != nn.Floats(g.Node("cl2").Params["max"])[3] {
		t.Errorf("clamp bound changed by fine-tuning")
	}
}

// TestStepAllocations asserts that a steady-state training step (forward,
// loss, backward, SGD update) allocates nothing: every buffer, the packed
// weights included, is planned once and reused. It covers the tiny ResNet
// (1 and 2 threads), a full ResNet-20 at batch 4 and a short last batch.
func TestStepAllocations(t *testing.T) {
	rn20, err := nn.Build("resnet20", 1, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		g          *nn.Graph
		threads, n int
	}{
		{"tiny-1thread", tinyResNet(t, 1), 1, 8},
		{"tiny-2threads", tinyResNet(t, 1), 2, 8},
		{"tiny-short-batch", tinyResNet(t, 1), 2, 5},
		{"resnet20", rn20, 2, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := nn.Shape{C: 1, H: 28, W: 28}
			net, err := NewNet(tt.g, in, NetOptions{MaxBatch: 8, Threads: tt.threads})
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			x := make([]float32, 8*in.Numel())
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			labels := make([]int, 8)
			sgd := SGD{Momentum: 0.9, WeightDecay: 5e-4, Sparsity: 1e-4}
			step := func() {
				net.Forward(x, tt.n, true)
				net.Loss(labels[:tt.n])
				net.Backward()
				sgd.Step(net.Params(), 0.1)
			}
			step()
			if got := testing.AllocsPerRun(3, step); got != 0 {
				t.Errorf("got %.0f allocations per step; want 0", got)
			}
		})
	}
}

// TestEvalForwardMatchesReference compares the eval-mode forward (running
// statistics; Evaluate's fallback) with nn's reference forward.
func TestEvalForwardMatchesReference(t *testing.T) {
	for _, g := range []*nn.Graph{tinyResNet(t, 4), plainNet(4)} {
		b := newGraphBuilder(1, 1, 1, 9)
		for _, n := range g.Nodes {
			if n.Op == nn.OpBatchNorm {
				copy(n.P("running_mean"), b.randn(len(n.P("running_mean")), 0.3))
				for i, v := range b.randn(len(n.P("running_var")), 0.3) {
					n.P("running_var")[i] = 1 + v*v
				}
			}
		}
		in := nn.Shape{C: 1, H: 28, W: 28}
		net, err := NewNet(g, in, NetOptions{MaxBatch: 3, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		x := b.randn(3*in.Numel(), 1)
		got := net.Forward(x, 3, false)
		net.Close()
		want, err := g.Forward(&nn.Act{N: 3, C: 1, H: 28, W: 28, D: x}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rel, _ := nn.RelError(got, want.D); rel > 1e-5 {
			t.Errorf("%s: eval forward rel error %.3g against the reference; want ≤ 1e-5", g.Arch, rel)
		}
	}
}
