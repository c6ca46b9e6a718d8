package message

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

// The expected strings below are Python's: the spec's [verified] examples
// (§3.1) and, where marked, the output of CPython 3.11's
// json.dumps(json.loads(IN), sort_keys=True, separators=(',', ':')).

func TestFormatFloatSpecExamples(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{100.0, "100.0"},
		{0.1, "0.1"},
		{1.0 / 3, "0.3333333333333333"},
		{3.14159, "3.14159"},
		{1e15, "1000000000000000.0"},
		{1e16, "1e+16"},
		{1.5e16, "1.5e+16"},
		{123456789012345.6, "123456789012345.6"},
		{0.0001, "0.0001"},
		{1e-05, "1e-05"},
		{1e-07, "1e-07"},
		{2.5e-05, "2.5e-05"},
		{1e+22, "1e+22"},
		{5e-324, "5e-324"},
		{1.7976931348623157e+308, "1.7976931348623157e+308"},
		{-0.5, "-0.5"},
		{math.Copysign(0, -1), "-0.0"},
		{0.0, "0.0"},
		// CPython repr():
		{1.5e-4, "0.00015"},
		{math.Nextafter(1.5e-4, 1), "0.00015000000000000001"}, // 1e-4*1.5
		{9.999999999999999e15, "1e+16"},
		{9999999999999998.0, "9999999999999998.0"},
		{math.Nextafter(0.3, 1), "0.30000000000000004"}, // 0.1+0.2
		{1 << 53, "9007199254740992.0"},
		{1e100, "1e+100"},
		{123e-20, "1.23e-18"},
		{0.001, "0.001"},
		{1234567890123456.7, "1234567890123456.8"},
		{12345678901234567.0, "1.2345678901234568e+16"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
	}
	for _, tt := range tests {
		if got := FormatFloat(tt.f); got != tt.want {
			t.Errorf("FormatFloat(%v) = %q, want %q", tt.f, got, tt.want)
		}
		// The same through the encoder, as float64 and as number text.
		if got, err := Canonical(tt.f); err != nil || string(got) != tt.want {
			t.Errorf("Canonical(%v) = %q, %v; want %q", tt.f, got, err, tt.want)
		}
	}
}

// TestCanonicalizeText: canonical output for given JSON text.
func TestCanonicalizeText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		// Spec §3.1 number text rewrites.
		{"1e5", `1e5`, `100000.0`},
		{"1E-7", `1E-7`, `1e-07`},
		{"1.0e+2", `1.0e+2`, `100.0`},
		{"1e400", `1e400`, `Infinity`},
		{"-1e400", `-1e400`, `-Infinity`},
		{"bigint", `12345678901234567890`, `12345678901234567890`},
		{"neg bigint", `-98765432109876543210`, `-98765432109876543210`},
		{"-0", `-0`, `0`},
		{"-0.0", `-0.0`, `-0.0`},
		{"0e0", `0e0`, `0.0`},
		// CPython:
		{"underflow", `[1e-400,-1e-400]`, `[0.0,-0.0]`},
		{"floats", `[0.1,1.1e16,123456789012345678,1.5e300,9007199254740993.0, 2.5e-5, 0.000123]`,
			`[0.1,1.1e+16,123456789012345678,1.5e+300,9007199254740992.0,2.5e-05,0.000123]`},
		{"huge exponent", `[1e99999999999999999999,0e-99999999999999999999]`, `[Infinity,0.0]`},
		{"nonfinite", `[NaN,Infinity,-Infinity]`, `[NaN,Infinity,-Infinity]`},
		{"whitespace", " \t\r\n{\"x\" : [ ] , \"y\":{ } }\n ", `{"x":[],"y":{}}`},
		{"duplicate keys", `{"a":1,"b":0,"a":2}`, `{"a":2,"b":0}`},
		{"duplicate nested", `{"a":{"x":1},"a":[2]}`, `{"a":[2]}`},
		{"literals", `[true,false,null]`, `[true,false,null]`},
		// Strings.
		{"short escapes", `"\u0000\u001f\b\f\n\r\t\"\\"`, `"\u0000\u001f\b\f\n\r\t\"\\"`},
		{"slash", `"a\/b</script>&"`, `"a/b</script>&"`},
		{"DEL", "\"\x7f\"", `"\u007f"`},
		{"U+2028/9", "\"\u2028\u2029\"", `"\u2028\u2029"`},
		{"latin1 raw", `"café"`, `"caf\u00e9"`},
		{"upper hex in", `"\u00E9\u00e9"`, `"\u00e9\u00e9"`},
		{"astral raw", "\"\U0001F680\"", `"\ud83d\ude80"`},
		{"astral pair", `"\ud83d\ude80"`, `"\ud83d\ude80"`},
		{"astral pair upper", `"\uD83D\uDE80"`, `"\ud83d\ude80"`},
		{"max code point", "\"\U0010FFFF\"", `"\udbff\udfff"`},
		{"U+FFFD raw", "\"\uFFFD\"", `"\ufffd"`},
		{"lone high", `"\ud800"`, `"\ud800"`},
		{"lone low", `"\udc00"`, `"\udc00"`},
		{"reversed pair", `"\udc00\ud800"`, `"\udc00\ud800"`},
		{"high then ascii", `"\ud800\u0041"`, `"\ud800A"`},
		{"high high low", `"\ud800\ud800\udc00"`, `"\ud800\ud800\udc00"`},
		{"high at end", `"x\udbff"`, `"x\udbff"`},
		{"lone surrogate key", `{"\udfff":1,"\ud800":2}`, `{"\ud800":2,"\udfff":1}`},
		// CPython key order: code point order, surrogates between U+D7FF
		// and U+E000, astral characters after U+FFFF.
		{"key order",
			`{"\ud83d\ude00":10,"\uffff":9,"\ue000":11,"\ud800":8,"\u00e9":7,"aa":6,"a1":5,"a":4,"_":3,"Z":2,"B":1,"\ud7ff":0}`,
			`{"B":1,"Z":2,"_":3,"a":4,"a1":5,"aa":6,"\u00e9":7,"\ud7ff":0,"\ud800":8,"\ue000":11,"\uffff":9,"\ud83d\ude00":10}`},
		{"nested order", `{"b":{"d":1,"c":[{"f":1,"e":2}]},"a":0}`, `{"a":0,"b":{"c":[{"e":2,"f":1}],"d":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalizeBytes([]byte(tt.in))
			if err != nil {
				t.Fatalf("CanonicalizeBytes(%q): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("CanonicalizeBytes(%q)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestCanonicalGoValues(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, `null`},
		{"int", -42, `-42`},
		{"int64", int64(math.MinInt64), `-9223372036854775808`},
		{"uint64", uint64(math.MaxUint64), `18446744073709551615`},
		{"json.Number", json.Number("1E5"), `100000.0`},
		{"Number int", Number("7"), `7`},
		{"map", map[string]any{"z": []any{}, "a": map[string]any{}, "m": "x"}, `{"a":{},"m":"x","z":[]}`},
		{"surrogate wtf8 string", "\xed\xa0\x80", `"\ud800"`},
		{"astral key after BMP", map[string]any{"\U0001F600": 1, "\uFFFF": 2}, `{"\uffff":2,"\ud83d\ude00":1}`},
	}
	for _, tt := range tests {
		got, err := Canonical(tt.v)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: Canonical = %s, %v; want %s", tt.name, got, err, tt.want)
		}
		// AppendCanonical appends.
		got, err = AppendCanonical([]byte("x"), tt.v)
		if err != nil || string(got) != "x"+tt.want {
			t.Errorf("%s: AppendCanonical = %s, %v", tt.name, got, err)
		}
	}
}

func TestCanonicalRejects(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	cyclicList := []any{nil}
	cyclicList[0] = cyclicList
	for name, v := range map[string]any{
		"struct":        struct{}{},
		"[]string":      []string{"a"},
		"int32":         int32(1),
		"invalid utf8":  "\xff",
		"truncated":     "\xed\xa0",
		"invalid key":   map[string]any{"\xc3": 1},
		"bad number":    Number("1.5.5"),
		"empty number":  Number(""),
		"plus number":   json.Number("+1"),
		"leading zero":  Number("01"),
		"nested bad":    map[string]any{"a": []any{1, func() {}}},
		"cyclic map":    cyclic,
		"cyclic list":   cyclicList,
		"nan lowercase": Number("nan"),
	} {
		out, err := AppendCanonical([]byte("keep"), v)
		if !errors.Is(err, ErrUnsupportedValue) {
			t.Errorf("%s: err = %v, want ErrUnsupportedValue", name, err)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst changed to %q on error", name, out)
		}
	}
}

func TestDecodeValues(t *testing.T) {
	v, err := Decode([]byte(`{"i":1,"f":1.50,"big":12345678901234567890,"s":"\ud800x","a":[null,true],"n":NaN}`))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["i"] != Number("1") || m["f"] != Number("1.50") || m["big"] != Number("12345678901234567890") || m["n"] != Number("NaN") {
		t.Errorf("numbers not kept verbatim: %#v", m)
	}
	if m["s"] != "\xed\xa0\x80x" {
		t.Errorf("lone surrogate = %q, want WTF-8 ED A0 80", m["s"])
	}
	if a, ok := m["a"].([]any); !ok || len(a) != 2 || a[0] != nil || a[1] != true {
		t.Errorf("array = %#v", m["a"])
	}
	if s, err := Decode([]byte(`"\ud83d\ude80"`)); err != nil || s != "\U0001F680" {
		t.Errorf("surrogate pair = %q, %v", s, err)
	}
	if a, err := Decode([]byte(`[]`)); err != nil || a == nil || len(a.([]any)) != 0 {
		t.Errorf("[] = %#v, %v", a, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	deepObj := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	tests := []struct {
		name, in string
		off      int // -1: do not check
	}{
		// Offsets are json.loads' (CPython 3.11) for these ASCII inputs.
		{"empty", ``, 0},
		{"space only", `   `, 3},
		{"trailing garbage", `[1] x`, 4},
		{"two values", `{} {}`, 3},
		{"1.", `1.`, 1},
		{"1e", `1e`, 1},
		{"leading zero", `01`, 1},
		{"plus", `+1`, 0},
		{".5", `.5`, 0},
		{"nan", `nan`, 0},
		{"-NaN", `-NaN`, 0},
		{"-", `-`, 0},
		{"unterminated string", `"abc`, 0},
		{"unterminated in object", `{"a":"b`, 5},
		{"unterminated escape", `"\`, 0},
		{"unterminated array", `[1,2`, 4},
		{"unterminated object", `{"a":1`, 6},
		{"trailing comma array", `[1,]`, 3},
		{"trailing comma object", `{"a":1,}`, 7},
		{"missing colon", `{"a" 1}`, 5},
		{"non-string key", `{1:2}`, 1},
		{"single quotes", `'a'`, 0},
		{"bad escape", `"\x"`, 1},
		{"short \\u", `"\u12"`, 2},
		{"bad hex", `"\u12g4"`, 2},
		{"raw tab", "\"\t\"", 1},
		{"raw NUL", "\"a\x00\"", 2},
		{"raw newline in escaped string", "\"\\n\n\"", 3},
		{"BOM", "\ufeff{}", 0},
		{"truex", `truex`, 4},
		{"tru", `tru`, 0},
		{"comment", `{} // c`, 3},
		{"too deep array", deep, -1},
		{"too deep object", deepObj, -1},
		// Invalid UTF-8: fedmsg decodes frames strictly before json.loads.
		{"invalid utf8", "\"\xff\"", 1},
		{"invalid utf8 after escape", "\"\\n\xff\"", 3},
		{"overlong", "\"\xc0\xaf\"", 1},
		{"encoded surrogate", "\"\xed\xa0\x80\"", 1},
		{"truncated rune", "\"\xe2\x82\"", 1},
		{"utf8 outside string", "\xc3\xa9", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode([]byte(tt.in))
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("Decode(%q) = %#v, %v; want ErrInvalidJSON", tt.in, v, err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *SyntaxError", err)
			}
			if tt.off >= 0 && se.Offset != tt.off {
				t.Errorf("offset = %d, want %d (%v)", se.Offset, tt.off, err)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("error text %q does not give the offset", err)
			}
		})
	}
	// Exactly MaxDepth levels are fine.
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := Decode([]byte(ok)); err != nil {
		t.Errorf("depth %d rejected: %v", MaxDepth, err)
	}
	// And Canonical can encode whatever Decode returns.
	if _, err := CanonicalizeBytes([]byte(ok)); err != nil {
		t.Errorf("depth %d not encodable: %v", MaxDepth, err)
	}
}

func TestDecodeObject(t *testing.T) {
	for _, in := range []string{`[]`, `"x"`, `1`, `null`, `true`, `NaN`} {
		if _, err := DecodeObject([]byte(in)); !errors.Is(err, ErrNotObject) || errors.Is(err, ErrInvalidJSON) {
			t.Errorf("DecodeObject(%s): %v, want ErrNotObject", in, err)
		}
	}
	if _, err := DecodeObject([]byte(`{`)); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("DecodeObject({): %v, want ErrInvalidJSON", err)
	}
	m, err := DecodeObject([]byte(` {"a":{}} `))
	if err != nil || len(m) != 1 {
		t.Errorf("DecodeObject = %v, %v", m, err)
	}
}

func TestNumberIsFloat(t *testing.T) {
	for n, want := range map[Number]bool{
		"1": false, "-0": false, "123456789012345678901234567890": false,
		"1.0": true, "1e5": true, "1E5": true, "-0.0": true,
		"NaN": true, "Infinity": true, "-Infinity": true,
	} {
		if got := n.IsFloat(); got != want {
			t.Errorf("Number(%q).IsFloat() = %v", n, got)
		}
	}
}

// TestPretty: Python's json.dumps(v, indent=2, separators=(',', ': '),
// sort_keys=True) output (CPython 3.11).
func TestPretty(t *testing.T) {
	v, err := Decode([]byte(`{"b":[1,{"y":null,"x":1.0}],"a":"caf\u00e9","e":{},"l":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "a": "caf\u00e9",
  "b": [
    1,
    {
      "x": 1.0,
      "y": null
    }
  ],
  "e": {},
  "l": []
}`
	got, err := Pretty(v)
	if err != nil || string(got) != want {
		t.Errorf("Pretty = %s, %v\nwant %s", got, err, want)
	}
	if got, err := Pretty("x"); err != nil || string(got) != `"x"` {
		t.Errorf("Pretty(scalar) = %s, %v", got, err)
	}
	if _, err := Pretty(map[string]any{"a": struct{}{}}); !errors.Is(err, ErrUnsupportedValue) {
		t.Errorf("Pretty(struct) err = %v", err)
	}
}
