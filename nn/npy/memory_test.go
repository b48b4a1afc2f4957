package npy

import (
	"bytes"
	"github.com/rmprune/rmprune/internal/memtest"
	"path/filepath"
	"testing"
)

// TestReadMemoryBounded: a 16 MB array costs about its size (plus the 1 MB
// chunk), from a file or from a stream of unknown length, and a header that
// claims far more than the file holds is refused before any allocation.
func TestReadMemoryBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.npy")
	n := 4 << 20
	if err := WriteFile(path, []int{4, 1 << 20}, make([]float32, n)); err != nil {
		t.Fatal(err)
	}
	const slack = 8 << 20
	size := uint64(4*n + 128)
	var err error
	if peak := memtest.PeakHeap(func() { _, _, err = ReadFile(path) }); err != nil || peak > size+slack {
		t.Errorf("ReadFile: peak heap %d, err %v; want ≤ %d (the file + %d), no error", peak, err, size+slack, slack)
	}
	var buf bytes.Buffer
	Write(&buf, []int{4, 1 << 20}, make([]float32, n))
	// A stream of unknown length grows by doubling: at most ~2× the data.
	if peak := memtest.PeakHeap(func() { _, _, err = Read(&buf) }); err != nil || peak > 2*size+slack {
		t.Errorf("Read: peak heap %d, err %v; want ≤ %d, no error", peak, err, 2*size+slack)
	}
	huge := npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,)}", make([]byte, 64))
	if peak := memtest.PeakHeap(func() { _, _, err = Read(bytes.NewReader(huge)) }); err == nil || peak > slack {
		t.Errorf("huge claimed shape from a stream: peak heap %d, err %v; want an error within %d", peak, err, slack)
	}
}
