package signing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// TestDecodeBase64LikePython: expected results recorded from CPython 3.11.7
// base64.b64decode(s) (the Python of Debian 12, where the vectors were
// made); "ERR" means it raised binascii.Error or ValueError.
func TestDecodeBase64LikePython(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"aGk=", "6869"},
		{"aGk", "ERR"},
		{"aGk==", "6869"},
		{"aGk=aGk=", "6869"},
		{"AAA=A", "0000"},
		{"a!Gk=", "6869"},
		{"====", ""},
		{"AA==AA==", "00"},
		{"QUJD\nREVG\n", "414243444546"},
		{"!!!!QUJD", "414243"},
		{"A", "ERR"},
		{"AAAAA", "ERR"},
		{"AB=", "ERR"},
		{"AB==", "00"},
		{"ABC=", "0010"},
		{"AB=C=", "0010"},
		{"AB\n=\n=", "00"},
		{"QQ=x=", "410c"},
		{"Q=Q==", "41"},
		{"aGV\x00sbG8=", "68656c6c6f"},
		{"YQ", "ERR"},
		{"YWI", "ERR"},
		{"YWJj", "616263"},
		{"=YWJj", "616263"},
		{"YW=Jj", "616263"},
		{"YWJj\u00e9", "ERR"}, // str with non-ASCII: ValueError
		{"YWJj==\u00e9", "ERR"},
	} {
		got, err := decodeBase64(nil, c.in)
		if c.want == "ERR" {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%q: got %x, %v; want an ErrMalformed error", c.in, got, err)
			}
			continue
		}
		if err != nil || hex.EncodeToString(got) != c.want {
			t.Errorf("%q: got %x, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestWrapBase64(t *testing.T) {
	for _, c := range []struct {
		n     int
		lines []int
	}{
		{0, []int{0}},
		{1, []int{4}},
		{57, []int{76}},    // exactly one full line: still a final "\n"
		{58, []int{76, 4}}, //
		{256, []int{76, 76, 76, 76, 40}},
	} {
		s := wrapBase64(make([]byte, c.n))
		if !strings.HasSuffix(s, "\n") {
			t.Errorf("%d bytes: no final newline", c.n)
		}
		parts := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		if len(parts) != len(c.lines) {
			t.Errorf("%d bytes: %d lines, want %d", c.n, len(parts), len(c.lines))
			continue
		}
		for i, p := range parts {
			if len(p) != c.lines[i] {
				t.Errorf("%d bytes: line %d has %d chars, want %d", c.n, i, len(p), c.lines[i])
			}
		}
		back, err := decodeBase64(nil, s)
		if err != nil || len(back) != c.n {
			t.Errorf("%d bytes: round trip %d, %v", c.n, len(back), err)
		}
	}
}

// refDecodeBase64 is the plain transcription of CPython 3.11's
// binascii.a2b_base64 (non-strict), without decodeBase64's fast path.
func refDecodeBase64(s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return nil, false
		}
	}
	var out []byte
	quad, pads := 0, 0
	var left byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			if quad >= 2 {
				pads++
				if quad+pads >= 4 {
					return out, true
				}
			}
			continue
		}
		v := b64Values[c]
		if v == 0xFF {
			continue
		}
		pads = 0
		switch quad {
		case 0:
			quad, left = 1, v
		case 1:
			quad = 2
			out = append(out, left<<2|v>>4)
			left = v & 0x0F
		case 2:
			quad = 3
			out = append(out, left<<4|v>>2)
			left = v & 0x03
		default:
			quad = 0
			out = append(out, left<<6|v)
		}
	}
	return out, quad == 0
}

// FuzzDecodeBase64 checks the fast path against the plain transcription.
func FuzzDecodeBase64(f *testing.F) {
	for _, s := range []string{"", "aGk=", "AB=C=", "QUJD\nREVG\n", "YWJj==\u00e9", "AAAA!AAA=A", "AAAA\x80", "====AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := decodeBase64(nil, s)
		want, ok := refDecodeBase64(s)
		if ok != (err == nil) {
			t.Fatalf("%q: error %v, reference ok=%v", s, err, ok)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("%q: %x, reference %x", s, got, want)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v is not ErrMalformed", s, err)
		}
	})
}
