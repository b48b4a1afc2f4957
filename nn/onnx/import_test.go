package onnx

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

func forward(t *testing.T, g *nn.Graph, in nn.Shape, seed uint64) []float32 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	x := nn.NewAct(2, in.C, in.H, in.W)
	for i := range x.D {
		x.D[i] = float32(rng.NormFloat64())
	}
	y, err := g.Forward(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	return y.D
}

// Import inverts export: re-exporting an imported model gives the same bytes,
// and the imported graph computes what the original does.
func TestImportRoundTrip(t *testing.T) {
	for _, tc := range testCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "m.onnx")
			if err := WriteFile(path, tc.g, Options{ExternalThreshold: 1}); err != nil {
				t.Fatal(err)
			}
			g, err := ReadGraph(path)
			if err != nil {
				t.Fatal(err)
			}
			if g.Arch != tc.g.Arch || g.Recipe != tc.g.Recipe || g.Classes != tc.g.Classes ||
				g.SourceSHA256 != tc.g.SourceSHA256 || !slices.Equal(g.Labels, tc.g.Labels) ||
				!slices.Equal(g.Mean, tc.g.Mean) || !slices.Equal(g.Std, tc.g.Std) || g.InputShape() != tc.in {
				t.Errorf("metadata: got arch %q recipe %q classes %d sha %q labels %v mean %v std %v input %v", g.Arch, g.Recipe, g.Classes, g.SourceSHA256, g.Labels, g.Mean, g.Std, g.InputShape())
			}
			if a, b := encode(t, tc.g, Options{}), encode(t, g, Options{}); !bytes.Equal(a, b) {
				t.Errorf("re-export of the imported graph differs (%d vs %d bytes)", len(b), len(a))
			}
			want := forward(t, tc.g, tc.in, 5)
			got := forward(t, g, tc.in, 5)
			if rel, _ := nn.RelError(got, want); !(rel <= 1e-5) {
				t.Errorf("imported graph: rel error %g; want ≤ 1e-5", rel)
			}
		})
	}
}

// Forms the exporter does not write but other producers do.
func TestImportVariants(t *testing.T) {
	g := plainNet()
	in := nn.Shape{C: 3, H: 13, W: 12}
	want := forward(t, g, in, 6)
	m := decode(t, encode(t, g, Options{}))
	gr := &m.Graph
	// fc2 as Gemm with transB=0 and a transposed [In, Out] weight.
	fc2 := node(t, m, "fc2")
	fc2.Attr("transB").I = 0
	w := gr.Initializer("fc2.weight")
	tw := make([]float32, len(w.Data))
	o, i := int(w.Dims[0]), int(w.Dims[1])
	for r := range o {
		for c := range i {
			tw[c*o+r] = w.Data[r*i+c]
		}
	}
	w.Data, w.Dims = tw, []int64{int64(i), int64(o)}
	// The three-input add as one Sum, with an Identity in front of it.
	var nodes []Node
	for _, n := range gr.Nodes {
		switch n.Name {
		case "sum/sum1":
			nodes = append(nodes, Node{Name: "id", OpType: "Identity", Inputs: []string{"r6"}, Outputs: []string{"r6id"}})
			continue
		case "sum":
			n = Node{Name: "sum", OpType: "Sum", Inputs: []string{"r6id", "c3", "ap"}, Outputs: n.Outputs}
		}
		nodes = append(nodes, n)
	}
	gr.Nodes = nodes
	g2, err := ToGraph(m)
	if err != nil {
		t.Fatal(err)
	}
	got := forward(t, g2, in, 6)
	if rel, _ := nn.RelError(got, want); !(rel <= 1e-5) {
		t.Errorf("rel error %g; want ≤ 1e-5", rel)
	}
	if n := g2.Node("sum"); n == nil || n.Op != nn.OpAdd || len(n.Inputs) != 3 {
		t.Errorf("Sum imported as %+v; want a three-input add", n)
	}

	// A scalar Clip other than (0, 6) is a uniform clamp.
	m = decode(t, encode(t, g, Options{}))
	m.Graph.Initializers = append(m.Graph.Initializers,
		&Tensor{Name: "lo", DataType: Float, Data: []float32{-0.5}}, &Tensor{Name: "hi", DataType: Float, Data: []float32{0.25}})
	r6 := node(t, m, "r6")
	r6.Inputs[1], r6.Inputs[2] = "lo", "hi"
	g3, err := ToGraph(m)
	if err != nil {
		t.Fatal(err)
	}
	if n := g3.Node("r6"); n.Op != nn.OpClamp || n.P("min")[7] != -0.5 || n.P("max")[0] != 0.25 || len(n.P("min")) != 8 {
		t.Errorf("Clip(-0.5, 0.25) imported as %s %v %v", n.Op, n.P("min"), n.P("max"))
	}
}

func TestImportErrors(t *testing.T) {
	base := func() *Model { return decode(t, encode(t, plainNet(), Options{})) }
	tests := []struct {
		name string
		edit func(m *Model)
		want error
	}{
		{"unknown op", func(m *Model) { node(t, m, "relu").OpType = "Softmax" }, ErrUnsupported},
		{"dilation", func(m *Model) { node(t, m, "c2").Attr("dilations").Ints = []int64{2, 2} }, ErrUnsupported},
		{"asymmetric pads", func(m *Model) { node(t, m, "c2").Attr("pads").Ints = []int64{1, 0, 1, 0} }, ErrUnsupported},
		{"avgpool without padding counted", func(m *Model) { node(t, m, "ap").Attr("count_include_pad").I = 0 }, ErrUnsupported},
		{"weight not constant", func(m *Model) { node(t, m, "c2").Inputs[1] = "ap" }, ErrUnsupported},
		{"foreign domain", func(m *Model) { node(t, m, "relu").Domain = "com.example" }, ErrUnsupported},
		{"two inputs", func(m *Model) { m.Graph.Inputs = append(m.Graph.Inputs, m.Graph.Inputs[0]) }, nil},
		{"dangling input", func(m *Model) { node(t, m, "relu").Inputs[0] = "nowhere" }, nil},
		{"conv bias of the wrong length", func(m *Model) {
			bias := node(t, m, "c2").Inputs[2]
			for _, init := range m.Graph.Initializers {
				if init.Name == bias {
					init.Data = append(init.Data, 1)
					init.Dims = []int64{int64(len(init.Data))}
				}
			}
		}, nil},
		{"conv without weight", func(m *Model) { node(t, m, "c2").Inputs = node(t, m, "c2").Inputs[:1] }, nil},
		{"prelu without slope", func(m *Model) { node(t, m, "pr1").Inputs = node(t, m, "pr1").Inputs[:1] }, nil},
		{"gemm without weight", func(m *Model) { node(t, m, "fc1").Inputs = node(t, m, "fc1").Inputs[:1] }, nil},
		{"node without output", func(m *Model) { node(t, m, "relu").Outputs = nil }, nil},
		{"huge input channels", func(m *Model) {
			// A clamp sized by the input's channels must not allocate them.
			m.Graph.Inputs[0].Dims[1].Value = 1 << 40
			m.Graph.Nodes = []Node{{Name: "clip", OpType: "Clip", Inputs: []string{"input", "lo", "hi"}, Outputs: []string{m.Graph.Outputs[0].Name}}}
			m.Graph.Initializers = []*Tensor{{Name: "lo", DataType: Float, Data: []float32{-1}}, {Name: "hi", DataType: Float, Data: []float32{1}}}
		}, nil},
		{"huge input width", func(m *Model) { m.Graph.Inputs[0].Dims[3].Value = 1<<16 + 1 }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.edit(m)
			_, err := ToGraph(m)
			if err == nil {
				t.Fatal("got no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v; want %v", err, tt.want)
			}
		})
	}
}

// Decoding and importing arbitrary bytes fails cleanly, never panics.
func FuzzDecode(f *testing.F) {
	f.Add(encode(f, plainNet(), Options{}))
	var model, data bytes.Buffer
	if err := Write(&model, plainNet(), Options{ExternalThreshold: 1, Data: &data}); err != nil {
		f.Fatal(err)
	}
	f.Add(model.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := encodeModel(m).writeTo(&buf); err != nil {
			t.Fatal(err)
		}
		if g, err := ToGraph(m); err == nil {
			if _, err := g.Shapes(g.InputShape()); err != nil {
				t.Errorf("ToGraph returned a graph that fails Shapes: %v", err)
			}
		}
	})
}
