package safetensors

import (
	"encoding/binary"
	"math"
)

// Element converters: little-endian bytes of one dtype to float32.

var le = binary.LittleEndian

func convF64(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
	}
}

func convF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
	}
}

func convF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = halfToFloat(le.Uint16(src[2*i:]))
	}
}

func convBF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
	}
}

// F8_E5M2 is the top byte of an IEEE half.
func convF8E5M2(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = halfToFloat(uint16(src[i]) << 8)
	}
}

func convF8E4M3(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = e4m3ToFloat(src[i])
	}
}

func convI64(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(int64(le.Uint64(src[8*i:])))
	}
}

func convI32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(int32(le.Uint32(src[4*i:])))
	}
}

func convI16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(int16(le.Uint16(src[2*i:])))
	}
}

func convI8(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(int8(src[i]))
	}
}

func convU64(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(le.Uint64(src[8*i:]))
	}
}

func convU32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(le.Uint32(src[4*i:]))
	}
}

func convU16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(le.Uint16(src[2*i:]))
	}
}

func convU8(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(src[i])
	}
}

// convBool maps 0 to 0 and any other byte to 1.
func convBool(dst []float32, src []byte) {
	for i := range dst {
		if src[i] != 0 {
			dst[i] = 1
		} else {
			dst[i] = 0
		}
	}
}

// halfToFloat converts IEEE 754 binary16 bits to float32 exactly (every half
// value is a float32 value; NaN payloads are kept).
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant · 2^-24
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// e4m3ToFloat converts an OCP FP8 E4M3 ("fn": no infinities, S.1111.111 is
// NaN, exponent bias 7) byte to float32.
func e4m3ToFloat(b byte) float32 {
	sign := uint32(b>>7) << 31
	exp := uint32(b>>3) & 0xf
	mant := uint32(b) & 0x7
	switch {
	case exp == 0xf && mant == 0x7:
		return math.Float32frombits(sign | 0x7fc00000)
	case exp == 0: // zero or subnormal: mant · 2^-9
		f := float32(mant) * (1.0 / (1 << 9))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-7)<<23 | mant<<20)
}
