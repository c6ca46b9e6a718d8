package message

import "bytes"

// MsgID returns the envelope's top-level "msg_id" when it is a string, ""
// otherwise, without decoding the rest of the envelope. The bridge needs
// the id of every message from ZeroMQ (which carries no headers) for its
// loop and duplicate windows; a full Decode costs about ten times more.
//
// For any body DecodeObject accepts, MsgID agrees with
// DecodeObject(body)["msg_id"].(string): the last of duplicate keys wins,
// and a key or id written with escapes, control or non-ASCII bytes is
// handed to the full decoder. On a body DecodeObject rejects, MsgID may
// still return an id (it skips values without checking them), which is
// harmless for its use: a key for windows, never a verdict.
func MsgID(body []byte) string {
	i := skipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return ""
	}
	i = skipJSONSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return ""
	}
	id := ""
	for {
		if i >= len(body) || body[i] != '"' {
			return ""
		}
		end, plain := scanJSONString(body, i)
		if end < 0 {
			return ""
		}
		key := body[i+1 : end-1]
		if !plain && bytes.IndexByte(key, '\\') >= 0 {
			return msgIDDecoded(body) // the key might spell msg_id with escapes
		}
		i = skipJSONSpace(body, end)
		if i >= len(body) || body[i] != ':' {
			return ""
		}
		i = skipJSONSpace(body, i+1)
		start := i
		if i = skipJSONValue(body, i); i < 0 {
			return ""
		}
		if string(key) == FieldMsgID {
			v := body[start:i]
			if len(v) < 2 || v[0] != '"' {
				id = "" // not a string: no usable id, unless a later key says otherwise
			} else if v = v[1 : len(v)-1]; plainASCII(v) {
				id = string(v)
			} else {
				return msgIDDecoded(body)
			}
		}
		i = skipJSONSpace(body, i)
		if i >= len(body) {
			return ""
		}
		switch body[i] {
		case ',':
			i = skipJSONSpace(body, i+1)
		case '}':
			if skipJSONSpace(body, i+1) != len(body) {
				return ""
			}
			return id
		default:
			return ""
		}
	}
}

// msgIDDecoded is MsgID the slow, exact way.
func msgIDDecoded(body []byte) string {
	env, err := DecodeObject(body)
	if err != nil {
		return ""
	}
	s, _ := env[FieldMsgID].(string)
	return s
}

// plainASCII reports whether s decodes to itself as a JSON string body:
// printable ASCII without escapes.
func plainASCII(s []byte) bool {
	for _, c := range s {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanJSONString returns the index just past the string starting with the
// quote at b[i], or -1 when it is not closed; plain is false when the
// string holds a backslash.
func scanJSONString(b []byte, i int) (end int, plain bool) {
	plain = true
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1, plain
		}
		q := j + k
		if plain && bytes.IndexByte(b[j:q], '\\') >= 0 {
			plain = false
		}
		// The quote is escaped when an odd run of backslashes precedes it.
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, plain
		}
		j = q + 1
	}
}

// skipJSONValue returns the index just past the value starting at b[i]
// (a string, an object or array with everything nested in it, or a bare
// number or literal), or -1 when it does not end. It checks brackets and
// strings only, which is all MsgID needs to find the next top-level key.
func skipJSONValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := scanJSONString(b, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _ := scanJSONString(b, i)
				if end < 0 {
					return -1
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}
