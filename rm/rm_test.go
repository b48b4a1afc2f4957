package rm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// RM is exact; float32 rounding of folded weights is the only error.
const tol = 1e-5

// randomize gives every BatchNorm random γ (some 0, some negative), β, μ and
// σ², every shortcut scale random values, and every node random act_mean /
// act_var (the "checkpoint" statistics). skip(bn, c) leaves a BN channel alone.
func randomize(t *testing.T, g *nn.Graph, in nn.Shape, rng *rand.Rand, skip func(bn string, c int) bool) {
	t.Helper()
	shapes, err := g.Shapes(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		switch {
		case n.Op == nn.OpBatchNorm:
			gamma, beta := n.P("weight"), n.P("bias")
			mean, vr := n.P("running_mean"), n.P("running_var")
			for c := range gamma {
				if skip != nil && skip(n.Name, c) {
					continue
				}
				switch r := rng.Float64(); {
				case r < 0.15:
					gamma[c] = 0
				case r < 0.3:
					gamma[c] = -float32(0.3 + rng.Float64())
				default:
					gamma[c] = float32(0.3 + 1.2*rng.Float64())
				}
				beta[c] = float32(rng.NormFloat64() * 0.5)
				mean[c] = float32(rng.NormFloat64() * 0.5)
				vr[c] = float32(0.2 + 1.8*rng.Float64())
			}
		case n.Op == nn.OpConv && strings.HasSuffix(n.Name, ".shortcut"):
			w := n.P("weight")
			for i := range w {
				w[i] = float32(rng.NormFloat64())
			}
		}
		if n.Op != nn.OpInput {
			c := shapes[n.Name].C
			m, v := make([]float32, c), make([]float32, c)
			for i := range m {
				m[i] = float32(rng.NormFloat64())
				v[i] = float32(0.1 + 3*rng.Float64())
			}
			n.SetP("act_mean", []int{c}, m)
			n.SetP("act_var", []int{c}, v)
		}
	}
}

func stripStats(g *nn.Graph) {
	for _, n := range g.Nodes {
		delete(n.Params, "act_mean")
		delete(n.Params, "act_var")
	}
}

func resnet(blocks ...nn.BlockSpec) func() *nn.Graph {
	return func() *nn.Graph {
		s := nn.ResNetSpec{InChannels: 3, StemWidth: blocks[0].In, StemKernel: 3, Blocks: blocks, Classes: 5}
		return s.Build(7)
	}
}

// signed makes the stem activation a leaky PReLU, so the first block's input
// can be negative: its reserved channels then need PReLU slope 1.
func signed(build func() *nn.Graph) func() *nn.Graph {
	return func() *nn.Graph {
		g := build()
		n := g.Node("relu")
		n.Op = nn.OpPReLU
		w := make([]float32, g.Node("conv1").Out)
		for i := range w {
			w[i] = 0.25
		}
		n.SetP("weight", []int{len(w)}, w)
		return g
	}
}

func mobilenet(blocks ...nn.MBBlock) func() *nn.Graph {
	return func() *nn.Graph {
		s := nn.MobileNetV2Spec{InChannels: 3, StemWidth: blocks[0].In, StemStride: 1, Blocks: blocks, LastWidth: 12, Classes: 5}
		return s.Build(7)
	}
}

var stages = []nn.RepVGGStage{{Width: 8, Blocks: 1, Stride: 1}, {Width: 8, Blocks: 2, Stride: 1}, {Width: 12, Blocks: 2, Stride: 2}}

func repvgg(r float64) func() *nn.Graph {
	return func() *nn.Graph {
		s := nn.RepVGGSpec{InChannels: 3, Stages: stages, Classes: 5, Reserve: r}
		return s.Build(7)
	}
}

// repvggSkip keeps RepVGG + RM's structural rows (the first R of each
// identity block) as built.
func repvggSkip(r float64) func(string, int) bool {
	s := nn.RepVGGSpec{InChannels: 3, Stages: stages, Reserve: r}
	res := s.Reserved()
	return func(bn string, c int) bool {
		i := strings.Index(bn, ".rbr")
		return i > 0 && c < res[bn[:i]]
	}
}

type blockCase struct {
	name  string
	build func() *nn.Graph
	kinds []string
	skip  func(string, int) bool
	// reserved: expected reserved channels per block (RepVGG + RM), nil: block input width
	reserved []int
}

func blockCases() []blockCase {
	return []blockCase{
		{name: "basic/identity", build: resnet(nn.BlockSpec{Prefix: "layer1.0", In: 6, Mid: 5, Out: 6, Stride: 1}), kinds: []string{"basic"}},
		{name: "basic/projection-s2", build: resnet(nn.BlockSpec{Prefix: "layer1.0", In: 6, Mid: 7, Out: 8, Stride: 2, Downsample: true}), kinds: []string{"basic"}},
		{name: "basic/projection-s1", build: resnet(nn.BlockSpec{Prefix: "layer1.0", In: 6, Mid: 4, Out: 5, Stride: 1, Downsample: true}), kinds: []string{"basic"}},
		{name: "basic/shortcut-scale", build: resnet(nn.BlockSpec{Prefix: "layer1.0", In: 6, Mid: 5, Out: 6, Stride: 1, ShortcutScale: true},
			nn.BlockSpec{Prefix: "layer1.1", In: 6, Mid: 3, Out: 6, Stride: 1}), kinds: []string{"basic", "basic"}},
		{name: "basic/signed-input", build: signed(resnet(nn.BlockSpec{Prefix: "layer1.0", In: 6, Mid: 5, Out: 6, Stride: 1},
			nn.BlockSpec{Prefix: "layer1.1", In: 6, Mid: 4, Out: 7, Stride: 2, Downsample: true})), kinds: []string{"basic", "basic"}},
		{name: "bottleneck/identity", build: resnet(nn.BlockSpec{Prefix: "layer1.0", Bottleneck: true, In: 8, Mid: 3, Mid2: 4, Out: 8, Stride: 1}), kinds: []string{"bottleneck"}},
		{name: "bottleneck/projection-s2", build: resnet(nn.BlockSpec{Prefix: "layer1.0", Bottleneck: true, In: 6, Mid: 3, Mid2: 3, Out: 8, Stride: 2, Downsample: true},
			nn.BlockSpec{Prefix: "layer1.1", Bottleneck: true, In: 8, Mid: 2, Mid2: 3, Out: 8, Stride: 1}), kinds: []string{"bottleneck", "bottleneck"}},
		{name: "mbv2/non-expand", build: mobilenet(nn.MBBlock{Prefix: "features.1", In: 6, Hidden: 6, Out: 6, Stride: 1},
			nn.MBBlock{Prefix: "features.2", In: 6, Hidden: 6, Out: 6, Stride: 1}), kinds: []string{"inverted", "inverted"}},
		{name: "mbv2/expand", build: mobilenet(nn.MBBlock{Prefix: "features.1", In: 6, Hidden: 10, Out: 6, Stride: 1, Expand: true},
			nn.MBBlock{Prefix: "features.2", In: 6, Hidden: 12, Out: 6, Stride: 1, Expand: true},
			nn.MBBlock{Prefix: "features.3", In: 6, Hidden: 12, Out: 8, Stride: 2, Expand: true}), kinds: []string{"inverted", "inverted"}},
		{name: "repvgg/deploy", build: repvgg(0), kinds: []string{"repvgg", "repvgg", "repvgg", "repvgg", "repvgg"}, reserved: []int{0, 0, 0, 0, 0}},
		{name: "repvgg-rm/0.25", build: repvgg(0.25), skip: repvggSkip(0.25), kinds: []string{"repvgg", "repvgg", "repvgg", "repvgg", "repvgg"}, reserved: []int{0, 2, 2, 0, 3}},
		{name: "repvgg-rm/0.5", build: repvgg(0.5), skip: repvggSkip(0.5), kinds: []string{"repvgg", "repvgg", "repvgg", "repvgg", "repvgg"}, reserved: []int{0, 4, 4, 0, 6}},
		{name: "repvgg-rm/0.75", build: repvgg(0.75), skip: repvggSkip(0.75), kinds: []string{"repvgg", "repvgg", "repvgg", "repvgg", "repvgg"}, reserved: []int{0, 6, 6, 0, 9}},
	}
}

type form struct {
	name string
	keep bool
	src  string
}

var forms = []form{
	{"folded", false, ""},
	{"kept-calib", true, SourceCalib},
	{"kept-checkpoint", true, SourceCheckpoint},
	{"kept-default", true, SourceDefault},
}

func TestConvertBlocks(t *testing.T) {
	for ci, tc := range blockCases() {
		for _, hw := range []int{7, 8} {
			for fi, f := range forms {
				t.Run(fmt.Sprintf("%s/%dx%d/%s", tc.name, hw, hw, f.name), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(ci), uint64(hw*10+fi)))
					in := nn.Shape{C: 3, H: hw, W: hw}
					g := tc.build()
					randomize(t, g, in, rng, tc.skip)
					if f.src == SourceDefault || f.src == "" {
						stripStats(g)
					}
					opt := Options{KeepBN: f.keep}
					if f.src == SourceCalib {
						opt.Calib = RandomInput(3, in, 99)
					}
					res, err := Convert(g, opt)
					if err != nil {
						t.Fatal(err)
					}
					checkEquivalent(t, g, res, RandomInput(2, in, 5))
					checkStructure(t, res, f.keep, tc.kinds)
					for i, b := range res.Blocks {
						want := b.Reserved
						if tc.reserved != nil {
							want = tc.reserved[i]
						} else {
							want = g.Node(b.Convs[0]).In // the block input's width
						}
						if b.Reserved != want {
							t.Errorf("block %s reserved got %d; want %d", b.Name, b.Reserved, want)
						}
					}
					if f.keep {
						calib := opt.Calib
						if calib == nil {
							calib = RandomInput(3, in, 98)
						}
						checkKeptStats(t, g, res, f.src, calib)
					}
				})
			}
		}
	}
}

// checkEquivalent compares logits and every block's sum (the original add's
// output against Block.Output) on x.
func checkEquivalent(t *testing.T, g *nn.Graph, res *Result, x *nn.Act) {
	t.Helper()
	want := map[string][]float32{}
	adds := map[string]string{}
	for _, b := range res.Blocks {
		if b.Output != "" {
			adds[b.Add] = b.Output
		}
	}
	wy, err := g.Forward(x, func(n *nn.Node, out *nn.Act) {
		if _, ok := adds[n.Name]; ok {
			want[n.Name] = append([]float32(nil), out.D...)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{}
	outs := map[string]bool{}
	for _, o := range adds {
		outs[o] = true
	}
	gy, err := res.Graph.Forward(x, func(n *nn.Node, out *nn.Act) {
		if outs[n.Name] {
			got[n.Name] = append([]float32(nil), out.D...)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if rel, abs := nn.RelError(gy.D, wy.D); rel > tol || math.IsNaN(rel) {
		t.Errorf("logits rel error got %.3g (abs %.3g); want ≤ %g", rel, abs, tol)
	}
	for add, o := range adds {
		if rel, abs := nn.RelError(got[o], want[add]); rel > tol || math.IsNaN(rel) {
			t.Errorf("block sum %s vs %s rel error got %.3g (abs %.3g); want ≤ %g", add, o, rel, abs, tol)
		}
	}
}

// checkStructure checks the plain graph's form and that reserved rows are
// exact Dirac rows (folded form: bias 0 too).
func checkStructure(t *testing.T, res *Result, keep bool, kinds []string) {
	t.Helper()
	g := res.Graph
	if g.HasResidual() || g.Form != "rmnet" {
		t.Errorf("converted graph: residual %v, form %q; want no add, form rmnet", g.HasResidual(), g.Form)
	}
	var gotKinds []string
	for _, b := range res.Blocks {
		gotKinds = append(gotKinds, b.Kind)
	}
	if fmt.Sprint(gotKinds) != fmt.Sprint(kinds) {
		t.Errorf("block kinds got %v; want %v", gotKinds, kinds)
	}
	bns := 0
	for _, n := range g.Nodes {
		if n.Op == nn.OpBatchNorm {
			bns++
		}
	}
	if !keep && bns != 0 {
		t.Errorf("folded form has %d BatchNorms; want 0", bns)
	}
	inBlock := map[string]bool{}
	for _, b := range res.Blocks {
		for _, c := range b.Convs {
			inBlock[c] = true
		}
	}
	convs := 0
	for _, n := range g.Nodes {
		if n.Op != nn.OpConv {
			continue
		}
		convs++
		l := res.Layer(n.Name)
		if l == nil || len(l.Kinds) != n.Out || len(l.Origin) != n.Out {
			t.Fatalf("conv %s: layer info %+v does not cover %d channels", n.Name, l, n.Out)
		}
		if keep && inBlock[n.Name] && l.BN == "" {
			t.Errorf("BN-kept form: block conv %s has no BN after it", n.Name)
		}
		r := l.Reserved()
		if r != res.Reserved[n.Name] {
			t.Errorf("Reserved[%s] got %d; want %d", n.Name, res.Reserved[n.Name], r)
		}
		w, bias := n.P("weight"), n.P("bias")
		k := n.Kernel
		kk, centre := k*k, (k/2)*k+k/2
		icg := n.In / n.G()
		for o := 0; o < r; o++ {
			if l.Kinds[o] != KindReserved {
				t.Fatalf("conv %s: reserved channels are not first: kind[%d] = %v", n.Name, o, l.Kinds[o])
			}
			for i, v := range w[o*icg*kk : (o+1)*icg*kk] {
				want := float32(0)
				if (n.G() == 1 && i == o*kk+centre) || (n.G() > 1 && i == centre) {
					want = 1
				}
				if v != want {
					t.Fatalf("conv %s reserved row %d: weight[%d] = %g; want %g (Dirac)", n.Name, o, i, v, want)
				}
			}
			if bias != nil && bias[o] != 0 {
				t.Errorf("conv %s reserved row %d: bias %g; want 0", n.Name, o, bias[o])
			}
		}
	}
	if convs != len(res.Layers) {
		t.Errorf("layers got %d; want one per conv (%d)", len(res.Layers), convs)
	}
}

// checkKeptStats checks the BN-kept form's statistics: the sources, and that
// the BN γ of every reserved and block-output channel is the std of the
// channel it carries — measured on calib when that is the source (what
// slimming ranks), else √(act_var+ε) of the checkpoint, else √(1+ε).
func checkKeptStats(t *testing.T, g *nn.Graph, res *Result, src string, calib *nn.Act) {
	t.Helper()
	bnOf := map[string]*Layer{}
	for i := range res.Layers {
		if l := &res.Layers[i]; l.BN != "" && l.Block != "" {
			bnOf[l.Conv] = l
		}
	}
	// Std of each block conv's output channels on calib, in the converted graph.
	std := map[string][]float64{}
	if _, err := res.Graph.Forward(calib, func(n *nn.Node, out *nn.Act) {
		if bnOf[n.Name] != nil {
			_, v := channelStats(out, 1)
			std[n.Name] = v
		}
	}); err != nil {
		t.Fatal(err)
	}
	for _, b := range res.Blocks {
		if b.Kind != "repvgg" && b.InputStats != src {
			t.Errorf("block %s input stats from %q; want %q", b.Name, b.InputStats, src)
		}
		if b.SumStats != src {
			t.Errorf("block %s sum stats from %q; want %q", b.Name, b.SumStats, src)
		}
		for _, conv := range b.Convs {
			l := bnOf[conv]
			bn := res.Graph.Node(l.BN)
			gamma := bn.P("weight")
			for o, k := range l.Kinds {
				if k == KindInner {
					continue
				}
				var want float64
				switch src {
				case SourceCalib:
					want = math.Sqrt(std[conv][o] + bn.Eps)
				case SourceCheckpoint:
					node := g.Node(b.Add)
					if k == KindReserved && b.Kind != "repvgg" {
						node = g.Node(b.Input)
					}
					want = math.Sqrt(float64(node.P("act_var")[l.Origin[o]]) + bn.Eps)
				default:
					want = math.Sqrt(1 + bn.Eps)
				}
				// The test measures the std on the converted net's float32
				// conv outputs, RM on the original's sums: allow for rounding.
				if d := math.Abs(float64(gamma[o]) - want); d > 1e-3*want+1e-5 {
					t.Errorf("%s γ[%d] (%v) got %.6g; want %.6g (std of the carried channel, %s)", l.BN, o, k, gamma[o], want, src)
				}
			}
		}
	}
}

func TestConvertNetworks(t *testing.T) {
	narrow50 := func() (*nn.Graph, error) {
		s, err := nn.StandardResNet("resnet50", 3, 10)
		if err != nil {
			return nil, err
		}
		s.StemWidth = 8
		s.Blocks = nn.ResNetBlocks([]int{3, 4, 6, 3}, []int{4, 8, 8, 16}, 8, true)
		g := s.Build(3)
		g.Arch = "resnet50"
		return g, nil
	}
	build := func(arch string) func() (*nn.Graph, error) {
		return func() (*nn.Graph, error) { return nn.Build(arch, 3, 10, 3) }
	}
	tests := []struct {
		name   string
		build  func() (*nn.Graph, error)
		in     nn.Shape
		blocks int
		arch   string
	}{
		{"resnet20", build("resnet20"), nn.Shape{C: 3, H: 15, W: 15}, 9, "rmnet20"},
		{"resnet18", build("resnet18"), nn.Shape{C: 3, H: 32, W: 32}, 8, "rmnet18"},
		{"resnet50-narrow", narrow50, nn.Shape{C: 3, H: 33, W: 33}, 16, "rmnet50"},
		{"mobilenet_v2", build("mobilenet_v2"), nn.Shape{C: 3, H: 32, W: 32}, 10, "mobilenet_v2-plain"},
	}
	for i, tt := range tests {
		for _, keep := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/keep=%v", tt.name, keep), func(t *testing.T) {
				if testing.Short() && tt.name == "resnet18" {
					t.Skip("short")
				}
				g, err := tt.build()
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(uint64(i), 9))
				randomize(t, g, tt.in, rng, nil)
				opt := Options{KeepBN: keep}
				if keep {
					opt.Calib = RandomInput(2, tt.in, 7)
				}
				res, err := Convert(g, opt)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Blocks) != tt.blocks {
					t.Errorf("blocks got %d; want %d", len(res.Blocks), tt.blocks)
				}
				if res.Graph.Arch != tt.arch {
					t.Errorf("arch got %q; want %q", res.Graph.Arch, tt.arch)
				}
				x := RandomInput(2, tt.in, 11)
				checkEquivalent(t, g, res, x)
				if keep {
					checkKeptStats(t, g, res, SourceCalib, opt.Calib)
				}
				rep, err := Compare(g, res.Graph, x)
				if err != nil {
					t.Fatal(err)
				}
				if rep.MaxRelErr > tol {
					t.Errorf("Compare rel error got %.3g; want ≤ %g", rep.MaxRelErr, tol)
				}
				if rep.ParamsAfter <= rep.ParamsBefore || rep.ChannelsAfter <= rep.ChannelsBefore {
					t.Errorf("RM must widen: params %d → %d, channels %d → %d", rep.ParamsBefore, rep.ParamsAfter, rep.ChannelsBefore, rep.ChannelsAfter)
				}
				t.Logf("params %d → %d, MACs %d → %d, channels %d → %d, rel err %.2g", rep.ParamsBefore, rep.ParamsAfter, rep.MACsBefore, rep.MACsAfter, rep.ChannelsBefore, rep.ChannelsAfter, rep.MaxRelErr)
			})
		}
	}
}

func TestChannels(t *testing.T) {
	tests := []struct {
		arch       string
		resnet     int // inner channels: what --form resnet can prune
		convertedS int // every conv output of the plain net
	}{
		// resnet20: conv1 of 3×3 blocks at widths 16/32/64; plain: stem 16 + per block (C_in + mid) + out.
		{"resnet20", 3*16 + 3*32 + 3*64, 16 + (32+16)*3 + (16 + 32 + 32) + (64+32)*2 + (32 + 64 + 64) + (128+64)*2},
		{"resnet18", 2 * (64 + 128 + 256 + 512), -1},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			g, err := nn.Build(tt.arch, 3, 10, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := Channels(g); got != tt.resnet {
				t.Errorf("residual form got %d; want %d", got, tt.resnet)
			}
			res, err := Convert(g, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.convertedS
			if want < 0 {
				want = convChannels(res.Graph)
			}
			if got := Channels(res.Graph); got != want {
				t.Errorf("plain form got %d; want %d", got, want)
			}
		})
	}
}

func TestFusion(t *testing.T) {
	build := mobilenet(
		nn.MBBlock{Prefix: "features.1", In: 8, Hidden: 4, Out: 16, Stride: 1, Expand: true},
		nn.MBBlock{Prefix: "features.2", In: 16, Hidden: 8, Out: 16, Stride: 1, Expand: true},
		nn.MBBlock{Prefix: "features.3", In: 16, Hidden: 48, Out: 16, Stride: 1, Expand: true},
	)
	in := nn.Shape{C: 3, H: 9, W: 9}
	tests := []struct {
		policy    FusePolicy
		wantFused int
	}{
		{FuseNever, 0},
		{FuseNoLoss, -1}, // those that do not lose
		{FuseAll, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.policy), func(t *testing.T) {
			g := build()
			randomize(t, g, in, rand.New(rand.NewPCG(1, 2)), nil)
			res, err := Convert(g, Options{Fuse: tt.policy, Shape: in})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Fusions) != 3 {
				t.Fatalf("fusion candidates got %d (%+v); want 3", len(res.Fusions), res.Fusions)
			}
			fused, saved := 0, int64(0)
			for _, f := range res.Fusions {
				if f.Fused {
					fused++
					saved += f.MACsBefore - f.MACsAfter
				}
				if tt.policy == FuseNoLoss && f.Fused != (f.MACsAfter <= f.MACsBefore) {
					t.Errorf("%s→%s: fused %v with MACs %d → %d", f.A, f.B, f.Fused, f.MACsBefore, f.MACsAfter)
				}
			}
			if tt.wantFused >= 0 && fused != tt.wantFused {
				t.Errorf("fused got %d; want %d", fused, tt.wantFused)
			}
			if tt.policy == FuseNoLoss && (fused == 0 || fused == 3) {
				t.Errorf("fused got %d; this net has both winning and losing candidates", fused)
			}
			checkEquivalent(t, g, res, RandomInput(2, in, 3))
			ref, err := Convert(g, Options{Fuse: FuseNever})
			if err != nil {
				t.Fatal(err)
			}
			a, _ := ref.Graph.Summarize(in)
			b, _ := res.Graph.Summarize(in)
			if a.MACs-b.MACs != saved {
				t.Errorf("MACs saved got %d; fusion report says %d", a.MACs-b.MACs, saved)
			}
		})
	}
}

func TestRepVGGDeploy(t *testing.T) {
	for _, r := range []float64{0, 0.25, 0.5} {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			g, err := nn.BuildRepVGG("repvgg-cifar", 3, 10, r, 1)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := nn.StandardRepVGG("repvgg-cifar", 3, 10, r)
			res, err := RepVGGDeploy(g)
			if err != nil {
				t.Fatal(err)
			}
			want := s.Reserved()
			convs := 0
			for _, n := range res.Graph.Nodes {
				if n.Op != nn.OpConv {
					continue
				}
				convs++
				if n.Kernel != 3 || n.P("bias") == nil {
					t.Errorf("%s: kernel %d, bias %v; want one 3×3 conv with bias", n.Name, n.Kernel, n.P("bias") != nil)
				}
				b := strings.TrimSuffix(n.Name, ".rbr_reparam")
				if got := res.Reserved[n.Name]; got != want[b] {
					t.Errorf("%s reserved got %d; want %d", n.Name, got, want[b])
				}
			}
			if convs != 7 {
				t.Errorf("convs got %d; want 7 (one per block)", convs)
			}
			checkEquivalent(t, g, res, RandomInput(2, nn.Shape{C: 3, H: 12, W: 12}, 1))
		})
	}
	t.Run("rejects-resnet", func(t *testing.T) {
		g, _ := nn.Build("resnet20", 3, 10, 1)
		if _, err := RepVGGDeploy(g); !errors.Is(err, ErrPattern) {
			t.Errorf("got %v; want ErrPattern", err)
		}
	})
	t.Run("a0-params", func(t *testing.T) {
		// RepVGG-A0 deploy: 8.30M params (Ding et al. 2021, Table 2).
		g, err := nn.BuildRepVGG("repvgg-a0", 3, 1000, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		res, err := RepVGGDeploy(g)
		if err != nil {
			t.Fatal(err)
		}
		s, err := res.Graph.Summarize(nn.Shape{C: 3, H: 224, W: 224})
		if err != nil {
			t.Fatal(err)
		}
		if s.Params < 8.29e6 || s.Params > 8.32e6 {
			t.Errorf("params got %d; want ≈ 8.30M", s.Params)
		}
	})
}

func TestConvertErrors(t *testing.T) {
	conv := func(name, in string, cin, cout, k, stride, pad int) *nn.Node {
		n := &nn.Node{Name: name, Op: nn.OpConv, Inputs: []string{in}, In: cin, Out: cout, Kernel: k, Stride: stride, Pad: pad}
		n.SetP("weight", []int{cout, cin, k, k}, make([]float32, cout*cin*k*k))
		return n
	}
	base := func() []*nn.Node {
		return []*nn.Node{{Name: "input", Op: nn.OpInput, Out: 4}, conv("stem", "input", 4, 4, 3, 1, 1), {Name: "x", Op: nn.OpReLU, Inputs: []string{"stem"}}}
	}
	tests := []struct {
		name  string
		nodes []*nn.Node
		want  string // the node the error must name
	}{
		{"pool-in-branch", append(base(), conv("b.conv1", "x", 4, 4, 3, 1, 1), &nn.Node{Name: "b.relu1", Op: nn.OpReLU, Inputs: []string{"b.conv1"}},
			&nn.Node{Name: "b.pool", Op: nn.OpMaxPool, Inputs: []string{"b.relu1"}, Kernel: 3, Stride: 1, Pad: 1},
			conv("b.conv2", "b.pool", 4, 4, 3, 1, 1), &nn.Node{Name: "b.add", Op: nn.OpAdd, Inputs: []string{"b.conv2", "x"}}), "b.pool"},
		{"3x3-shortcut", append(base(), conv("b.conv1", "x", 4, 4, 3, 1, 1), &nn.Node{Name: "b.relu1", Op: nn.OpReLU, Inputs: []string{"b.conv1"}},
			conv("b.conv2", "b.relu1", 4, 4, 3, 1, 1), conv("b.sc", "x", 4, 4, 3, 1, 1), &nn.Node{Name: "b.add", Op: nn.OpAdd, Inputs: []string{"b.conv2", "b.sc"}}), "b.sc"},
		{"even-kernel", append(base(), conv("b.conv1", "x", 4, 4, 2, 1, 0), &nn.Node{Name: "b.relu1", Op: nn.OpReLU, Inputs: []string{"b.conv1"}},
			conv("b.conv2", "b.relu1", 4, 4, 3, 1, 1), &nn.Node{Name: "b.add", Op: nn.OpAdd, Inputs: []string{"b.conv2", "x"}}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &nn.Graph{Nodes: tt.nodes, Input: [3]int{4, 8, 8}}
			_, err := Convert(g, Options{})
			if err == nil {
				t.Fatal("got nil error")
			}
			if tt.want != "" && (!errors.Is(err, ErrPattern) || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v; want ErrPattern naming %s", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "rm: ") {
				t.Errorf("error %q lacks the rm: prefix", err)
			}
		})
	}
}
