package nn

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unsafe"
)

// ErrArch marks a state dict whose architecture cannot be inferred or does
// not match the requested one.
var ErrArch = errors.New("architecture mismatch")

// FromStateDict builds the network a PyTorch state dict describes and loads its
// weights. The architecture is inferred from key names and tensor shapes
// (widths are read from shapes, never assumed) unless arch names one of Archs.
// module. prefixes are stripped. The RMNet reference code's masks become mask
// nodes (ResNetSpec.Masks), and its running1/running2 statistics (pruning and
// training layouts) become act_mean/act_var of the block input and of the
// residual sum.
func FromStateDict(sd *StateDict, arch string) (*Graph, error) {
	t := map[string][]float32{}
	shape := map[string][]int{}
	tracked := map[string]float32{}
	shared := overlapping(sd)
	for _, k := range sd.Keys {
		name := k
		for strings.HasPrefix(name, "module.") {
			name = strings.TrimPrefix(name, "module.")
		}
		v := sd.Tensors[k]
		if strings.HasSuffix(name, ".num_batches_tracked") || name == "num_batches_tracked" {
			tracked[strings.TrimSuffix(name, "num_batches_tracked")] = Floats(v)[0]
			continue
		}
		if _, dup := t[name]; dup {
			return nil, fmt.Errorf("nn: key %q appears twice (with and without module.): %w", name, ErrArch)
		}
		// The graph takes the loaded data over (a second copy would double
		// the peak memory of a large upload); tensors that share memory with
		// another (views of one PyTorch storage) get their own copy, so that
		// training one parameter in place never changes another.
		data := Floats(v)
		if shared[k] {
			data = slices.Clone(data)
		}
		t[name] = data[:len(data):len(data)]
		shape[name] = ShapeOf(v)
	}
	sh := func(k string) []int { return shape[k] }
	var g *Graph
	var err error
	switch {
	case sh("features.0.0.weight") != nil:
		g, err = inferMobileNetV2(t, sh, arch)
	case sh("conv1.weight") != nil && sh("layer1.0.conv1.weight") != nil:
		g, err = inferResNet(t, shape, tracked, arch)
	default:
		keys := slices.Sorted(mapKeys(t))
		if len(keys) > 8 {
			keys = append(keys[:8], "…")
		}
		return nil, fmt.Errorf("nn: no known architecture has keys like %s (expected torchvision ResNet/MobileNetV2 or RMNet reference names): %w", strings.Join(keys, ", "), ErrArch)
	}
	if err != nil {
		return nil, err
	}
	if err := assign(g, t, shape); err != nil {
		return nil, err
	}
	return g, nil
}

// overlapping returns the keys whose data shares memory with another key's.
func overlapping(sd *StateDict) map[string]bool {
	type span struct {
		lo, hi uintptr
		key    string
	}
	var spans []span
	for _, k := range sd.Keys {
		v, ok := sd.Tensors[k]
		if !ok || v.IsScalar() {
			continue
		}
		d := Floats(v)
		if len(d) == 0 {
			continue
		}
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(d)))
		spans = append(spans, span{lo, lo + uintptr(len(d))*4, k})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	shared := map[string]bool{}
	var reach uintptr // the highest end so far
	last := -1        // the span that reaches it
	for i, s := range spans {
		if last >= 0 && s.lo < reach {
			shared[s.key], shared[spans[last].key] = true, true
		}
		if s.hi > reach {
			reach, last = s.hi, i
		}
	}
	return shared
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// assign copies tensors into the graph's parameters by <node>.<param> name,
// checking shapes, and fails on keys nothing consumes.
func assign(g *Graph, t map[string][]float32, shape map[string][]int) error {
	used := map[string]bool{}
	var missing []string
	for _, n := range g.Nodes {
		for p, cur := range n.Params {
			k := n.Name + "." + p
			data, ok := t[k]
			if !ok {
				if p == "act_mean" || p == "act_var" {
					continue
				}
				missing = append(missing, k)
				continue
			}
			want := ShapeOf(cur)
			got := shape[k]
			if Numel(got) != Numel(want) || (len(got) != len(want) && !(len(want) == 4 && len(got) == 2)) {
				return fmt.Errorf("nn: tensor %s has shape %v, the %s architecture needs %v: %w", k, got, g.Arch, want, ErrArch)
			}
			n.Params[p] = NewTensor(want, data)
			used[k] = true
		}
	}
	var extra []string
	for k := range t {
		if !used[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	switch {
	case len(missing) > 0 && len(extra) > 0:
		return fmt.Errorf("nn: %s: could not place keys %s; missing %s: %w", g.Arch, short(extra), short(missing), ErrArch)
	case len(missing) > 0:
		return fmt.Errorf("nn: %s: missing keys %s: %w", g.Arch, short(missing), ErrArch)
	case len(extra) > 0:
		return fmt.Errorf("nn: %s: could not place keys %s: %w", g.Arch, short(extra), ErrArch)
	}
	return nil
}

func short(keys []string) string {
	if len(keys) > 10 {
		return strings.Join(keys[:10], ", ") + fmt.Sprintf(" and %d more", len(keys)-10)
	}
	return strings.Join(keys, ", ")
}

func inferResNet(t map[string][]float32, shape map[string][]int, tracked map[string]float32, arch string) (*Graph, error) {
	sh := func(k string) []int { return shape[k] }
	stem := sh("conv1.weight")
	if len(stem) != 4 {
		return nil, fmt.Errorf("nn: conv1.weight has shape %v, want 4-d: %w", stem, ErrArch)
	}
	fc := sh("fc.weight")
	if len(fc) != 2 {
		return nil, fmt.Errorf("nn: ResNet keys without a 2-d fc.weight: %w", ErrArch)
	}
	var spec ResNetSpec
	if arch != "" {
		var err error
		if spec, err = StandardResNet(arch, stem[1], fc[0]); err != nil {
			return nil, fmt.Errorf("%w (--arch takes %s)", err, strings.Join(Archs, ", "))
		}
	} else {
		spec = ResNetSpec{InChannels: stem[1], StemWidth: stem[0], StemKernel: stem[2], Classes: fc[0]}
		if stem[2] != 7 && stem[2] != 3 {
			return nil, fmt.Errorf("nn: conv1.weight is %d×%d; ResNet stems are 7×7 or 3×3: %w", stem[2], stem[3], ErrArch)
		}
		spec.MaxPool = stem[2] == 7
		bottleneck := sh("layer1.0.conv3.weight") != nil
		var counts []int
		for i := 1; sh(fmt.Sprintf("layer%d.0.conv1.weight", i)) != nil; i++ {
			j := 0
			for sh(fmt.Sprintf("layer%d.%d.conv1.weight", i, j)) != nil {
				p := fmt.Sprintf("layer%d.%d", i, j)
				c1, c2 := sh(p+".conv1.weight"), sh(p+".conv2.weight")
				if len(c1) != 4 || len(c2) != 4 {
					return nil, fmt.Errorf("nn: %s convs are not 4-d: %w", p, ErrArch)
				}
				bl := BlockSpec{Prefix: p, Bottleneck: bottleneck, In: c1[1], Mid: c1[0], Out: c2[0], Stride: 1}
				if bottleneck {
					c3 := sh(p + ".conv3.weight")
					if len(c3) != 4 {
						return nil, fmt.Errorf("nn: %s.conv3.weight missing in a Bottleneck ResNet: %w", p, ErrArch)
					}
					bl.Mid2, bl.Out = c2[0], c3[0]
				}
				if i > 1 && j == 0 {
					bl.Stride = 2
				}
				bl.Downsample = sh(p+".downsample.0.weight") != nil
				spec.Blocks = append(spec.Blocks, bl)
				j++
			}
			counts = append(counts, j)
		}
		arch = resnetName(spec, counts, bottleneck)
	}
	masks, err := rmnetMasks(t, shape, &spec)
	if err != nil {
		return nil, err
	}
	spec.Masks = masks
	g := spec.Build(0)
	g.Arch, g.Classes = arch, spec.Classes
	if err := setRunningStats(g, t, tracked, spec); err != nil {
		return nil, err
	}
	return g, nil
}

func resnetName(s ResNetSpec, counts []int, bottleneck bool) string {
	per := 2
	if bottleneck {
		per = 3
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	depth := total*per + 2
	switch {
	case s.StemKernel == 7:
		return fmt.Sprintf("resnet%d", depth)
	case len(counts) == 3 && !bottleneck:
		return fmt.Sprintf("resnet%d", depth)
	default:
		return fmt.Sprintf("cifar-resnet%d", depth)
	}
}

// rmnetMasks prepares the RMNet reference code's pruning layout: its masks
// (1×1 depthwise convs, [C,1,1,1]) become the weights of OpMask nodes ([C])
// that spec.Masks builds — mask1 after the stem's and every block's bn1
// (mask_mid after a Bottleneck's bn2), mask_res.0 on the block input as the
// shortcut reads it, mask2 after the residual sum. A mask the checkpoint lacks
// while it has others is 1 (the identity). It reports whether the checkpoint
// has masks at all; without any the network is built without mask nodes.
func rmnetMasks(t map[string][]float32, shape map[string][]int, spec *ResNetSpec) (bool, error) {
	type want struct {
		key string
		c   int
	}
	wants := []want{{"mask1.weight", spec.StemWidth}}
	for _, bl := range spec.Blocks {
		p := bl.Prefix + "."
		wants = append(wants, want{p + "mask1.weight", bl.Mid})
		if bl.Bottleneck {
			wants = append(wants, want{p + "mask_mid.weight", bl.Mid2})
		}
		wants = append(wants, want{p + "mask_res.0.weight", bl.In}, want{p + "mask2.weight", bl.Out})
	}
	found := false
	for _, w := range wants {
		if _, ok := t[w.key]; ok {
			found = true
		}
	}
	if !found {
		return false, nil
	}
	for _, w := range wants {
		v, ok := t[w.key]
		switch {
		case !ok:
			v = make([]float32, w.c)
			for i := range v {
				v[i] = 1
			}
			t[w.key] = v
		case len(v) != w.c || (len(shape[w.key]) != 1 && !slices.Equal(shape[w.key], []int{w.c, 1, 1, 1})):
			return false, fmt.Errorf("nn: %s has shape %v, its layer has %d channels (want [%d] or [%d, 1, 1, 1]): %w", w.key, shape[w.key], w.c, w.c, w.c, ErrArch)
		}
		shape[w.key] = []int{w.c}
	}
	return true, nil
}

// setRunningStats turns the RMNet reference code's running1 (statistics of
// the block input, BatchNorm2d(affine=False)) and running2 (of the residual
// sum, before mask2) into act_mean/act_var of those nodes, when they were
// ever updated: a buffer whose num_batches_tracked is 0 counts as absent (the
// reference forward updates running1 on identity blocks only). Both the
// pruning layout and the ordinary training layout carry them.
func setRunningStats(g *Graph, t map[string][]float32, tracked map[string]float32, spec ResNetSpec) error {
	input := "relu"
	if spec.MaxPool {
		input = "maxpool"
	}
	for _, bl := range spec.Blocks {
		p := bl.Prefix + "."
		for _, r := range []struct {
			key, node string
			c         int
		}{{p + "running1.", input, bl.In}, {p + "running2.", p + "add", bl.Out}} {
			mean, vr := t[r.key+"running_mean"], t[r.key+"running_var"]
			if mean == nil && vr == nil {
				continue
			}
			if len(mean) != r.c || len(vr) != r.c {
				return fmt.Errorf("nn: %srunning_mean/running_var have %d/%d values, the block has %d channels there: %w", r.key, len(mean), len(vr), r.c, ErrArch)
			}
			delete(t, r.key+"running_mean")
			delete(t, r.key+"running_var")
			if n, ok := tracked[r.key]; ok && n == 0 {
				continue // never updated: absent
			}
			node := g.Node(r.node)
			node.SetP("act_mean", []int{r.c}, mean)
			node.SetP("act_var", []int{r.c}, vr)
		}
		input = p + "relu"
	}
	return nil
}

func inferMobileNetV2(t map[string][]float32, sh func(string) []int, arch string) (*Graph, error) {
	stem := sh("features.0.0.weight")
	cls := sh("classifier.1.weight")
	if len(stem) != 4 || len(cls) != 2 {
		return nil, fmt.Errorf("nn: MobileNetV2 keys need 4-d features.0.0.weight and 2-d classifier.1.weight: %w", ErrArch)
	}
	if arch != "" && arch != "mobilenet_v2" {
		return nil, fmt.Errorf("nn: --arch %s, but the keys are MobileNetV2's: %w", arch, ErrArch)
	}
	strides := MobileNetV2Strides()
	s := MobileNetV2Spec{InChannels: stem[1], StemWidth: stem[0], StemStride: 2, Classes: cls[0], LastWidth: cls[1]}
	in := stem[0]
	k := 1
	for ; sh(fmt.Sprintf("features.%d.conv.0.0.weight", k)) != nil; k++ {
		p := fmt.Sprintf("features.%d", k)
		first := sh(p + ".conv.0.0.weight")
		m := MBBlock{Prefix: p, In: in, Stride: 1}
		if k-1 < len(strides) {
			m.Stride = strides[k-1]
		}
		if first[1] == 1 && first[2] == 3 { // depthwise first: expand ratio 1
			m.Hidden = first[0]
			proj := sh(p + ".conv.1.weight")
			if len(proj) != 4 {
				return nil, fmt.Errorf("nn: %s.conv.1.weight missing: %w", p, ErrArch)
			}
			m.Out = proj[0]
		} else {
			m.Expand, m.Hidden = true, first[0]
			proj := sh(p + ".conv.2.weight")
			if len(proj) != 4 {
				return nil, fmt.Errorf("nn: %s.conv.2.weight missing: %w", p, ErrArch)
			}
			m.Out = proj[0]
		}
		s.Blocks = append(s.Blocks, m)
		in = m.Out
	}
	if len(s.Blocks) != len(strides) {
		return nil, fmt.Errorf("nn: MobileNetV2 with %d inverted residuals; torchvision's has %d: %w", len(s.Blocks), len(strides), ErrArch)
	}
	g := s.Build(0)
	g.Arch, g.Classes = "mobilenet_v2", s.Classes
	return g, nil
}
