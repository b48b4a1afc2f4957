// Package pth reads PyTorch checkpoints (torch.save files, zip or legacy format)
// into float32 state dicts, with a restricted unpickler that executes nothing.
//
// A checkpoint is a bare state_dict (an OrderedDict or dict of tensors) or a
// dict that holds one under "state_dict", "model" or "net" next to plain values
// (epoch, accuracy, optimizer state), which are ignored. Keys keep the file's
// order; "module." prefixes (DataParallel) are stripped. Storages of float32,
// float16, bfloat16, float64 and the integer and bool types are converted to
// float32 (integers round to nearest above 2^24). Views (storage offset,
// strides) and storages shared by several tensors are read as torch reads them.
//
// The pickle is decoded by a small machine that knows the opcodes and a short
// allow-list of globals (see AllowedGlobals); any other global, such as
// os.system, is refused with a *GlobalError naming it.
//
// Memory: storages are read straight from the file into the tensors' float32
// buffers when torch stored them as plain little-endian float32 (the usual
// case), so loading peaks near the file size; all sizes a file claims are
// checked against the file before anything is allocated.
package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unsafe"

	"github.com/rmprune/rmprune/nn"
	"gorgonia.org/tensor"
)

// FormatError reports a file that is not a checkpoint this package can read.
type FormatError struct {
	File string // the name given to Read, or the path given to ReadFile
	Msg  string
	Err  error // the cause, if any (e.g. a *GlobalError)
}

func (e *FormatError) Error() string {
	s := "pth: " + e.File + ": " + e.Msg
	if e.Err != nil {
		if e.Msg != "" {
			s += ": "
		}
		s += e.Err.Error()
	}
	return oneLine(s)
}

// oneLine escapes control characters (a record or key name from the file
// may hold a newline) so that an error is always one line.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (e *FormatError) Unwrap() error { return e.Err }

// ReadFile reads the checkpoint at path.
func ReadFile(path string) (*nn.StateDict, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, &FormatError{File: path, Msg: "not a regular file"}
	}
	return Read(f, st.Size(), path)
}

// Read reads a checkpoint of size bytes from r; name is used in errors.
func Read(r io.ReaderAt, size int64, name string) (sd *nn.StateDict, err error) {
	defer func() {
		// Defence in depth: the reader is written not to panic on any input
		// (FuzzRead checks it), but a bug must still surface as an error.
		if p := recover(); p != nil {
			sd, err = nil, &FormatError{File: name, Msg: fmt.Sprintf("internal error: %v", p)}
		}
	}()
	return read(r, size, name)
}

// Limits against hostile files.
const (
	// extraElems is how many float32 elements beyond the file's byte size the
	// tensors of one file may claim in total (views sharing one storage, and
	// 1-byte storages, can legitimately exceed the file size a little).
	extraElems = 1 << 22
	maxNumel   = 1 << 40
	chunk      = 4 << 20
)

var hostLittle = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// location is where one storage's bytes live in the file.
type location struct {
	name   string // `storage "archive/data/3"` (zip) or `storage "3"` (legacy), for errors
	off    int64  // first byte, for stored data
	nbytes int64
	crc    uint32
	hasCRC bool
	zf     *zip.File // compressed entries are read through archive/zip
}

type reader struct {
	r        io.ReaderAt
	size     int64
	name     string
	bo       binary.ByteOrder
	storages map[string]*storageRef
	locs     map[string]*location
}

func (rd *reader) errorf(format string, a ...any) error {
	return &FormatError{File: rd.name, Msg: fmt.Sprintf(format, a...)}
}

func (rd *reader) wrap(msg string, err error) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, errPickle) {
		err = errors.New(strings.TrimPrefix(err.Error(), errPickle.Error()+": "))
	}
	return &FormatError{File: rd.name, Msg: msg, Err: err}
}

func read(r io.ReaderAt, size int64, name string) (*nn.StateDict, error) {
	rd := &reader{r: r, size: size, name: name, bo: binary.LittleEndian,
		storages: map[string]*storageRef{}, locs: map[string]*location{}}
	if size <= 0 {
		return nil, rd.errorf("empty file")
	}
	var head [4]byte
	n, err := r.ReadAt(head[:min(size, 4)], 0)
	if n < int(min(size, 4)) {
		return nil, rd.wrap("read", err)
	}
	var top any
	switch {
	case head[0] == 'P' && head[1] == 'K':
		top, err = rd.openZip()
	case head[0] == 0x80:
		top, err = rd.openLegacy()
	default:
		return nil, rd.errorf("not a PyTorch checkpoint (neither a torch zip archive nor a pickle)")
	}
	if err != nil {
		return nil, err
	}
	return rd.stateDict(top)
}

// openZip indexes a torch zip archive (torch >= 1.6) and unpickles its data.pkl.
func (rd *reader) openZip() (any, error) {
	if err := rd.checkZipDirectory(); err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(rd.r, rd.size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, rd.wrap("not a valid zip archive (truncated or corrupt)", err)
	}
	var pkl *zip.File
	prefix := ""
	for _, f := range zr.File {
		dir, base, ok := strings.Cut(f.Name, "/")
		if ok && base == "data.pkl" {
			if pkl != nil {
				return nil, rd.errorf("zip holds two data.pkl records (%s, %s)", pkl.Name, f.Name)
			}
			pkl, prefix = f, dir+"/"
		}
	}
	if pkl == nil {
		return nil, rd.errorf("zip archive without a data.pkl record: not a PyTorch checkpoint")
	}
	for _, f := range zr.File {
		rest, ok := strings.CutPrefix(f.Name, prefix)
		if !ok {
			continue
		}
		switch rest {
		case "byteorder":
			b, err := rd.small(f)
			if err != nil {
				return nil, err
			}
			switch strings.TrimSpace(string(b)) {
			case "little":
			case "big":
				rd.bo = binary.BigEndian
			default:
				return nil, rd.errorf("bad byteorder record %.20q", b)
			}
		case "version", ".data/version":
			b, err := rd.small(f)
			if err != nil {
				return nil, err
			}
			if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || v < 1 {
				return nil, rd.errorf("bad version record %.20q", b)
			}
		}
		key, ok := strings.CutPrefix(rest, "data/")
		if !ok || key == "" {
			continue
		}
		loc := &location{name: fmt.Sprintf("storage %q", f.Name), nbytes: int64(f.UncompressedSize64), crc: f.CRC32, hasCRC: true}
		if f.UncompressedSize64 > uint64(maxNumel) {
			return nil, rd.errorf("record %q claims %d bytes", f.Name, f.UncompressedSize64)
		}
		if f.Method == zip.Store {
			off, err := f.DataOffset()
			if err != nil {
				return nil, rd.wrap(fmt.Sprintf("record %q", f.Name), err)
			}
			if f.CompressedSize64 != f.UncompressedSize64 || off < 0 || off > rd.size || loc.nbytes > rd.size-off {
				return nil, rd.errorf("record %q runs past the end of the file (truncated?)", f.Name)
			}
			loc.off = off
		} else {
			// Deflate expands at most ~1032x; a larger claim is a lie.
			if f.UncompressedSize64 > 1100*f.CompressedSize64+1024 {
				return nil, rd.errorf("record %q claims %d bytes from %d compressed", f.Name, f.UncompressedSize64, f.CompressedSize64)
			}
			loc.zf = f
		}
		rd.locs[key] = loc
	}
	if pkl.UncompressedSize64 > maxPickleBytes {
		return nil, rd.errorf("%s is %d bytes (max %d)", pkl.Name, pkl.UncompressedSize64, maxPickleBytes)
	}
	data, err := rd.small(pkl)
	if err != nil {
		return nil, err
	}
	m := newMachine(newInput(bytes.NewReader(data), int64(len(data))), rd.storages)
	top, err := m.run()
	if err != nil {
		return nil, rd.wrap(pkl.Name, err)
	}
	return top, nil
}

// Limits of a torch zip archive's central directory, checked before
// archive/zip reads it (it keeps a few hundred bytes per record, so a file
// of millions of empty records would take gigabytes). A checkpoint has one
// record per storage plus a few: the largest torchvision CNNs have ~1,200.
const (
	maxZipRecords = 16384
	maxZipDirSize = 16 << 20
)

// checkZipDirectory reads the record count and central directory size from
// the end-of-central-directory record (or its ZIP64 form) and refuses an
// archive past maxZipRecords or maxZipDirSize. A missing or malformed record
// is left to archive/zip to report.
func (rd *reader) checkZipDirectory() error {
	tail := make([]byte, min(rd.size, 22+65535))
	if _, err := rd.r.ReadAt(tail, rd.size-int64(len(tail))); err != nil && err != io.EOF {
		return rd.wrap("read", err)
	}
	at := bytes.LastIndex(tail, []byte("PK\x05\x06"))
	if at < 0 || len(tail)-at < 22 {
		return nil
	}
	eocd := tail[at:]
	records := uint64(binary.LittleEndian.Uint16(eocd[10:]))
	dirSize := uint64(binary.LittleEndian.Uint32(eocd[12:]))
	if records == 0xffff || dirSize == 0xffffffff {
		// ZIP64: the locator (20 bytes) precedes the record and points at
		// the ZIP64 end-of-central-directory record.
		locAt := rd.size - int64(len(tail)) + int64(at) - 20
		var loc [20]byte
		if locAt < 0 {
			return nil
		}
		if _, err := rd.r.ReadAt(loc[:], locAt); err != nil || !bytes.Equal(loc[:4], []byte("PK\x06\x07")) {
			return nil
		}
		var rec [56]byte
		off := binary.LittleEndian.Uint64(loc[8:])
		if off > uint64(rd.size-56) {
			return nil
		}
		if _, err := rd.r.ReadAt(rec[:], int64(off)); err != nil || !bytes.Equal(rec[:4], []byte("PK\x06\x06")) {
			return nil
		}
		records, dirSize = binary.LittleEndian.Uint64(rec[32:]), binary.LittleEndian.Uint64(rec[40:])
	}
	if records > maxZipRecords {
		return rd.errorf("zip archive has %d records (max %d)", records, maxZipRecords)
	}
	if dirSize > maxZipDirSize {
		return rd.errorf("zip central directory is %d bytes (max %d)", dirSize, maxZipDirSize)
	}
	return nil
}

// small reads a whole (small) zip record, checking its CRC.
func (rd *reader) small(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > maxPickleBytes {
		return nil, rd.errorf("record %q is %d bytes (max %d)", f.Name, f.UncompressedSize64, maxPickleBytes)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, rd.wrap(fmt.Sprintf("record %q", f.Name), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxPickleBytes))
	if err != nil {
		return nil, rd.wrap(fmt.Sprintf("record %q", f.Name), err)
	}
	return b, nil
}

// legacyMagic is torch's MAGIC_NUMBER, the first pickle of a legacy file.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// openLegacy reads the pre-1.6 format: pickles of the magic number, the
// protocol version, system info, the object and the storage keys, then each
// storage as an int64 element count and its raw bytes.
func (rd *reader) openLegacy() (any, error) {
	in := newInput(io.NewSectionReader(rd.r, 0, rd.size), rd.size)
	next := func(what string) (any, error) {
		v, err := newMachine(in, rd.storages).run()
		if err != nil {
			return nil, rd.wrap(what, err)
		}
		return v, nil
	}
	magic, err := next("legacy header")
	if err != nil {
		return nil, err
	}
	if b, ok := magic.(*big.Int); !ok || b.Cmp(legacyMagic) != 0 {
		return nil, rd.errorf("a pickle, but not a PyTorch checkpoint (no torch magic number)")
	}
	proto, err := next("legacy header")
	if err != nil {
		return nil, err
	}
	if p, ok := proto.(int64); !ok || p != 1001 {
		return nil, rd.errorf("unsupported legacy protocol version %v", proto)
	}
	info, err := next("legacy header")
	if err != nil {
		return nil, err
	}
	if d, ok := info.(*pyDict); ok {
		if le, ok := d.get("little_endian"); ok && le == false {
			rd.bo = binary.BigEndian
		}
	}
	top, err := next("legacy pickle")
	if err != nil {
		return nil, err
	}
	keysV, err := next("storage key list")
	if err != nil {
		return nil, err
	}
	keys, ok := keysV.(*pyList)
	if !ok {
		return nil, rd.errorf("storage key list is %s", typeName(keysV))
	}
	pos := in.pos
	for _, k := range keys.items {
		key, ok := k.(string)
		if !ok {
			return nil, rd.errorf("storage key is %s", typeName(k))
		}
		st, ok := rd.storages[key]
		if !ok {
			return nil, rd.errorf("storage %q is not used by any tensor", key)
		}
		var hdr [8]byte
		if pos > rd.size-8 {
			return nil, rd.errorf("storage %q: file truncated", key)
		}
		if _, err := rd.r.ReadAt(hdr[:], pos); err != nil {
			return nil, rd.wrap("storage "+strconv.Quote(key), err)
		}
		numel := int64(rd.bo.Uint64(hdr[:]))
		if numel < 0 || numel > maxNumel || numel*st.dtype.size() > rd.size-pos-8 {
			return nil, rd.errorf("storage %q claims %d %s elements, past the end of the file (truncated?)", key, numel, st.dtype)
		}
		nb := numel * st.dtype.size()
		rd.locs[key] = &location{name: "storage " + strconv.Quote(key), off: pos + 8, nbytes: nb}
		pos += 8 + nb
	}
	return top, nil
}

type entry struct {
	name string
	t    *tensorRef
}

// stateDict picks the state_dict out of the unpickled object and reads its tensors.
func (rd *reader) stateDict(top any) (*nn.StateDict, error) {
	d, ok := top.(*pyDict)
	if !ok {
		return nil, rd.errorf("checkpoint holds %s, want a dict of tensors (a state_dict)", typeName(top))
	}
	for _, k := range []string{"state_dict", "model", "net"} {
		if v, ok := d.get(k); ok {
			if sub, ok := v.(*pyDict); ok {
				d = sub
				break
			}
		}
	}
	var entries []entry
	for i, k := range d.keys {
		name, ok := k.(string)
		if !ok {
			continue
		}
		t, ok := d.vals[i].(*tensorRef)
		if !ok {
			continue
		}
		for strings.HasPrefix(name, "module.") {
			name = strings.TrimPrefix(name, "module.")
		}
		entries = append(entries, entry{name, t})
	}
	if len(entries) == 0 {
		var ks []string
		for _, k := range d.keys {
			if s, ok := k.(string); ok && len(ks) < 8 {
				ks = append(ks, strconv.Quote(s))
			}
		}
		return nil, rd.errorf("no tensors found (keys: %s)", strings.Join(ks, ", "))
	}
	return rd.load(entries)
}

// extent returns the element count of t and the number of storage elements it
// needs (1 + its largest index), with overflow checks.
func (rd *reader) extent(e entry) (numel, need int64, err error) {
	t := e.t
	if t.offset > maxNumel {
		return 0, 0, rd.errorf("tensor %q: storage offset %d past any storage", e.name, t.offset)
	}
	numel = 1
	last := t.offset
	for k, n := range t.shape {
		if n != 0 && numel > maxNumel/n {
			return 0, 0, rd.errorf("tensor %q has too many elements", e.name)
		}
		numel *= n
		if n > 0 {
			s := t.stride[k]
			if s != 0 && (n-1) > (maxNumel-last)/s {
				return 0, 0, rd.errorf("tensor %q: strides run past any storage", e.name)
			}
			last += (n - 1) * s
		}
	}
	if numel == 0 {
		return 0, 0, nil
	}
	return numel, last + 1, nil
}

// load validates every tensor against its storage, then reads the storages.
func (rd *reader) load(entries []entry) (*nn.StateDict, error) {
	type plan struct {
		t     *tensorRef
		name  string
		numel int64
		buf   []float32
	}
	plans := map[*tensorRef]*plan{}
	var order []string // root storage keys in first-use order
	groups := map[string][]*plan{}
	var total int64
	for _, e := range entries {
		numel, need, err := rd.extent(e)
		if err != nil {
			return nil, err
		}
		if numel == 0 {
			// gorgonia/tensor makes such a tensor but panics on reading it.
			return nil, rd.errorf("tensor %q has shape %v: empty tensors are not supported", e.name, e.t.shape)
		}
		st := e.t.st
		loc, ok := rd.locs[st.key]
		if !ok {
			return nil, rd.errorf("tensor %q: storage %q missing from the file", e.name, st.key)
		}
		es := st.dtype.size()
		if loc.nbytes%es != 0 {
			return nil, rd.errorf("%s holds %d bytes, not a whole number of %s", loc.name, loc.nbytes, st.dtype)
		}
		have := loc.nbytes / es
		if st.viewSize >= 0 {
			if st.viewOffset > have || st.viewSize > have-st.viewOffset {
				return nil, rd.errorf("%s holds %d %s, a view needs %d", loc.name, have, st.dtype, st.viewOffset+st.viewSize)
			}
			have = st.viewSize
		}
		if need > have {
			return nil, rd.errorf("%s holds %d %s, tensor %q needs %d", loc.name, have, st.dtype, e.name, need)
		}
		total += numel
		if total > rd.size+extraElems {
			return nil, rd.errorf("tensors claim %d elements, more than the %d-byte file can hold", total, rd.size)
		}
		if _, seen := plans[e.t]; seen {
			continue
		}
		p := &plan{t: e.t, name: e.name, numel: numel}
		plans[e.t] = p
		if _, ok := groups[st.key]; !ok {
			order = append(order, st.key)
		}
		groups[st.key] = append(groups[st.key], p)
	}

	for _, key := range order {
		g := groups[key]
		loc := rd.locs[key]
		st := rd.storages[key]
		for _, p := range g {
			p.buf = make([]float32, p.numel)
		}
		p0 := g[0]
		if len(g) == 1 && st.dtype == dtFloat32 && rd.bo == binary.LittleEndian && hostLittle &&
			p0.t.offset == 0 && p0.t.st.viewSize < 0 && p0.numel*4 == loc.nbytes &&
			isContiguous(p0.t.shape, p0.t.stride) {
			// The common case: read the bytes straight into the tensor.
			dst := unsafe.Slice((*byte)(unsafe.Pointer(&p0.buf[0])), len(p0.buf)*4)
			if err := rd.readStorage(loc, dst); err != nil {
				return nil, err
			}
			continue
		}
		raw := make([]byte, loc.nbytes)
		if err := rd.readStorage(loc, raw); err != nil {
			return nil, err
		}
		for _, p := range g {
			gather(p.buf, raw, st.dtype, rd.bo, p.t.st.viewOffset+p.t.offset, p.t.shape, p.t.stride)
		}
	}

	sd := nn.NewStateDict()
	used := map[*tensorRef]bool{}
	for _, e := range entries {
		p := plans[e.t]
		buf := p.buf
		if used[e.t] { // the same tensor under two names: give each its own copy
			buf = append([]float32(nil), buf...)
		}
		used[e.t] = true
		shape := make([]int, len(e.t.shape))
		for i, n := range e.t.shape {
			shape[i] = int(n)
		}
		t, err := newTensor(shape, buf)
		if err != nil {
			return nil, rd.errorf("tensor %q: %v", e.name, err)
		}
		if err := sd.Add(e.name, t); err != nil {
			return nil, rd.errorf("%v (after stripping \"module.\")", err)
		}
	}
	return sd, nil
}

// readStorage reads a storage's bytes into dst (len(dst) == loc.nbytes),
// checking the zip CRC.
func (rd *reader) readStorage(loc *location, dst []byte) error {
	if loc.zf != nil {
		rc, err := loc.zf.Open()
		if err != nil {
			return rd.wrap(loc.name, err)
		}
		defer rc.Close()
		if _, err := io.ReadFull(rc, dst); err != nil {
			return rd.wrap(loc.name, err)
		}
		var one [1]byte
		if n, err := rc.Read(one[:]); n != 0 || (err != nil && err != io.EOF) {
			if err == nil {
				err = errors.New("longer than its header says")
			}
			return rd.wrap(loc.name, err)
		}
		return nil
	}
	var crc uint32
	for i := 0; i < len(dst); i += chunk {
		j := min(i+chunk, len(dst))
		n, err := rd.r.ReadAt(dst[i:j], loc.off+int64(i))
		if n < j-i {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return rd.wrap(loc.name, err)
		}
		if loc.hasCRC {
			crc = crc32.Update(crc, crc32.IEEETable, dst[i:j])
		}
	}
	if loc.hasCRC && crc != loc.crc {
		return rd.errorf("%s fails its CRC check (corrupt file)", loc.name)
	}
	return nil
}

// newTensor wraps nn.NewTensor, turning a panic of the tensor library into an error.
func newTensor(shape []int, data []float32) (t *tensor.Dense, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("%v", p)
		}
	}()
	return nn.NewTensor(shape, data), nil
}
