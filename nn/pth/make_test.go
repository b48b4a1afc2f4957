package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"strconv"
)

// This file writes torch-format checkpoints from Go for the tests and the
// benchmark: a pickle (protocol 2) encoded opcode by opcode, as torch 1.13
// writes it, and a zip archive of stored records.

type pickler struct{ b []byte }

func (p *pickler) op(b ...byte) { p.b = append(p.b, b...) }

func (p *pickler) str(s string) {
	p.op('X')
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	p.b = append(p.b, s...)
}

func (p *pickler) int(n int64) {
	switch {
	case n >= 0 && n < 256:
		p.op('K', byte(n))
	case n >= 0 && n < 65536:
		p.op('M')
		p.b = binary.LittleEndian.AppendUint16(p.b, uint16(n))
	case n == int64(int32(n)):
		p.op('J')
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(int32(n)))
	default:
		p.op(0x8a, 8)
		p.b = binary.LittleEndian.AppendUint64(p.b, uint64(n))
	}
}

func (p *pickler) global(module, name string) { p.op('c'); p.b = append(p.b, module+"\n"+name+"\n"...) }

func (p *pickler) ints(xs []int64) {
	p.op('(')
	for _, x := range xs {
		p.int(x)
	}
	p.op('t')
}

// fakeTensor describes one tensor of a Go-made checkpoint.
type fakeTensor struct {
	name   string
	key    string // storage key
	stype  string // "FloatStorage", ...
	numel  int64  // storage numel written in the persistent id
	offset int64
	shape  []int64
	stride []int64 // nil: contiguous
}

func contiguousStride(shape []int64) []int64 {
	st := make([]int64, len(shape))
	s := int64(1)
	for k := len(shape) - 1; k >= 0; k-- {
		st[k] = s
		s *= shape[k]
	}
	return st
}

func (p *pickler) tensor(t fakeTensor) {
	stride := t.stride
	if stride == nil {
		stride = contiguousStride(t.shape)
	}
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.op('(', '(')
	p.str("storage")
	p.global("torch", t.stype)
	p.str(t.key)
	p.str("cpu")
	p.int(t.numel)
	p.op('t', 'Q')
	p.int(t.offset)
	p.ints(t.shape)
	p.ints(stride)
	p.op(0x89)
	p.global("collections", "OrderedDict")
	p.op(')', 'R', 't', 'R')
}

// stateDict writes an OrderedDict of the tensors (no PROTO, no STOP).
func (p *pickler) stateDict(ts []fakeTensor) {
	p.global("collections", "OrderedDict")
	p.op(')', 'R', '(')
	for _, t := range ts {
		p.str(t.name)
		p.tensor(t)
	}
	p.op('u')
}

// statePickle is a whole data.pkl holding a bare state_dict.
func statePickle(ts []fakeTensor) []byte {
	p := &pickler{}
	p.op(0x80, 2)
	p.stateDict(ts)
	p.op('.')
	return p.b
}

type record struct {
	name   string
	data   []byte
	method uint16
}

// torchZip writes a zip archive of the records under prefix.
func torchZip(w io.Writer, prefix string, recs []record) error {
	zw := zip.NewWriter(w)
	for _, r := range recs {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + "/" + r.name, Method: r.method})
		if err != nil {
			return err
		}
		if _, err := f.Write(r.data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// checkpoint makes a torch-zip checkpoint of a bare state_dict from
// float32 tensors, each with a storage of its own.
func checkpoint(names []string, shapes [][]int64, data [][]float32) []byte {
	var ts []fakeTensor
	var storages []record
	for i, n := range names {
		key := strconv.Itoa(i)
		ts = append(ts, fakeTensor{name: n, key: key, stype: "FloatStorage", numel: int64(len(data[i])), shape: shapes[i]})
		storages = append(storages, record{name: "data/" + key, data: f32bytes(data[i])})
	}
	recs := []record{{name: "data.pkl", data: statePickle(ts)}, {name: "byteorder", data: []byte("little")}}
	recs = append(recs, storages...)
	recs = append(recs, record{name: "version", data: []byte("3\n")})
	var buf bytes.Buffer
	if err := torchZip(&buf, "archive", recs); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func f32bytes(xs []float32) []byte {
	b := make([]byte, 0, 4*len(xs))
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// legacyFile writes the pre-1.6 format: magic, protocol and system-info
// pickles, the object pickle (body, without PROTO and STOP), the storage key
// list, then each storage as a little-endian int64 element count and its bytes.
func legacyFile(body []byte, keys []string, storages [][]byte, elemSize int) []byte {
	p := &pickler{}
	p.op(0x80, 2, 0x8a, 10)
	magic := []byte{0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}
	p.op(magic...)
	p.op('.', 0x80, 2)
	p.int(1001)
	p.op('.', 0x80, 2, '}', '(')
	p.str("protocol_version")
	p.int(1001)
	p.str("little_endian")
	p.op(0x88)
	p.op('u', '.', 0x80, 2)
	p.op(body...)
	p.op('.', 0x80, 2, '(')
	for _, k := range keys {
		p.str(k)
	}
	p.op('l', '.')
	for _, s := range storages {
		p.b = binary.LittleEndian.AppendUint64(p.b, uint64(len(s)/elemSize))
		p.op(s...)
	}
	return p.b
}
