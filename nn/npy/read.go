package npy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strconv"
	"unicode/utf8"
)

// chunkSize is the size of the buffer data passes through.
const chunkSize = 1 << 20

// ReadFile reads the float32 array in the .npy file at path. The file must
// hold exactly one array: trailing bytes are an error.
func ReadFile(path string) (shape []int, data []float32, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, nil, &FormatError{Name: path, Problem: "not a regular file"}
	}
	return read(f, path, st.Size())
}

// Read reads one float32 array from r, consuming exactly its bytes (several
// arrays saved one after another to one stream can be read in turn). Memory
// grows with the data actually read, whatever the header claims.
func Read(r io.Reader) (shape []int, data []float32, err error) {
	return read(r, "", -1)
}

// read reads an array; size is the stream's length when known, else -1.
func read(r io.Reader, name string, size int64) ([]int, []float32, error) {
	fail := func(format string, args ...any) error {
		return &FormatError{Name: name, Problem: fmt.Sprintf(format, args...)}
	}
	short := func(what string, err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &FormatError{Name: name, Problem: what + " truncated", Err: io.ErrUnexpectedEOF}
		}
		if name == "" {
			return fmt.Errorf("npy: read: %w", err)
		}
		return fmt.Errorf("npy: read %s: %w", name, err)
	}

	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fail("not a .npy file: too short")
		}
		return nil, nil, short("", err)
	}
	if string(pre[:6]) != magic {
		return nil, nil, fail("not a .npy file: bad magic %q", pre[:6])
	}
	major, minor := pre[6], pre[7]
	lenSize := 4
	switch {
	case major == 1 && minor == 0:
		lenSize = 2
	case (major == 2 || major == 3) && minor == 0:
	default:
		return nil, nil, fail("unsupported format version %d.%d", major, minor)
	}
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:lenSize]); err != nil {
		return nil, nil, short("header length", err)
	}
	hlen := int64(binary.LittleEndian.Uint32(lb[:]))
	prefix := int64(8 + lenSize)
	if hlen > maxHeaderLen {
		return nil, nil, fail("header length %d exceeds the limit of %d bytes", hlen, maxHeaderLen)
	}
	if size >= 0 && hlen > size-prefix {
		return nil, nil, fail("header length %d exceeds the %d bytes that follow it", hlen, size-prefix)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, nil, short("header", err)
	}
	if major == 3 && !utf8.Valid(hdr) {
		return nil, nil, fail("version 3.0 header is not valid utf-8")
	}
	shape, elem, err := parseHeader(hdr)
	if err != nil {
		return nil, nil, &FormatError{Name: name, Problem: err.Error(), Err: err}
	}

	numel := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(numel, uint64(d))
		if hi != 0 || lo > math.MaxInt64/8 || lo > uint64(math.MaxInt) {
			return nil, nil, fail("shape %v is too large", shape)
		}
		numel = lo
	}
	nbytes := int64(numel) * int64(elem)
	if size >= 0 {
		if have := size - prefix - hlen; have != nbytes {
			return nil, nil, fail("data is %d bytes; shape %v of %s needs %d", have, shape, dtypeName('f', elem), nbytes)
		}
	}

	// Unless the size is known (then the header's claim was checked against
	// it), collect the data in chunks as it arrives and join them at the
	// end: a header's claim alone allocates nothing, and the peak is twice
	// the data, not the garbage of repeated growth.
	var data []float32
	var chunks [][]float32
	if size >= 0 {
		data = make([]float32, 0, numel)
	}
	buf := make([]byte, min(nbytes, chunkSize))
	for left := nbytes; left > 0; {
		k := min(left, chunkSize)
		if _, err := io.ReadFull(r, buf[:k]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, nil, &FormatError{Name: name, Err: io.ErrUnexpectedEOF,
					Problem: fmt.Sprintf("data truncated: shape %v of %s needs %d bytes", shape, dtypeName('f', elem), nbytes)}
			}
			return nil, nil, short("", err)
		}
		b := buf[:k]
		if size < 0 {
			if len(chunks) > 0 {
				data = chunks[len(chunks)-1]
			}
			if len(chunks) == 0 || len(data)+int(k)/elem > cap(data) {
				chunks = append(chunks, make([]float32, 0, chunkSize))
			}
			data = chunks[len(chunks)-1]
		}
		if elem == 4 {
			for i := 0; i < len(b); i += 4 {
				data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
			}
		} else {
			for i := 0; i < len(b); i += 8 {
				data = append(data, float32(math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))))
			}
		}
		if size < 0 {
			chunks[len(chunks)-1] = data
		}
		left -= k
	}
	if size < 0 {
		data = make([]float32, 0, numel)
		for _, c := range chunks {
			data = append(data, c...)
		}
	}
	return shape, data, nil
}

// parseHeader checks the header dictionary and returns the shape and the
// element size (4 for '<f4', 8 for '<f8').
func parseHeader(hdr []byte) (shape []int, elem int, err error) {
	p := &parser{s: hdr}
	v, err := p.parse()
	if err != nil {
		return nil, 0, fmt.Errorf("cannot parse header: %w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, 0, fmt.Errorf("header is not a dictionary")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if _, ok := d[k]; !ok {
			return nil, 0, fmt.Errorf("header has no %q", k)
		}
	}
	if len(d) != 3 {
		for k := range d {
			if k != "descr" && k != "fortran_order" && k != "shape" {
				return nil, 0, fmt.Errorf("header has unexpected key %q", k)
			}
		}
	}

	tup, ok := d["shape"].(tuple)
	if !ok {
		return nil, 0, fmt.Errorf("shape %s is not a tuple", render(d["shape"]))
	}
	shape = make([]int, len(tup))
	for i, x := range tup {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, 0, fmt.Errorf("shape %s: dimension %d is not a non-negative integer", render(d["shape"]), i)
		}
		shape[i] = int(n)
	}

	fortran, ok := d["fortran_order"].(bool)
	if !ok {
		return nil, 0, fmt.Errorf("fortran_order is not True or False")
	}

	descr, ok := d["descr"].(string)
	if !ok {
		if _, isList := d["descr"].(list); isList {
			return nil, 0, fmt.Errorf("structured dtype %s not supported; want float32 ('<f4')", render(d["descr"]))
		}
		return nil, 0, fmt.Errorf("descr %s is not a dtype string", render(d["descr"]))
	}
	if elem, err = checkDescr(descr); err != nil {
		return nil, 0, err
	}
	if fortran && len(shape) > 1 {
		return nil, 0, fmt.Errorf("fortran_order arrays are not supported; save a C-order array (np.ascontiguousarray)")
	}
	return shape, elem, nil
}

// checkDescr accepts '<f4' and '<f8' and names anything else.
func checkDescr(descr string) (int, error) {
	switch descr {
	case "<f4":
		return 4, nil
	case "<f8":
		return 8, nil
	}
	q := strconv.Quote(descr)
	if len(descr) < 2 {
		return 0, fmt.Errorf("dtype %s not supported; want float32 ('<f4')", q)
	}
	order, kind := descr[0], descr[1]
	size, _ := strconv.Atoi(descr[2:])
	name := dtypeName(kind, size)
	if order != '<' && order != '>' && order != '|' && order != '=' {
		name = dtypeName(order, 0)
		if name == "" {
			return 0, fmt.Errorf("dtype %s not supported; want float32 ('<f4')", q)
		}
	}
	switch {
	case order == '>' && kind == 'f' && (size == 4 || size == 8):
		return 0, fmt.Errorf("dtype %s (%s) is big-endian; want little-endian ('<f4' or '<f8')", q, name)
	case name == "object" || kind == 'O':
		return 0, fmt.Errorf("dtype %s (object) not supported: the data is pickled python objects; want float32 ('<f4')", q)
	case name != "":
		return 0, fmt.Errorf("dtype %s (%s) not supported; want float32 ('<f4') or float64 ('<f8')", q, name)
	}
	return 0, fmt.Errorf("dtype %s not supported; want float32 ('<f4')", q)
}
