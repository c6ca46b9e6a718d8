package cmd

import (
	"bytes"
	"strings"
	"testing"
)

func TestColourJSONColoursKeysStringsAndValues(t *testing.T) {
	in := []byte("{\n  \"k\": \"v \\\" q\",\n  \"n\": -1.5,\n  \"t\": true,\n  \"z\": null\n}")
	out := colourJSON(in)
	for _, want := range []string{
		ansiKey + `"k"` + ansiReset,
		ansiString + `"v \" q"` + ansiReset,
		ansiOther + "-1.5" + ansiReset,
		ansiOther + "true" + ansiReset,
		ansiOther + "null" + ansiReset,
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("missing %q in %q", want, out)
		}
	}
	plain := strings.NewReplacer(ansiKey, "", ansiString, "", ansiOther, "", ansiReset, "").Replace(string(out))
	if plain != string(in) {
		t.Errorf("colouring changed the text:\n got %q\nwant %q", plain, in)
	}
}

func TestPrintValueLikeFedmsgConfigQuery(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{"org.fedoraproject", "org.fedoraproject\n"},
		{[]string{"tcp://a:1", "tcp://b:2"}, "tcp://a:1\ntcp://b:2\n"},
		{[]any{"x", 1}, "x\n1\n"},
		{map[string]any{"a": 1}, "{\n  \"a\": 1\n}\n"},
		{3, "3\n"},
	} {
		var b bytes.Buffer
		if err := printValue(&b, tc.v); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("printValue(%v) = %q, want %q", tc.v, b.String(), tc.want)
		}
	}
}
