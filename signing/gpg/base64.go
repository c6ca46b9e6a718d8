package gpg

import (
	"errors"
	"fmt"
)

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// b64Value maps a byte to its value in the standard base64 alphabet, or 0xff.
var b64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(b64Alphabet); i++ {
		t[b64Alphabet[i]] = byte(i)
	}
	return t
}()

// decodeBase64 decodes s the way fedmsg does, with Python's
// base64.b64decode(s) (binascii.a2b_base64 in non-strict mode), so that the
// same "signature" strings are accepted:
//
//   - the string must be ASCII (Python raises ValueError otherwise);
//   - every byte outside the standard alphabet and '=' is skipped, so line
//     wrapping, spaces and other junk are ignored;
//   - '=' seen in the first two positions of a quad is skipped; padding that
//     completes a quad ends the input, and anything after it is ignored;
//   - without such padding the data characters must come in whole quads
//     ("Incorrect padding" otherwise).
//
// Unused low bits of the last character are ignored, as Python does.
func decodeBase64(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)*3/4+3)
	var (
		quad  int  // position in the current quad, 0..3
		left  byte // bits carried to the next output byte
		pads  int  // '=' seen since the last data character
		nData int  // data characters seen
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return nil, fmt.Errorf("non-ASCII byte 0x%02x at offset %d", c, i)
		}
		if c == '=' {
			if quad >= 2 {
				pads++
				if quad+pads >= 4 {
					return out, nil // padding completes the quad: the rest is ignored
				}
			}
			continue
		}
		v := b64Value[c]
		if v == 0xff {
			continue
		}
		nData++
		pads = 0
		switch quad {
		case 0:
			left = v
			quad = 1
		case 1:
			out = append(out, left<<2|v>>4)
			left = v & 0x0f
			quad = 2
		case 2:
			out = append(out, left<<4|v>>2)
			left = v & 0x03
			quad = 3
		case 3:
			out = append(out, left<<6|v)
			quad = 0
		}
	}
	switch quad {
	case 0:
		return out, nil
	case 1:
		return nil, fmt.Errorf("number of data characters (%d) cannot be 1 more than a multiple of 4", nData)
	default:
		return nil, errors.New("incorrect padding")
	}
}
