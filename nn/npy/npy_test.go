package npy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// expected mirrors testdata/expected.json, written by
// scripts/fixtures/formats.py with numpy 1.24 (values as float32 bits).
type expected struct {
	Files map[string]struct {
		Shape     []int    `json:"shape"`
		Bits      []uint32 `json:"bits"`
		SameBytes bool     `json:"same_bytes"`
		Error     string   `json:"error"`
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
	for name, want := range loadExpected(t).Files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			shape, data, err := ReadFile(path)
			if want.Error != "" {
				if err == nil {
					t.Fatalf("got shape %v and no error; want an error containing %q", shape, want.Error)
				}
				checkFormatError(t, err, path)
				if !strings.Contains(err.Error(), want.Error) {
					t.Errorf("got %q; want it to contain %q", err, want.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(shape, want.Shape) {
				t.Errorf("shape: got %v; want %v", shape, want.Shape)
			}
			if len(data) != len(want.Bits) {
				t.Fatalf("got %d elements; want %d", len(data), len(want.Bits))
			}
			for i, v := range data {
				if b := math.Float32bits(v); b != want.Bits[i] {
					t.Errorf("[%d]: got %v (%#08x); want %v (%#08x)", i, v, b, math.Float32frombits(want.Bits[i]), want.Bits[i])
				}
			}
			// The stream reader agrees.
			raw, _ := os.ReadFile(path)
			s2, d2, err := Read(bytes.NewReader(raw))
			if err != nil || !slices.Equal(s2, shape) || !bitsEqual(d2, data) {
				t.Errorf("Read: got %v, %d elements, %v; want the same as ReadFile", s2, len(d2), err)
			}
			if !want.SameBytes {
				return
			}
			var buf bytes.Buffer
			if err := Write(&buf, shape, data); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), raw) {
				t.Errorf("Write: got\n%q\nwant (np.save)\n%q", buf.Bytes()[:min(buf.Len(), 128)], raw[:min(len(raw), 128)])
			}
		})
	}
}

func bitsEqual(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func checkFormatError(t *testing.T, err error, name string) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Errorf("got %T %q; want a *FormatError", err, err)
	}
	prefix := "npy: "
	if name != "" {
		prefix += name + ": "
	}
	if msg := err.Error(); !strings.HasPrefix(msg, prefix) || strings.ContainsAny(msg, "\r\n") {
		t.Errorf("got %q; want one line prefixed %q", msg, prefix)
	}
}

func TestRoundTrip(t *testing.T) {
	special := []float32{float32(math.NaN()), float32(math.Inf(-1)), float32(math.Copysign(0, -1)),
		math.Float32frombits(1), math.Float32frombits(0x7fa00001), math.MaxFloat32}
	tests := []struct {
		name  string
		shape []int
	}{
		{"0-d", []int{}},
		{"vector", []int{6}},
		{"matrix", []int{2, 3}},
		{"4-d", []int{2, 3, 4, 5}},
		{"empty", []int{0, 4}},
		{"long", []int{300000}}, // more than one write chunk
		{"wide first axis", []int{1234567890123, 0}},
		{"many axes", slices.Repeat([]int{1}, 32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 1
			for _, d := range tt.shape {
				n *= d
			}
			data := make([]float32, n)
			for i := range data {
				data[i] = float32(i)*0.37 - 5
			}
			copy(data, special)
			path := filepath.Join(t.TempDir(), "a.npy")
			if err := WriteFile(path, tt.shape, data); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(path)
			if hl := 10 + int(binary.LittleEndian.Uint16(raw[8:])); hl%64 != 0 {
				t.Errorf("data offset: got %d; want a multiple of 64", hl)
			}
			shape, got, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(shape, tt.shape) {
				t.Errorf("shape: got %v; want %v", shape, tt.shape)
			}
			if !bitsEqual(got, data) {
				t.Errorf("data: got %d elements differing from the %d written", len(got), len(data))
			}
		})
	}
}

func TestReadStreamOfArrays(t *testing.T) {
	var buf bytes.Buffer
	for i := range 3 {
		if err := Write(&buf, []int{i + 1}, make([]float32, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		shape, _, err := Read(&buf)
		if err != nil || !slices.Equal(shape, []int{i + 1}) {
			t.Fatalf("array %d: got %v, %v; want [%d]", i, shape, err, i+1)
		}
	}
	if _, _, err := Read(&buf); err == nil {
		t.Errorf("read past the last array: got no error; want one")
	}
}

// npyFile builds a file with a version and a raw header dictionary.
func npyFile(major byte, dict string, data []byte) []byte {
	b := append([]byte(magic), major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(dict)))
	}
	return append(append(b, dict...), data...)
}

// badFiles are broken or unsupported files with a fragment of the error each
// must give.
var badFiles = []struct {
	name string
	file []byte
	want string
}{
	{"empty", nil, "too short"},
	{"not npy", []byte("PK\x03\x04 this is a zip"), "bad magic"},
	{"version 4", npyFile(4, "{}", nil), "unsupported format version 4.0"},
	{"minor version", append([]byte(magic), 1, 1, 0, 0), "unsupported format version 1.1"},
	{"no header length", []byte(magic + "\x01\x00\x05"), "header length truncated"},
	{"header past file", npyFile(1, "{}", nil)[:11], "header length 2 exceeds"},
	{"huge header", append([]byte(magic), 2, 0, 0xff, 0xff, 0xff, 0xff), "exceeds the limit"},
	{"not a dict", npyFile(1, "[1, 2]\n", nil), "not a dictionary"},
	{"syntax", npyFile(1, "{'descr': '<f4',, }\n", nil), "cannot parse header"},
	{"unterminated", npyFile(1, "{'descr': '<f4'", nil), "unexpected end of header"},
	{"trailing junk", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()} x", nil), "cannot parse header"},
	{"code", npyFile(1, "{'descr': __import__('os').system('ls'), 'fortran_order': False, 'shape': ()}", nil), "cannot parse header"},
	{"missing shape", npyFile(1, "{'descr': '<f4', 'fortran_order': False}", nil), `header has no "shape"`},
	{"extra key", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", nil), `unexpected key "x"`},
	{"duplicate key", npyFile(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", nil), `duplicate key "descr"`},
	{"shape list", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", nil), "shape [2] is not a tuple"},
	{"negative dim", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", nil), "dimension 0 is not a non-negative integer"},
	{"float dim", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)}", nil), "not an integer"},
	{"huge dim", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", nil), "out of range"},
	{"overflowing shape", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}", nil), "too large"},
	{"fortran not bool", npyFile(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}", nil), "fortran_order is not True or False"},
	{"int64", npyFile(1, "{'descr': '<i8', 'fortran_order': False, 'shape': ()}", make([]byte, 8)), `dtype "<i8" (int64) not supported`},
	{"uint8", npyFile(1, "{'descr': '|u1', 'fortran_order': False, 'shape': ()}", make([]byte, 1)), "(uint8)"},
	{"bool", npyFile(1, "{'descr': '|b1', 'fortran_order': False, 'shape': ()}", make([]byte, 1)), "(bool)"},
	{"complex", npyFile(1, "{'descr': '<c8', 'fortran_order': False, 'shape': ()}", make([]byte, 8)), "(complex64)"},
	{"big-endian f8", npyFile(1, "{'descr': '>f8', 'fortran_order': False, 'shape': ()}", make([]byte, 8)), "big-endian"},
	{"object", npyFile(1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,)}", make([]byte, 8)), "pickled python objects"},
	{"odd descr", npyFile(1, "{'descr': 'x\\n', 'fortran_order': False, 'shape': ()}", nil), `dtype "x\n" not supported`},
	{"descr int", npyFile(1, "{'descr': 5, 'fortran_order': False, 'shape': ()}", nil), "descr 5 is not a dtype string"},
	{"structured", npyFile(1, "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': ()}", nil), "structured dtype"},
	{"fortran", npyFile(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", make([]byte, 16)), "fortran_order arrays are not supported"},
	{"deep", npyFile(1, strings.Repeat("(", 100), nil), "nested deeper"},
	{"short data", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", make([]byte, 8)), "data is 8 bytes; shape [3] of float32 needs 12"},
	{"long data", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", make([]byte, 8)), "data is 8 bytes"},
	{"invalid utf-8 v3", npyFile(3, "{'descr': '\xff'}", nil), "not valid utf-8"},
}

func TestReadErrors(t *testing.T) {
	for _, tt := range badFiles {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.npy")
			if err := os.WriteFile(path, tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			shape, _, err := ReadFile(path)
			if err == nil {
				t.Fatalf("got shape %v and no error; want an error containing %q", shape, tt.want)
			}
			checkFormatError(t, err, path)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestReadStreamTruncated(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, []int{4, 4}, make([]float32, 16)); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	for _, n := range []int{0, 7, 9, 50, len(full) - 1} {
		_, _, err := Read(bytes.NewReader(full[:n]))
		if err == nil {
			t.Fatalf("cut to %d bytes: got no error; want one", n)
		}
		checkFormatError(t, err, "")
	}
	// A header that promises far more than arrives costs no more memory
	// than what arrives.
	huge := npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,)}", make([]byte, 64))
	if _, _, err := Read(bytes.NewReader(huge)); err == nil || !strings.Contains(err.Error(), "data truncated") {
		t.Errorf("got %v; want data truncated", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("device gone") }

func TestReadIOError(t *testing.T) {
	_, _, err := Read(io.MultiReader(bytes.NewReader([]byte(magic)), errReader{}))
	if err == nil || !strings.Contains(err.Error(), "device gone") || !strings.HasPrefix(err.Error(), "npy: ") {
		t.Errorf("got %v; want an npy: error wrapping device gone", err)
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name  string
		shape []int
		n     int
		want  string
	}{
		{"count mismatch", []int{2, 3}, 5, "shape [2 3] has 6 elements, data 5"},
		{"negative", []int{-1}, 0, "negative"},
		{"overflow", []int{1 << 40, 1 << 40}, 0, "too large"},
		{"0-d needs one", []int{}, 0, "has 1 elements, data 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a.npy")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := WriteFile(path, tt.shape, make([]float32, tt.n))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "npy: write "+path+": ") {
				t.Fatalf("got %v; want npy: write %s: ...%s", err, path, tt.want)
			}
			if b, _ := os.ReadFile(path); string(b) != "old" {
				t.Errorf("existing file: got %q; want it untouched", b)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("directory: got %d entries; want 1", len(ents))
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "taken")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []int{2}, []float32{1, 2}); err == nil {
		t.Errorf("write over a non-empty directory: got no error; want one")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory: got %d entries; want 1 (no temporary left)", len(ents))
	}
}

func TestWriteV2Header(t *testing.T) {
	// A rank big enough to need more than 65535 header bytes switches to 2.0.
	shape := slices.Repeat([]int{1}, 30000)
	var buf bytes.Buffer
	if err := Write(&buf, shape, []float32{7}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if b[6] != 2 {
		t.Fatalf("version: got %d.%d; want 2.0", b[6], b[7])
	}
	if hl := 12 + int(binary.LittleEndian.Uint32(b[8:])); hl%64 != 0 {
		t.Errorf("data offset: got %d; want a multiple of 64", hl)
	}
	// Reading it back needs a header under maxHeaderLen: fine at 30000 axes.
	got, data, err := Read(bytes.NewReader(b))
	if err != nil || len(got) != len(shape) || !slices.Equal(data, []float32{7}) {
		t.Errorf("got rank %d, %v, %v; want rank %d, [7]", len(got), data, err, len(shape))
	}
}
