package signing

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// b64Values maps a byte to its value in the standard base64 alphabet, or
// 0xFF for every byte outside it.
var b64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// decodeBase64 decodes s like Python 3.11's base64.b64decode(s) without
// validate=True (binascii.a2b_base64 in non-strict mode), the call fedmsg
// makes on the signature and certificate fields, appending to dst:
//
//   - a str with any non-ASCII character is rejected ("string argument
//     should contain only ASCII characters");
//   - bytes outside the base64 alphabet (the "\n" of the 76-column
//     wrapping, or any junk) are skipped;
//   - "=" is ignored unless at least two data characters of a quantum have
//     been seen; padding that completes the quantum ends the input, and
//     whatever follows it is ignored;
//   - input that ends inside a quantum is an error ("Incorrect padding", or
//     a single leftover character); unused low bits are not checked.
func decodeBase64(dst []byte, s string) ([]byte, error) {
	dst = slices.Grow(dst, len(s)/4*3+3)
	quad, pads := 0, 0
	var left byte
	i := 0
	for i < len(s) {
		if quad == 0 {
			// Fast path, the per-character loop below unrolled: whole
			// quanta of alphabet characters. Anything else (newline,
			// padding, junk, non-ASCII) is left to the loop.
			for i+4 <= len(s) {
				a, b, c, d := b64Values[s[i]], b64Values[s[i+1]], b64Values[s[i+2]], b64Values[s[i+3]]
				if (a|b|c|d)&0xC0 != 0 {
					break
				}
				dst = append(dst, a<<2|b>>4, b<<4|c>>2, c<<6|d)
				i += 4
			}
			if i >= len(s) {
				break
			}
		}
		c := s[i]
		i++
		if c == '=' {
			if quad >= 2 {
				pads++
				if quad+pads >= 4 {
					// Done; what follows is ignored, but must be ASCII.
					for ; i < len(s); i++ {
						if s[i] >= 0x80 {
							return dst, errNonASCII
						}
					}
					return dst, nil
				}
			}
			continue
		}
		v := b64Values[c]
		if v == 0xFF {
			if c >= 0x80 {
				return dst, errNonASCII
			}
			continue
		}
		pads = 0
		switch quad {
		case 0:
			quad = 1
			left = v
		case 1:
			quad = 2
			dst = append(dst, left<<2|v>>4)
			left = v & 0x0F
		case 2:
			quad = 3
			dst = append(dst, left<<4|v>>2)
			left = v & 0x03
		default:
			quad = 0
			dst = append(dst, left<<6|v)
		}
	}
	switch quad {
	case 0:
		return dst, nil
	case 1:
		return dst, fmt.Errorf("%w: invalid base64: number of data characters is 1 more than a multiple of 4", ErrMalformed)
	default:
		return dst, fmt.Errorf("%w: invalid base64: incorrect padding", ErrMalformed)
	}
}

var errNonASCII = fmt.Errorf("%w: base64 text contains non-ASCII characters", ErrMalformed)

// wrapBase64 returns the standard base64 (with padding) of b split into
// 76-character lines, each followed by "\n" — the layout of M2Crypto's
// output that fedmsg keeps for compatibility (spec §4.2 step 6).
func wrapBase64(b []byte) string {
	enc := base64.StdEncoding.EncodeToString(b)
	var sb strings.Builder
	sb.Grow(len(enc) + len(enc)/76 + 1)
	for len(enc) > 76 {
		sb.WriteString(enc[:76])
		sb.WriteByte('\n')
		enc = enc[76:]
	}
	sb.WriteString(enc)
	sb.WriteByte('\n')
	return sb.String()
}
