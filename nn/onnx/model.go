package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Field numbers and enum values of onnx.proto (ONNX IR version 8), the subset
// this package reads and writes.
const (
	// ModelProto
	fModelIRVersion       = 1
	fModelProducerName    = 2
	fModelProducerVersion = 3
	fModelGraph           = 7
	fModelOpsetImport     = 8
	fModelMetadataProps   = 14

	// OperatorSetIdProto
	fOpsetDomain  = 1
	fOpsetVersion = 2

	// StringStringEntryProto
	fEntryKey   = 1
	fEntryValue = 2

	// GraphProto
	fGraphNode        = 1
	fGraphName        = 2
	fGraphInitializer = 5
	fGraphInput       = 11
	fGraphOutput      = 12

	// NodeProto
	fNodeInput     = 1
	fNodeOutput    = 2
	fNodeName      = 3
	fNodeOpType    = 4
	fNodeAttribute = 5
	fNodeDomain    = 7

	// AttributeProto
	fAttrName   = 1
	fAttrF      = 2
	fAttrI      = 3
	fAttrS      = 4
	fAttrFloats = 7
	fAttrInts   = 8
	fAttrType   = 20

	// TensorProto
	fTensorDims         = 1
	fTensorDataType     = 2
	fTensorFloatData    = 4
	fTensorInt64Data    = 7
	fTensorName         = 8
	fTensorRawData      = 9
	fTensorExternalData = 13
	fTensorDataLocation = 14

	// ValueInfoProto
	fValueName = 1
	fValueType = 2

	// TypeProto and TypeProto.Tensor
	fTypeTensorType   = 1
	fTensorTypeElem   = 1
	fTensorTypeShape  = 2
	fShapeDim         = 1 // TensorShapeProto.dim
	fDimValue         = 1 // TensorShapeProto.Dimension.dim_value
	fDimParam         = 2 // TensorShapeProto.Dimension.dim_param
	dataLocationExtrn = 1 // TensorProto.DataLocation EXTERNAL
)

// Tensor element types (TensorProto.DataType).
const (
	Float = 1
	Int64 = 7
)

// AttrType is AttributeProto.AttributeType.
type AttrType int32

// The attribute types this package writes and decodes.
const (
	AttrFloat   AttrType = 1
	AttrInt     AttrType = 2
	AttrString  AttrType = 3
	AttrTensor  AttrType = 4
	AttrFloats  AttrType = 6
	AttrInts    AttrType = 7
	AttrStrings AttrType = 8
)

// Model is the part of an ONNX ModelProto that rmprune writes: what [Decode]
// returns and what the exporter encodes. Fields it does not know are skipped
// when decoding.
type Model struct {
	IRVersion       int64
	ProducerName    string
	ProducerVersion string
	Opsets          []Opset
	Graph           Graph
	Metadata        []Entry // metadata_props, in file order
}

// Opset is an OperatorSetIdProto.
type Opset struct {
	Domain  string
	Version int64
}

// Entry is a StringStringEntryProto.
type Entry struct{ Key, Value string }

// Graph is a GraphProto.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []*Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Node is a NodeProto.
type Node struct {
	Name    string
	OpType  string
	Domain  string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Attr is an AttributeProto (scalars, lists and strings; tensor attributes
// are decoded by type only).
type Attr struct {
	Name   string
	Type   AttrType
	F      float32
	I      int64
	S      []byte
	Floats []float32
	Ints   []int64
}

// Tensor is a TensorProto. Data holds float data whatever the encoding
// (raw_data, float_data, or external data once resolved by [ReadFile]);
// External lists the external_data entries of a tensor stored outside the
// model file.
type Tensor struct {
	Name     string
	Dims     []int64
	DataType int32
	Data     []float32
	Int64s   []int64 // int64_data, or raw_data of an INT64 tensor
	External []Entry
	raw      []byte // undecoded raw_data of an unsupported type
}

// IsExternal reports whether the tensor's data lives in an external file.
func (t *Tensor) IsExternal() bool { return len(t.External) > 0 }

// ExternalValue returns the value of external_data key k ("location",
// "offset", "length", ...) and whether it is present.
func (t *Tensor) ExternalValue(k string) (string, bool) {
	for _, e := range t.External {
		if e.Key == k {
			return e.Value, true
		}
	}
	return "", false
}

// Numel is the product of the dims (1 for a scalar).
func (t *Tensor) Numel() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// ValueInfo is a ValueInfoProto holding a tensor type.
type ValueInfo struct {
	Name     string
	ElemType int32
	Dims     []Dim
}

// Dim is one dimension of a tensor shape: a value, or a symbolic parameter
// when Param is not empty.
type Dim struct {
	Value int64
	Param string
}

func (d Dim) String() string {
	if d.Param != "" {
		return d.Param
	}
	return fmt.Sprint(d.Value)
}

// Attr returns the attribute named name, or nil.
func (n *Node) Attr(name string) *Attr {
	for i := range n.Attrs {
		if n.Attrs[i].Name == name {
			return &n.Attrs[i]
		}
	}
	return nil
}

// Initializer returns the initializer named name, or nil.
func (g *Graph) Initializer(name string) *Tensor {
	for _, t := range g.Initializers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// MetadataValue returns the value of metadata key k and whether it is present.
func (m *Model) MetadataValue(k string) (string, bool) {
	for _, e := range m.Metadata {
		if e.Key == k {
			return e.Value, true
		}
	}
	return "", false
}

// floatsLE decodes little-endian float32 bytes.
func floatsLE(b []byte) []float32 {
	f := make([]float32, len(b)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return f
}
