package safetensors

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/rmprune/rmprune/internal/atomicfile"
	"github.com/rmprune/rmprune/nn"
)

// WriteFile writes meta and the tensors of sd to path as F32 safetensors (see
// [Write]). The file is replaced atomically: the bytes go to a temporary file
// in the same directory, which is synced and then renamed over path; on any
// error path is untouched and the temporary file is removed.
func WriteFile(path string, meta map[string]string, sd *nn.StateDict) error {
	plan, err := planFile(meta, sd)
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err := atomicfile.Write(path, plan.writeTo); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return nil
}

// Write writes meta and the tensors of sd to w as F32 safetensors. The output
// is deterministic: tensors sorted by name (byte order) with consecutive data,
// "__metadata__" first with sorted keys (left out when meta is empty),
// compact JSON, the header padded with spaces to a multiple of 8 bytes. The
// order of sd.Keys is not kept. Names and metadata must be valid UTF-8, and
// "__metadata__" cannot name a tensor.
func Write(w io.Writer, meta map[string]string, sd *nn.StateDict) error {
	plan, err := planFile(meta, sd)
	if err == nil {
		err = plan.writeTo(w)
	}
	if err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

// plan is a checked file ready to be written.
type plan struct {
	header []byte
	data   [][]float32 // in file order
}

func planFile(meta map[string]string, sd *nn.StateDict) (*plan, error) {
	if sd == nil {
		return nil, errors.New("nil state dict")
	}
	if len(sd.Keys) > MaxTensors {
		return nil, fmt.Errorf("state dict has %d tensors; at most %d can be read back", len(sd.Keys), MaxTensors)
	}
	if len(sd.Keys) != len(sd.Tensors) {
		return nil, fmt.Errorf("state dict has %d keys for %d tensors", len(sd.Keys), len(sd.Tensors))
	}
	names := slices.Clone(sd.Keys)
	slices.Sort(names)
	p := &plan{data: make([][]float32, len(names))}

	h := []byte{'{'}
	if len(meta) > 0 {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		h = append(h, `"__metadata__":{`...)
		for i, k := range keys {
			v := meta[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("metadata %q: not valid utf-8", k)
			}
			if i > 0 {
				h = append(h, ',')
			}
			h = appendString(h, k)
			h = append(h, ':')
			h = appendString(h, v)
		}
		h = append(h, '}')
	}
	var offset uint64
	for i, name := range names {
		if i > 0 && names[i-1] == name {
			return nil, fmt.Errorf("duplicate tensor %q", name)
		}
		if name == "__metadata__" {
			return nil, errors.New(`"__metadata__" cannot name a tensor`)
		}
		if !utf8.ValidString(name) {
			return nil, fmt.Errorf("tensor %q: name is not valid utf-8", name)
		}
		t, ok := sd.Tensors[name]
		if !ok || t == nil {
			return nil, fmt.Errorf("tensor %q: listed in Keys but missing", name)
		}
		if t.IsMaterializable() {
			return nil, fmt.Errorf("tensor %q: a view or transpose; materialize it first", name)
		}
		var data []float32
		switch v := t.Data().(type) {
		case float32:
			data = []float32{v}
		case []float32:
			data = v
		default:
			return nil, fmt.Errorf("tensor %q: dtype %v, want float32", name, t.Dtype())
		}
		shape := nn.ShapeOf(t)
		if n := nn.Numel(shape); n != len(data) {
			return nil, fmt.Errorf("tensor %q: shape %v has %d elements, data %d", name, shape, n, len(data))
		}
		p.data[i] = data
		if len(meta) > 0 || i > 0 {
			h = append(h, ',')
		}
		end := offset + 4*uint64(len(data))
		h = appendString(h, name)
		h = append(h, `:{"dtype":"F32","shape":[`...)
		for j, d := range shape {
			if j > 0 {
				h = append(h, ',')
			}
			h = strconv.AppendInt(h, int64(d), 10)
		}
		h = append(h, `],"data_offsets":[`...)
		h = strconv.AppendUint(h, offset, 10)
		h = append(h, ',')
		h = strconv.AppendUint(h, end, 10)
		h = append(h, "]}"...)
		offset = end
	}
	h = append(h, '}')
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	if len(h) > MaxHeaderSize {
		return nil, fmt.Errorf("header of %d bytes exceeds the limit of %d", len(h), MaxHeaderSize)
	}
	p.header = h
	return p, nil
}

// appendString appends s as a JSON string the way serde_json and Python's
// json.dumps(ensure_ascii=False) write it: only '"', '\\' and control
// characters are escaped.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func (p *plan) writeTo(w io.Writer) error {
	var lenBuf [8]byte
	le.PutUint64(lenBuf[:], uint64(len(p.header)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(p.header); err != nil {
		return err
	}
	buf := make([]byte, 0, chunkSize)
	for _, data := range p.data {
		for _, v := range data {
			buf = le.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err := w.Write(buf)
	return err
}
