package npy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read. It must never panic, must fail
// only with a one-line *FormatError, and whatever it accepts must survive a
// write and a second read unchanged.
func FuzzRead(f *testing.F) {
	paths, err := filepath.Glob("testdata/*.npy")
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
	f.Fuzz(func(t *testing.T, b []byte) {
		shape, data, err := Read(bytes.NewReader(b))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %T %q; want a *FormatError", err, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "npy: ") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("got %q; want one line prefixed npy: ", msg)
			}
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, shape, data); err != nil {
			t.Fatalf("write what was read: %v", err)
		}
		s2, d2, err := Read(&buf)
		if err != nil {
			t.Fatalf("read what was written: %v", err)
		}
		if !slices.Equal(s2, shape) || !bitsEqual(d2, data) {
			t.Fatalf("round trip: got shape %v; want %v (or data differs)", s2, shape)
		}
	})
}
