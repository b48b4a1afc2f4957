package onnx

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

func opCounts(m *Model) map[string]int {
	c := map[string]int{}
	for _, n := range m.Graph.Nodes {
		c[n.OpType]++
	}
	return c
}

// checkWellFormed checks what ONNX requires of any graph: every node input is
// the graph input, an initializer or an earlier output; every value is
// produced once; initializer names are unique; the output is produced.
func checkWellFormed(t *testing.T, m *Model) {
	t.Helper()
	if m.IRVersion != IRVersion || m.ProducerName != "rmprune" {
		t.Errorf("ir_version %d producer %q; want %d rmprune", m.IRVersion, m.ProducerName, IRVersion)
	}
	if len(m.Opsets) != 1 || m.Opsets[0] != (Opset{"", 13}) {
		t.Errorf("opsets %v; want [{\"\" 13}]", m.Opsets)
	}
	have := map[string]bool{"input": true}
	for _, init := range m.Graph.Initializers {
		if have[init.Name] {
			t.Errorf("initializer %s defined twice", init.Name)
		}
		have[init.Name] = true
		if init.DataType != Float {
			t.Errorf("initializer %s: data type %d", init.Name, init.DataType)
		}
		if !init.IsExternal() && int64(len(init.Data)) != init.Numel() {
			t.Errorf("initializer %s: %d values for dims %v", init.Name, len(init.Data), init.Dims)
		}
	}
	for _, n := range m.Graph.Nodes {
		for _, in := range n.Inputs {
			if !have[in] {
				t.Errorf("node %s reads %q before it exists", n.Name, in)
			}
		}
		if len(n.Outputs) != 1 || have[n.Outputs[0]] {
			t.Errorf("node %s outputs %v: want one new value", n.Name, n.Outputs)
		}
		have[n.Outputs[0]] = true
	}
	if !have["logits"] {
		t.Error("no node produces logits")
	}
	if len(m.Graph.Inputs) != 1 || m.Graph.Inputs[0].Name != "input" {
		t.Fatalf("inputs %v; want one named input", m.Graph.Inputs)
	}
	if len(m.Graph.Outputs) != 1 || m.Graph.Outputs[0].Name != "logits" {
		t.Fatalf("outputs %v; want one named logits", m.Graph.Outputs)
	}
}

func dimsString(d []Dim) string {
	s := make([]string, len(d))
	for i, x := range d {
		s[i] = x.String()
	}
	return strings.Join(s, "x")
}

func attrInts(t *testing.T, n *Node, name string) []int64 {
	t.Helper()
	a := n.Attr(name)
	if a == nil || a.Type != AttrInts {
		t.Fatalf("node %s: no ints attribute %s", n.Name, name)
	}
	return a.Ints
}

func attrInt(t *testing.T, n *Node, name string) int64 {
	t.Helper()
	a := n.Attr(name)
	if a == nil || a.Type != AttrInt {
		t.Fatalf("node %s: no int attribute %s", n.Name, name)
	}
	return a.I
}

func node(t *testing.T, m *Model, name string) *Node {
	t.Helper()
	for i := range m.Graph.Nodes {
		if m.Graph.Nodes[i].Name == name {
			return &m.Graph.Nodes[i]
		}
	}
	t.Fatalf("no node %s", name)
	return nil
}

func wantDims(t *testing.T, m *Model, name string, dims ...int64) *Tensor {
	t.Helper()
	init := m.Graph.Initializer(name)
	if init == nil {
		t.Fatalf("no initializer %s", name)
	}
	if !slices.Equal(init.Dims, dims) {
		t.Errorf("initializer %s dims %v; want %v", name, init.Dims, dims)
	}
	return init
}

func TestExportResNet20(t *testing.T) {
	g := buildNet(t, "resnet20", 1)
	g.Recipe = `{"ratio":0.3}`
	g.SourceSHA256 = strings.Repeat("ab", 32)
	m := decode(t, encode(t, g, Options{}))
	checkWellFormed(t, m)

	want := map[string]int{"Conv": 21, "Relu": 19, "Add": 9, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1}
	if got := opCounts(m); !maps(got, want) {
		t.Errorf("ops %v; want %v (BatchNorms folded)", got, want)
	}
	if got := dimsString(m.Graph.Inputs[0].Dims); got != "Nx3x32x32" {
		t.Errorf("input dims %s; want Nx3x32x32", got)
	}
	if got := dimsString(m.Graph.Outputs[0].Dims); got != "Nx10" {
		t.Errorf("output dims %s; want Nx10", got)
	}
	c := node(t, m, "layer2.0.conv1")
	if got := c.Inputs; !slices.Equal(got, []string{"layer1.2.relu", "layer2.0.conv1.weight", "layer2.0.conv1.bias"}) {
		t.Errorf("layer2.0.conv1 inputs %v", got)
	}
	for _, tt := range []struct {
		attr string
		want []int64
	}{{"kernel_shape", []int64{3, 3}}, {"strides", []int64{2, 2}}, {"pads", []int64{1, 1, 1, 1}}, {"dilations", []int64{1, 1}}} {
		if got := attrInts(t, c, tt.attr); !slices.Equal(got, tt.want) {
			t.Errorf("layer2.0.conv1 %s %v; want %v", tt.attr, got, tt.want)
		}
	}
	if got := attrInt(t, c, "group"); got != 1 {
		t.Errorf("group %d; want 1", got)
	}
	ds := node(t, m, "layer2.0.downsample.0")
	if got := attrInts(t, ds, "pads"); !slices.Equal(got, []int64{0, 0, 0, 0}) {
		t.Errorf("downsample pads %v; want zeros", got)
	}
	add := node(t, m, "layer2.0.add")
	if !slices.Equal(add.Inputs, []string{"layer2.0.conv2", "layer2.0.downsample.0"}) {
		t.Errorf("add inputs %v; want the BN-folded convs", add.Inputs)
	}
	gemm := node(t, m, "fc")
	if got := attrInt(t, gemm, "transB"); got != 1 {
		t.Errorf("Gemm transB %d; want 1", got)
	}
	if gemm.Outputs[0] != "logits" {
		t.Errorf("Gemm output %s; want logits", gemm.Outputs[0])
	}

	// Initializers hold the folded weights, named after the node parameters.
	f := nn.FoldBN(g)
	for _, p := range []struct {
		node, param string
		dims        []int64
	}{
		{"conv1", "weight", []int64{16, 3, 3, 3}},
		{"conv1", "bias", []int64{16}},
		{"layer3.0.downsample.0", "weight", []int64{64, 32, 1, 1}},
		{"fc", "weight", []int64{10, 64}},
		{"fc", "bias", []int64{10}},
	} {
		init := wantDims(t, m, p.node+"."+p.param, p.dims...)
		if want := f.Node(p.node).P(p.param); !slices.Equal(init.Data, want) {
			t.Errorf("%s.%s: data differs from the folded graph", p.node, p.param)
		}
	}
	if n := len(m.Graph.Initializers); n != 2*21+2 {
		t.Errorf("%d initializers; want %d", n, 2*21+2)
	}
	for k, want := range map[string]string{"rmprune.recipe": g.Recipe, "rmprune.source_sha256": g.SourceSHA256, "rmprune.arch": "resnet20", "rmprune.classes": "10"} {
		if got, ok := m.MetadataValue(k); !ok || got != want {
			t.Errorf("metadata %s = %q; want %q", k, got, want)
		}
	}
	if !slices.IsSortedFunc(m.Metadata, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) }) {
		t.Errorf("metadata not sorted: %v", m.Metadata)
	}
}

func maps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestExportMobileNetV2(t *testing.T) {
	g := clampedMobileNet(t)
	var relu6, clamps, depthwise int
	for _, n := range g.Nodes {
		switch {
		case n.Op == nn.OpReLU6:
			relu6++
		case n.Op == nn.OpClamp:
			clamps++
		case n.Op == nn.OpConv && n.G() > 1:
			depthwise++
		}
	}
	if relu6 == 0 || clamps == 0 {
		t.Fatalf("test net has %d ReLU6 and %d clamps; want both", relu6, clamps)
	}
	m := decode(t, encode(t, g, Options{}))
	checkWellFormed(t, m)
	ops := opCounts(m)
	if ops["Clip"] != relu6 || ops["Max"] != clamps || ops["Min"] != clamps || ops["Add"] != 10 || ops["BatchNormalization"] != 0 {
		t.Errorf("ops %v; want Clip %d, Max and Min %d, Add 10, no BatchNormalization", ops, relu6, clamps)
	}
	if got := dimsString(m.Graph.Inputs[0].Dims); got != "Nx3x64x64" {
		t.Errorf("input dims %s; want Nx3x64x64", got)
	}
	groups := 0
	for _, n := range m.Graph.Nodes {
		switch n.OpType {
		case "Conv":
			if attrInt(t, &n, "group") > 1 {
				groups++
				w := m.Graph.Initializer(n.Inputs[1])
				if g := attrInt(t, &n, "group"); w.Dims[1] != 1 || w.Dims[0] != g {
					t.Errorf("depthwise %s: weight %v with group %d", n.Name, w.Dims, g)
				}
			}
		case "Clip":
			lo, hi := m.Graph.Initializer(n.Inputs[1]), m.Graph.Initializer(n.Inputs[2])
			if len(lo.Dims) != 0 || len(hi.Dims) != 0 || lo.Data[0] != 0 || hi.Data[0] != 6 {
				t.Errorf("Clip %s bounds %v%v %v%v; want scalars 0 and 6", n.Name, lo.Dims, lo.Data, hi.Dims, hi.Data)
			}
		case "Max", "Min":
			b := m.Graph.Initializer(n.Inputs[1])
			if b == nil || len(b.Dims) != 3 || b.Dims[1] != 1 || b.Dims[2] != 1 {
				t.Errorf("%s %s: bound %v; want [C,1,1]", n.OpType, n.Name, b)
			}
		}
	}
	if groups != depthwise {
		t.Errorf("%d grouped Convs; want %d", groups, depthwise)
	}
	// The ±Inf and ±MaxFloat32 bounds survive.
	var inf, huge bool
	for _, init := range m.Graph.Initializers {
		for _, v := range init.Data {
			inf = inf || math.IsInf(float64(v), 0)
			huge = huge || math.Abs(float64(v)) == math.MaxFloat32
		}
	}
	if !inf || !huge {
		t.Errorf("bounds: ±Inf %v, ±MaxFloat32 %v; want both", inf, huge)
	}
}

func TestExportPlain(t *testing.T) {
	g := plainNet()
	m := decode(t, encode(t, g, Options{}))
	checkWellFormed(t, m)
	want := map[string]int{"Conv": 3, "MaxPool": 1, "BatchNormalization": 2, "PRelu": 2, "Max": 1, "Min": 1,
		"AveragePool": 2, "Clip": 1, "Add": 2, "Relu": 1, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 2}
	if got := opCounts(m); !maps(got, want) {
		t.Errorf("ops %v; want %v", got, want)
	}
	if got := dimsString(m.Graph.Inputs[0].Dims); got != "Nx3x13x12" {
		t.Errorf("input dims %s; want Nx3x13x12", got)
	}
	wantDims(t, m, "pr1.weight", 8, 1, 1)
	wantDims(t, m, "pr2.weight", 12)
	wantDims(t, m, "cl.min", 8, 1, 1)
	wantDims(t, m, "cl.max", 8, 1, 1)
	wantDims(t, m, "bn1.running_var", 8)
	wantDims(t, m, "c2.bias", 8) // bn2 folded
	if m.Graph.Initializer("bn2.weight") != nil {
		t.Error("bn2 not folded")
	}
	if got := attrInt(t, node(t, m, "c2"), "group"); got != 2 {
		t.Errorf("c2 group %d; want 2", got)
	}
	ap := node(t, m, "ap")
	if got := attrInt(t, ap, "count_include_pad"); got != 1 {
		t.Errorf("AveragePool count_include_pad %d; want 1", got)
	}
	if got := attrInts(t, ap, "pads"); !slices.Equal(got, []int64{1, 1, 1, 1}) {
		t.Errorf("AveragePool pads %v", got)
	}
	bn3 := node(t, m, "bn3")
	if a := bn3.Attr("epsilon"); a == nil || a.Type != AttrFloat || a.F != float32(1e-3) {
		t.Errorf("bn3 epsilon %v; want 1e-3", a)
	}
	if a := node(t, m, "bn1").Attr("epsilon"); a == nil || a.F != float32(1e-5) {
		t.Errorf("bn1 epsilon %v; want the default 1e-5", a)
	}
	// The three-input add is a chain of two Adds; fc1 reads a flattened GAP.
	sum1, sum := node(t, m, "sum/sum1"), node(t, m, "sum")
	if !slices.Equal(sum1.Inputs, []string{"r6", "c3"}) || !slices.Equal(sum.Inputs, []string{"sum/sum1", "ap"}) {
		t.Errorf("add chain %v, %v", sum1, sum)
	}
	flat := node(t, m, "fc1/flatten")
	if !slices.Equal(flat.Inputs, []string{"gap"}) || node(t, m, "fc1").Inputs[0] != "fc1/flatten" {
		t.Errorf("flatten before fc1: %v", flat)
	}
	if got := dimsString(m.Graph.Outputs[0].Dims); got != "Nx5" {
		t.Errorf("output dims %s; want Nx5", got)
	}
	if v, _ := m.MetadataValue("rmprune.normalize"); v != `{"mean":[0.5,0.5,0.5],"std":[0.25,0.25,0.25]}` {
		t.Errorf("normalize %s", v)
	}
	if v, _ := m.MetadataValue("rmprune.labels"); v != `["a","b","c","d","e"]` {
		t.Errorf("labels %s", v)
	}
}

// A net that ends on a 4-D value keeps a 4-D output, and Options.Shape
// overrides the graph's input shape.
func TestExportShapeOption(t *testing.T) {
	g := buildNet(t, "resnet20", 4)
	g.Nodes = g.Nodes[:len(g.Nodes)-3] // drop avgpool, flatten, fc
	m := decode(t, encode(t, g, Options{Shape: nn.Shape{C: 3, H: 20, W: 24}}))
	checkWellFormed(t, m)
	if got := dimsString(m.Graph.Inputs[0].Dims); got != "Nx3x20x24" {
		t.Errorf("input dims %s; want Nx3x20x24", got)
	}
	if got := dimsString(m.Graph.Outputs[0].Dims); got != "Nx64x5x6" {
		t.Errorf("output dims %s; want Nx64x5x6", got)
	}
}

func TestDeterministic(t *testing.T) {
	for _, tc := range testCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.g.Clone()
			a := encode(t, tc.g, Options{})
			b := encode(t, tc.g.Clone(), Options{})
			if !bytes.Equal(a, b) {
				t.Fatal("two exports of the same graph differ")
			}
			// Write does not modify the graph (BN folding works on a copy).
			for i, n := range tc.g.Nodes {
				for p := range n.Params {
					if !slices.Equal(n.P(p), before.Nodes[i].P(p)) {
						t.Fatalf("export changed %s.%s", n.Name, p)
					}
				}
			}
			if len(tc.g.Nodes) != len(before.Nodes) {
				t.Fatal("export changed the node list")
			}
		})
	}
}

// Decoding and re-encoding gives the same bytes: the decoder reads everything
// the encoder writes.
func TestRoundTrip(t *testing.T) {
	for _, tc := range testCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			b := encode(t, tc.g, Options{})
			var again bytes.Buffer
			if err := encodeModel(decode(t, b)).writeTo(&again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, again.Bytes()) {
				t.Errorf("re-encoded model differs: %d bytes; want %d", again.Len(), len(b))
			}
		})
	}
}

func TestExternalData(t *testing.T) {
	g := buildNet(t, "resnet20", 5)
	inline := decode(t, encode(t, g, Options{}))
	dir := t.TempDir()
	path := filepath.Join(dir, "net.onnx")
	if err := WriteFile(path, g, Options{ExternalThreshold: 1}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"net.onnx", "net.onnx.data"}) {
		t.Fatalf("files %v; want net.onnx and net.onnx.data only", names)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, raw)
	checkWellFormed(t, m)
	st, _ := os.Stat(path + ".data")
	var ext, in int
	var end int64
	for _, init := range m.Graph.Initializers {
		size := 4 * init.Numel()
		if !init.IsExternal() {
			in++
			if size >= ExternalMinBytes {
				t.Errorf("%s (%d bytes) stayed inline", init.Name, size)
			}
			continue
		}
		ext++
		loc, _ := init.ExternalValue("location")
		off, _ := init.ExternalValue("offset")
		n, _ := init.ExternalValue("length")
		o, _ := strconv.ParseInt(off, 10, 64)
		l, _ := strconv.ParseInt(n, 10, 64)
		if loc != "net.onnx.data" || o%4096 != 0 || l != size || o < end {
			t.Errorf("%s: location %s offset %s length %s (previous end %d)", init.Name, loc, off, n, end)
		}
		end = o + l
	}
	if ext == 0 || in == 0 {
		t.Errorf("%d external and %d inline tensors; want both kinds", ext, in)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("data file mode %v; want 0644", st.Mode().Perm())
	}
	if end != st.Size() {
		t.Errorf("data file has %d bytes; tensors end at %d", st.Size(), end)
	}
	// ReadFile resolves the data: the same tensors as the inline export.
	full, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range inline.Graph.Initializers {
		got := full.Graph.Initializer(want.Name)
		if got == nil || !slices.Equal(got.Data, want.Data) || !slices.Equal(got.Dims, want.Dims) {
			t.Errorf("%s: external round trip differs", want.Name)
		}
	}

	// Write to a bare writer needs Options.Data.
	if err := Write(&bytes.Buffer{}, g, Options{ExternalThreshold: 1}); !errors.Is(err, ErrNeedsExternal) {
		t.Errorf("Write without Data: %v; want ErrNeedsExternal", err)
	}
	var model, data bytes.Buffer
	if err := Write(&model, g, Options{ExternalThreshold: 1, Data: &data, DataLocation: "net.onnx.data"}); err != nil {
		t.Fatal(err)
	}
	fileData, _ := os.ReadFile(path + ".data")
	if !bytes.Equal(model.Bytes(), raw) || !bytes.Equal(data.Bytes(), fileData) {
		t.Error("Write with Data differs from WriteFile")
	}
	// Below the threshold nothing goes external.
	if err := WriteFile(filepath.Join(dir, "small.onnx"), g, Options{ExternalThreshold: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "small.onnx.data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("small model wrote a data file: %v", err)
	}
}

func TestReadFileRejectsEscapingLocation(t *testing.T) {
	g := buildNet(t, "resnet20", 6)
	var model, data bytes.Buffer
	for _, loc := range []string{"../x.data", "/tmp/x.data"} {
		err := Write(&model, g, Options{ExternalThreshold: 1, Data: &data, DataLocation: loc})
		if err == nil {
			t.Errorf("Write accepted location %q", loc)
		}
	}
	// A hand-edited model pointing outside its directory is refused on read.
	m := decode(t, encode(t, g, Options{}))
	m.Graph.Initializers[0].External = []Entry{{"location", "../secret"}}
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := encodeModel(m).writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("ReadFile: %v; want an error about the location", err)
	}
}

func TestErrors(t *testing.T) {
	unknown := plainNet()
	unknown.Nodes[4].Op = "swish"
	flatConv := plainNet()
	flatConv.Nodes = flatConv.Nodes[:2] // input, c1
	flatConv.Nodes = append([]*nn.Node{flatConv.Nodes[0], {Name: "flat", Op: nn.OpFlatten, Inputs: []string{"input"}}}, flatConv.Nodes[1:]...)
	flatConv.Nodes[2].Inputs = []string{"flat"}
	flatConv.Nodes[2].In = 3 * 13 * 12
	flatConv.Nodes[2].Kernel, flatConv.Nodes[2].Pad, flatConv.Nodes[2].Stride = 1, 0, 1
	flatConv.Nodes[2].SetP("weight", []int{8, 3 * 13 * 12, 1, 1}, make([]float32, 8*3*13*12))
	badShape := plainNet()
	badShape.Nodes[1].In = 4
	noInput := plainNet()
	noInput.Nodes = noInput.Nodes[1:]
	tests := []struct {
		name string
		g    *nn.Graph
		want error  // nil: any error
		text string // in the message
	}{
		{"unsupported op", unknown, ErrUnsupported, `op "swish"`},
		{"conv after flatten", flatConv, ErrUnsupported, "flattened"},
		{"shape mismatch", badShape, nn.ErrShape, "c1"},
		{"no input node", noInput, nil, "input node"},
		{"only input", &nn.Graph{Nodes: []*nn.Node{{Name: "input", Op: nn.OpInput, Out: 3}}}, nil, "no layers"},
		{"empty", &nn.Graph{}, nil, "empty"},
		{"nil", nil, nil, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, tt.g, Options{})
			if err == nil {
				t.Fatal("got no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v; want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "onnx: ") || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("message %q; want prefix onnx: and %q", err, tt.text)
			}
			// WriteFile leaves nothing behind and keeps an existing file.
			dir := t.TempDir()
			path := filepath.Join(dir, "m.onnx")
			os.WriteFile(path, []byte("old"), 0o644)
			if err := WriteFile(path, tt.g, Options{ExternalThreshold: 1}); err == nil {
				t.Fatal("WriteFile: got no error")
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d files after a failed write; want 1", len(entries))
			}
			if b, _ := os.ReadFile(path); string(b) != "old" {
				t.Errorf("failed write changed the existing file")
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	b := encode(t, plainNet(), Options{})
	for _, n := range []int{1, 7, len(b) / 2, len(b) - 1} {
		if _, err := Decode(b[:n]); err == nil {
			t.Errorf("Decode of %d of %d bytes: got no error", n, len(b))
		} else if !strings.HasPrefix(err.Error(), "onnx: ") {
			t.Errorf("error %q; want prefix onnx:", err)
		}
	}
}

// python3 with the onnx package (Debian python3-onnx) checks the exported
// files with the reference checker, shape inference included.
func TestONNXChecker(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		t.Skipf("%s has no onnx module (apt-get install python3-onnx): %v", py, err)
	}
	dir := t.TempDir()
	var args []string
	for _, tc := range testCases(t) {
		for _, ext := range []bool{false, true} {
			name := tc.name + ".onnx"
			opt := Options{}
			if ext {
				name, opt.ExternalThreshold = tc.name+"-ext.onnx", 1
			}
			p := filepath.Join(dir, name)
			if err := WriteFile(p, tc.g, opt); err != nil {
				t.Fatal(err)
			}
			args = append(args, p)
		}
	}
	for _, tc := range copyCases(t) {
		p := filepath.Join(dir, tc.Name+"-copyaware.onnx")
		if err := WriteFile(p, tc.G, Options{}); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	const script = `
import sys, onnx
from onnx import shape_inference
for p in sys.argv[1:]:
    m = onnx.load(p)
    onnx.checker.check_model(m, full_check=True)
    onnx.checker.check_model(p, full_check=True)
    inf = shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    out = inf.graph.output[0].type.tensor_type.shape.dim
    print(p.rsplit("/", 1)[-1], m.opset_import[0].version, "x".join(d.dim_param or str(d.dim_value) for d in out))
`
	out, err := exec.Command(py, append([]string{"-c", script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx checker: %v\n%s", err, out)
	}
	t.Logf("onnx checker:\n%s", out)
	for _, want := range []string{"resnet20.onnx 13 Nx10", "mobilenet_v2-ext.onnx 13 Nx10", "plain.onnx 13 Nx5",
		"rmnet20-l1-50-copyaware.onnx 13 Nx10", "copies-copyaware.onnx 13 Nx4"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("checker output lacks %q", want)
		}
	}
}
