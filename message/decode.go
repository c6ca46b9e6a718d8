package message

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays that Decode accepts
// and Canonical encodes. Python's own limit is its recursion limit (about
// 1000); fedmsg envelopes are a handful of levels deep, so 512 only exists
// to turn hostile input into an error instead of a stack overflow.
const MaxDepth = 512

// SyntaxError describes why Decode rejected its input. It matches
// ErrInvalidJSON under errors.Is.
type SyntaxError struct {
	Offset int    // byte offset in the input where the problem was found
	Reason string // what was wrong, in json.loads' words where it has them
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s: %s at byte offset %d", ErrInvalidJSON.Error(), e.Reason, e.Offset)
}

// Unwrap lets errors.Is(err, ErrInvalidJSON) succeed.
func (e *SyntaxError) Unwrap() error { return ErrInvalidJSON }

// Decode parses data like Python's json.loads (after the strict UTF-8 decode
// fedmsg applies to every frame):
//
//   - objects become map[string]any (for duplicate keys the last one wins),
//     arrays []any, strings string, numbers Number (the text kept verbatim),
//     true/false bool, null nil;
//   - the bare tokens NaN, Infinity and -Infinity are accepted as Number;
//   - an escaped lone surrogate ("\ud800") is kept as its 3-byte WTF-8 form,
//     an escaped surrogate pair becomes the astral character it encodes;
//   - invalid UTF-8, raw control characters (< 0x20) inside strings, any
//     non-whitespace after the value and nesting deeper than MaxDepth are
//     errors. Only space, tab, CR and LF count as whitespace.
//
// Errors are *SyntaxError values and wrap ErrInvalidJSON.
func Decode(data []byte) (any, error) {
	d := decoder{data: data}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, d.syntaxErr(d.pos, "Extra data")
	}
	return v, nil
}

// DecodeObject is Decode for input whose top level must be a JSON object,
// as an envelope is. A well-formed non-object gives an error wrapping
// ErrNotObject.
func DecodeObject(data []byte) (map[string]any, error) {
	v, err := Decode(data)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: top level is %s", ErrNotObject, kindName(v))
	}
	return m, nil
}

func kindName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case Number:
		return "a number"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("%T", v)
	}
}

type decoder struct {
	data  []byte
	pos   int
	depth int
}

func (d *decoder) syntaxErr(off int, reason string) error {
	return &SyntaxError{Offset: off, Reason: reason}
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// hasPrefix reports whether the input continues with word at d.pos.
func (d *decoder) hasPrefix(word string) bool {
	return len(d.data)-d.pos >= len(word) && string(d.data[d.pos:d.pos+len(word)]) == word
}

func (d *decoder) value() (any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, d.syntaxErr(d.pos, "Expecting value")
	}
	switch c := d.data[d.pos]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		return d.string()
	case 't':
		if d.hasPrefix("true") {
			d.pos += 4
			return true, nil
		}
	case 'f':
		if d.hasPrefix("false") {
			d.pos += 5
			return false, nil
		}
	case 'n':
		if d.hasPrefix("null") {
			d.pos += 4
			return nil, nil
		}
	case 'N':
		if d.hasPrefix(tokNaN) {
			d.pos += len(tokNaN)
			return Number(tokNaN), nil
		}
	case 'I':
		if d.hasPrefix(tokInf) {
			d.pos += len(tokInf)
			return Number(tokInf), nil
		}
	case '-':
		if d.hasPrefix(tokNegInf) {
			d.pos += len(tokNegInf)
			return Number(tokNegInf), nil
		}
		return d.number()
	default:
		if isDigit(c) {
			return d.number()
		}
	}
	return nil, d.syntaxErr(d.pos, "Expecting value")
}

func (d *decoder) number() (any, error) {
	start := d.pos
	end := numberEnd(d.data, start)
	if end == start {
		return nil, d.syntaxErr(start, "Expecting value")
	}
	d.pos = end
	return Number(d.data[start:end]), nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > MaxDepth {
		return d.syntaxErr(d.pos, "nesting deeper than "+strconv.Itoa(MaxDepth)+" levels")
	}
	return nil
}

func (d *decoder) object() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // '{'
	m := make(map[string]any)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return m, nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.syntaxErr(d.pos, "Expecting property name enclosed in double quotes")
		}
		key, err := d.key()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.syntaxErr(d.pos, "Expecting ':' delimiter")
		}
		d.pos++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[key] = v // a repeated key overwrites: Python keeps the last one
		d.skipSpace()
		if d.pos < len(d.data) {
			switch d.data[d.pos] {
			case ',':
				d.pos++
				continue
			case '}':
				d.pos++
				d.depth--
				return m, nil
			}
		}
		return nil, d.syntaxErr(d.pos, "Expecting ',' delimiter")
	}
}

func (d *decoder) array() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // '['
	a := []any{}
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.skipSpace()
		if d.pos < len(d.data) {
			switch d.data[d.pos] {
			case ',':
				d.pos++
				continue
			case ']':
				d.pos++
				d.depth--
				return a, nil
			}
		}
		return nil, d.syntaxErr(d.pos, "Expecting ',' delimiter")
	}
}

// key decodes an object key. The envelope's own field names come back as
// constants, saving an allocation for each of them in every message.
func (d *decoder) key() (string, error) {
	q := d.pos
	if end := bytes.IndexByte(d.data[q+1:], '"'); end >= 0 {
		if k, ok := knownKey(d.data[q+1 : q+1+end]); ok {
			d.pos = q + end + 2
			return k, nil
		}
	}
	return d.string()
}

// knownKey maps the bytes of a common key to a constant string. The switch
// on string(b) compiles to comparisons without converting b.
func knownKey(b []byte) (string, bool) {
	switch string(b) {
	case FieldTopic:
		return FieldTopic, true
	case FieldMsg:
		return FieldMsg, true
	case FieldTimestamp:
		return FieldTimestamp, true
	case FieldMsgID:
		return FieldMsgID, true
	case FieldI:
		return FieldI, true
	case FieldUsername:
		return FieldUsername, true
	case FieldCrypto:
		return FieldCrypto, true
	case FieldSignature:
		return FieldSignature, true
	case FieldCertificate:
		return FieldCertificate, true
	case FieldSeqID:
		return FieldSeqID, true
	case "headers":
		return "headers", true
	case "source_name":
		return "source_name", true
	case "source_version":
		return "source_version", true
	}
	return "", false
}

// string decodes the string whose opening quote is at d.pos.
func (d *decoder) string() (string, error) {
	quote := d.pos
	data := d.data
	i := quote + 1
	// Fast path: no escapes, so the result is a plain copy of the input
	// (after checking it is valid UTF-8 without control characters).
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return string(data[quote+1 : i]), nil
		case c == '\\':
			return d.escapedString(quote, i)
		case c < 0x20:
			return "", d.syntaxErr(i, "Invalid control character")
		case c < utf8.RuneSelf:
			i++
		default:
			n, err := d.checkRune(i)
			if err != nil {
				return "", err
			}
			i += n
		}
	}
	return "", d.syntaxErr(quote, "Unterminated string")
}

// checkRune validates the multi-byte UTF-8 sequence at data[i] and returns
// its length. Encoded surrogates (ED A0..BF xx) are invalid UTF-8 and so are
// rejected here; only escapes may produce them.
func (d *decoder) checkRune(i int) (int, error) {
	r, n := utf8.DecodeRune(d.data[i:])
	if r == utf8.RuneError && n <= 1 {
		return 0, d.syntaxErr(i, "invalid UTF-8")
	}
	return n, nil
}

// escapedString finishes a string that has an escape at data[i]. Escapes
// only ever shrink (\n is 2 bytes for 1, \uXXXX 6 for at most 3), so the
// raw length up to the closing quote bounds the result: one allocation,
// which strings.Builder hands over without a second copy.
func (d *decoder) escapedString(quote, i int) (string, error) {
	data := d.data
	var b strings.Builder
	b.Grow(rawStringEnd(data, i) - (quote + 1))
	b.Write(data[quote+1 : i])
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return b.String(), nil
		case c == '\\':
			if i+1 >= len(data) {
				return "", d.syntaxErr(quote, "Unterminated string")
			}
			switch e := data[i+1]; e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := hex4(data, i+2)
				if !ok {
					return "", d.syntaxErr(i+1, "Invalid \\uXXXX escape")
				}
				i += 6
				// Like json.loads: a high surrogate immediately followed by
				// an escaped low surrogate is one astral character; any
				// other surrogate stays as it is.
				if r >= 0xD800 && r <= 0xDBFF && i+1 < len(data) && data[i] == '\\' && data[i+1] == 'u' {
					if r2, ok := hex4(data, i+2); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
						i += 6
					}
				}
				var tmp [4]byte
				b.Write(appendWTF8(tmp[:0], r))
				continue
			default:
				return "", d.syntaxErr(i, "Invalid \\escape")
			}
			i += 2
		case c < 0x20:
			return "", d.syntaxErr(i, "Invalid control character")
		case c < utf8.RuneSelf:
			// Copy the run of plain ASCII in one go.
			j := i + 1
			for j < len(data) && data[j] >= 0x20 && data[j] < utf8.RuneSelf && data[j] != '"' && data[j] != '\\' {
				j++
			}
			b.Write(data[i:j])
			i = j
		default:
			n, err := d.checkRune(i)
			if err != nil {
				return "", err
			}
			b.Write(data[i : i+n])
			i += n
		}
	}
	return "", d.syntaxErr(quote, "Unterminated string")
}

// rawStringEnd returns the offset of the quote that closes the string whose
// body contains data[i], or len(data) when it is unterminated.
func rawStringEnd(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case '"':
			return i
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return len(data)
}

// hex4 parses the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if len(data)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// appendWTF8 appends r in UTF-8, except that a surrogate code point (which
// UTF-8 forbids but a Python str may hold) is written with the same 3-byte
// pattern as its neighbours, the "generalised UTF-8" of WTF-8.
func appendWTF8(buf []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(buf, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return utf8.AppendRune(buf, r)
}
