package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// FormatError reports a malformed ONNX file.
type FormatError string

func (e FormatError) Error() string { return "onnx: invalid model: " + string(e) }

// Decode parses an ONNX ModelProto: the fields rmprune writes (see [Model]);
// others are skipped. Tensors stored in external data keep their External
// entries and no Data; [ReadFile] resolves them.
func Decode(b []byte) (*Model, error) {
	m := &Model{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case fModelIRVersion:
			m.IRVersion = int64(x)
		case fModelProducerName:
			m.ProducerName = string(v)
		case fModelProducerVersion:
			m.ProducerVersion = string(v)
		case fModelGraph:
			return decodeGraph(v, &m.Graph)
		case fModelOpsetImport:
			var o Opset
			err := fields(v, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
				switch num {
				case fOpsetDomain:
					o.Domain = string(v)
				case fOpsetVersion:
					o.Version = int64(x)
				}
				return nil
			})
			m.Opsets = append(m.Opsets, o)
			return err
		case fModelMetadataProps:
			kv, err := decodeEntry(v)
			m.Metadata = append(m.Metadata, kv)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ReadFile reads and decodes the ONNX model at path and loads the data of
// external tensors from files beside it (a location must be a relative path
// inside the model's directory).
func ReadFile(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	m, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("onnx: read %s: %w", path, err)
	}
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, t := range m.Graph.Initializers {
		if !t.IsExternal() {
			continue
		}
		if err := loadExternal(t, filepath.Dir(path), files); err != nil {
			return nil, fmt.Errorf("onnx: read %s: tensor %s: %w", path, t.Name, err)
		}
	}
	return m, nil
}

func loadExternal(t *Tensor, dir string, files map[string]*os.File) error {
	loc, ok := t.ExternalValue("location")
	if !ok || loc == "" {
		return errors.New("external data without location")
	}
	if filepath.IsAbs(loc) || !filepath.IsLocal(loc) {
		return fmt.Errorf("external data location %q is outside the model's directory", loc)
	}
	var off, n int64
	var err error
	if s, ok := t.ExternalValue("offset"); ok {
		if off, err = strconv.ParseInt(s, 10, 64); err != nil || off < 0 {
			return fmt.Errorf("bad external data offset %q", s)
		}
	}
	if t.DataType != Float {
		return fmt.Errorf("external data of type %d not supported", t.DataType)
	}
	want := 4 * t.Numel()
	n = want
	if s, ok := t.ExternalValue("length"); ok {
		if n, err = strconv.ParseInt(s, 10, 64); err != nil || n < 0 {
			return fmt.Errorf("bad external data length %q", s)
		}
	}
	if n != want {
		return fmt.Errorf("external data length %d, want %d for dims %v", n, want, t.Dims)
	}
	f := files[loc]
	if f == nil {
		if f, err = os.Open(filepath.Join(dir, loc)); err != nil {
			return err
		}
		files[loc] = f
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("external data %s ends before offset %d + %d", loc, off, n)
		}
		return err
	}
	t.Data = floatsLE(b)
	return nil
}

// fields calls f for every field of the message in b: v holds the bytes of a
// length-delimited field (or the 4/8 bytes of a fixed one), x a varint's value.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return FormatError(protowire.ParseError(n).Error())
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(b)
			x = uint64(u)
			if n >= 0 {
				v = b[:4]
			}
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
			if n >= 0 {
				v = b[:8]
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return FormatError(fmt.Sprintf("field %d: %v", num, protowire.ParseError(n)))
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// varints decodes a repeated integer field, packed or not.
func varints(dst []int64, typ protowire.Type, v []byte, x uint64) ([]int64, error) {
	if typ == protowire.VarintType {
		return append(dst, int64(x)), nil
	}
	if typ != protowire.BytesType {
		return dst, FormatError(fmt.Sprintf("integer field of wire type %d", typ))
	}
	for len(v) > 0 {
		u, n := protowire.ConsumeVarint(v)
		if n < 0 {
			return dst, FormatError("packed varints: " + protowire.ParseError(n).Error())
		}
		dst = append(dst, int64(u))
		v = v[n:]
	}
	return dst, nil
}

// float32s decodes a repeated float field, packed or not.
func float32s(dst []float32, typ protowire.Type, v []byte, x uint64) ([]float32, error) {
	switch {
	case typ == protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(x))), nil
	case typ == protowire.BytesType && len(v)%4 == 0:
		return append(dst, floatsLE(v)...), nil
	}
	return dst, FormatError(fmt.Sprintf("float field of wire type %d", typ))
}

func decodeEntry(b []byte) (Entry, error) {
	var kv Entry
	err := fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fEntryKey:
			kv.Key = string(v)
		case fEntryValue:
			kv.Value = string(v)
		}
		return nil
	})
	return kv, err
}

func decodeGraph(b []byte, g *Graph) error {
	return fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fGraphNode:
			var n Node
			err := decodeNode(v, &n)
			g.Nodes = append(g.Nodes, n)
			return err
		case fGraphName:
			g.Name = string(v)
		case fGraphInitializer:
			t, err := decodeTensor(v)
			g.Initializers = append(g.Initializers, t)
			return err
		case fGraphInput, fGraphOutput:
			vi, err := decodeValueInfo(v)
			if num == fGraphInput {
				g.Inputs = append(g.Inputs, vi)
			} else {
				g.Outputs = append(g.Outputs, vi)
			}
			return err
		}
		return nil
	})
}

func decodeNode(b []byte, n *Node) error {
	return fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fNodeInput:
			n.Inputs = append(n.Inputs, string(v))
		case fNodeOutput:
			n.Outputs = append(n.Outputs, string(v))
		case fNodeName:
			n.Name = string(v)
		case fNodeOpType:
			n.OpType = string(v)
		case fNodeDomain:
			n.Domain = string(v)
		case fNodeAttribute:
			var a Attr
			err := decodeAttr(v, &a)
			n.Attrs = append(n.Attrs, a)
			return err
		}
		return nil
	})
}

func decodeAttr(b []byte, a *Attr) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch num {
		case fAttrName:
			a.Name = string(v)
		case fAttrType:
			a.Type = AttrType(x)
		case fAttrF:
			a.F = math.Float32frombits(uint32(x))
		case fAttrI:
			a.I = int64(x)
		case fAttrS:
			a.S = append([]byte(nil), v...)
		case fAttrFloats:
			a.Floats, err = float32s(a.Floats, typ, v, x)
		case fAttrInts:
			a.Ints, err = varints(a.Ints, typ, v, x)
		}
		return err
	})
}

func decodeTensor(b []byte) (*Tensor, error) {
	t := &Tensor{}
	var raw []byte
	hasRaw := false
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch num {
		case fTensorDims:
			t.Dims, err = varints(t.Dims, typ, v, x)
		case fTensorDataType:
			t.DataType = int32(x)
		case fTensorName:
			t.Name = string(v)
		case fTensorFloatData:
			t.Data, err = float32s(t.Data, typ, v, x)
		case fTensorInt64Data:
			t.Int64s, err = varints(t.Int64s, typ, v, x)
		case fTensorRawData:
			raw, hasRaw = v, true
		case fTensorExternalData:
			var kv Entry
			kv, err = decodeEntry(v)
			t.External = append(t.External, kv)
		}
		return err
	})
	if err != nil {
		return t, err
	}
	if hasRaw {
		switch t.DataType {
		case Float:
			if len(raw)%4 != 0 {
				return t, FormatError(fmt.Sprintf("tensor %s: raw_data of %d bytes", t.Name, len(raw)))
			}
			t.Data = floatsLE(raw)
		case Int64:
			if len(raw)%8 != 0 {
				return t, FormatError(fmt.Sprintf("tensor %s: raw_data of %d bytes", t.Name, len(raw)))
			}
			for i := 0; i < len(raw); i += 8 {
				t.Int64s = append(t.Int64s, int64(binary.LittleEndian.Uint64(raw[i:])))
			}
		default:
			t.raw = append([]byte{}, raw...)
		}
	}
	if !t.IsExternal() && t.DataType == Float && int64(len(t.Data)) != t.Numel() {
		return t, FormatError(fmt.Sprintf("tensor %s: %d values for dims %v", t.Name, len(t.Data), t.Dims))
	}
	return t, nil
}

func decodeValueInfo(b []byte) (ValueInfo, error) {
	var vi ValueInfo
	err := fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fValueName:
			vi.Name = string(v)
		case fValueType:
			return fields(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				if num != fTypeTensorType {
					return nil
				}
				return fields(v, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
					switch num {
					case fTensorTypeElem:
						vi.ElemType = int32(x)
					case fTensorTypeShape:
						return fields(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
							if num != fShapeDim {
								return nil
							}
							var d Dim
							err := fields(v, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
								switch num {
								case fDimValue:
									d.Value = int64(x)
								case fDimParam:
									d.Param = string(v)
								}
								return nil
							})
							vi.Dims = append(vi.Dims, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return vi, err
}

// String summarises the node as "OpType(inputs) -> outputs".
func (n *Node) String() string {
	return fmt.Sprintf("%s(%s) -> %s", n.OpType, strings.Join(n.Inputs, ", "), strings.Join(n.Outputs, ", "))
}
