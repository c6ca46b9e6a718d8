package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// ErrUnsupportedValue is wrapped by the encoders' errors: a Go value that
// has no canonical JSON form (a type outside the supported set, a string
// that is neither UTF-8 nor WTF-8, a Number whose text is not a JSON
// number, or nesting deeper than MaxDepth, which is also how a cyclic value
// ends).
var ErrUnsupportedValue = errors.New("message: value has no canonical JSON form")

// Canonical returns v as canonical JSON, byte for byte what Python fedmsg's
// fedmsg.encoding.dumps (json.dumps with sort_keys=True, separators (',',
// ':'), ensure_ascii=True, allow_nan=True) produces for the equivalent
// Python value. These are the bytes fedmsg signs and verifies, and the
// frame fedmsg publishes.
//
// Supported values: map[string]any, []any, string, bool, nil, Number,
// json.Number, int, int64, uint64 and float64. Rules:
//
//   - no whitespace; object keys sorted by code point at every level;
//   - strings escape '"', '\\', \n \r \t \b \f by name and every other
//     character outside 0x20..0x7E (control characters, DEL, all non-ASCII)
//     as lowercase \uXXXX, astral characters as a surrogate pair, so the
//     output is 7-bit ASCII; lone surrogates held as WTF-8 come back as the
//     escape they were decoded from;
//   - integers verbatim at any size ("-0" becomes "0"); floats (number text
//     with '.', 'e' or 'E', and float64 values) as Python's repr, see
//     FormatFloat; NaN and infinities as the bare tokens NaN, Infinity,
//     -Infinity.
func Canonical(v any) ([]byte, error) {
	return AppendCanonical(make([]byte, 0, 512), v)
}

// AppendCanonical appends the canonical JSON of v to dst (see Canonical).
// On error dst is returned unchanged in length but its spare capacity may
// have been written to.
func AppendCanonical(dst []byte, v any) ([]byte, error) {
	var keyBuf [32]string
	e := encoder{keys: keyBuf[:0]}
	out, err := e.value(dst, v)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// CanonicalizeBytes decodes JSON like json.loads and re-encodes it
// canonically: what a fedmsg verifier computes from a received frame.
func CanonicalizeBytes(data []byte) ([]byte, error) {
	v, err := Decode(data)
	if err != nil {
		return nil, err
	}
	// Canonical output is usually about as long as the input (it is the
	// input, for frames fedmsg wrote), so size the buffer for it at once.
	return AppendCanonical(make([]byte, 0, len(data)+len(data)/8+64), v)
}

// Pretty renders v as indented JSON for people: Python's
// json.dumps(indent=2, separators=(',', ': ')) with ensure_ascii, so strings
// and numbers look exactly as in canonical JSON. fedmsg's pretty_dumps keeps
// insertion order, which a Go map does not have, so keys are sorted here.
func Pretty(v any) ([]byte, error) {
	e := encoder{pretty: true}
	return e.value(make([]byte, 0, 1024), v)
}

// encoder carries what one encoding needs besides the output buffer.
type encoder struct {
	// keys is a stack shared by all objects being encoded: each object
	// pushes its keys, sorts its own segment and pops it when done, so that
	// a whole document reuses one slice instead of allocating per object.
	keys   []string
	depth  int
	pretty bool
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupportedValue}, args...)...)
}

func (e *encoder) value(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case string:
		out, ok := appendString(dst, x)
		if !ok {
			return dst, unsupported("string %q is not valid UTF-8", x)
		}
		return out, nil
	case Number:
		return e.number(dst, string(x))
	case json.Number:
		return e.number(dst, string(x))
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case float64:
		return appendFloat(dst, x), nil
	case map[string]any:
		return e.object(dst, x)
	case []any:
		return e.array(dst, x)
	default:
		return dst, unsupported("unsupported type %T", v)
	}
}

func (e *encoder) number(dst []byte, s string) ([]byte, error) {
	out, ok := appendNumber(dst, s)
	if !ok {
		return dst, unsupported("%q is not a JSON number", s)
	}
	return out, nil
}

func (e *encoder) enter() error {
	e.depth++
	if e.depth > MaxDepth {
		return unsupported("nested deeper than %d levels (cyclic value?)", MaxDepth)
	}
	return nil
}

// newline starts a new line indented for the current depth (pretty only).
func (e *encoder) newline(dst []byte) []byte {
	dst = append(dst, '\n')
	for range e.depth {
		dst = append(dst, ' ', ' ')
	}
	return dst
}

func (e *encoder) object(dst []byte, m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return append(dst, '{', '}'), nil
	}
	if err := e.enter(); err != nil {
		return dst, err
	}
	base := len(e.keys)
	for k := range m {
		e.keys = append(e.keys, k)
	}
	// Go compares strings bytewise, and the byte order of UTF-8 (and of the
	// WTF-8 surrogates, which land between U+D7FF and U+E000) is code point
	// order: exactly Python's sort of str keys.
	slices.Sort(e.keys[base:])
	dst = append(dst, '{')
	var err error
	for i := base; i < len(e.keys); i++ {
		if i > base {
			dst = append(dst, ',')
		}
		if e.pretty {
			dst = e.newline(dst)
		}
		k := e.keys[i]
		var ok bool
		if dst, ok = appendString(dst, k); !ok {
			err = unsupported("key %q is not valid UTF-8", k)
			break
		}
		dst = append(dst, ':')
		if e.pretty {
			dst = append(dst, ' ')
		}
		if dst, err = e.value(dst, m[k]); err != nil {
			break
		}
	}
	clear(e.keys[base:]) // do not keep the caller's strings alive
	e.keys = e.keys[:base]
	if err != nil {
		return dst, err
	}
	e.depth--
	if e.pretty {
		dst = e.newline(dst)
	}
	return append(dst, '}'), nil
}

func (e *encoder) array(dst []byte, a []any) ([]byte, error) {
	if len(a) == 0 {
		return append(dst, '[', ']'), nil
	}
	if err := e.enter(); err != nil {
		return dst, err
	}
	dst = append(dst, '[')
	for i, v := range a {
		if i > 0 {
			dst = append(dst, ',')
		}
		if e.pretty {
			dst = e.newline(dst)
		}
		var err error
		if dst, err = e.value(dst, v); err != nil {
			return dst, err
		}
	}
	e.depth--
	if e.pretty {
		dst = e.newline(dst)
	}
	return append(dst, ']'), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as an ensure_ascii JSON string. It reports false
// when s holds bytes that are neither UTF-8 nor a WTF-8 surrogate: such a
// string cannot come from Decode and has no Python equivalent.
func appendString(dst []byte, s string) ([]byte, bool) {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7F && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default: // other control characters and DEL
				dst = appendU(dst, rune(c))
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			// Not UTF-8; accept the 3-byte pattern of a surrogate code
			// point (ED A0..BF 80..BF), which is how Decode stores one.
			if c != 0xED || i+2 >= len(s) || s[i+1] < 0xA0 || s[i+1] > 0xBF || s[i+2] < 0x80 || s[i+2] > 0xBF {
				return dst, false
			}
			r = 0xD000 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
			n = 3
		}
		if r >= 0x10000 {
			r -= 0x10000
			dst = appendU(dst, 0xD800+r>>10)
			dst = appendU(dst, 0xDC00+r&0x3FF)
		} else {
			dst = appendU(dst, r)
		}
		i += n
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), true
}

// appendU appends the escape \uXXXX (lowercase hex) for a BMP code unit.
func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}
