package pth

import (
	"archive/zip"
	"bytes"
	"fmt"
	"github.com/rmprune/rmprune/internal/memtest"
	"os"
	"strings"
	"testing"
)

// manyRecords builds a torch-like zip archive with n empty storage records.
func manyRecords(t *testing.T, n int) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := range n {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("archive/data/%d", i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Store})
	w.Write([]byte{0x80, 2, '}', '.'}) // an empty dict
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReadMemoryBounded reads archives with too many records (plain and
// ZIP64) and real checkpoints, and bounds the peak heap by a small multiple
// of the file size plus a fixed allowance.
func TestReadMemoryBounded(t *testing.T) {
	real, err := os.ReadFile("../../testdata/nets/resnet50_tv.pth")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    []byte
		wantErr string
	}{
		{"records past the cap", manyRecords(t, maxZipRecords+1), fmt.Sprintf("zip archive has %d records (max %d)", maxZipRecords+2, maxZipRecords)},
		{"zip64 records past the cap", manyRecords(t, 70000), "zip archive has 70001 records"},
		{"records at the cap", manyRecords(t, maxZipRecords-1), ""},
		{"resnet50 fixture", real, ""},
	}
	const slack = 24 << 20
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			peak := memtest.PeakHeap(func() { _, err = Read(bytes.NewReader(tt.file), int64(len(tt.file)), "x.pth") })
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v; want %q", err, tt.wantErr)
			}
			if tt.wantErr == "" && err != nil && !strings.Contains(err.Error(), "no tensors") {
				t.Fatalf("err %v; want none (or no tensors, for an empty dict)", err)
			}
			limit := 4*uint64(len(tt.file)) + slack
			t.Logf("file %.1f MB, peak heap %.1f MB (limit %.1f MB), err %v", float64(len(tt.file))/1e6, float64(peak)/1e6, float64(limit)/1e6, err)
			if peak > limit {
				t.Errorf("peak heap %d bytes for a %d-byte file; want ≤ %d", peak, len(tt.file), limit)
			}
		})
	}
}
