package nn

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strings"

	"gorgonia.org/tensor"
)

// NewTensor wraps data (float32, row-major) in a tensor of the given shape.
// An empty shape makes a scalar. The slice is used, not copied.
func NewTensor(shape []int, data []float32) *tensor.Dense {
	if len(shape) == 0 {
		return tensor.New(tensor.FromScalar(data[0]))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

// Zeros returns a zero tensor of the given shape.
func Zeros(shape ...int) *tensor.Dense {
	return NewTensor(shape, make([]float32, Numel(shape)))
}

// Floats returns the float32 backing slice of t (shared, not copied).
func Floats(t *tensor.Dense) []float32 {
	if t.IsScalar() {
		switch v := t.Data().(type) {
		case float32:
			return []float32{v}
		case []float32:
			return v
		}
		panic(fmt.Sprintf("nn: tensor of %v, want float32", t.Dtype()))
	}
	return t.Data().([]float32)
}

// ShapeOf returns t's shape as a fresh []int ([] for a scalar).
func ShapeOf(t *tensor.Dense) []int {
	if t.IsScalar() {
		return []int{}
	}
	return append([]int(nil), t.Shape()...)
}

// Numel is the number of elements of a shape (1 for a scalar).
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Clone deep-copies t.
func Clone(t *tensor.Dense) *tensor.Dense {
	return NewTensor(ShapeOf(t), append([]float32(nil), Floats(t)...))
}

// StateDict is an ordered set of named float32 tensors, as a checkpoint holds them.
// Keys keep the file's order; names are unique.
type StateDict struct {
	Keys    []string
	Tensors map[string]*tensor.Dense
}

// NewStateDict returns an empty state dict.
func NewStateDict() *StateDict {
	return &StateDict{Tensors: map[string]*tensor.Dense{}}
}

// Add appends a tensor; a repeated name is an error.
func (sd *StateDict) Add(name string, t *tensor.Dense) error {
	if _, dup := sd.Tensors[name]; dup {
		return fmt.Errorf("duplicate tensor %q", name)
	}
	sd.Keys = append(sd.Keys, name)
	sd.Tensors[name] = t
	return nil
}

// Get returns the tensor named name.
func (sd *StateDict) Get(name string) (*tensor.Dense, bool) {
	t, ok := sd.Tensors[name]
	return t, ok
}

// Len is the number of tensors.
func (sd *StateDict) Len() int { return len(sd.Keys) }

// SourceSHA256 hashes a model's parameters and running statistics: for every
// tensor in name order (module. stripped, num_batches_tracked left out), the
// name, a NUL byte and its values as float32 little-endian. A .pth and its
// safetensors copy hash alike.
func SourceSHA256(sd *StateDict) string {
	names := make(map[string]string, sd.Len())
	var keys []string
	for _, k := range sd.Keys {
		n := k
		for strings.HasPrefix(n, "module.") {
			n = strings.TrimPrefix(n, "module.")
		}
		if n == "num_batches_tracked" || strings.HasSuffix(n, ".num_batches_tracked") {
			continue
		}
		names[n] = k
		keys = append(keys, n)
	}
	sort.Strings(keys)
	h := sha256.New()
	var buf []byte
	for _, n := range keys {
		h.Write([]byte(n))
		h.Write([]byte{0})
		data := Floats(sd.Tensors[names[n]])
		buf = buf[:0]
		for _, v := range data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}
