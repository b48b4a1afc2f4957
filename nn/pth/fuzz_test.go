package pth

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// FuzzRead feeds arbitrary bytes to the reader, seeded from testdata. It calls
// the unexported read, not Read, so that a panic is not hidden by Read's recover.
func FuzzRead(f *testing.F) {
	files, err := filepath.Glob("testdata/*.pth")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(checkpoint([]string{"w", "b"}, [][]int64{{2, 2}, {}}, [][]float32{{1, 2, 3, 4}, {5}}))
	f.Add(statePickle([]fakeTensor{{name: "w", key: "0", stype: "HalfStorage", numel: 4, shape: []int64{2, 2}, stride: []int64{1, 2}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := read(bytes.NewReader(b), int64(len(b)), "fuzz.pth")
		if err != nil {
			if s := err.Error(); !strings.HasPrefix(s, "pth: fuzz.pth: ") || strings.Contains(s, "\n") {
				t.Fatalf("error %q: want one line prefixed pth: fuzz.pth: ", s)
			}
			return
		}
		if sd.Len() == 0 {
			t.Fatal("no error and no tensors")
		}
		for _, k := range sd.Keys {
			tt := sd.Tensors[k]
			if got, want := len(nn.Floats(tt)), nn.Numel(nn.ShapeOf(tt)); got != want {
				t.Fatalf("%s: %d elements for shape %v", k, got, nn.ShapeOf(tt))
			}
		}
	})
}
