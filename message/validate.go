package message

import (
	"fmt"
	"unicode/utf8"
)

// validateMaxDepth matches the decoder's nesting limit, so that whatever the
// relay lets through, a receiver can decode.
const validateMaxDepth = 512

// ValidateObject reports whether data is one JSON object that Python's
// json.loads (and so Decode) would accept: valid UTF-8, no raw control
// characters in strings, NaN/Infinity tokens allowed, nothing after it. It
// allocates nothing, because the relay runs it on every message it forwards.
// Errors wrap ErrNotObject or ErrInvalidJSON.
func ValidateObject(data []byte) error {
	i := validateSkipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return fmt.Errorf("%w: top level is not an object", ErrNotObject)
	}
	// stack records, per open container, whether it is an object.
	var stackBuf [64]bool
	stack := stackBuf[:0]
	const (
		wantValue = iota
		wantKeyOrEnd
		wantKey
		wantColon
		wantCommaOrEnd
	)
	state := wantValue
	for {
		i = validateSkipSpace(data, i)
		if i >= len(data) {
			return fmt.Errorf("%w: unexpected end of input", ErrInvalidJSON)
		}
		c := data[i]
		switch state {
		case wantKeyOrEnd, wantKey:
			if c == '}' && state == wantKeyOrEnd {
				i++
				stack = stack[:len(stack)-1]
				state = wantCommaOrEnd
				break
			}
			if c != '"' {
				return validateErr(i, "expected a string key")
			}
			n, err := validateString(data, i)
			if err != nil {
				return err
			}
			i = n
			state = wantColon
		case wantColon:
			if c != ':' {
				return validateErr(i, "expected ':'")
			}
			i++
			state = wantValue
		case wantCommaOrEnd:
			if len(stack) == 0 {
				return validateErr(i, "data after the object")
			}
			inObject := stack[len(stack)-1]
			switch {
			case c == ',':
				i++
				if inObject {
					state = wantKey
				} else {
					state = wantValue
				}
			case c == '}' && inObject, c == ']' && !inObject:
				i++
				stack = stack[:len(stack)-1]
			default:
				return validateErr(i, "expected ',' or the end of the container")
			}
		case wantValue:
			switch c {
			case '{', '[':
				if len(stack) >= validateMaxDepth {
					return validateErr(i, "nested too deeply")
				}
				stack = append(stack, c == '{')
				i++
				if c == '{' {
					state = wantKeyOrEnd
					continue
				}
				// An empty array closes at once.
				if j := validateSkipSpace(data, i); j < len(data) && data[j] == ']' {
					i = j + 1
					stack = stack[:len(stack)-1]
					state = wantCommaOrEnd
					continue
				}
				state = wantValue
				continue
			case '"':
				n, err := validateString(data, i)
				if err != nil {
					return err
				}
				i = n
			default:
				n, err := validateLiteral(data, i)
				if err != nil {
					return err
				}
				i = n
			}
			state = wantCommaOrEnd
		}
		if state == wantCommaOrEnd && len(stack) == 0 {
			if j := validateSkipSpace(data, i); j != len(data) {
				return validateErr(j, "data after the object")
			}
			return nil
		}
	}
}

func validateErr(off int, reason string) error {
	return fmt.Errorf("%w: offset %d: %s", ErrInvalidJSON, off, reason)
}

func validateSkipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// validateString checks the string starting at data[i] == '"' and returns
// the offset after its closing quote.
func validateString(data []byte, i int) (int, error) {
	start := i
	i++
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(data) {
				return 0, validateErr(i, "unterminated escape")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) {
					return 0, validateErr(i, "short \\u escape")
				}
				for _, h := range data[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, validateErr(i, "bad \\u escape")
					}
				}
				i += 6
			default:
				return 0, validateErr(i, "bad escape")
			}
		case c < 0x20:
			return 0, validateErr(i, "control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				return 0, validateErr(i, "invalid UTF-8")
			}
			i += size
		}
	}
	return 0, validateErr(start, "unterminated string")
}

// validateLiteral checks a number, true, false, null, NaN, Infinity or
// -Infinity at data[i] and returns the offset after it.
func validateLiteral(data []byte, i int) (int, error) {
	for _, word := range [...]string{"true", "false", "null", "NaN", "Infinity", "-Infinity"} {
		if len(data)-i >= len(word) && string(data[i:i+len(word)]) == word {
			return i + len(word), nil
		}
	}
	start := i
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		return 0, validateErr(start, "expected a value")
	}
	if i < len(data) && data[i] == '.' {
		i++
		d := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == d {
			return 0, validateErr(start, "bad number")
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		d := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == d {
			return 0, validateErr(start, "bad number")
		}
	}
	return i, nil
}
