package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/rmprune/rmprune/nn"
	"gorgonia.org/tensor"
)

// maxRank bounds the number of dimensions of a tensor.
const maxRank = 64

// chunkSize is the size of the buffer tensor bytes pass through on their way
// to float32 (a multiple of every dtype size).
const chunkSize = 1 << 20

// entry is one tensor as the header describes it.
type entry struct {
	name       string
	dtype      string
	shape      []uint64
	begin, end uint64 // data_offsets, relative to the data buffer
	numel      uint64
}

// ReadFile reads the safetensors file at path.
func ReadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, formatErr(path, "not a regular file")
	}
	return Read(f, st.Size(), path)
}

// Read reads a safetensors file of size bytes from r. name identifies the file
// in errors. Tensors are read one at a time, in the order of their data,
// straight into their float32 storage; the file is never held in memory.
func Read(r io.ReaderAt, size int64, name string) (*File, error) {
	if size < 8 {
		return nil, formatErr(name, "file is %d bytes, too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if err := readAt(r, lenBuf[:], 0); err != nil {
		return nil, readErr(name, err)
	}
	n := le.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, formatErr(name, "header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, formatErr(name, "header length %d exceeds the %d bytes that follow it", n, size-8)
	}
	hdr := make([]byte, n)
	if err := readAt(r, hdr, 8); err != nil {
		return nil, readErr(name, err)
	}
	meta, entries, err := parseHeader(hdr)
	if err != nil {
		return nil, &FormatError{Name: name, Problem: err.Error(), Err: err}
	}
	hdr = nil
	dataStart := 8 + int64(n)
	if err := checkEntries(entries, uint64(size-dataStart)); err != nil {
		return nil, &FormatError{Name: name, Problem: err.Error(), Err: err}
	}

	var maxBytes, floats uint64
	for _, e := range entries {
		maxBytes = max(maxBytes, e.end-e.begin)
		floats += e.numel
	}
	if limit := uint64(2*size) + expandSlack; 4*floats > limit {
		return nil, formatErr(name, "tensors of 1-byte dtypes expand to %d bytes of float32, more than twice the %d-byte file (+%d MB)",
			4*floats, size, expandSlack>>20)
	}
	buf := make([]byte, min(maxBytes, chunkSize))
	sd := nn.NewStateDict()
	for _, e := range entries {
		dt := dtypes[e.dtype]
		data := make([]float32, e.numel)
		for off := e.begin; off < e.end; {
			k := min(e.end-off, chunkSize)
			if err := readAt(r, buf[:k], dataStart+int64(off)); err != nil {
				return nil, readErr(name, err)
			}
			i := (off - e.begin) / uint64(dt.size)
			dt.conv(data[i:i+k/uint64(dt.size)], buf[:k])
			off += k
		}
		t, err := newTensor(e.shape, data)
		if err != nil {
			return nil, formatErr(name, "tensor %q: %v", e.name, err)
		}
		if err := sd.Add(e.name, t); err != nil {
			return nil, formatErr(name, "%v", err) // unreachable: names were checked
		}
	}
	return &File{Metadata: meta, Tensors: sd}, nil
}

// newTensor wraps data in a tensor; shape was validated against len(data).
func newTensor(shape []uint64, data []float32) (t *tensor.Dense, err error) {
	dims := make([]int, len(shape))
	for i, d := range shape {
		dims[i] = int(d)
	}
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("cannot make tensor of shape %v: %v", dims, r)
		}
	}()
	return nn.NewTensor(dims, data), nil
}

// readAt fills p from r at off; a short read is io.ErrUnexpectedEOF.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func readErr(name string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &FormatError{Name: name, Problem: "file shorter than its stated size", Err: err}
	}
	if name == "" {
		return fmt.Errorf("safetensors: read: %w", err)
	}
	return fmt.Errorf("safetensors: read %s: %w", name, err)
}

// checkEntries validates the tensors against the data buffer of bufLen bytes
// and sorts them by data offset. The tensors must tile the buffer exactly.
func checkEntries(entries []entry, bufLen uint64) error {
	for i := range entries {
		e := &entries[i]
		dt, ok := dtypes[e.dtype]
		if !ok {
			return fmt.Errorf("tensor %q: unsupported dtype %q", e.name, e.dtype)
		}
		if len(e.shape) > maxRank {
			return fmt.Errorf("tensor %q: rank %d exceeds %d", e.name, len(e.shape), maxRank)
		}
		numel, ok := product(e.shape, bufLen)
		if !ok || numel > uint64(math.MaxInt) {
			return fmt.Errorf("tensor %q: shape %v is larger than the %d-byte data buffer", e.name, e.shape, bufLen)
		}
		e.numel = numel
		if e.end < e.begin {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] end before they begin", e.name, e.begin, e.end)
		}
		if e.end > bufLen {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the %d-byte data buffer", e.name, e.begin, e.end, bufLen)
		}
		if want := numel * uint64(dt.size); e.end-e.begin != want {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] span %d bytes; dtype %s shape %v needs %d",
				e.name, e.begin, e.end, e.end-e.begin, e.dtype, e.shape, want)
		}
		if numel == 0 {
			return fmt.Errorf("tensor %q: empty tensors (shape %v) are not supported", e.name, e.shape)
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int {
		switch {
		case a.begin < b.begin:
			return -1
		case a.begin > b.begin:
			return 1
		}
		return 0
	})
	var at uint64
	for i, e := range entries {
		if e.begin < at {
			return fmt.Errorf("tensor %q overlaps tensor %q", e.name, entries[i-1].name)
		}
		if e.begin > at {
			return fmt.Errorf("data buffer has a hole: bytes [%d, %d) before tensor %q belong to no tensor", at, e.begin, e.name)
		}
		at = e.end
	}
	if at != bufLen {
		return fmt.Errorf("data buffer has %d bytes after the last tensor that belong to no tensor", bufLen-at)
	}
	return nil
}

// product multiplies dims; ok is false when the product exceeds limit (an
// empty shape or a zero dimension is always fine).
func product(dims []uint64, limit uint64) (n uint64, ok bool) {
	n = 1
	for _, d := range dims {
		if d == 0 {
			return 0, true
		}
	}
	for _, d := range dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > limit {
			return 0, false
		}
		n = lo
	}
	return n, true
}

// parseHeader parses the JSON header. Tensors come back in header order; a
// repeated key anywhere is an error (encoding/json would keep the last one).
func parseHeader(hdr []byte) (map[string]string, []entry, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, errors.New("header is not valid utf-8")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, errors.New("header does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if err := expectDelim(dec, '{', "header"); err != nil {
		return nil, nil, err
	}
	meta := map[string]string{}
	var entries []entry
	seen := map[string]bool{}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return nil, nil, err
		}
		if seen[key] {
			return nil, nil, fmt.Errorf("duplicate key %q in header", key)
		}
		seen[key] = true
		if key == "__metadata__" {
			if err := parseMetadata(dec, meta); err != nil {
				return nil, nil, err
			}
			continue
		}
		if len(entries) == MaxTensors {
			return nil, nil, fmt.Errorf("header lists more than %d tensors", MaxTensors)
		}
		e, err := parseEntry(dec, key)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if err := expectDelim(dec, '}', "header"); err != nil {
		return nil, nil, err
	}
	if rest := bytes.TrimLeft(hdr[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, nil, fmt.Errorf("header has trailing data after its json object: %q", rest[:min(len(rest), 16)])
	}
	return meta, entries, nil
}

func jsonErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("invalid header json: %w", err)
}

func expectDelim(dec *json.Decoder, d json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonErr(err)
	}
	if tok != d {
		kind := "an object"
		if d == '[' {
			kind = "an array"
		}
		if d == '}' || d == ']' {
			return fmt.Errorf("%s: unexpected %s", what, tokString(tok))
		}
		return fmt.Errorf("%s is not %s", what, kind)
	}
	return nil
}

func objectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonErr(err)
	}
	s, ok := tok.(string)
	if !ok { // not reachable with encoding/json, which rejects non-string keys
		return "", fmt.Errorf("invalid header json: object key %s", tokString(tok))
	}
	return s, nil
}

// parseMetadata reads "__metadata__": an object of strings, or null.
func parseMetadata(dec *json.Decoder, meta map[string]string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonErr(err)
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('{') {
		return errors.New("__metadata__ is not an object")
	}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return err
		}
		if _, dup := meta[key]; dup {
			return fmt.Errorf("duplicate __metadata__ key %q", key)
		}
		tok, err := dec.Token()
		if err != nil {
			return jsonErr(err)
		}
		v, ok := tok.(string)
		if !ok {
			return fmt.Errorf("__metadata__ %q: value is not a string", key)
		}
		meta[key] = v
	}
	return expectDelim(dec, '}', "__metadata__")
}

// parseEntry reads one tensor's {dtype, shape, data_offsets}. Unknown fields
// are skipped, as the reference implementation does.
func parseEntry(dec *json.Decoder, name string) (entry, error) {
	e := entry{name: name}
	what := fmt.Sprintf("tensor %q", name)
	if err := expectDelim(dec, '{', what); err != nil {
		return e, err
	}
	seen := map[string]bool{}
	for dec.More() {
		field, err := objectKey(dec)
		if err != nil {
			return e, err
		}
		if seen[field] {
			return e, fmt.Errorf("%s: duplicate field %q", what, field)
		}
		seen[field] = true
		switch field {
		case "dtype":
			tok, err := dec.Token()
			if err != nil {
				return e, jsonErr(err)
			}
			s, ok := tok.(string)
			if !ok {
				return e, fmt.Errorf("%s: dtype is not a string", what)
			}
			e.dtype = s
		case "shape":
			if e.shape, err = parseUints(dec, what+": shape"); err != nil {
				return e, err
			}
			if e.shape == nil {
				e.shape = []uint64{}
			}
		case "data_offsets":
			offs, err := parseUints(dec, what+": data_offsets")
			if err != nil {
				return e, err
			}
			if len(offs) != 2 {
				return e, fmt.Errorf("%s: data_offsets has %d numbers, want 2", what, len(offs))
			}
			e.begin, e.end = offs[0], offs[1]
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return e, jsonErr(err)
			}
		}
	}
	if err := expectDelim(dec, '}', what); err != nil {
		return e, err
	}
	for _, f := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[f] {
			return e, fmt.Errorf("%s: missing %s", what, f)
		}
	}
	return e, nil
}

// parseUints reads an array of non-negative integers.
func parseUints(dec *json.Decoder, what string) ([]uint64, error) {
	if err := expectDelim(dec, '[', what); err != nil {
		return nil, err
	}
	var out []uint64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not a number", what, tokString(tok))
		}
		v, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s is not a non-negative integer", what, num)
		}
		if len(out) == maxRank {
			return nil, fmt.Errorf("%s: more than %d numbers", what, maxRank)
		}
		out = append(out, v)
	}
	return out, expectDelim(dec, ']', what)
}

// tokString renders a JSON token for an error message, on one line.
func tokString(tok json.Token) string {
	if s, ok := tok.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(tok)
}
