package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeCanonical checks, for any input:
//   - Decode never panics and fails only with ErrInvalidJSON;
//   - whatever it accepts, Canonical encodes, as 7-bit ASCII, and
//     canonicalising that output again changes nothing;
//   - it accepts everything encoding/json considers valid, as long as it is
//     valid UTF-8 and within MaxDepth (Python's grammar is a superset of
//     RFC 8259: it adds only NaN and the infinities);
//   - ValidateObject, the relay's allocation-free check, agrees with
//     DecodeObject.
//
// Seeds live in testdata/fuzz/FuzzDecodeCanonical.
func FuzzDecodeCanonical(f *testing.F) {
	f.Add([]byte(`{"a":[1,2.5,-0,1e400,"\ud800",NaN]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("error %v does not wrap ErrInvalidJSON", err)
			}
			if json.Valid(data) && utf8.Valid(data) && nestingDepth(data) <= MaxDepth {
				t.Fatalf("encoding/json accepts %q but Decode says %v", data, err)
			}
			if ValidateObject(data) == nil {
				t.Fatalf("ValidateObject accepts %q but Decode says %v", data, err)
			}
			return
		}
		if _, isObj := v.(map[string]any); isObj {
			if err := ValidateObject(data); err != nil {
				t.Fatalf("Decode accepts object %q but ValidateObject says %v", data, err)
			}
		} else if err := ValidateObject(data); !errors.Is(err, ErrNotObject) {
			t.Fatalf("ValidateObject(%q) = %v for a non-object", data, err)
		}
		out, err := Canonical(v)
		if err != nil {
			t.Fatalf("Canonical of decoded %q: %v", data, err)
		}
		for i, c := range out {
			if c >= 0x80 {
				t.Fatalf("non-ASCII byte %#x at %d in %q", c, i, out)
			}
		}
		again, err := CanonicalizeBytes(out)
		if err != nil {
			t.Fatalf("canonical output %q does not decode: %v", out, err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n  in: %q\n 1st: %q\n 2nd: %q", data, out, again)
		}
		if _, err := Pretty(v); err != nil {
			t.Fatalf("Pretty: %v", err)
		}
	})
}

// nestingDepth is the deepest bracket nesting of data, ignoring brackets in
// strings (a rough scan is enough: it is only used on data json.Valid
// accepted).
func nestingDepth(data []byte) int {
	depth, maxDepth := 0, 0
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			maxDepth = max(maxDepth, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return maxDepth
}
