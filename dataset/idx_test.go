package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// encodeIDX returns the IDX encoding (unsigned bytes) of data with dims.
func encodeIDX(dims []int, data []uint8) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 0x08, byte(len(dims))})
	for _, d := range dims {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(d)))
	}
	b.Write(data)
	return b.Bytes()
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	if _, err := z.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkErr asserts err is a one-line "dataset: " error matching class and
// containing every string of want.
func checkErr(t *testing.T, err error, class error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want one containing %q", want)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "dataset: ") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line starting with \"dataset: \"", msg)
	}
	if class != nil && !errors.Is(err, class) {
		t.Errorf("error %q: errors.Is(err, %v) = false", msg, class)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q: want it to contain %q", msg, w)
		}
	}
}

func TestParseIDX(t *testing.T) {
	pix := []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	good := encodeIDX([]int{2, 2, 3}, pix)
	tests := []struct {
		name    string
		data    []byte
		dims    []int
		wantErr string
	}{
		{"plain", good, []int{2, 2, 3}, ""},
		{"gzip", gz(t, good), []int{2, 2, 3}, ""},
		{"labels", encodeIDX([]int{3}, []uint8{7, 8, 9}), []int{3}, ""},
		{"zero images", encodeIDX([]int{0, 28, 28}, nil), []int{0, 28, 28}, ""},
		{"empty", nil, nil, "truncated idx header"},
		{"short header", good[:9], nil, "truncated idx header"},
		{"bad magic", append([]byte{0x12, 0x34}, good[2:]...), nil, "bad idx magic"},
		{"float type", append([]byte{0, 0, 0x0d}, good[3:]...), nil, "not supported"},
		{"zero dims", []byte{0, 0, 8, 0}, nil, "0 dimensions"},
		{"truncated data", good[:len(good)-1], nil, "truncated idx data"},
		{"truncated gzip", gz(t, good)[:20], nil, "truncated"},
		{"trailing data", append(slices.Clone(good), 0), nil, "longer than its header"},
		{"huge dims", encodeIDX([]int{1 << 20, 1 << 20}, nil), nil, "more than"},
		{"bad gzip header", []byte{0x1f, 0x8b, 0, 0}, nil, "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := parseIDX(tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v; want none", err)
			}
			if !slices.Equal(x.dims, tt.dims) {
				t.Errorf("got dims %v; want %v", x.dims, tt.dims)
			}
			n := 1
			for _, d := range tt.dims {
				n *= d
			}
			if len(x.data) != n {
				t.Errorf("got %d data bytes; want %d", len(x.data), n)
			}
		})
	}
	x, err := parseIDX(good)
	if err != nil || !bytes.Equal(x.data, pix) {
		t.Errorf("got data %v, %v; want %v", x.data, err, pix)
	}
}

// writeIDXDir writes an MNIST-layout directory with n train and m test
// images of size h×w; mutate may corrupt the files before they are written.
func writeIDXDir(t *testing.T, n, m, h, w int, mutate func(name string, b []byte) []byte) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range []struct {
		prefix string
		n      int
	}{{"train", n}, {"t10k", m}} {
		pix := make([]uint8, s.n*h*w)
		for i := range pix {
			pix[i] = uint8(i * 7)
		}
		lab := make([]uint8, s.n)
		for i := range lab {
			lab[i] = uint8(i % 10)
		}
		files := map[string][]byte{
			s.prefix + "-images-idx3-ubyte.gz": encodeIDX([]int{s.n, h, w}, pix),
			s.prefix + "-labels-idx1-ubyte.gz": encodeIDX([]int{s.n}, lab),
		}
		for name, b := range files {
			if mutate != nil {
				b = mutate(name, b)
			}
			if b != nil {
				writeFile(t, filepath.Join(dir, name), gz(t, b))
			}
		}
	}
	return dir
}

func TestOpenIDXDir(t *testing.T) {
	dir := writeIDXDir(t, 12, 5, 4, 3, nil)
	d, err := Open("mnist:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Train.Len() != 12 || d.Test.Len() != 5 {
		t.Errorf("got %d/%d images; want 12/5", d.Train.Len(), d.Test.Len())
	}
	if d.Shape != [3]int{1, 4, 3} {
		t.Errorf("got shape %v; want [1 4 3]", d.Shape)
	}
	if d.Train.Labels[11] != 1 || d.Train.Image(1)[0] != uint8(12*7) {
		t.Errorf("got label %d, pixel %d; want 1, %d", d.Train.Labels[11], d.Train.Image(1)[0], uint8(84))
	}
}

func TestOpenIDXErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(string, []byte) []byte
		class  error
		want   []string
	}{
		{"missing labels", func(n string, b []byte) []byte {
			if strings.HasPrefix(n, "t10k-labels") {
				return nil
			}
			return b
		}, os.ErrNotExist, []string{"t10k-labels-idx1-ubyte.gz", "does not exist"}},
		{"bad magic", func(n string, b []byte) []byte {
			if strings.HasPrefix(n, "train-images") {
				b[2] = 0x0b
			}
			return b
		}, ErrFormat, []string{"train-images-idx3-ubyte.gz", "element type"}},
		{"truncated", func(n string, b []byte) []byte {
			if strings.HasPrefix(n, "train-images") {
				return b[:len(b)-5]
			}
			return b
		}, ErrFormat, []string{"train-images-idx3-ubyte.gz", "truncated"}},
		{"count mismatch", func(n string, b []byte) []byte {
			if strings.HasPrefix(n, "train-labels") {
				return encodeIDX([]int{3}, []uint8{1, 2, 3})
			}
			return b
		}, ErrFormat, []string{"train-labels-idx1-ubyte.gz", "3 labels for 12 images"}},
		{"label range", func(n string, b []byte) []byte {
			if strings.HasPrefix(n, "t10k-labels") {
				b[len(b)-1] = 10
			}
			return b
		}, ErrFormat, []string{"t10k-labels", "out of range"}},
		{"labels as images", func(n string, b []byte) []byte {
			if strings.HasPrefix(n, "t10k-images") {
				return encodeIDX([]int{5}, make([]uint8, 5))
			}
			return b
		}, ErrFormat, []string{"t10k-images", "1 dimensions, want 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeIDXDir(t, 12, 5, 4, 3, tt.mutate)
			_, err := Open("fashion-mnist:" + dir)
			checkErr(t, err, tt.class, tt.want...)
		})
	}
}

func FuzzParseIDX(f *testing.F) {
	f.Add(encodeIDX([]int{2, 2, 2}, []uint8{1, 2, 3, 4, 5, 6, 7, 8}))
	f.Add(encodeIDX([]int{3}, []uint8{1, 2, 3}))
	f.Add(gz(f, encodeIDX([]int{1, 3, 1}, []uint8{9, 8, 7})))
	f.Add([]byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff})
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.idx*"))
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := parseIDX(data)
		if err != nil {
			if x.data != nil {
				t.Fatalf("got data with error %v", err)
			}
			return
		}
		n := 1
		for _, d := range x.dims {
			n *= d
		}
		if len(x.dims) == 0 || len(x.data) != n {
			t.Fatalf("got dims %v and %d bytes", x.dims, len(x.data))
		}
	})
}
