package npy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"

	"github.com/rmprune/rmprune/internal/atomicfile"
)

// WriteFile writes data, shaped as shape, to path as a '<f4' C-order .npy
// file (see [Write]). The file is replaced atomically: the bytes go to a
// temporary file in the same directory, which is synced and then renamed
// over path; on any error path is untouched and the temporary file removed.
func WriteFile(path string, shape []int, data []float32) error {
	hdr, err := header(shape, len(data))
	if err == nil {
		err = atomicfile.Write(path, func(w io.Writer) error { return writeArray(w, hdr, data) })
	}
	if err != nil {
		return fmt.Errorf("npy: write %s: %w", path, err)
	}
	return nil
}

// Write writes data, shaped as shape (row-major; [] is a 0-d array of one
// element), to w as a '<f4' .npy array: format 1.0, or 2.0 when the header
// needs more than 65535 bytes, laid out as np.save writes it.
func Write(w io.Writer, shape []int, data []float32) error {
	hdr, err := header(shape, len(data))
	if err == nil {
		err = writeArray(w, hdr, data)
	}
	if err != nil {
		return fmt.Errorf("npy: write: %w", err)
	}
	return nil
}

// growthDigits is numpy's spare room after the dict for the first axis to
// grow in place (len(str(8*2**64-1))).
const growthDigits = 21

// header returns the magic, version, length and padded header dictionary.
func header(shape []int, n int) ([]byte, error) {
	numel := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		hi, lo := bits.Mul64(numel, uint64(d))
		if hi != 0 {
			return nil, fmt.Errorf("shape %v is too large", shape)
		}
		numel = lo
	}
	if numel != uint64(n) {
		return nil, fmt.Errorf("shape %v has %d elements, data %d", shape, numel, n)
	}

	dict := []byte("{'descr': '<f4', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if i > 0 {
			dict = append(dict, ", "...)
		}
		dict = strconv.AppendInt(dict, int64(d), 10)
	}
	if len(shape) == 1 {
		dict = append(dict, ',')
	}
	dict = append(dict, "), }"...)
	if len(shape) > 0 {
		for range growthDigits - len(strconv.Itoa(shape[0])) {
			dict = append(dict, ' ')
		}
	}

	// Pad with spaces and end with '\n' so the data starts at a multiple of 64.
	for _, lenSize := range []int{2, 4} {
		hlen := len(dict) + 1
		pad := 64 - (8+lenSize+hlen)%64
		total := hlen + pad
		if lenSize == 2 && total > math.MaxUint16 {
			continue
		}
		out := make([]byte, 0, 8+lenSize+total)
		out = append(out, magic...)
		if lenSize == 2 {
			out = append(out, 1, 0)
			out = binary.LittleEndian.AppendUint16(out, uint16(total))
		} else {
			out = append(out, 2, 0)
			out = binary.LittleEndian.AppendUint32(out, uint32(total))
		}
		out = append(out, dict...)
		for range pad {
			out = append(out, ' ')
		}
		return append(out, '\n'), nil
	}
	return nil, errors.New("header too large") // unreachable: rank is bounded by memory
}

func writeArray(w io.Writer, hdr []byte, data []float32) error {
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	buf := make([]byte, 0, min(4*len(data), chunkSize))
	for _, v := range data {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		if len(buf) == cap(buf) {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		_, err := w.Write(buf)
		return err
	}
	return nil
}
