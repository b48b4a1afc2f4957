// Package safetensors reads and writes the safetensors tensor file format: an
// 8-byte little-endian header length, a JSON header that maps tensor names to
// dtype, shape and byte range (plus an optional "__metadata__" map of strings),
// and the tensor bytes.
//
// The package knows nothing about networks: it moves named float32 tensors
// ([nn.StateDict]) and a string→string metadata map in and out of files.
//
// Reading accepts every integer and floating dtype of the format (F64, F32,
// F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, U32, U16, U8, BOOL)
// and converts it to float32, rounding to nearest; integers beyond 2^24 lose
// precision, BOOL reads as 0 or 1. The reader treats the file as hostile: every
// number in the header is checked before it is used, and a file that breaks a
// rule of the format is a [*FormatError], never a panic.
//
// Writing produces F32 tensors only, deterministically: the same input gives
// the same bytes, laid out as the reference implementation does (tensors
// sorted by name, "__metadata__" first with sorted keys, compact JSON, header
// padded with spaces to a multiple of 8 bytes).
package safetensors

import (
	"fmt"

	"github.com/rmprune/rmprune/nn"
)

// MaxHeaderSize is the largest JSON header accepted, in bytes. The
// reference implementation allows 100 MB; a network's header (names, shapes,
// offsets and our graph and recipe metadata) is well under 1 MB even for a
// pruned ResNet-152, and the header is held in memory while it is parsed.
const MaxHeaderSize = 8 << 20

// expandSlack is how many bytes of float32 beyond twice the file size its
// tensors may decode to. Tensors are converted to float32, so F16/BF16 data
// doubles and 1-byte dtypes (U8, I8, BOOL, F8) quadruple: a file that is
// mostly 1-byte tensors is refused rather than taking four times its size.
const expandSlack = 64 << 20

// MaxTensors is the most tensors a file may hold. Each tensor costs a few
// hundred bytes of bookkeeping whatever its size, so a file of millions of
// one-byte tensors would take gigabytes; the largest torchvision CNN state
// dicts have about 1,200.
const MaxTensors = 16384

// File is the content of a safetensors file.
type File struct {
	// Metadata is the header's "__metadata__" map; empty, never nil, when the
	// file has none.
	Metadata map[string]string
	// Tensors holds the tensors converted to float32, in the order of their
	// data in the file.
	Tensors *nn.StateDict
}

// A FormatError reports a file that is not valid safetensors, or one this
// package cannot represent (an unknown dtype, an empty tensor).
type FormatError struct {
	Name    string // the file's name; may be empty
	Problem string // what is wrong, one line, lower case
	Err     error  // the underlying error, if any
}

func (e *FormatError) Error() string {
	if e.Name == "" {
		return "safetensors: " + e.Problem
	}
	return "safetensors: " + e.Name + ": " + e.Problem
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(name, format string, args ...any) *FormatError {
	return &FormatError{Name: name, Problem: fmt.Sprintf(format, args...)}
}

// dtype describes one element type of the format.
type dtype struct {
	size int
	// conv converts len(dst) elements from src (len(src) == size*len(dst)).
	conv func(dst []float32, src []byte)
}

var dtypes = map[string]dtype{
	"F64":     {8, convF64},
	"F32":     {4, convF32},
	"F16":     {2, convF16},
	"BF16":    {2, convBF16},
	"F8_E4M3": {1, convF8E4M3},
	"F8_E5M2": {1, convF8E5M2},
	"I64":     {8, convI64},
	"I32":     {4, convI32},
	"I16":     {2, convI16},
	"I8":      {1, convI8},
	"U64":     {8, convU64},
	"U32":     {4, convU32},
	"U16":     {2, convU16},
	"U8":      {1, convU8},
	"BOOL":    {1, convBool},
}
