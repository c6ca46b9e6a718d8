package cmd

import "testing"

// What Python's "\n".join(map(str.strip, sys.stdin.readlines())) gives.
func TestAnnounceTextLikeFedmsgAnnounce(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"hello\n", "hello"},
		{"hello", "hello"},
		{"  one  \n\ttwo\n\n", "one\ntwo\n"},
		{"a\n\nb\n", "a\n\nb"},
		{"a\r\nb\rc\n", "a\nb\nc"},
		{"\x1f x \u00a0\n", "x"},
		{"\n", ""},
		{"\n\n", "\n"},
	} {
		if got := announceText(tc.in); got != tc.want {
			t.Errorf("announceText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
