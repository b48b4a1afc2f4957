package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

type expectedFile struct {
	Tensors []struct {
		Name  string   `json:"name"`
		Shape []int    `json:"shape"`
		Bits  []uint32 `json:"bits"`
	} `json:"tensors"`
}

type expectedAll struct {
	Files  map[string]expectedFile `json:"files"`
	Errors map[string]string       `json:"errors"`
}

func loadExpected(t *testing.T) expectedAll {
	t.Helper()
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var e expectedAll
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Files) == 0 || len(e.Errors) == 0 {
		t.Fatal("expected.json lists no files")
	}
	return e
}

// TestPyTorchFixtures compares every element of every tensor with the
// float32 bits PyTorch 1.13 gave for t.float() (scripts/fixtures/pth_formats.py); exact.
func TestPyTorchFixtures(t *testing.T) {
	exp := loadExpected(t)
	for name, want := range exp.Files {
		t.Run(name, func(t *testing.T) {
			sd, err := ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			var wantKeys []string
			for _, w := range want.Tensors {
				wantKeys = append(wantKeys, w.Name)
			}
			if !reflect.DeepEqual(sd.Keys, wantKeys) {
				t.Fatalf("keys %q; want %q", sd.Keys, wantKeys)
			}
			for _, w := range want.Tensors {
				tt, _ := sd.Get(w.Name)
				if got := nn.ShapeOf(tt); !reflect.DeepEqual(got, w.Shape) && !(len(got) == 0 && len(w.Shape) == 0) {
					t.Errorf("%s: shape %v; want %v", w.Name, got, w.Shape)
					continue
				}
				data := nn.Floats(tt)
				if len(data) != len(w.Bits) {
					t.Errorf("%s: %d elements; want %d", w.Name, len(data), len(w.Bits))
					continue
				}
				for i, x := range data {
					wx := math.Float32frombits(w.Bits[i])
					if math.Float32bits(x) != w.Bits[i] && !(x != x && wx != wx) {
						t.Errorf("%s[%d] = %v (%08x); want %v (%08x)", w.Name, i, x, math.Float32bits(x), wx, w.Bits[i])
						break
					}
				}
			}
		})
	}
}

func TestTiedTensorsAreCopies(t *testing.T) {
	sd, err := ReadFile("testdata/shared.pth")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := sd.Get("tied1")
	b, _ := sd.Get("tied2")
	fa, fb := nn.Floats(a), nn.Floats(b)
	if &fa[0] == &fb[0] {
		t.Fatal("tied1 and tied2 share a buffer; want copies")
	}
}

// TestRefused: files the allow-list must refuse, with the global named.
func TestRefused(t *testing.T) {
	exp := loadExpected(t)
	for name, want := range exp.Errors {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			_, err := ReadFile(path)
			if err == nil {
				t.Fatal("got no error")
			}
			checkOneLine(t, err, path)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
			var ge *GlobalError
			if !errors.As(err, &ge) {
				t.Errorf("error %q is not a *GlobalError", err)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("error %q is not a *FormatError", err)
			}
		})
	}
}

func checkOneLine(t *testing.T, err error, name string) {
	t.Helper()
	s := err.Error()
	if !strings.HasPrefix(s, "pth: ") || strings.Contains(s, "\n") || !strings.Contains(s, name) {
		t.Errorf("error %q: want one line, prefixed \"pth: \", naming %s", s, name)
	}
}

func readBytes(b []byte, name string) (*nn.StateDict, error) {
	return Read(bytes.NewReader(b), int64(len(b)), name)
}

func TestShortStorage(t *testing.T) {
	ts := []fakeTensor{{name: "fc.weight", key: "3", stype: "FloatStorage", numel: 40, shape: []int64{4, 10}}}
	var buf bytes.Buffer
	err := torchZip(&buf, "archive", []record{
		{name: "data.pkl", data: statePickle(ts)},
		{name: "data/3", data: make([]byte, 40)},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = readBytes(buf.Bytes(), "model.pth")
	want := `pth: model.pth: storage "archive/data/3" holds 10 float32, tensor "fc.weight" needs 40`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v; want %s", err, want)
	}
}

func TestBadInputs(t *testing.T) {
	good, err := os.ReadFile("testdata/dtypes.pth")
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := os.ReadFile("testdata/legacy.pth")
	if err != nil {
		t.Fatal(err)
	}
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")
	corruptData := bytes.Clone(good)
	// Flip a byte inside the first storage: the CRC must catch it.
	zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == "dtypes/data/0" {
			off, err := f.DataOffset()
			if err != nil {
				t.Fatal(err)
			}
			corruptData[off+5] ^= 0xff
		}
	}
	// Break the central directory's first entry.
	corruptDir := bytes.Clone(good)
	i := bytes.Index(corruptDir, []byte("PK\x01\x02"))
	copy(corruptDir[i:], "XXXXXXXXXXXXXXXXXXXX")

	mk := func(pkl []byte, recs ...record) []byte {
		var buf bytes.Buffer
		if err := torchZip(&buf, "archive", append([]record{{name: "data.pkl", data: pkl}}, recs...)); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	one := []fakeTensor{{name: "w", key: "0", stype: "FloatStorage", numel: 4, shape: []int64{2, 2}}}
	huge := []fakeTensor{{name: "w", key: "0", stype: "FloatStorage", numel: 4, shape: []int64{1 << 30, 1 << 30}, stride: []int64{0, 0}}}
	expand := []fakeTensor{{name: "w", key: "0", stype: "FloatStorage", numel: 4, shape: []int64{1 << 28, 4}, stride: []int64{0, 1}}}
	offset := []fakeTensor{{name: "w", key: "0", stype: "FloatStorage", numel: 4, offset: math.MaxInt64, shape: []int64{}}}
	missing := []fakeTensor{{name: "w", key: "9", stype: "FloatStorage", numel: 4, shape: []int64{2, 2}}}
	empty := []fakeTensor{{name: "w", key: "0", stype: "FloatStorage", numel: 4, shape: []int64{0, 2}}}
	dup := []fakeTensor{{name: "module.w", key: "0", stype: "FloatStorage", numel: 4, shape: []int64{4}}, {name: "w", key: "0", stype: "FloatStorage", numel: 4, shape: []int64{4}}}
	badType := bytes.Replace(statePickle(one), []byte("FloatStorage"), []byte("ComplexDStorage"), 1)
	data := record{name: "data/0", data: make([]byte, 16)}
	list := []byte("\x80\x02]q\x00K\x01a.")

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "empty file"},
		{"text", []byte("hello, this is not a checkpoint\n"), "not a PyTorch checkpoint"},
		{"png", png, "not a PyTorch checkpoint"},
		{"truncated zip", good[:len(good)/2], "not a valid zip"},
		{"truncated zip end", good[:len(good)-1], "not a valid zip"},
		{"corrupt data", corruptData, "CRC"},
		{"corrupt directory", corruptDir, "zip"},
		{"plain zip", func() []byte {
			var b bytes.Buffer
			_ = torchZip(&b, "docs", []record{{name: "readme.txt", data: []byte("hi")}})
			return b.Bytes()
		}(), "without a data.pkl"},
		{"short storage", mk(statePickle(one), record{name: "data/0", data: make([]byte, 12)}), "holds 3 float32"},
		{"missing storage", mk(statePickle(missing), data), `storage "9" missing`},
		{"huge shape", mk(statePickle(huge), data), "too many elements"},
		{"huge expand", mk(statePickle(expand), data), "more than the"},
		{"huge offset", mk(statePickle(offset), data), "past any storage"},
		{"empty tensor", mk(statePickle(empty), data), "empty tensors"},
		{"duplicate after strip", mk(statePickle(dup), data), "duplicate"},
		{"unknown storage type", mk(badType, data), "torch.ComplexDStorage"},
		{"list at top", mk(list), "want a dict"},
		{"no tensors", mk([]byte("\x80\x02}q\x00X\x05\x00\x00\x00epochK\x03s.")), `no tensors found (keys: "epoch")`},
		{"truncated pickle", mk(statePickle(one)[:30], data), "truncated"},
		{"bad version", mk(statePickle(one), data, record{name: "version", data: []byte("x")}), "version"},
		{"bad byteorder", mk(statePickle(one), data, record{name: "byteorder", data: []byte("middle")}), "byteorder"},
		{"pickle bomb", func() []byte {
			var b bytes.Buffer
			bomb := append([]byte{0x80, 2}, bytes.Repeat([]byte("}"), 2<<20)...)
			_ = torchZip(&b, "archive", []record{{name: "data.pkl", data: bomb, method: zip.Deflate}})
			return b.Bytes()
		}(), "too many values"},
		{"deflate lie", func() []byte {
			var b bytes.Buffer
			_ = torchZip(&b, "archive", []record{{name: "data.pkl", data: statePickle(one)}, {name: "data/0", data: make([]byte, 16), method: zip.Deflate}})
			raw := b.Bytes()
			// Claim 1 GB uncompressed in the central directory (offset 24 of its entry).
			i := bytes.LastIndex(raw, []byte("PK\x01\x02"))
			binary.LittleEndian.PutUint32(raw[i+24:], 1<<30)
			return raw
		}(), "claims 1073741824 bytes"},
		{"pickle not torch", []byte("\x80\x02K\x01."), "not a PyTorch checkpoint"},
		{"truncated legacy", legacy[:len(legacy)-5], "truncated"},
		{"legacy header only", legacy[:300], "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := strings.ReplaceAll(tt.name, " ", "_") + ".pth"
			sd, err := readBytes(tt.data, name)
			if err == nil {
				t.Fatalf("got %d tensors, no error; want an error", sd.Len())
			}
			checkOneLine(t, err, name)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q; want it to contain %q", err, tt.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("error %q is not a *FormatError", err)
			}
		})
	}
}

func TestReadFileErrors(t *testing.T) {
	_, err := ReadFile(filepath.Join(t.TempDir(), "missing.pth"))
	if err == nil || !strings.HasPrefix(err.Error(), "pth: open ") {
		t.Errorf("got %v; want pth: open ...", err)
	}
	_, err = ReadFile(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("got %v; want not a regular file", err)
	}
}

// TestGoWritten checks layouts PyTorch 1.13 does not write but may meet:
// big-endian storages, deflated records, another archive prefix, protocol 4
// framing, and a state_dict inside a training dict.
func TestGoWritten(t *testing.T) {
	vals := []float32{1.5, -2, 3.25, 1e-30, float32(math.Inf(1)), 7, 8, 9}
	le := f32bytes(vals)
	be := make([]byte, len(le))
	for i := 0; i < len(le); i += 4 {
		binary.BigEndian.PutUint32(be[i:], binary.LittleEndian.Uint32(le[i:]))
	}
	ts := []fakeTensor{{name: "w", key: "0", stype: "FloatStorage", numel: 8, shape: []int64{2, 4}}}
	wrapped := func() []byte {
		p := &pickler{}
		p.op(0x80, 2, '}', '(')
		p.str("epoch")
		p.int(90)
		p.str("best_acc1")
		p.op('G', 0x3f, 0xe8, 0, 0, 0, 0, 0, 0)
		p.str("state_dict")
		p.stateDict(ts)
		p.op('u', '.')
		return p.b
	}()
	proto4 := append([]byte{0x80, 4, 0x95}, binary.LittleEndian.AppendUint64(nil, uint64(len(statePickle(ts))))...)
	proto4 = append(proto4, statePickle(ts)[2:]...)

	tests := []struct {
		name   string
		prefix string
		recs   []record
	}{
		{"big endian", "archive", []record{{name: "data.pkl", data: statePickle(ts)}, {name: "byteorder", data: []byte("big")}, {name: "data/0", data: be}}},
		{"deflated", "archive", []record{{name: "data.pkl", data: statePickle(ts), method: 8}, {name: "data/0", data: le, method: 8}}},
		{"prefix", "resnet_best", []record{{name: "data.pkl", data: statePickle(ts)}, {name: "data/0", data: le}, {name: ".data/version", data: []byte("3\n")}}},
		{"training dict", "archive", []record{{name: "data.pkl", data: wrapped}, {name: "data/0", data: le}}},
		{"protocol 4 frame", "archive", []record{{name: "data.pkl", data: proto4}, {name: "data/0", data: le}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := torchZip(&buf, tt.prefix, tt.recs); err != nil {
				t.Fatal(err)
			}
			sd, err := readBytes(buf.Bytes(), "go.pth")
			if err != nil {
				t.Fatal(err)
			}
			w, ok := sd.Get("w")
			if !ok || sd.Len() != 1 {
				t.Fatalf("keys %q; want [w]", sd.Keys)
			}
			if got := nn.Floats(w); !reflect.DeepEqual(got, vals) {
				t.Errorf("got %v; want %v", got, vals)
			}
			if got := nn.ShapeOf(w); !reflect.DeepEqual(got, []int{2, 4}) {
				t.Errorf("shape %v; want [2 4]", got)
			}
		})
	}
}

func TestHalfToFloat(t *testing.T) {
	tests := []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.9604645e-08},
		{0x03ff, 6.097555e-05}, {0x0400, 6.1035156e-05}, {0x3555, 0.33325195}, {0x7c00, float32(math.Inf(1))},
	}
	for _, tt := range tests {
		if got := halfToFloat(tt.h); got != tt.want {
			t.Errorf("halfToFloat(%#04x) = %v; want %v", tt.h, got, tt.want)
		}
	}
	if got := halfToFloat(0x8000); math.Float32bits(got) != 0x80000000 {
		t.Errorf("halfToFloat(0x8000) = %v; want -0", got)
	}
	if got := halfToFloat(0x7e00); got == got {
		t.Errorf("halfToFloat(0x7e00) = %v; want NaN", got)
	}
}

func TestAllowList(t *testing.T) {
	got := AllowedGlobals()
	if len(got) != 15 {
		t.Errorf("%d allowed globals: %v; want 15 (update the doc comment when this changes)", len(got), got)
	}
	for _, g := range got {
		if !strings.HasPrefix(g, "torch.") && g != "collections.OrderedDict" {
			t.Errorf("allowed global %s outside torch", g)
		}
	}
}

// TestLegacyView reads a legacy storage view (view_metadata in the persistent
// id), which torch 1.13 no longer writes but older files hold.
func TestLegacyView(t *testing.T) {
	vals := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	p := &pickler{}
	p.op('}')
	p.str("v")
	p.global("torch._utils", "_rebuild_tensor")
	p.op('(', '(')
	p.str("storage")
	p.global("torch", "FloatStorage")
	p.str("root")
	p.str("cuda:0")
	p.int(10)
	p.op('(')
	p.str("view")
	p.int(2)
	p.int(5)
	p.op('t', 't', 'Q')
	p.int(1)
	p.ints([]int64{2, 2})
	p.ints([]int64{1, 2})
	p.op('t', 'R', 's')
	b := legacyFile(p.b, []string{"root"}, [][]byte{f32bytes(vals)}, 4)
	sd, err := readBytes(b, "old.pth")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := sd.Get("v")
	// view = root[2:7]; tensor = view[1:] with shape (2,2), stride (1,2): [[3,5],[4,6]].
	if got, want := nn.Floats(v), []float32{3, 5, 4, 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
	// A view past its root storage is refused.
	bad := bytes.Replace(b, []byte("K\x02K\x05t"), []byte("K\x07K\x05t"), 1)
	if _, err := readBytes(bad, "old.pth"); err == nil || !strings.Contains(err.Error(), "a view needs 12") {
		t.Errorf("got %v; want a view error", err)
	}
}
