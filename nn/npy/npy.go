// Package npy reads and writes NumPy .npy files holding float32 arrays.
//
// Reading accepts format versions 1.0, 2.0 and 3.0 with dtype '<f4' (float32)
// or '<f8' (float64, rounded to the nearest float32 as numpy's astype does),
// in C order; Fortran order is accepted only where it is the same layout (rank
// 0 or 1). Every other dtype, big-endian data, object (pickled) arrays,
// structured dtypes and malformed headers are a [*FormatError] that names
// what was found. Rank is the caller's to judge.
//
// Writing produces version 1.0 (2.0 when the header needs it) '<f4' C-order
// files byte for byte as numpy 1.24's np.save does.
package npy

import (
	"fmt"
)

// magic starts every .npy file.
const magic = "\x93NUMPY"

// maxHeaderLen bounds the header we read. numpy's own np.load refuses
// headers over 10,000 characters; a float array's header is under 200.
const maxHeaderLen = 1 << 20

// A FormatError reports a file that is not a valid .npy file or holds an
// array this package does not read.
type FormatError struct {
	Name    string // the file's name; may be empty
	Problem string // what is wrong, one line, lower case
	Err     error  // the underlying error, if any
}

func (e *FormatError) Error() string {
	if e.Name == "" {
		return "npy: " + e.Problem
	}
	return "npy: " + e.Name + ": " + e.Problem
}

func (e *FormatError) Unwrap() error { return e.Err }

// dtypeName gives numpy's name for a simple descr ("<i8" → "int64") to make
// errors readable; "" when unknown.
func dtypeName(kind byte, size int) string {
	base := map[byte]string{'f': "float", 'i': "int", 'u': "uint", 'c': "complex"}[kind]
	switch kind {
	case 'f', 'i', 'u', 'c':
		if size > 0 {
			return fmt.Sprintf("%s%d", base, 8*size)
		}
	case 'b':
		return "bool"
	case 'O':
		return "object"
	case 'U':
		return "unicode string"
	case 'S', 'a':
		return "bytes"
	case 'V':
		return "void"
	case 'M':
		return "datetime64"
	case 'm':
		return "timedelta64"
	}
	return ""
}
