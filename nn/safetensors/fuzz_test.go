package safetensors

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// FuzzRead feeds arbitrary bytes to Read. It must never panic, must fail
// only with a one-line *FormatError, and whatever it accepts must survive a
// write and a second read unchanged.
func FuzzRead(f *testing.F) {
	paths, err := filepath.Glob("testdata/*.safetensors")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tt := range badFiles {
		f.Add(tt.file)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %T %q; want a *FormatError", err, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "safetensors: fuzz: ") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("got %q; want one line prefixed safetensors: fuzz: ", msg)
			}
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, file.Metadata, file.Tensors); err != nil {
			t.Fatalf("write what was read: %v", err)
		}
		again, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "again")
		if err != nil {
			t.Fatalf("read what was written: %v", err)
		}
		if !reflect.DeepEqual(again.Metadata, file.Metadata) {
			t.Fatalf("metadata: got %q; want %q", again.Metadata, file.Metadata)
		}
		if want := slices.Sorted(slices.Values(file.Tensors.Keys)); !slices.Equal(again.Tensors.Keys, want) {
			t.Fatalf("keys: got %q; want %q", again.Tensors.Keys, want)
		}
		for _, k := range file.Tensors.Keys {
			a, _ := file.Tensors.Get(k)
			b, _ := again.Tensors.Get(k)
			if !slices.Equal(nn.ShapeOf(a), nn.ShapeOf(b)) {
				t.Fatalf("%q: shape: got %v; want %v", k, nn.ShapeOf(b), nn.ShapeOf(a))
			}
			av, bv := nn.Floats(a), nn.Floats(b)
			for i := range av {
				if math.Float32bits(av[i]) != math.Float32bits(bv[i]) {
					t.Fatalf("%q[%d]: got %v; want %v", k, i, bv[i], av[i])
				}
			}
		}
	})
}
