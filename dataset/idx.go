package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// fashionMNISTDir is where Debian's dataset-fashion-mnist installs its files.
const fashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// maxIDXBytes bounds the payload an IDX header may announce (1 GiB), so a
// corrupt header cannot make the reader allocate without limit.
const maxIDXBytes = 1 << 30

var fashionLabels = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// idx is a decoded IDX file of unsigned bytes.
type idx struct {
	dims []int
	data []uint8
}

// parseIDX decodes an IDX file of unsigned bytes (type 0x08), possibly
// gzip-compressed. The payload must have exactly the size the header
// announces. Errors are plain messages; the caller adds the path.
func parseIDX(file []byte) (idx, error) {
	var r io.Reader = bytes.NewReader(file)
	total := len(file) // the decoded size, when known; -1 when not
	if len(file) >= 2 && file[0] == 0x1f && file[1] == 0x8b {
		z, err := gzip.NewReader(bytes.NewReader(file))
		if err != nil {
			return idx{}, fmt.Errorf("bad gzip data: %v", err)
		}
		r = bufio.NewReader(z)
		total = -1
		if len(file) >= 18 { // gzip's trailer ends with the decoded size mod 2³²
			total = int(binary.LittleEndian.Uint32(file[len(file)-4:]))
		}
	}
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return idx{}, readErr("truncated idx header", err)
	}
	if magic[0] != 0 || magic[1] != 0 {
		return idx{}, fmt.Errorf("bad idx magic %#08x", binary.BigEndian.Uint32(magic[:]))
	}
	if magic[2] != 0x08 {
		return idx{}, fmt.Errorf("idx element type %#02x not supported (want 0x08, unsigned byte)", magic[2])
	}
	nd := int(magic[3])
	if nd == 0 || nd > 4 {
		return idx{}, fmt.Errorf("bad idx magic %#08x: %d dimensions", binary.BigEndian.Uint32(magic[:]), nd)
	}
	dims := make([]int, nd)
	size := 1
	for i := range dims {
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return idx{}, readErr("truncated idx header", err)
		}
		d := binary.BigEndian.Uint32(b[:])
		if d > maxIDXBytes {
			return idx{}, fmt.Errorf("idx dimension %d too large", d)
		}
		dims[i] = int(d)
		size *= int(d)
		if size > maxIDXBytes {
			return idx{}, fmt.Errorf("idx dimensions %v announce more than %d bytes", dims[:i+1], maxIDXBytes)
		}
	}
	var data []byte
	if total == 4+4*nd+size {
		// The file's size confirms the header: read into an exact buffer.
		data = make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return idx{}, readErr("truncated idx data", err)
		}
		var extra [1]byte
		if n, err := r.Read(extra[:]); n > 0 {
			return idx{}, fmt.Errorf("idx file longer than its header %v announces", dims)
		} else if err != nil && err != io.EOF {
			return idx{}, readErr("truncated idx data", err)
		}
	} else {
		// Read what is there (at most one byte past the announced size)
		// rather than trusting the header with a large allocation.
		var buf bytes.Buffer
		buf.Grow(min(size+1, 4<<20))
		if _, err := buf.ReadFrom(io.LimitReader(r, int64(size)+1)); err != nil {
			return idx{}, readErr("truncated idx data", err)
		}
		switch n := buf.Len(); {
		case n < size:
			return idx{}, fmt.Errorf("truncated idx data: header %v announces %d bytes, file has %d", dims, size, n)
		case n > size:
			return idx{}, fmt.Errorf("idx file longer than its header %v announces", dims)
		}
		data = buf.Bytes()[:size:size]
	}
	return idx{dims: dims, data: data}, nil
}

// readErr describes a read error: what (truncation) for an early end of
// data, the decompressor's message otherwise.
func readErr(what string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New(what)
	}
	return fmt.Errorf("%s: %v", what, err)
}

// readIDX reads and decodes the IDX file at path.
func readIDX(path string) (idx, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return idx{}, ioErr(path, err)
	}
	x, err := parseIDX(b)
	if err != nil {
		return idx{}, &Error{Path: path, Msg: err.Error(), Err: ErrFormat}
	}
	return x, nil
}

// findIDX returns the path of the IDX file base in dir, plain or gzipped.
func findIDX(dir, base string) (string, error) {
	for _, name := range []string{base + ".gz", base} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", &Error{Path: filepath.Join(dir, base+".gz"), Msg: "does not exist", Err: os.ErrNotExist}
}

// readIDXSplit reads an images/labels IDX pair (prefix "train" or "t10k").
func readIDXSplit(dir, prefix string, classes int) (*Split, error) {
	ip, err := findIDX(dir, prefix+"-images-idx3-ubyte")
	if err != nil {
		return nil, err
	}
	lp, err := findIDX(dir, prefix+"-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	im, err := readIDX(ip)
	if err != nil {
		return nil, err
	}
	if len(im.dims) != 3 {
		return nil, formatErr(ip, "idx images have %d dimensions, want 3 (n, rows, cols)", len(im.dims))
	}
	lb, err := readIDX(lp)
	if err != nil {
		return nil, err
	}
	if len(lb.dims) != 1 {
		return nil, formatErr(lp, "idx labels have %d dimensions, want 1", len(lb.dims))
	}
	if im.dims[0] != lb.dims[0] {
		return nil, formatErr(lp, "%d labels for %d images in %s", lb.dims[0], im.dims[0], filepath.Base(ip))
	}
	if im.dims[0] == 0 {
		return nil, formatErr(ip, "no images")
	}
	labels := make([]int, len(lb.data))
	for i, l := range lb.data {
		if int(l) >= classes {
			return nil, formatErr(lp, "label %d of image %d out of range [0,%d)", l, i, classes)
		}
		labels[i] = int(l)
	}
	return &Split{Shape: [3]int{1, im.dims[1], im.dims[2]}, Pix: im.data, Labels: labels}, nil
}

// openIDX loads an MNIST-layout directory (train-*/t10k-* IDX files).
func openIDX(dir, name string) (*Dataset, error) {
	if fi, err := os.Stat(dir); err != nil {
		if name == "fashion-mnist" && errors.Is(err, os.ErrNotExist) && dir == fashionMNISTDir {
			return nil, &Error{Path: dir, Msg: "does not exist (install the Debian package dataset-fashion-mnist)", Err: os.ErrNotExist}
		}
		return nil, ioErr(dir, err)
	} else if !fi.IsDir() {
		return nil, &Error{Path: dir, Msg: "not a directory", Err: ErrFormat}
	}
	train, err := readIDXSplit(dir, "train", 10)
	if err != nil {
		return nil, err
	}
	test, err := readIDXSplit(dir, "t10k", 10)
	if err != nil {
		return nil, err
	}
	if train.Shape != test.Shape {
		return nil, formatErr(dir, "train images are %dx%d, test images %dx%d",
			train.Shape[1], train.Shape[2], test.Shape[1], test.Shape[2])
	}
	st := standard[name]
	labels := digitLabels(10)
	if name == "fashion-mnist" {
		labels = append([]string(nil), fashionLabels...)
	}
	return &Dataset{
		Name: name, Path: dir, Train: train, Test: test,
		Classes: 10, Labels: labels, Shape: train.Shape,
		Mean: clone(st.mean), Std: clone(st.std), Augment: st.aug,
	}, nil
}

func clone(v []float32) []float32 { return append([]float32(nil), v...) }
