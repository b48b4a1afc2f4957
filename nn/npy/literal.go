package npy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The header is a Python literal. parser reads the subset numpy writes:
// dicts, tuples, lists, strings, integers (a Python 2 'L' suffix allowed),
// True, False and None. Values come back as map[string]any, tuple, list,
// string, int64, bool and nil.

type (
	tuple []any
	list  []any
)

// maxDepth bounds nesting (numpy's own headers nest three deep at most).
const maxDepth = 32

type parser struct {
	s     []byte
	i     int
	depth int
}

func (p *parser) parse() (any, error) {
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at byte %d", p.s[p.i], p.i)
	}
	return v, nil
}

func (p *parser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.i++
		default:
			return
		}
	}
}

var errEnd = errors.New("unexpected end of header")

func (p *parser) value() (any, error) {
	p.space()
	if p.i >= len(p.s) {
		return nil, errEnd
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.dict()
	case c == '(':
		return p.seq('(', ')')
	case c == '[':
		return p.seq('[', ']')
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		return p.int()
	case isLetter(c):
		start := p.i
		for p.i < len(p.s) && (isLetter(p.s[p.i]) || p.s[p.i] >= '0' && p.s[p.i] <= '9') {
			p.i++
		}
		switch w := string(p.s[start:p.i]); w {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		default:
			return nil, fmt.Errorf("unexpected name %q at byte %d", w, start)
		}
	default:
		return nil, fmt.Errorf("unexpected %q at byte %d", c, p.i)
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	return nil
}

// seq reads a tuple or list; "(x)" without a comma is x itself, as in Python.
func (p *parser) seq(open, close byte) (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++ // open
	var items []any
	comma := false
	for {
		p.space()
		if p.i >= len(p.s) {
			return nil, errEnd
		}
		if p.s[p.i] == close {
			p.i++
			break
		}
		if len(items) > 0 && !comma {
			return nil, fmt.Errorf("expected ',' or %q at byte %d", close, p.i)
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		p.space()
		comma = p.i < len(p.s) && p.s[p.i] == ','
		if comma {
			p.i++
		}
	}
	if open == '[' {
		return list(items), nil
	}
	if len(items) == 1 && !comma {
		return items[0], nil
	}
	if items == nil {
		items = []any{}
	}
	return tuple(items), nil
}

func (p *parser) dict() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++ // {
	d := map[string]any{}
	for {
		p.space()
		if p.i >= len(p.s) {
			return nil, errEnd
		}
		if p.s[p.i] == '}' {
			p.i++
			return d, nil
		}
		k, err := p.value()
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("dictionary key %s is not a string", render(k))
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, fmt.Errorf("expected ':' after key %q", key)
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if _, dup := d[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		d[key] = v
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
		} else if p.i < len(p.s) && p.s[p.i] != '}' {
			return nil, fmt.Errorf("expected ',' or '}' at byte %d", p.i)
		}
	}
}

// str reads a quoted string with the common backslash escapes.
func (p *parser) str() (any, error) {
	q := p.s[p.i]
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case q:
			return b.String(), nil
		case '\\':
			if p.i >= len(p.s) {
				return nil, errEnd
			}
			c = p.s[p.i]
			p.i++
			switch c {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			case '0':
				c = 0
			case '\\', '\'', '"':
			default: // Python keeps the backslash of an unknown escape
				b.WriteByte('\\')
			}
		case '\n':
			return nil, errors.New("newline in string")
		}
		b.WriteByte(c)
	}
	return nil, errEnd
}

func (p *parser) int() (any, error) {
	start := p.i
	if p.s[p.i] == '-' || p.s[p.i] == '+' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == digits {
		return nil, fmt.Errorf("bad number at byte %d", start)
	}
	text := string(p.s[start:p.i])
	if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') { // Python 2 long
		p.i++
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E' || isLetter(p.s[p.i])) {
		return nil, fmt.Errorf("number at byte %d is not an integer", start)
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("integer %s out of range", text)
	}
	return n, nil
}

// render writes a parsed value back in Python syntax for error messages:
// ASCII, one line, at most about 100 bytes.
func render(v any) string {
	s := renderAll(v)
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

func renderAll(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return "'" + strings.Trim(strconv.QuoteToASCII(v), `"`) + "'"
	case tuple:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = renderAll(x)
		}
		if len(v) == 1 {
			return "(" + parts[0] + ",)"
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case list:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = renderAll(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		return "{...}"
	}
	return fmt.Sprint(v)
}
