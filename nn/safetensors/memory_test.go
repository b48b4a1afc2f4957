package safetensors

import (
	"bytes"
	"fmt"
	"github.com/rmprune/rmprune/internal/memtest"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// manyTensors builds a file of n one-byte U8 tensors.
func manyTensors(n int) []byte {
	var h strings.Builder
	h.WriteString("{")
	for i := range n {
		if i > 0 {
			h.WriteString(",")
		}
		fmt.Fprintf(&h, `"layer%07d.w":{"dtype":"U8","shape":[1],"data_offsets":[%d,%d]}`, i, i, i+1)
	}
	h.WriteString("}")
	return build(h.String(), make([]byte, n))
}

// TestReadMemoryBounded reads hostile many-tensor files and a file of a few
// large tensors and bounds the peak heap: the tensor count is capped, and
// what a file can make the reader hold is a small multiple of its size plus
// a fixed allowance. Before the caps, 1.39M one-byte tensors in 104 MB took
// the server to 1.16 GB.
func TestReadMemoryBounded(t *testing.T) {
	big := nn.NewStateDict()
	for i := range 4 {
		big.Add(fmt.Sprintf("w%d", i), nn.NewTensor([]int{1 << 20}, make([]float32, 1<<20)))
	}
	var bigFile bytes.Buffer
	if err := Write(&bigFile, nil, big); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    []byte
		wantErr string
	}{
		{"many tiny tensors at the cap", manyTensors(MaxTensors), ""},
		{"many tiny tensors past the cap", manyTensors(100_000), "more than 16384 tensors"},
		{"header at the size cap", build(`{"__metadata__":{"k":"`+strings.Repeat("x", MaxHeaderSize-40)+`"}}`, nil), ""},
		{"four 4 MB tensors", bigFile.Bytes(), ""},
		{"40 MB of U8", build(`{"a":{"dtype":"U8","shape":[40000000],"data_offsets":[0,40000000]}}`, make([]byte, 40_000_000)), "expand to 160000000 bytes of float32"},
	}
	// Fixed allowance: up to MaxTensors tensors' bookkeeping (~2 KB each
	// with the header's JSON garbage), decoder buffers, the 1 MB chunk.
	const slack = 40 << 20
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			peak := memtest.PeakHeap(func() {
				_, err = Read(bytes.NewReader(tt.file), int64(len(tt.file)), "x.safetensors")
			})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v; want %q", err, tt.wantErr)
			}
			limit := 4*uint64(len(tt.file)) + slack
			t.Logf("file %.1f MB, peak heap %.1f MB (limit %.1f MB)", float64(len(tt.file))/1e6, float64(peak)/1e6, float64(limit)/1e6)
			if peak > limit {
				t.Errorf("peak heap %d bytes for a %d-byte file; want ≤ %d (4× the file + %d)", peak, len(tt.file), limit, slack)
			}
		})
	}
}
