package message

import (
	"math"
	"strconv"
)

// Number is a JSON number kept as its source text until canonicalised.
//
// Python's json.loads turns number text into an int (arbitrary precision)
// or a float depending on the text alone, and the canonical form differs for
// the two ("1" stays "1", "1.0" and "1e0" become "1.0"), so the text must not
// be collapsed into a float64 on the way in.
type Number string

// Python's json module accepts and emits these three bare tokens for
// non-finite floats.
const (
	tokNaN    = "NaN"
	tokInf    = "Infinity"
	tokNegInf = "-Infinity"
)

// IsFloat reports whether Python would parse the number as a float: its text
// contains '.', 'e' or 'E', or it is one of NaN, Infinity, -Infinity.
func (n Number) IsFloat() bool {
	switch n {
	case tokNaN, tokInf, tokNegInf:
		return true
	}
	for i := 0; i < len(n); i++ {
		switch n[i] {
		case '.', 'e', 'E':
			return true
		}
	}
	return false
}

// String returns the number's text as written.
func (n Number) String() string { return string(n) }

// Float64 returns the number's value as a float64, with Python's float()
// semantics for out-of-range text: too large gives ±Inf, too small ±0.
func (n Number) Float64() (float64, error) {
	switch n {
	case tokNaN:
		return math.NaN(), nil
	case tokInf:
		return math.Inf(1), nil
	case tokNegInf:
		return math.Inf(-1), nil
	}
	if !validNumber(string(n)) {
		return 0, &strconv.NumError{Func: "Number.Float64", Num: string(n), Err: strconv.ErrSyntax}
	}
	return parseFloat(string(n)), nil
}

// Int64 returns the value of an integer Number that fits in an int64.
func (n Number) Int64() (int64, error) {
	if n.IsFloat() || !validNumber(string(n)) {
		return 0, &strconv.NumError{Func: "Number.Int64", Num: string(n), Err: strconv.ErrSyntax}
	}
	return strconv.ParseInt(string(n), 10, 64)
}

// parseFloat converts text that already matched the JSON number grammar.
// ParseFloat rounds correctly (as Python's float() does) and, on overflow,
// returns ±Inf together with ErrRange; Python's float("1e400") is inf too,
// so the range error is deliberately ignored.
func parseFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// numberEnd returns the offset just after the JSON number that starts at
// s[i], or i when there is none. It follows Python's NUMBER_RE
// (-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)? : an optional part that is not
// complete ("1." or "1e") is simply not consumed, so that the caller reports
// the leftover as an error, exactly as json.loads does.
func numberEnd[T ~string | ~[]byte](s T, i int) int {
	start := i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return start
	}
	if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
		i += 2
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			i = j
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// validNumber reports whether s is exactly one JSON number (not NaN or
// Infinity).
func validNumber(s string) bool {
	return len(s) > 0 && numberEnd(s, 0) == len(s)
}

// appendNumber appends the canonical form of number text: integers verbatim
// (their text is already Python's str(int) except for "-0"), floats as
// Python's repr of the parsed value.
func appendNumber(dst []byte, s string) ([]byte, bool) {
	switch s {
	case tokNaN, tokInf, tokNegInf:
		return append(dst, s...), true
	}
	if !validNumber(s) {
		return dst, false
	}
	if !Number(s).IsFloat() {
		if s == "-0" {
			return append(dst, '0'), true
		}
		return append(dst, s...), true
	}
	return appendFloat(dst, parseFloat(s)), true
}

// FormatFloat returns Python's repr() of f, the form json.dumps gives a
// float: the shortest digit string that round-trips through float64, in
// fixed notation when the decimal exponent is in (-4, 16] (whole numbers get
// ".0"), otherwise as "1e+16", "2.5e-05" (sign and at least two exponent
// digits). Non-finite values give the tokens json.dumps writes for them
// (NaN, Infinity, -Infinity) rather than repr's "nan"/"inf".
func FormatFloat(f float64) string {
	var buf [32]byte
	return string(appendFloat(buf[:0], f))
}

func appendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, tokNaN...)
	case math.IsInf(f, 1):
		return append(dst, tokInf...)
	case math.IsInf(f, -1):
		return append(dst, tokNegInf...)
	}
	// Go's shortest 'e' formatting gives the same digits as Python's repr
	// (both are the shortest string that rounds back to f, closest to f);
	// only the layout differs, so take the digits and exponent apart.
	var tmp [32]byte
	b := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64) // [-]d[.ddd]e±dd[d]
	if b[0] == '-' {
		dst = append(dst, '-')
		b = b[1:]
	}
	var digitBuf [24]byte
	digits := digitBuf[:0]
	i := 0
	for ; b[i] != 'e'; i++ {
		if b[i] != '.' {
			digits = append(digits, b[i])
		}
	}
	exp := 0
	neg := b[i+1] == '-'
	for _, c := range b[i+2:] {
		exp = exp*10 + int(c-'0')
	}
	if neg {
		exp = -exp
	}
	// Value = 0.DIGITS × 10^decpt, the convention of Python's float_repr.
	decpt := exp + 1
	nd := len(digits)
	if -4 < decpt && decpt <= 16 {
		switch {
		case decpt <= 0:
			dst = append(dst, '0', '.')
			for range -decpt {
				dst = append(dst, '0')
			}
			dst = append(dst, digits...)
		case decpt >= nd:
			dst = append(dst, digits...)
			for range decpt - nd {
				dst = append(dst, '0')
			}
			dst = append(dst, '.', '0')
		default:
			dst = append(dst, digits[:decpt]...)
			dst = append(dst, '.')
			dst = append(dst, digits[decpt:]...)
		}
		return dst
	}
	dst = append(dst, digits[0])
	if nd > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	e := decpt - 1
	dst = append(dst, 'e')
	if e < 0 {
		dst = append(dst, '-')
		e = -e
	} else {
		dst = append(dst, '+')
	}
	if e < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(e), 10)
}
