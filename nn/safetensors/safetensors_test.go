package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"gorgonia.org/tensor"
)

// expected mirrors testdata/expected.json, written by
// scripts/fixtures/formats.py (numpy 1.24 / torch 1.13 conversions to float32;
// compared bit for bit).
type expected struct {
	Files map[string]struct {
		Metadata map[string]string `json:"metadata"`
		Tensors  []struct {
			Name  string   `json:"name"`
			Dtype string   `json:"dtype"`
			Shape []int    `json:"shape"`
			Bits  []uint32 `json:"bits"`
		} `json:"tensors"`
	} `json:"files"`
}

func loadExpected(t *testing.T) expected {
	t.Helper()
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var exp expected
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Files) == 0 {
		t.Fatal("testdata/expected.json lists no files")
	}
	return exp
}

func TestReadFixtures(t *testing.T) {
	exp := loadExpected(t)
	for name, want := range exp.Files {
		t.Run(name, func(t *testing.T) {
			f, err := ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Metadata, want.Metadata) {
				t.Errorf("metadata: got %q; want %q", f.Metadata, want.Metadata)
			}
			var wantKeys []string
			for _, wt := range want.Tensors {
				wantKeys = append(wantKeys, wt.Name)
			}
			if !slices.Equal(f.Tensors.Keys, wantKeys) {
				t.Fatalf("keys: got %q; want %q", f.Tensors.Keys, wantKeys)
			}
			for _, wt := range want.Tensors {
				tt, _ := f.Tensors.Get(wt.Name)
				if got := nn.ShapeOf(tt); !slices.Equal(got, wt.Shape) {
					t.Errorf("%s: shape: got %v; want %v", wt.Name, got, wt.Shape)
					continue
				}
				got := nn.Floats(tt)
				if len(got) != len(wt.Bits) {
					t.Errorf("%s: got %d elements; want %d", wt.Name, len(got), len(wt.Bits))
					continue
				}
				for i, v := range got {
					if b := math.Float32bits(v); b != wt.Bits[i] {
						t.Errorf("%s (%s)[%d]: got %v (%#08x); want %v (%#08x)", wt.Name, wt.Dtype, i,
							v, b, math.Float32frombits(wt.Bits[i]), wt.Bits[i])
					}
				}
			}
		})
	}
}

// TestWriteMatchesReference checks that the writer lays a file out exactly as
// the reference implementation does (canonical.safetensors is F32 only).
func TestWriteMatchesReference(t *testing.T) {
	want, err := os.ReadFile("testdata/canonical.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(want), int64(len(want)), "canonical")
	if err != nil {
		t.Fatal(err)
	}
	// Shuffle the key order: output must not depend on it.
	slices.Reverse(f.Tensors.Keys)
	var buf bytes.Buffer
	if err := Write(&buf, f.Metadata, f.Tensors); err != nil {
		t.Fatal(err)
	}
	if got := buf.Bytes(); !bytes.Equal(got, want) {
		t.Errorf("got %d bytes:\n%q\nwant %d bytes:\n%q", len(got), got[:min(len(got), 600)], len(want), want[:min(len(want), 600)])
	}
	path := filepath.Join(t.TempDir(), "out.safetensors")
	if err := WriteFile(path, f.Metadata, f.Tensors); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
		t.Errorf("WriteFile: got %d bytes; want the %d of canonical.safetensors", len(got), len(want))
	}
}

// specials are float32 bit patterns a round trip must keep.
var specials = []uint32{
	0x00000000, 0x80000000, // ±0
	0x00000001, 0x807fffff, // subnormals
	0x7f800000, 0xff800000, // ±Inf
	0x7fc00000, 0x7fa00001, 0xffffffff, // NaNs, one signalling, payloads
	0x7f7fffff, 0x3f800000, 0x3eaaaaab,
}

func randomDict(t *testing.T, seed uint64) *nn.StateDict {
	t.Helper()
	sd := nn.NewStateDict()
	x := seed
	next := func() uint32 { // xorshift: any bit pattern
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return uint32(x)
	}
	shapes := map[string][]int{
		"layer1.0.conv1.weight": {4, 3, 3, 3}, "fc.bias": {10}, "scalar": {},
		"bn.running_var": {4}, "A": {1, 1, 1, 1, 1}, "odd name \"ü\"\n": {2, 3},
	}
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		data := make([]float32, nn.Numel(shapes[n]))
		for i := range data {
			data[i] = math.Float32frombits(next())
		}
		if n == "fc.bias" {
			for i, b := range specials[:len(data)] {
				data[i] = math.Float32frombits(b)
			}
		}
		if err := sd.Add(n, nn.NewTensor(shapes[n], data)); err != nil {
			t.Fatal(err)
		}
	}
	return sd
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta map[string]string
		seed uint64
	}{
		{"no metadata", nil, 1},
		{"empty metadata", map[string]string{}, 2},
		{"metadata", map[string]string{"format": "rmprune/1", "graph": `{"nodes":[]}`, "x\ny": "<&>\u2028", "": ""}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := randomDict(t, tt.seed)
			var b1, b2 bytes.Buffer
			if err := Write(&b1, tt.meta, sd); err != nil {
				t.Fatal(err)
			}
			if n := binary.LittleEndian.Uint64(b1.Bytes()); n%8 != 0 {
				t.Errorf("header length: got %d; want a multiple of 8", n)
			}
			slices.Reverse(sd.Keys)
			if err := Write(&b2, tt.meta, sd); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
				t.Errorf("two writes of the same tensors differ")
			}
			f, err := Read(bytes.NewReader(b1.Bytes()), int64(b1.Len()), "mem")
			if err != nil {
				t.Fatal(err)
			}
			wantMeta := tt.meta
			if wantMeta == nil {
				wantMeta = map[string]string{}
			}
			if !reflect.DeepEqual(f.Metadata, wantMeta) {
				t.Errorf("metadata: got %q; want %q", f.Metadata, wantMeta)
			}
			wantKeys := slices.Sorted(slices.Values(sd.Keys))
			if !slices.Equal(f.Tensors.Keys, wantKeys) {
				t.Errorf("keys: got %q; want %q", f.Tensors.Keys, wantKeys)
			}
			for _, k := range wantKeys {
				want, _ := sd.Get(k)
				got, ok := f.Tensors.Get(k)
				if !ok {
					t.Errorf("%q: missing", k)
					continue
				}
				if g, w := nn.ShapeOf(got), nn.ShapeOf(want); !slices.Equal(g, w) {
					t.Errorf("%q: shape: got %v; want %v", k, g, w)
					continue
				}
				gd, wd := nn.Floats(got), nn.Floats(want)
				for i := range wd {
					if g, w := math.Float32bits(gd[i]), math.Float32bits(wd[i]); g != w {
						t.Errorf("%q[%d]: got %#08x; want %#08x", k, i, g, w)
					}
				}
			}
		})
	}
}

func TestConversions(t *testing.T) {
	// Values from the IEEE 754 binary16 and OCP 8-bit floating point specs.
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		dtype string
		in    []byte
		want  []float32
	}{
		{"F16", []byte{0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x7c, 0x00, 0x80}, []float32{1, -2, 65504, 0x1p-24, inf, float32(math.Copysign(0, -1))}},
		{"F16", []byte{0x01, 0x7e}, []float32{nan}},
		{"BF16", []byte{0x80, 0x3f, 0x49, 0x40, 0x80, 0xff}, []float32{1, 3.140625, -inf}},
		{"F8_E5M2", []byte{0x3c, 0x7b, 0x7c, 0x01, 0xc0, 0x7e}, []float32{1, 57344, inf, 0x1p-16, -2, nan}},
		{"F8_E4M3", []byte{0x38, 0x7e, 0x01, 0xc0, 0x08, 0x7f, 0xff}, []float32{1, 448, 0x1p-9, -2, 0x1p-6, nan, nan}},
		{"I8", []byte{0x80, 0x7f}, []float32{-128, 127}},
		{"U16", []byte{0xff, 0xff}, []float32{65535}},
		{"I32", []byte{0xff, 0xff, 0xff, 0xff}, []float32{-1}},
		{"U32", []byte{0xff, 0xff, 0xff, 0xff}, []float32{4294967296}},
		{"I64", []byte{0x01, 0, 0, 0x01, 0, 0, 0, 0}, []float32{16777216}}, // 2^24+1 rounds to even
		{"BOOL", []byte{0, 1, 2}, []float32{0, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.dtype, func(t *testing.T) {
			dt := dtypes[tt.dtype]
			got := make([]float32, len(tt.in)/dt.size)
			dt.conv(got, tt.in)
			for i := range tt.want {
				g, w := got[i], tt.want[i]
				if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
					t.Errorf("[%d]: got %v; want %v", i, g, w)
				}
			}
		})
	}
}

// build makes a file from a header and a data buffer.
func build(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func withLen(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

// badFiles are hostile or broken files with a fragment of the error each
// must give.
var badFiles = []struct {
	name string
	file []byte
	want string
}{
	{"empty file", nil, "too short"},
	{"short file", []byte{1, 2, 3}, "too short"},
	{"header past limit", withLen(MaxHeaderSize+1, "{}"), "exceeds the limit"},
	{"header past file", withLen(100, "{}"), "exceeds the 2 bytes"},
	{"header huge", withLen(math.MaxUint64, "{}"), "exceeds the limit"},
	{"not json", build("hello", nil), "does not start with '{'"},
	{"array header", build("[1,2]", nil), "does not start with '{'"},
	{"bad json", build(`{"a":}`, nil), "invalid header json"},
	{"unterminated", build(`{"a":{"dtype":"F32"`, nil), "invalid header json"},
	{"invalid utf-8", build("{\"\xff\":1}", nil), "utf-8"},
	{"trailing data", build(`{} x`, nil), "trailing data"},
	{"duplicate tensor", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), `duplicate key "a"`},
	{"duplicate metadata", build(`{"__metadata__":{"k":"1","k":"2"}}`, nil), `duplicate __metadata__ key "k"`},
	{"two metadata", build(`{"__metadata__":{},"__metadata__":{}}`, nil), "duplicate key"},
	{"metadata number", build(`{"__metadata__":{"k":1}}`, nil), `__metadata__ "k": value is not a string`},
	{"metadata object", build(`{"__metadata__":{"k":{"x":"y"}}}`, nil), "value is not a string"},
	{"metadata list", build(`{"__metadata__":["a"]}`, nil), "__metadata__ is not an object"},
	{"entry not object", build(`{"a":[0,4]}`, nil), `tensor "a" is not an object`},
	{"unknown dtype", build(`{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)), `unsupported dtype "C64"`},
	{"dtype number", build(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "dtype is not a string"},
	{"missing shape", build(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), "missing shape"},
	{"missing offsets", build(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), "missing data_offsets"},
	{"duplicate field", build(`{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `duplicate field "dtype"`},
	{"negative dim", build(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)), "-1 is not a non-negative integer"},
	{"float dim", build(`{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`, make([]byte, 4)), "1.0 is not a non-negative integer"},
	{"string dim", build(`{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}`, make([]byte, 4)), `"1" is not a number`},
	{"huge dim", build(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}`, make([]byte, 4)), "not a non-negative integer"},
	{"overflowing shape", build(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)), "larger than the 4-byte data buffer"},
	{"size wraps to zero", build(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}`, nil), "larger than"},
	{"deep rank", build(`{"a":{"dtype":"F32","shape":[`+strings.Repeat("1,", 70)+`1],"data_offsets":[0,4]}}`, make([]byte, 4)), "more than 64 numbers"},
	{"three offsets", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 8)), "data_offsets has 3 numbers"},
	{"end before begin", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}`, make([]byte, 8)), "end before they begin"},
	{"past buffer", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 4)), "run past the 4-byte data buffer"},
	{"huge offsets", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]}}`, make([]byte, 4)), "run past"},
	{"size mismatch", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), "span 4 bytes; dtype F32 shape [2] needs 8"},
	{"overlap", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), `tensor "b" overlaps tensor "a"`},
	{"same range", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "overlaps"},
	{"hole", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "hole: bytes [0, 4)"},
	{"uncovered tail", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 6)), "2 bytes after the last tensor"},
	{"data without tensors", build(`{}`, make([]byte, 1)), "1 bytes after the last tensor"},
	{"empty tensor", build(`{"a":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}`, nil), "empty tensors"},
	{"name with newline", build("{\"a\\nb\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", nil), `tensor "a\nb": unsupported dtype "X"`},
}

func TestReadErrors(t *testing.T) {
	for _, tt := range badFiles {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(tt.file), int64(len(tt.file)), "bad.safetensors")
			if err == nil {
				t.Fatalf("got %d tensors and no error; want an error containing %q", f.Tensors.Len(), tt.want)
			}
			checkFormatError(t, err, "bad.safetensors")
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

func checkFormatError(t *testing.T, err error, name string) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Errorf("got %T %q; want a *FormatError", err, err)
	}
	msg := err.Error()
	if prefix := "safetensors: " + name + ": "; !strings.HasPrefix(msg, prefix) {
		t.Errorf("got %q; want prefix %q", msg, prefix)
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("got %q; want one line", msg)
	}
}

// shortReader claims a size it cannot deliver.
type shortReader struct{ b []byte }

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(r.b).ReadAt(p, off)
}

func TestReadTruncated(t *testing.T) {
	full, err := os.ReadFile("testdata/mixed.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{4, 20, len(full) - 1} {
		_, err := Read(shortReader{full[:n]}, int64(len(full)), "cut")
		if err == nil {
			t.Fatalf("cut to %d bytes: got no error; want one", n)
		}
		checkFormatError(t, err, "cut")
		// Cut files whose size is known are rejected from the header alone.
		_, err = Read(bytes.NewReader(full[:n]), int64(n), "cut")
		if err == nil {
			t.Fatalf("%d-byte file: got no error; want one", n)
		}
		checkFormatError(t, err, "cut")
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing", filepath.Join(dir, "nope.safetensors"), "no such file"},
		{"directory", dir, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFile(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "safetensors: ") {
				t.Errorf("got %v; want a safetensors: error containing %q", err, tt.want)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	f64 := tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2}))
	ok := nn.NewTensor([]int{1}, []float32{1})
	view, err := nn.NewTensor([]int{2, 2}, []float32{1, 2, 3, 4}).Slice(nil, tensor.S(1))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		sd   *nn.StateDict
		meta map[string]string
		want string
	}{
		{"nil dict", nil, nil, "nil state dict"},
		{"float64", &nn.StateDict{Keys: []string{"w"}, Tensors: map[string]*tensor.Dense{"w": f64}}, nil, "want float32"},
		{"view", &nn.StateDict{Keys: []string{"w"}, Tensors: map[string]*tensor.Dense{"w": view.(*tensor.Dense)}}, nil, "view"},
		{"reserved name", &nn.StateDict{Keys: []string{"__metadata__"}, Tensors: map[string]*tensor.Dense{"__metadata__": ok}}, nil, "cannot name a tensor"},
		{"bad utf-8 name", &nn.StateDict{Keys: []string{"\xff"}, Tensors: map[string]*tensor.Dense{"\xff": ok}}, nil, "utf-8"},
		{"bad utf-8 metadata", nn.NewStateDict(), map[string]string{"k": "\xfe"}, "utf-8"},
		{"key without tensor", &nn.StateDict{Keys: []string{"a"}, Tensors: map[string]*tensor.Dense{"b": ok}}, nil, `"a": listed in Keys but missing`},
		{"repeated key", &nn.StateDict{Keys: []string{"a", "a"}, Tensors: map[string]*tensor.Dense{"a": ok, "b": ok}}, nil, `duplicate tensor "a"`},
		{"keys short", &nn.StateDict{Keys: []string{"a"}, Tensors: map[string]*tensor.Dense{"a": ok, "b": ok}}, nil, "1 keys for 2 tensors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "m.safetensors")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := WriteFile(path, tt.meta, tt.sd)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want an error containing %q", err, tt.want)
			}
			if prefix := "safetensors: write " + path + ": "; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("got %q; want prefix %q", err, prefix)
			}
			if b, _ := os.ReadFile(path); string(b) != "old" {
				t.Errorf("existing file: got %q; want it untouched", b)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("directory: got %d entries; want 1 (no temporary left)", len(ents))
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	sd := randomDict(t, 7)
	dir := t.TempDir()
	// Renaming over a directory fails after the data is written: the
	// temporary file must go.
	target := filepath.Join(dir, "taken")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, nil, sd); err == nil {
		t.Errorf("write over a directory: got no error; want one")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory: got %d entries; want 1 (no temporary left)", len(ents))
	}
	// A missing directory is an error naming the path.
	missing := filepath.Join(dir, "no", "m.safetensors")
	if err := WriteFile(missing, nil, sd); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("got %v; want an error naming %s", err, missing)
	}
	// Replacing an existing file works and leaves only the file.
	path := filepath.Join(dir, "m.safetensors")
	for range 2 {
		if err := WriteFile(path, map[string]string{"a": "b"}, sd); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("directory: got %d entries; want 2", len(ents))
	}
	if _, err := ReadFile(path); err != nil {
		t.Error(err)
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return w.n, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteWriterError(t *testing.T) {
	sd := randomDict(t, 9)
	for _, n := range []int{0, 8, 100, 200} {
		err := Write(&failWriter{n}, nil, sd)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("fail after %d bytes: got %v; want disk full", n, err)
		}
	}
}

// TestReadMemory checks that reading allocates the tensors and little else:
// the file is never held in memory.
func TestReadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 32 MB file")
	}
	const n, per = 8, 1 << 20
	sd := nn.NewStateDict()
	for i := range n {
		if err := sd.Add(string(rune('a'+i)), nn.NewTensor([]int{per}, make([]float32, per))); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "big.safetensors")
	if err := WriteFile(path, nil, sd); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f, err := ReadFile(path)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	tensorBytes := uint64(4 * n * per)
	if got, limit := after.TotalAlloc-before.TotalAlloc, tensorBytes+tensorBytes/8; got > limit {
		t.Errorf("allocated %d bytes reading %d bytes of tensors; want at most %d", got, tensorBytes, limit)
	}
	runtime.KeepAlive(f)
}

func BenchmarkReadFile(b *testing.B) {
	for _, mb := range []int{1, 16} {
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			sd := nn.NewStateDict()
			per := mb << 16 // floats per tensor: four tensors make mb MB
			for i := range 4 {
				if err := sd.Add(fmt.Sprint("t", i), nn.NewTensor([]int{per}, make([]float32, per))); err != nil {
					b.Fatal(err)
				}
			}
			path := filepath.Join(b.TempDir(), "b.safetensors")
			if err := WriteFile(path, nil, sd); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(mb) << 20)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ReadFile(path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
