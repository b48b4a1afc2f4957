package pth

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// This file is a restricted pickle machine: it decodes the pickle opcodes of
// protocols 0 to 5 into inert Go values. It never imports or calls anything;
// a global is resolved only if it is on the allow-list below, and a call
// (REDUCE, NEWOBJ, INST, OBJ) is only interpreted for the few allowed
// callables, each by Go code written here.

// The allow-list: every global a state_dict checkpoint needs, and no other.
//
//	collections.OrderedDict                     the state_dict container (and empty backward-hook dicts)
//	torch._utils._rebuild_tensor_v2             a tensor: (storage, offset, size, stride, requires_grad, hooks[, metadata])
//	torch._utils._rebuild_tensor                a tensor, older form: (storage, offset, size, stride)
//	torch._utils._rebuild_parameter             an nn.Parameter: (tensor, requires_grad, hooks)
//	torch._utils._rebuild_parameter_with_state  an nn.Parameter, newer torch: (tensor, requires_grad, hooks, state)
//	torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage
//	                                            storage element types, only as persistent-id fields
var allowed = map[string]globalKind{
	"collections.OrderedDict":                    gOrderedDict,
	"torch._utils._rebuild_tensor_v2":            gRebuildTensorV2,
	"torch._utils._rebuild_tensor":               gRebuildTensor,
	"torch._utils._rebuild_parameter":            gRebuildParameter,
	"torch._utils._rebuild_parameter_with_state": gRebuildParameterWithState,
	"torch.FloatStorage":                         gStorage,
	"torch.DoubleStorage":                        gStorage,
	"torch.HalfStorage":                          gStorage,
	"torch.BFloat16Storage":                      gStorage,
	"torch.LongStorage":                          gStorage,
	"torch.IntStorage":                           gStorage,
	"torch.ShortStorage":                         gStorage,
	"torch.CharStorage":                          gStorage,
	"torch.ByteStorage":                          gStorage,
	"torch.BoolStorage":                          gStorage,
}

// AllowedGlobals returns the module.name of every global the unpickler
// accepts, sorted.
func AllowedGlobals() []string {
	out := make([]string, 0, len(allowed))
	for k := range allowed {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type globalKind int

const (
	gOrderedDict globalKind = iota + 1
	gRebuildTensorV2
	gRebuildTensor
	gRebuildParameter
	gRebuildParameterWithState
	gStorage
)

// GlobalError reports a pickle that references a global outside the allow-list.
type GlobalError struct {
	Module, Name string
}

func (e *GlobalError) Error() string {
	return fmt.Sprintf("refused pickle global %s.%s (not on the checkpoint allow-list; nothing is executed)", e.Module, e.Name)
}

// Limits of the pickle machine.
const (
	maxPickleBytes = 64 << 20 // data.pkl size
	maxRank        = 64
)

// Inert values produced by the machine. Ints are int64 (or *big.Int when they
// do not fit), floats float64, text string, bytes pyBytes, None nil.
type (
	pyTuple []any
	pyBytes []byte
	pyList  struct{ items []any }
	pySet   struct{ items []any }
	pyDict  struct {
		keys, vals []any
		index      map[string]int
	}
	pyGlobal struct {
		module, name string
		kind         globalKind
	}
)

func newDict() *pyDict { return &pyDict{index: map[string]int{}} }

func dictKey(k any) (string, bool) {
	switch k := k.(type) {
	case string:
		return "s" + k, true
	case int64:
		return "i" + strconv.FormatInt(k, 10), true
	}
	return "", false
}

func (d *pyDict) set(k, v any) {
	if s, ok := dictKey(k); ok {
		if i, dup := d.index[s]; dup {
			d.vals[i] = v
			return
		}
		d.index[s] = len(d.keys)
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

func (d *pyDict) get(k string) (any, bool) {
	i, ok := d.index["s"+k]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

// storageRef is a persistent-id storage: a key into the archive's data records.
type storageRef struct {
	dtype dtype
	key   string
	numel int64 // as claimed by the pickle
	// legacy views into a root storage
	viewOffset int64
	viewSize   int64 // -1: whole storage
}

// tensorRef is a tensor as the pickle describes it; its data is read later.
type tensorRef struct {
	st     *storageRef
	offset int64
	shape  []int64
	stride []int64
}

// input is a byte stream of known length shared by successive pickles.
type input struct {
	br    *bufio.Reader
	pos   int64 // bytes consumed
	limit int64 // bytes available
}

func newInput(r io.Reader, limit int64) *input {
	return &input{br: bufio.NewReader(r), limit: limit}
}

// machine is the pickle virtual machine.
type machine struct {
	*input
	stack    []any
	marks    []int
	memo     map[int64]any
	storages map[string]*storageRef
	// cost estimates the bytes the decoded values take; budget caps it, so
	// that a small (or deflated) pickle cannot make millions of containers.
	cost, budget int64
}

func newMachine(in *input, storages map[string]*storageRef) *machine {
	return &machine{
		input:    in,
		memo:     map[int64]any{},
		storages: storages,
		budget:   32<<20 + 4*min(in.limit, maxPickleBytes),
	}
}

var errPickle = errors.New("pickle")

func perr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errPickle}, a...)...)
}

func (m *machine) byte() (byte, error) {
	if m.pos >= m.limit {
		return 0, perr("truncated")
	}
	b, err := m.br.ReadByte()
	if err != nil {
		return 0, perr("truncated")
	}
	m.pos++
	return b, nil
}

// read returns the next n bytes; n is checked against what is left before
// anything is allocated.
func (m *machine) read(n int64) ([]byte, error) {
	if n < 0 || n > m.limit-m.pos {
		return nil, perr("truncated (a %d-byte field, %d bytes left)", n, max(m.limit-m.pos, 0))
	}
	m.cost += n
	b := make([]byte, n)
	if _, err := io.ReadFull(m.br, b); err != nil {
		return nil, perr("truncated")
	}
	m.pos += n
	return b, nil
}

func (m *machine) line() (string, error) {
	var sb strings.Builder
	for {
		c, err := m.byte()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			return sb.String(), nil
		}
		sb.WriteByte(c)
	}
}

func (m *machine) push(v any) { m.stack = append(m.stack, v) }

func (m *machine) pop() (any, error) {
	n := len(m.stack)
	if n == 0 || (len(m.marks) > 0 && m.marks[len(m.marks)-1] >= n) {
		return nil, perr("stack underflow")
	}
	v := m.stack[n-1]
	m.stack = m.stack[:n-1]
	return v, nil
}

func (m *machine) top() (any, error) {
	n := len(m.stack)
	if n == 0 || (len(m.marks) > 0 && m.marks[len(m.marks)-1] >= n) {
		return nil, perr("stack underflow")
	}
	return m.stack[n-1], nil
}

// popMark pops everything down to the last MARK.
func (m *machine) popMark() ([]any, error) {
	if len(m.marks) == 0 {
		return nil, perr("no mark")
	}
	k := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	m.cost += 16 * int64(len(m.stack)-k)
	items := append([]any(nil), m.stack[k:]...)
	m.stack = m.stack[:k]
	return items, nil
}

func (m *machine) popN(n int) ([]any, error) {
	out := make([]any, n)
	for i := n - 1; i >= 0; i-- {
		v, err := m.pop()
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (m *machine) uint(n int) (uint64, error) {
	b, err := m.read(int64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (m *machine) global(module, name string) (any, error) {
	kind, ok := allowed[module+"."+name]
	if !ok {
		return nil, &GlobalError{Module: module, Name: name}
	}
	return &pyGlobal{module: module, name: name, kind: kind}, nil
}

// run executes the pickle up to STOP and returns its value.
func (m *machine) run() (any, error) {
	for {
		op, err := m.byte()
		if err != nil {
			return nil, err
		}
		m.cost += 32 // a stack slot, a mark, a small value
		if m.cost > m.budget {
			return nil, perr("too many values to decode (over %d MB)", m.budget>>20)
		}
		if err := m.step(op); err != nil {
			if errors.Is(err, errStop) {
				if len(m.stack) != 1 || len(m.marks) != 0 {
					return nil, perr("STOP with %d values on the stack", len(m.stack))
				}
				return m.stack[0], nil
			}
			return nil, err
		}
	}
}

var errStop = errors.New("stop")

func (m *machine) step(op byte) error {
	switch op {
	case 0x80: // PROTO
		p, err := m.byte()
		if err != nil {
			return err
		}
		if p > 5 {
			return perr("unsupported protocol %d", p)
		}
	case 0x95: // FRAME
		if _, err := m.uint(8); err != nil {
			return err
		}
	case '.': // STOP
		return errStop
	case '(': // MARK
		m.marks = append(m.marks, len(m.stack))
	case '0': // POP
		if len(m.stack) > 0 && len(m.marks) > 0 && m.marks[len(m.marks)-1] == len(m.stack) {
			_, err := m.popMark() // POP of a bare mark
			return err
		}
		_, err := m.pop()
		return err
	case '1': // POP_MARK
		_, err := m.popMark()
		return err
	case '2': // DUP
		v, err := m.top()
		if err != nil {
			return err
		}
		m.push(v)

	// Constants.
	case 'N':
		m.push(nil)
	case 0x88:
		m.push(true)
	case 0x89:
		m.push(false)
	case 'J': // BININT
		v, err := m.uint(4)
		if err != nil {
			return err
		}
		m.push(int64(int32(uint32(v))))
	case 'K': // BININT1
		v, err := m.uint(1)
		if err != nil {
			return err
		}
		m.push(int64(v))
	case 'M': // BININT2
		v, err := m.uint(2)
		if err != nil {
			return err
		}
		m.push(int64(v))
	case 0x8a, 0x8b: // LONG1, LONG4
		w := 1
		if op == 0x8b {
			w = 4
		}
		n, err := m.uint(w)
		if err != nil {
			return err
		}
		b, err := m.read(int64(n))
		if err != nil {
			return err
		}
		m.push(decodeLong(b))
	case 'I', 'L': // INT, LONG (text)
		s, err := m.line()
		if err != nil {
			return err
		}
		s = strings.TrimSuffix(s, "L")
		switch s {
		case "00":
			m.push(false)
			return nil
		case "01":
			m.push(true)
			return nil
		}
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			m.push(v)
			return nil
		}
		b, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return perr("bad integer %.20q", s)
		}
		m.push(b)
	case 'F': // FLOAT (text)
		s, err := m.line()
		if err != nil {
			return err
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return perr("bad float %.20q", s)
		}
		m.push(v)
	case 'G': // BINFLOAT
		v, err := m.uint(8)
		if err != nil {
			return err
		}
		m.push(math.Float64frombits(bswap64(v)))

	// Text and bytes.
	case 'X', 0x8c, 0x8d: // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
		w := map[byte]int{'X': 4, 0x8c: 1, 0x8d: 8}[op]
		n, err := m.uint(w)
		if err != nil {
			return err
		}
		if n > math.MaxInt64 {
			return perr("string too long")
		}
		b, err := m.read(int64(n))
		if err != nil {
			return err
		}
		m.push(string(b))
	case 'V': // UNICODE (raw-unicode-escape text); escapes are kept as written
		s, err := m.line()
		if err != nil {
			return err
		}
		m.push(s)
	case 'S': // STRING (quoted repr)
		s, err := m.line()
		if err != nil {
			return err
		}
		if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
			return perr("bad STRING argument")
		}
		m.push(s[1 : len(s)-1])
	case 'T', 'U', 'B', 'C', 0x8e, 0x96: // BINSTRING, SHORT_BINSTRING, BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
		w := map[byte]int{'T': 4, 'U': 1, 'B': 4, 'C': 1, 0x8e: 8, 0x96: 8}[op]
		n, err := m.uint(w)
		if err != nil {
			return err
		}
		if n > math.MaxInt64 {
			return perr("bytes too long")
		}
		b, err := m.read(int64(n))
		if err != nil {
			return err
		}
		if op == 'T' || op == 'U' { // Python 2 str: decode as text
			m.push(string(b))
		} else {
			m.push(pyBytes(b))
		}

	// Containers.
	case ')':
		m.push(pyTuple{})
	case 't':
		items, err := m.popMark()
		if err != nil {
			return err
		}
		m.push(pyTuple(items))
	case 0x85, 0x86, 0x87: // TUPLE1..3
		items, err := m.popN(int(op - 0x84))
		if err != nil {
			return err
		}
		m.push(pyTuple(items))
	case ']':
		m.cost += 96
		m.push(&pyList{})
	case 'l':
		items, err := m.popMark()
		if err != nil {
			return err
		}
		m.push(&pyList{items: items})
	case 'a': // APPEND
		v, err := m.pop()
		if err != nil {
			return err
		}
		return m.appendTo([]any{v})
	case 'e': // APPENDS
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.appendTo(items)
	case '}':
		m.cost += 96
		m.push(newDict())
	case 'd':
		items, err := m.popMark()
		if err != nil {
			return err
		}
		d := newDict()
		if err := setItems(d, items); err != nil {
			return err
		}
		m.push(d)
	case 's': // SETITEM
		kv, err := m.popN(2)
		if err != nil {
			return err
		}
		return m.setItemsOnTop(kv)
	case 'u': // SETITEMS
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.setItemsOnTop(items)
	case 0x8f: // EMPTY_SET
		m.cost += 96
		m.push(&pySet{})
	case 0x90: // ADDITEMS
		items, err := m.popMark()
		if err != nil {
			return err
		}
		t, err := m.top()
		if err != nil {
			return err
		}
		s, ok := t.(*pySet)
		if !ok {
			return perr("ADDITEMS to %s", typeName(t))
		}
		s.items = append(s.items, items...)
	case 0x91: // FROZENSET
		items, err := m.popMark()
		if err != nil {
			return err
		}
		m.push(&pySet{items: items})

	// Memo.
	case 'p': // PUT (text)
		s, err := m.line()
		if err != nil {
			return err
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return perr("bad PUT index")
		}
		return m.put(i)
	case 'q':
		i, err := m.uint(1)
		if err != nil {
			return err
		}
		return m.put(int64(i))
	case 'r':
		i, err := m.uint(4)
		if err != nil {
			return err
		}
		return m.put(int64(i))
	case 0x94: // MEMOIZE
		return m.put(int64(len(m.memo)))
	case 'g': // GET (text)
		s, err := m.line()
		if err != nil {
			return err
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return perr("bad GET index")
		}
		return m.get(i)
	case 'h':
		i, err := m.uint(1)
		if err != nil {
			return err
		}
		return m.get(int64(i))
	case 'j':
		i, err := m.uint(4)
		if err != nil {
			return err
		}
		return m.get(int64(i))

	// Globals and calls: everything goes through the allow-list.
	case 'c': // GLOBAL
		mod, err := m.line()
		if err != nil {
			return err
		}
		name, err := m.line()
		if err != nil {
			return err
		}
		g, err := m.global(mod, name)
		if err != nil {
			return err
		}
		m.push(g)
	case 0x93: // STACK_GLOBAL
		mn, err := m.popN(2)
		if err != nil {
			return err
		}
		mod, ok1 := mn[0].(string)
		name, ok2 := mn[1].(string)
		if !ok1 || !ok2 {
			return perr("STACK_GLOBAL needs two strings")
		}
		g, err := m.global(mod, name)
		if err != nil {
			return err
		}
		m.push(g)
	case 'i': // INST module\nname\n, args from mark
		mod, err := m.line()
		if err != nil {
			return err
		}
		name, err := m.line()
		if err != nil {
			return err
		}
		g, err := m.global(mod, name)
		if err != nil {
			return err
		}
		args, err := m.popMark()
		if err != nil {
			return err
		}
		return m.call(g, args)
	case 'o': // OBJ: mark, class, args...
		items, err := m.popMark()
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return perr("OBJ without a class")
		}
		return m.call(items[0], items[1:])
	case 'R', 0x81: // REDUCE, NEWOBJ
		fa, err := m.popN(2)
		if err != nil {
			return err
		}
		args, ok := fa[1].(pyTuple)
		if !ok {
			return perr("call arguments are %s, want a tuple", typeName(fa[1]))
		}
		return m.call(fa[0], args)
	case 0x92: // NEWOBJ_EX
		fa, err := m.popN(3)
		if err != nil {
			return err
		}
		args, ok := fa[1].(pyTuple)
		kw, ok2 := fa[2].(*pyDict)
		if !ok || !ok2 || len(kw.keys) != 0 {
			return perr("unsupported NEWOBJ_EX arguments")
		}
		return m.call(fa[0], args)
	case 'b': // BUILD
		state, err := m.pop()
		if err != nil {
			return err
		}
		_ = state
		t, err := m.top()
		if err != nil {
			return err
		}
		switch t.(type) {
		case *pyDict, *tensorRef:
			// OrderedDict carries _metadata; a tensor may carry Python state. Neither matters here.
		default:
			return perr("BUILD on %s", typeName(t))
		}

	case 'Q': // BINPERSID
		pid, err := m.pop()
		if err != nil {
			return err
		}
		st, err := m.persistent(pid)
		if err != nil {
			return err
		}
		m.push(st)
	case 'P': // PERSID (text)
		return perr("text persistent id is not a torch storage")
	case 0x82, 0x83, 0x84:
		return perr("extension registry opcodes are not supported")
	case 0x97, 0x98:
		return perr("out-of-band buffers are not supported")
	default:
		return perr("unknown opcode 0x%02x", op)
	}
	return nil
}

func (m *machine) put(i int64) error {
	m.cost += 48
	v, err := m.top()
	if err != nil {
		return err
	}
	m.memo[i] = v
	return nil
}

func (m *machine) get(i int64) error {
	v, ok := m.memo[i]
	if !ok {
		return perr("memo key %d missing", i)
	}
	m.push(v)
	return nil
}

func (m *machine) appendTo(items []any) error {
	t, err := m.top()
	if err != nil {
		return err
	}
	l, ok := t.(*pyList)
	if !ok {
		return perr("APPEND to %s", typeName(t))
	}
	l.items = append(l.items, items...)
	return nil
}

func (m *machine) setItemsOnTop(items []any) error {
	t, err := m.top()
	if err != nil {
		return err
	}
	d, ok := t.(*pyDict)
	if !ok {
		return perr("SETITEM on %s", typeName(t))
	}
	return setItems(d, items)
}

func setItems(d *pyDict, items []any) error {
	if len(items)%2 != 0 {
		return perr("odd number of dict items")
	}
	for i := 0; i < len(items); i += 2 {
		d.set(items[i], items[i+1])
	}
	return nil
}

// call interprets a call of an allowed global. Nothing else can be called.
func (m *machine) call(f any, args []any) error {
	g, ok := f.(*pyGlobal)
	if !ok {
		return perr("call of %s", typeName(f))
	}
	var v any
	var err error
	switch g.kind {
	case gOrderedDict:
		v, err = orderedDict(args)
	case gRebuildTensorV2:
		if len(args) != 6 && len(args) != 7 {
			return perr("_rebuild_tensor_v2 takes 6 or 7 arguments, got %d", len(args))
		}
		v, err = rebuildTensor(args[:4])
	case gRebuildTensor:
		if len(args) != 4 {
			return perr("_rebuild_tensor takes 4 arguments, got %d", len(args))
		}
		v, err = rebuildTensor(args)
	case gRebuildParameter, gRebuildParameterWithState:
		want := 3
		if g.kind == gRebuildParameterWithState {
			want = 4
		}
		if len(args) != want {
			return perr("%s takes %d arguments, got %d", g.name, want, len(args))
		}
		t, ok := args[0].(*tensorRef)
		if !ok {
			return perr("%s of %s, want a tensor", g.name, typeName(args[0]))
		}
		v = t
	default:
		return perr("%s.%s cannot be called", g.module, g.name)
	}
	if err != nil {
		return err
	}
	m.push(v)
	return nil
}

func orderedDict(args []any) (any, error) {
	d := newDict()
	switch len(args) {
	case 0:
		return d, nil
	case 1:
		l, ok := args[0].(*pyList)
		if !ok {
			return nil, perr("OrderedDict of %s", typeName(args[0]))
		}
		for _, it := range l.items {
			kv, ok := it.(pyTuple)
			if !ok || len(kv) != 2 {
				return nil, perr("OrderedDict item is not a pair")
			}
			d.set(kv[0], kv[1])
		}
		return d, nil
	}
	return nil, perr("OrderedDict takes at most 1 argument")
}

func rebuildTensor(args []any) (any, error) {
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, perr("tensor storage is %s", typeName(args[0]))
	}
	off, ok := args[1].(int64)
	if !ok || off < 0 {
		return nil, perr("bad tensor storage offset")
	}
	shape, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(shape) != len(stride) {
		return nil, perr("tensor size has %d dims, stride %d", len(shape), len(stride))
	}
	return &tensorRef{st: st, offset: off, shape: shape, stride: stride}, nil
}

func intTuple(v any, what string) ([]int64, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, perr("tensor %s is %s, want a tuple", what, typeName(v))
	}
	if len(t) > maxRank {
		return nil, perr("tensor %s has %d dims (max %d)", what, len(t), maxRank)
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, perr("bad tensor %s %v", what, x)
		}
		out[i] = n
	}
	return out, nil
}

var storageTypes = map[string]dtype{
	"FloatStorage":    dtFloat32,
	"DoubleStorage":   dtFloat64,
	"HalfStorage":     dtFloat16,
	"BFloat16Storage": dtBFloat16,
	"LongStorage":     dtInt64,
	"IntStorage":      dtInt32,
	"ShortStorage":    dtInt16,
	"CharStorage":     dtInt8,
	"ByteStorage":     dtUint8,
	"BoolStorage":     dtBool,
}

// persistent resolves a torch persistent id:
// ('storage', storage_type, key, location, numel[, view_metadata]).
func (m *machine) persistent(pid any) (any, error) {
	t, ok := pid.(pyTuple)
	if !ok || len(t) < 5 || len(t) > 6 {
		return nil, perr("persistent id is not a torch storage")
	}
	if s, _ := t[0].(string); s != "storage" {
		return nil, perr("persistent id is not a torch storage")
	}
	g, ok := t[1].(*pyGlobal)
	if !ok || g.kind != gStorage {
		return nil, perr("storage type is %s", typeName(t[1]))
	}
	dt := storageTypes[g.name]
	key, ok := t[2].(string)
	if !ok {
		return nil, perr("storage key is %s", typeName(t[2]))
	}
	if _, ok := t[3].(string); !ok {
		return nil, perr("storage location is %s", typeName(t[3]))
	}
	numel, ok := t[4].(int64)
	if !ok || numel < 0 {
		return nil, perr("bad storage size")
	}
	root, ok := m.storages[key]
	if !ok {
		root = &storageRef{dtype: dt, key: key, numel: numel, viewSize: -1}
		m.storages[key] = root
	} else if root.dtype != dt {
		return nil, perr("storage %q is read as both %s and %s", key, root.dtype, dt)
	}
	if len(t) == 6 && t[5] != nil { // legacy view: (view_key, offset, view_size)
		vm, ok := t[5].(pyTuple)
		if !ok || len(vm) != 3 {
			return nil, perr("bad storage view")
		}
		vk, ok1 := vm[0].(string)
		off, ok2 := vm[1].(int64)
		size, ok3 := vm[2].(int64)
		if !ok1 || !ok2 || !ok3 || off < 0 || size < 0 {
			return nil, perr("bad storage view")
		}
		_ = vk
		return &storageRef{dtype: dt, key: key, numel: size, viewOffset: off, viewSize: size}, nil
	}
	return root, nil
}

func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		shift := uint(64 - 8*len(b))
		return int64(v<<shift) >> shift
	}
	// Two's complement little-endian, arbitrary length.
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if v.IsInt64() {
		return v.Int64()
	}
	return v
}

func bswap64(v uint64) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return binary.BigEndian.Uint64(b[:])
}

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "a bool"
	case int64, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case string:
		return "a string"
	case pyBytes:
		return "bytes"
	case pyTuple:
		return "a tuple"
	case *pyList:
		return "a list"
	case *pySet:
		return "a set"
	case *pyDict:
		return "a dict"
	case *pyGlobal:
		return v.module + "." + v.name
	case *storageRef:
		return "a storage"
	case *tensorRef:
		return "a tensor"
	}
	return fmt.Sprintf("%T", v)
}
