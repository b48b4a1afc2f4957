package onnx

import (
	"bufio"
	"encoding/binary"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// enc builds one protobuf message as a list of byte runs and float32 slices,
// so that weights are neither copied nor converted until they are written:
// the exporter knows every length up front and streams the data.
type enc struct {
	parts []part
	cur   []byte // bytes not yet moved to parts
	n     int    // total encoded size, cur included
}

// part is a run of encoded bytes or of float32 values (written little-endian).
type part struct {
	b []byte
	f []float32
}

func (e *enc) flush() {
	if len(e.cur) > 0 {
		e.parts = append(e.parts, part{b: e.cur})
		e.cur = nil
	}
}

func (e *enc) put(b []byte) {
	e.cur = append(e.cur, b...)
	e.n += len(b)
}

func (e *enc) tag(num protowire.Number, t protowire.Type) {
	e.put(protowire.AppendTag(nil, num, t))
}

func (e *enc) varint(num protowire.Number, v int64) {
	e.tag(num, protowire.VarintType)
	e.put(protowire.AppendVarint(nil, uint64(v)))
}

func (e *enc) bytes(num protowire.Number, b []byte) {
	e.tag(num, protowire.BytesType)
	e.put(protowire.AppendBytes(nil, b))
}

// str writes a string field; empty strings are left out (proto2 optional).
func (e *enc) str(num protowire.Number, s string) {
	if s != "" {
		e.bytes(num, []byte(s))
	}
}

// strs writes a repeated string field; empty elements are kept.
func (e *enc) strs(num protowire.Number, ss []string) {
	for _, s := range ss {
		e.bytes(num, []byte(s))
	}
}

func (e *enc) float(num protowire.Number, f float32) {
	e.tag(num, protowire.Fixed32Type)
	e.put(protowire.AppendFixed32(nil, math.Float32bits(f)))
}

// msg appends sub as an embedded message field.
func (e *enc) msg(num protowire.Number, sub *enc) {
	e.tag(num, protowire.BytesType)
	e.put(protowire.AppendVarint(nil, uint64(sub.n)))
	sub.flush()
	for _, p := range sub.parts {
		if p.f != nil {
			e.flush()
			e.parts = append(e.parts, p)
			e.n += 4 * len(p.f)
		} else {
			e.put(p.b)
		}
	}
}

// rawFloats writes f as a bytes field of little-endian float32s.
func (e *enc) rawFloats(num protowire.Number, f []float32) {
	e.tag(num, protowire.BytesType)
	e.put(protowire.AppendVarint(nil, uint64(4*len(f))))
	e.flush()
	if len(f) > 0 {
		e.parts = append(e.parts, part{f: f})
		e.n += 4 * len(f)
	}
}

// writeTo streams the message to w.
func (e *enc) writeTo(w io.Writer) error {
	e.flush()
	bw := bufio.NewWriterSize(w, 1<<16)
	for _, p := range e.parts {
		if p.f == nil {
			if _, err := bw.Write(p.b); err != nil {
				return err
			}
			continue
		}
		if err := writeFloats(bw, p.f); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// writeFloats writes f little-endian in chunks.
func writeFloats(w io.Writer, f []float32) error {
	var buf [4096]byte
	for len(f) > 0 {
		n := min(len(f), len(buf)/4)
		for i, v := range f[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(buf[:4*n]); err != nil {
			return err
		}
		f = f[n:]
	}
	return nil
}

// encodeModel encodes m. Tensors with External entries get their entries and
// data_location EXTERNAL instead of raw_data.
func encodeModel(m *Model) *enc {
	e := &enc{}
	e.varint(fModelIRVersion, m.IRVersion)
	e.str(fModelProducerName, m.ProducerName)
	e.str(fModelProducerVersion, m.ProducerVersion)
	e.msg(fModelGraph, encodeGraph(&m.Graph))
	for _, o := range m.Opsets {
		s := &enc{}
		s.str(fOpsetDomain, o.Domain)
		s.varint(fOpsetVersion, o.Version)
		e.msg(fModelOpsetImport, s)
	}
	for _, kv := range m.Metadata {
		e.msg(fModelMetadataProps, encodeEntry(kv))
	}
	return e
}

func encodeEntry(kv Entry) *enc {
	s := &enc{}
	s.bytes(fEntryKey, []byte(kv.Key))
	s.bytes(fEntryValue, []byte(kv.Value))
	return s
}

func encodeGraph(g *Graph) *enc {
	e := &enc{}
	for i := range g.Nodes {
		e.msg(fGraphNode, encodeNode(&g.Nodes[i]))
	}
	e.str(fGraphName, g.Name)
	for _, t := range g.Initializers {
		e.msg(fGraphInitializer, encodeTensor(t))
	}
	for _, v := range g.Inputs {
		e.msg(fGraphInput, encodeValueInfo(v))
	}
	for _, v := range g.Outputs {
		e.msg(fGraphOutput, encodeValueInfo(v))
	}
	return e
}

func encodeNode(n *Node) *enc {
	e := &enc{}
	e.strs(fNodeInput, n.Inputs)
	e.strs(fNodeOutput, n.Outputs)
	e.str(fNodeName, n.Name)
	e.str(fNodeOpType, n.OpType)
	for _, a := range n.Attrs {
		e.msg(fNodeAttribute, encodeAttr(a))
	}
	e.str(fNodeDomain, n.Domain)
	return e
}

func encodeAttr(a Attr) *enc {
	e := &enc{}
	e.str(fAttrName, a.Name)
	switch a.Type {
	case AttrFloat:
		e.float(fAttrF, a.F)
	case AttrInt:
		e.varint(fAttrI, a.I)
	case AttrString:
		e.bytes(fAttrS, a.S)
	case AttrFloats:
		for _, f := range a.Floats {
			e.float(fAttrFloats, f)
		}
	case AttrInts:
		for _, v := range a.Ints {
			e.varint(fAttrInts, v)
		}
	}
	e.varint(fAttrType, int64(a.Type))
	return e
}

func encodeTensor(t *Tensor) *enc {
	e := &enc{}
	for _, d := range t.Dims {
		e.varint(fTensorDims, d)
	}
	e.varint(fTensorDataType, int64(t.DataType))
	e.str(fTensorName, t.Name)
	switch {
	case t.IsExternal():
		for _, kv := range t.External {
			e.msg(fTensorExternalData, encodeEntry(kv))
		}
		e.varint(fTensorDataLocation, dataLocationExtrn)
	case t.DataType == Int64:
		b := make([]byte, 8*len(t.Int64s))
		for i, v := range t.Int64s {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
		}
		e.bytes(fTensorRawData, b)
	case t.raw != nil:
		e.bytes(fTensorRawData, t.raw)
	default:
		e.rawFloats(fTensorRawData, t.Data)
	}
	return e
}

func encodeValueInfo(v ValueInfo) *enc {
	shape := &enc{}
	for _, d := range v.Dims {
		dim := &enc{}
		if d.Param != "" {
			dim.str(fDimParam, d.Param)
		} else {
			dim.varint(fDimValue, d.Value)
		}
		shape.msg(fShapeDim, dim)
	}
	tt := &enc{}
	tt.varint(fTensorTypeElem, int64(v.ElemType))
	tt.msg(fTensorTypeShape, shape)
	typ := &enc{}
	typ.msg(fTypeTensorType, tt)
	e := &enc{}
	e.str(fValueName, v.Name)
	e.msg(fValueType, typ)
	return e
}
