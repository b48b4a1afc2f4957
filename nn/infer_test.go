package nn

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// refLayout writes g's weights as the RMNet reference code saves them:
// module.-prefixed keys, masks as [C,1,1,1] depthwise weights, and per block
// running1 (block input) / running2 (residual sum) BatchNorm buffers with
// num_batches_tracked (0 on projection blocks' running1 when tracked is
// set, as the reference forward leaves them; none when it is not).
func refLayout(g *Graph, spec ResNetSpec, rng *rand.Rand, tracked bool) *StateDict {
	sd := NewStateDict()
	src := g.StateDict()
	for _, k := range src.Keys {
		t := src.Tensors[k]
		if strings.Contains(k, "mask") {
			c := Numel(ShapeOf(t))
			t = NewTensor([]int{c, 1, 1, 1}, Floats(t))
		}
		sd.Add("module."+k, t)
	}
	for _, bl := range spec.Blocks {
		for _, r := range []struct {
			name string
			c    int
		}{{"running1", bl.In}, {"running2", bl.Out}} {
			p := "module." + bl.Prefix + "." + r.name + "."
			m, v := make([]float32, r.c), make([]float32, r.c)
			for i := range m {
				m[i], v[i] = float32(rng.NormFloat64()), float32(0.1+rng.Float64())
			}
			n := float32(100)
			if r.name == "running1" && (bl.Downsample || bl.Stride != 1) {
				n = 0
				for i := range m {
					m[i], v[i] = 0, 1
				}
			}
			sd.Add(p+"running_mean", NewTensor([]int{r.c}, m))
			sd.Add(p+"running_var", NewTensor([]int{r.c}, v))
			if tracked {
				sd.Add(p+"num_batches_tracked", NewTensor([]int{1}, []float32{n}))
			}
		}
	}
	return sd
}

// The reference code's training layout (running1/running2 on every block, no
// masks) and pruning layout (masks too) load exactly, BasicBlock and
// Bottleneck, with and without num_batches_tracked; masks stay mask nodes
// and the buffers become act_mean/act_var of the block input and the sum.
func TestFromStateDictRMNetLayouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	basic, _ := StandardResNet("resnet20", 3, 10)
	bott := ResNetSpec{InChannels: 3, StemWidth: 8, StemKernel: 3, Classes: 5,
		Blocks: ResNetBlocks([]int{2, 2}, []int{4, 8}, 8, true)}
	imagenet := ResNetSpec{InChannels: 3, StemWidth: 8, StemKernel: 7, MaxPool: true, Classes: 4,
		Blocks: ResNetBlocks([]int{2, 1}, []int{8, 16}, 8, false)}
	for _, tc := range []struct {
		name    string
		spec    ResNetSpec
		masks   bool
		tracked bool
	}{
		{"basic/train", basic, false, true},
		{"basic/train/untracked", basic, false, false},
		{"basic/pruning", basic, true, true},
		{"bottleneck/train", bott, false, true},
		{"bottleneck/pruning/untracked", bott, true, false},
		{"imagenet-stem/pruning", imagenet, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Masks = tc.masks
			g := spec.Build(4)
			RandomizeBN(g, rng)
			if tc.masks {
				randomizeMasks(g, rng)
			}
			sd := refLayout(g, spec, rng, tc.tracked)
			h, err := FromStateDict(sd, "")
			if err != nil {
				t.Fatal(err)
			}
			if h.HasMasks() != tc.masks {
				t.Errorf("HasMasks got %v; want %v", h.HasMasks(), tc.masks)
			}
			if len(h.Nodes) != len(g.Nodes) {
				t.Fatalf("nodes got %d; want %d", len(h.Nodes), len(g.Nodes))
			}
			x := randAct(rng, 2, Shape{3, 16, 16})
			if spec.MaxPool {
				x = randAct(rng, 1, Shape{3, 40, 40})
			}
			want, _ := g.Forward(x, nil)
			got, err := h.Forward(x, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.D, want.D) {
				rel, _ := RelError(got.D, want.D)
				t.Errorf("loaded net differs from the saved one: rel %g; want bit-identical", rel)
			}
			input := "relu"
			if spec.MaxPool {
				input = "maxpool"
			}
			for _, bl := range spec.Blocks {
				p := bl.Prefix + "."
				for _, r := range []struct{ key, node string }{{p + "running1.", input}, {p + "running2.", p + "add"}} {
					m := Floats(sd.Tensors["module."+r.key+"running_mean"])
					n := h.Node(r.node)
					projection := r.key == p+"running1." && (bl.Downsample || bl.Stride != 1)
					switch {
					case projection && tc.tracked:
						if n.P("act_mean") != nil {
							t.Errorf("%s: act_mean set from an untracked %s", r.node, r.key)
						}
					case !slices.Equal(n.P("act_mean"), m):
						t.Errorf("%s act_mean got %v; want %s running_mean %v", r.node, n.P("act_mean"), r.key, m)
					}
				}
				input = p + "relu"
			}
		})
	}
}

// A mask of the wrong width is an architecture mismatch, not a panic.
func TestFromStateDictBadMask(t *testing.T) {
	spec, _ := StandardResNet("resnet20", 3, 10)
	spec.Masks = true
	g := spec.Build(1)
	sd := refLayout(g, spec, rand.New(rand.NewPCG(1, 2)), true)
	sd.Tensors["module.layer1.0.mask2.weight"] = NewTensor([]int{3, 1, 1, 1}, []float32{1, 1, 1})
	if _, err := FromStateDict(sd, ""); err == nil || !strings.Contains(err.Error(), "layer1.0.mask2.weight") {
		t.Errorf("got %v; want an error naming layer1.0.mask2.weight", err)
	}
}

// FuzzFromStateDict damages a reference-layout state dict (masks and
// running1/running2) key by key: loading must fail with an error or give a
// consistent graph, never panic.
func FuzzFromStateDict(f *testing.F) {
	spec := ResNetSpec{InChannels: 1, StemWidth: 4, StemKernel: 3, Classes: 3, Masks: true,
		Blocks: ResNetBlocks([]int{1, 1}, []int{4, 6}, 4, false)}
	g := spec.Build(1)
	base := refLayout(g, spec, rand.New(rand.NewPCG(1, 1)), true)
	f.Add([]byte{})
	f.Add([]byte{0, 5, 1, 9, 2, 14})
	f.Add([]byte{3, 3, 3, 7, 0, 40})
	f.Fuzz(func(t *testing.T, ops []byte) {
		sd := NewStateDict()
		for _, k := range base.Keys {
			sd.Add(k, base.Tensors[k])
		}
		for i := 0; i+1 < len(ops) && i < 40; i += 2 {
			k := sd.Keys[int(ops[i+1])%len(sd.Keys)]
			v := Floats(sd.Tensors[k])
			switch ops[i] % 4 {
			case 0: // drop
				delete(sd.Tensors, k)
				sd.Keys = slices.DeleteFunc(sd.Keys, func(s string) bool { return s == k })
			case 1: // one value fewer
				if len(v) > 1 {
					sd.Tensors[k] = NewTensor([]int{len(v) - 1}, v[:len(v)-1])
				}
			case 2: // flat shape
				sd.Tensors[k] = NewTensor([]int{len(v)}, v)
			case 3: // an untracked buffer
				sd.Tensors[k] = NewTensor([]int{1}, []float32{0})
			}
			if len(sd.Keys) == 0 {
				return
			}
		}
		h, err := FromStateDict(sd, "")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has several lines: %q", err)
			}
			return
		}
		if _, err := h.Forward(NewAct(1, 1, 6, 6), nil); err != nil && !strings.Contains(err.Error(), "shape") {
			t.Errorf("loaded graph does not run: %v", err)
		}
	})
}

// Tensors that share memory in the state dict (views of one PyTorch
// storage) become separate parameters: changing one leaves the other as it
// was. Tensors that share nothing are taken over without a copy.
func TestFromStateDictSharedStorage(t *testing.T) {
	spec, _ := StandardResNet("resnet20", 3, 10)
	g := spec.Build(1)
	src := g.StateDict()
	sd := NewStateDict()
	for _, k := range src.Keys {
		sd.Add(k, NewTensor(ShapeOf(src.Tensors[k]), slices.Clone(Floats(src.Tensors[k]))))
	}
	// conv2 of block layer1.0 is a view of conv1's storage, and bn2's
	// running_var one of bn1's weight.
	a, b := "layer1.0.conv1.weight", "layer1.0.conv2.weight"
	sd.Tensors[b] = NewTensor(ShapeOf(sd.Tensors[b]), Floats(sd.Tensors[a]))
	w := Floats(sd.Tensors["layer1.0.bn1.weight"])
	sd.Tensors["layer1.0.bn2.running_var"] = NewTensor([]int{len(w)}, w)
	g2, err := FromStateDict(sd, "")
	if err != nil {
		t.Fatal(err)
	}
	param := func(node, p string) []float32 {
		for _, n := range g2.Nodes {
			if n.Name == node {
				return Floats(n.Params[p])
			}
		}
		t.Fatalf("no node %s", node)
		return nil
	}
	c1, c2 := param("layer1.0.conv1", "weight"), param("layer1.0.conv2", "weight")
	before := c2[0]
	c1[0] += 1
	if got := c2[0]; got != before {
		t.Errorf("conv2.weight[0] = %v after changing conv1.weight[0]; want %v (shared storage must be copied)", got, before)
	}
	g1, v2 := param("layer1.0.bn1", "weight"), param("layer1.0.bn2", "running_var")
	before = v2[0]
	g1[0] += 1
	if got := v2[0]; got != before {
		t.Errorf("bn2.running_var[0] = %v after changing bn1.weight[0]; want %v", got, before)
	}
	fc := Floats(sd.Tensors["fc.weight"])
	if got := param("fc", "weight"); &got[0] != &fc[0] {
		t.Errorf("fc.weight was copied; a tensor that shares no memory should be taken over")
	}
}
