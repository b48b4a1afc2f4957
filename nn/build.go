package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// builder appends nodes to a graph and initialises their parameters the way
// PyTorch's torchvision models do (Kaiming-normal convs, unit BatchNorms).
type builder struct {
	g   *Graph
	rng *rand.Rand
}

func newBuilder(inC int, seed uint64) *builder {
	g := &Graph{Nodes: []*Node{{Name: "input", Op: OpInput, Out: inC}}}
	g.Input[0] = inC
	return &builder{g: g, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
}

func (b *builder) add(n *Node) string {
	b.g.Nodes = append(b.g.Nodes, n)
	return n.Name
}

func (b *builder) conv(name, in string, cin, cout, k, stride, pad, groups int, bias bool) string {
	n := &Node{Name: name, Op: OpConv, Inputs: []string{in}, In: cin, Out: cout, Kernel: k, Stride: stride, Pad: pad, Groups: groups}
	if groups == 1 {
		n.Groups = 0
	}
	w := make([]float32, cout*(cin/groups)*k*k)
	std := math.Sqrt(2 / float64(cout*k*k/groups)) // fan_out, as torchvision
	for i := range w {
		w[i] = float32(b.rng.NormFloat64() * std)
	}
	n.SetP("weight", []int{cout, cin / groups, k, k}, w)
	if bias {
		n.SetP("bias", []int{cout}, make([]float32, cout))
	}
	return b.add(n)
}

func (b *builder) bn(name, in string, c int) string {
	n := &Node{Name: name, Op: OpBatchNorm, Inputs: []string{in}, Eps: 1e-5}
	ones := func() []float32 {
		v := make([]float32, c)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	n.SetP("weight", []int{c}, ones())
	n.SetP("bias", []int{c}, make([]float32, c))
	n.SetP("running_mean", []int{c}, make([]float32, c))
	n.SetP("running_var", []int{c}, ones())
	return b.add(n)
}

// mask appends a per-channel mask initialised to 1.
func (b *builder) mask(name, in string, c int) string {
	n := &Node{Name: name, Op: OpMask, Inputs: []string{in}}
	ones := make([]float32, c)
	for i := range ones {
		ones[i] = 1
	}
	n.SetP("weight", []int{c}, ones)
	return b.add(n)
}

func (b *builder) act(name, in string, op Op) string {
	return b.add(&Node{Name: name, Op: op, Inputs: []string{in}})
}

func (b *builder) linear(name, in string, cin, cout int) string {
	n := &Node{Name: name, Op: OpLinear, Inputs: []string{in}, In: cin, Out: cout}
	bound := 1 / math.Sqrt(float64(cin))
	w := make([]float32, cout*cin)
	for i := range w {
		w[i] = float32((2*b.rng.Float64() - 1) * bound)
	}
	bias := make([]float32, cout)
	for i := range bias {
		bias[i] = float32((2*b.rng.Float64() - 1) * bound)
	}
	n.SetP("weight", []int{cout, cin}, w)
	n.SetP("bias", []int{cout}, bias)
	return b.add(n)
}

// BlockSpec is one residual block of a ResNet.
// BasicBlock: conv1 3×3/s In→Mid, conv2 3×3 Mid→Out.
// Bottleneck: conv1 1×1 In→Mid, conv2 3×3/s Mid→Mid2, conv3 1×1 Mid2→Out.
type BlockSpec struct {
	Prefix     string // e.g. layer2.0
	Bottleneck bool
	In, Mid    int
	Mid2, Out  int
	Stride     int
	Downsample bool // 1×1/s conv + BN projection shortcut; else identity
	// ShortcutScale puts a per-channel scale (a depthwise 1×1 conv named
	// <prefix>.shortcut) on an identity shortcut: the RMNet reference code's
	// mask_res and mask2 fold into it.
	ShortcutScale bool
}

// ResNetSpec describes a ResNet with torchvision key names.
type ResNetSpec struct {
	InChannels int
	StemWidth  int
	StemKernel int  // 7 (ImageNet stem, stride 2, with max-pool) or 3 (CIFAR stem, stride 1)
	MaxPool    bool // 3×3/2 max-pool after the stem
	Blocks     []BlockSpec
	Classes    int
	// Masks adds the RMNet reference code's learned per-channel masks
	// (OpMask, initialised to 1): mask1 after the stem's BN and every block's
	// bn1 (mask_mid after a Bottleneck's bn2), mask_res.0 followed by the ReLU
	// mask_res.1 on the block input as the shortcut reads it, and mask2 after
	// the residual sum, before the block's ReLU. Node names match the
	// reference code's state-dict keys.
	Masks bool
}

// Build makes the graph with freshly initialised weights (seeded).
func (s ResNetSpec) Build(seed uint64) *Graph {
	b := newBuilder(s.InChannels, seed)
	stride, pad := 1, 1
	if s.StemKernel == 7 {
		stride, pad = 2, 3
	}
	x := b.conv("conv1", "input", s.InChannels, s.StemWidth, s.StemKernel, stride, pad, 1, false)
	x = b.bn("bn1", x, s.StemWidth)
	mask := func(name, in string, c int) string {
		if !s.Masks {
			return in
		}
		return b.mask(name, in, c)
	}
	x = mask("mask1", x, s.StemWidth)
	x = b.act("relu", x, OpReLU)
	if s.MaxPool {
		x = b.add(&Node{Name: "maxpool", Op: OpMaxPool, Inputs: []string{x}, Kernel: 3, Stride: 2, Pad: 1})
	}
	c := s.StemWidth
	for _, bl := range s.Blocks {
		p := bl.Prefix + "."
		var y string
		if bl.Bottleneck {
			y = b.conv(p+"conv1", x, bl.In, bl.Mid, 1, 1, 0, 1, false)
			y = b.bn(p+"bn1", y, bl.Mid)
			y = mask(p+"mask1", y, bl.Mid)
			y = b.act(p+"relu1", y, OpReLU)
			y = b.conv(p+"conv2", y, bl.Mid, bl.Mid2, 3, bl.Stride, 1, 1, false)
			y = b.bn(p+"bn2", y, bl.Mid2)
			y = mask(p+"mask_mid", y, bl.Mid2)
			y = b.act(p+"relu2", y, OpReLU)
			y = b.conv(p+"conv3", y, bl.Mid2, bl.Out, 1, 1, 0, 1, false)
			y = b.bn(p+"bn3", y, bl.Out)
		} else {
			y = b.conv(p+"conv1", x, bl.In, bl.Mid, 3, bl.Stride, 1, 1, false)
			y = b.bn(p+"bn1", y, bl.Mid)
			y = mask(p+"mask1", y, bl.Mid)
			y = b.act(p+"relu1", y, OpReLU)
			y = b.conv(p+"conv2", y, bl.Mid, bl.Out, 3, 1, 1, 1, false)
			y = b.bn(p+"bn2", y, bl.Out)
		}
		sc := x
		if s.Masks {
			sc = b.mask(p+"mask_res.0", sc, bl.In)
			sc = b.act(p+"mask_res.1", sc, OpReLU)
		}
		if bl.Downsample {
			sc = b.conv(p+"downsample.0", sc, bl.In, bl.Out, 1, bl.Stride, 0, 1, false)
			sc = b.bn(p+"downsample.1", sc, bl.Out)
		} else if bl.ShortcutScale && !s.Masks {
			sc = b.conv(p+"shortcut", x, bl.In, bl.In, 1, 1, 0, bl.In, false)
			w := b.g.Nodes[len(b.g.Nodes)-1].P("weight")
			for i := range w {
				w[i] = 1
			}
		}
		y = b.add(&Node{Name: p + "add", Op: OpAdd, Inputs: []string{y, sc}})
		y = mask(p+"mask2", y, bl.Out)
		x = b.act(p+"relu", y, OpReLU)
		c = bl.Out
	}
	x = b.act("avgpool", x, OpGlobalAvgPool)
	x = b.act("flatten", x, OpFlatten)
	b.linear("fc", x, c, s.Classes)
	b.g.Form = "resnet"
	return b.g
}

// StandardResNet returns the spec of a named ResNet: resnet18|34|50|101|152
// (torchvision, ImageNet stem), resnet20|32|44|56|110 (CIFAR, 3 stages, base
// width 16, 1×1 projections) or cifar-resnet18|34 (CIFAR stem, 4 stages, base 64).
func StandardResNet(arch string, inC, classes int) (ResNetSpec, error) {
	s := ResNetSpec{InChannels: inC, Classes: classes}
	var counts []int
	bottleneck := false
	base := 64
	switch arch {
	case "resnet18", "cifar-resnet18":
		counts = []int{2, 2, 2, 2}
	case "resnet34", "cifar-resnet34":
		counts = []int{3, 4, 6, 3}
	case "resnet50":
		counts, bottleneck = []int{3, 4, 6, 3}, true
	case "resnet101":
		counts, bottleneck = []int{3, 4, 23, 3}, true
	case "resnet152":
		counts, bottleneck = []int{3, 8, 36, 3}, true
	case "resnet20", "resnet32", "resnet44", "resnet56", "resnet110":
		var depth int
		fmt.Sscanf(arch, "resnet%d", &depth)
		n := (depth - 2) / 6
		counts, base = []int{n, n, n}, 16
	default:
		return s, fmt.Errorf("nn: unknown architecture %q", arch)
	}
	imagenet := len(arch) > 6 && arch[:6] == "resnet" && base == 64
	s.StemWidth = base
	s.StemKernel = 3
	if imagenet {
		s.StemKernel, s.MaxPool = 7, true
	}
	widths := make([]int, len(counts))
	for i := range counts {
		widths[i] = base << i
	}
	s.Blocks = ResNetBlocks(counts, widths, base, bottleneck)
	return s, nil
}

// ResNetBlocks lays out uniform stages: stage i has counts[i] blocks of inner
// width widths[i] (×4 outputs for Bottlenecks); the first block of every stage
// after the first has stride 2; projections where stride or width changes.
func ResNetBlocks(counts, widths []int, stemWidth int, bottleneck bool) []BlockSpec {
	var blocks []BlockSpec
	in := stemWidth
	for i, n := range counts {
		for j := 0; j < n; j++ {
			bl := BlockSpec{Prefix: fmt.Sprintf("layer%d.%d", i+1, j), Bottleneck: bottleneck, In: in, Mid: widths[i], Stride: 1}
			if i > 0 && j == 0 {
				bl.Stride = 2
			}
			bl.Out = widths[i]
			if bottleneck {
				bl.Mid2, bl.Out = widths[i], 4*widths[i]
			}
			bl.Downsample = bl.Stride != 1 || bl.In != bl.Out
			blocks = append(blocks, bl)
			in = bl.Out
		}
	}
	return blocks
}

// MBBlock is one MobileNetV2 inverted residual with torchvision key names.
// Expand is false for expand ratio 1 (no 1×1 expansion conv).
type MBBlock struct {
	Prefix      string // features.N
	In, Hidden  int
	Out, Stride int
	Expand      bool
}

// Residual reports whether the block adds its input (stride 1, equal widths).
func (m MBBlock) Residual() bool { return m.Stride == 1 && m.In == m.Out }

// MobileNetV2Spec describes a torchvision MobileNetV2.
type MobileNetV2Spec struct {
	InChannels, StemWidth, StemStride int
	Blocks                            []MBBlock
	LastWidth, Classes                int
}

// mbv2Settings are torchvision's (t, c, n, s) rows.
var mbv2Settings = [][4]int{{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}}

// MobileNetV2Strides returns the stride of each of the 17 inverted residuals.
func MobileNetV2Strides() []int {
	var s []int
	for _, row := range mbv2Settings {
		for i := 0; i < row[2]; i++ {
			if i == 0 {
				s = append(s, row[3])
			} else {
				s = append(s, 1)
			}
		}
	}
	return s
}

func makeDivisible(v float64, d int) int {
	n := max(d, int(v+float64(d)/2)/d*d)
	if float64(n) < 0.9*v {
		n += d
	}
	return n
}

// StandardMobileNetV2 returns torchvision's mobilenet_v2(width_mult) spec.
func StandardMobileNetV2(inC, classes int, widthMult float64) MobileNetV2Spec {
	s := MobileNetV2Spec{InChannels: inC, StemStride: 2, Classes: classes}
	s.StemWidth = makeDivisible(32*widthMult, 8)
	s.LastWidth = makeDivisible(1280*max(1, widthMult), 8)
	in, k := s.StemWidth, 1
	for _, row := range mbv2Settings {
		out := makeDivisible(float64(row[1])*widthMult, 8)
		for i := 0; i < row[2]; i++ {
			st := 1
			if i == 0 {
				st = row[3]
			}
			s.Blocks = append(s.Blocks, MBBlock{Prefix: fmt.Sprintf("features.%d", k), In: in, Hidden: int(math.Round(float64(in * row[0]))), Out: out, Stride: st, Expand: row[0] != 1})
			in = out
			k++
		}
	}
	return s
}

// Build makes the graph with freshly initialised weights (seeded).
func (s MobileNetV2Spec) Build(seed uint64) *Graph {
	b := newBuilder(s.InChannels, seed)
	x := b.conv("features.0.0", "input", s.InChannels, s.StemWidth, 3, s.StemStride, 1, 1, false)
	x = b.bn("features.0.1", x, s.StemWidth)
	x = b.act("features.0.2", x, OpReLU6)
	c := s.StemWidth
	for _, m := range s.Blocks {
		p := m.Prefix + ".conv."
		y, i := x, 0
		if m.Expand {
			y = b.conv(p+"0.0", y, m.In, m.Hidden, 1, 1, 0, 1, false)
			y = b.bn(p+"0.1", y, m.Hidden)
			y = b.act(p+"0.2", y, OpReLU6)
			i = 1
		}
		y = b.conv(fmt.Sprintf("%s%d.0", p, i), y, m.Hidden, m.Hidden, 3, m.Stride, 1, m.Hidden, false)
		y = b.bn(fmt.Sprintf("%s%d.1", p, i), y, m.Hidden)
		y = b.act(fmt.Sprintf("%s%d.2", p, i), y, OpReLU6)
		y = b.conv(fmt.Sprintf("%s%d", p, i+1), y, m.Hidden, m.Out, 1, 1, 0, 1, false)
		y = b.bn(fmt.Sprintf("%s%d", p, i+2), y, m.Out)
		if m.Residual() {
			y = b.add(&Node{Name: m.Prefix + ".add", Op: OpAdd, Inputs: []string{y, x}})
		}
		x, c = y, m.Out
	}
	last := fmt.Sprintf("features.%d", len(s.Blocks)+1)
	x = b.conv(last+".0", x, c, s.LastWidth, 1, 1, 0, 1, false)
	x = b.bn(last+".1", x, s.LastWidth)
	x = b.act(last+".2", x, OpReLU6)
	x = b.act("avgpool", x, OpGlobalAvgPool)
	x = b.act("flatten", x, OpFlatten)
	b.linear("classifier.1", x, s.LastWidth, s.Classes)
	b.g.Form = "resnet"
	return b.g
}

// Build returns a freshly initialised network by --arch name.
func Build(arch string, inC, classes int, seed uint64) (*Graph, error) {
	var g *Graph
	switch arch {
	case "mobilenet_v2":
		g = StandardMobileNetV2(inC, classes, 1).Build(seed)
	case "repvgg-a0", "repvgg-cifar":
		return BuildRepVGG(arch, inC, classes, 0, seed)
	default:
		s, err := StandardResNet(arch, inC, classes)
		if err != nil {
			return nil, err
		}
		g = s.Build(seed)
	}
	g.Arch, g.Classes = arch, classes
	return g, nil
}

// Archs lists the names Build accepts.
var Archs = []string{"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
	"resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "cifar-resnet18", "cifar-resnet34", "mobilenet_v2", "repvgg-a0", "repvgg-cifar"}
