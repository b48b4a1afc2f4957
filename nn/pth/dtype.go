package pth

import (
	"encoding/binary"
	"math"
)

// dtype is a torch storage element type.
type dtype int

const (
	dtFloat32 dtype = iota + 1
	dtFloat64
	dtFloat16
	dtBFloat16
	dtInt64
	dtInt32
	dtInt16
	dtInt8
	dtUint8
	dtBool
)

func (d dtype) String() string {
	switch d {
	case dtFloat32:
		return "float32"
	case dtFloat64:
		return "float64"
	case dtFloat16:
		return "float16"
	case dtBFloat16:
		return "bfloat16"
	case dtInt64:
		return "int64"
	case dtInt32:
		return "int32"
	case dtInt16:
		return "int16"
	case dtInt8:
		return "int8"
	case dtUint8:
		return "uint8"
	case dtBool:
		return "bool"
	}
	return "unknown"
}

// size is the element size in bytes.
func (d dtype) size() int64 {
	switch d {
	case dtFloat64, dtInt64:
		return 8
	case dtFloat32, dtInt32:
		return 4
	case dtFloat16, dtBFloat16, dtInt16:
		return 2
	}
	return 1
}

// at converts element i of a storage held in b to float32, as torch's
// Tensor.float() does (round to nearest even for float64 and wide integers).
func (d dtype) at(b []byte, i int64, bo binary.ByteOrder) float32 {
	switch d {
	case dtFloat32:
		return math.Float32frombits(bo.Uint32(b[i*4:]))
	case dtFloat64:
		return float32(math.Float64frombits(bo.Uint64(b[i*8:])))
	case dtFloat16:
		return halfToFloat(bo.Uint16(b[i*2:]))
	case dtBFloat16:
		return math.Float32frombits(uint32(bo.Uint16(b[i*2:])) << 16)
	case dtInt64:
		return float32(int64(bo.Uint64(b[i*8:])))
	case dtInt32:
		return float32(int32(bo.Uint32(b[i*4:])))
	case dtInt16:
		return float32(int16(bo.Uint16(b[i*2:])))
	case dtInt8:
		return float32(int8(b[i]))
	case dtUint8:
		return float32(b[i])
	case dtBool:
		if b[i] != 0 {
			return 1
		}
		return 0
	}
	return 0
}

// halfToFloat converts IEEE 754 binary16 bits to float32 exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	var bits uint32
	switch {
	case exp == 0x1f: // inf, nan
		bits = sign | 0x7f800000 | mant<<13
	case exp == 0 && mant == 0:
		bits = sign
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		bits = sign | e<<23 | (mant&0x3ff)<<13
	default:
		bits = sign | (exp+127-15)<<23 | mant<<13
	}
	return math.Float32frombits(bits)
}

// decode converts len(dst) elements of src starting at element off.
func decode(dst []float32, src []byte, off int64, d dtype, bo binary.ByteOrder) {
	switch d {
	case dtFloat32:
		b := src[off*4:]
		for i := range dst {
			dst[i] = math.Float32frombits(bo.Uint32(b[i*4:]))
		}
	case dtFloat16:
		b := src[off*2:]
		for i := range dst {
			dst[i] = halfToFloat(bo.Uint16(b[i*2:]))
		}
	default:
		for i := range dst {
			dst[i] = d.at(src, off+int64(i), bo)
		}
	}
}

// gather fills dst with the strided view (offset, shape, stride) of src.
func gather(dst []float32, src []byte, d dtype, bo binary.ByteOrder, offset int64, shape, stride []int64) {
	if len(dst) == 0 {
		return
	}
	if isContiguous(shape, stride) {
		decode(dst, src, offset, d, bo)
		return
	}
	rank := len(shape)
	idx := make([]int64, rank)
	pos := offset
	for i := range dst {
		dst[i] = d.at(src, pos, bo)
		for k := rank - 1; k >= 0; k-- {
			idx[k]++
			pos += stride[k]
			if idx[k] < shape[k] {
				break
			}
			pos -= idx[k] * stride[k]
			idx[k] = 0
		}
	}
}

// isContiguous reports whether stride is the row-major stride of shape
// (dims of size 1 may have any stride).
func isContiguous(shape, stride []int64) bool {
	want := int64(1)
	for k := len(shape) - 1; k >= 0; k-- {
		if shape[k] != 1 && stride[k] != want {
			return false
		}
		want *= shape[k]
	}
	return true
}
