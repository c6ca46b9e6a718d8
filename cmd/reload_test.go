package cmd

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/config"
)

// The scrubber learns a configuration's secrets from what config.Redacted
// hides, and replaces them in any form a log handler writes them.
func TestScrubberHidesWhatRedactedHides(t *testing.T) {
	cfg, err := config.Load(config.Sources{Dirs: []string{}, Environ: []string{
		"FEDMSG_AMQP_URL=amqp://u:p%40ss\"word@h1/,amqps://v:second-pw@h2:5671/vh",
		"FEDMSG_STOMP_PASS=stomp secret",
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := redactedValues(cfg.Map(), cfg.Redacted())
	for _, want := range []string{`p%40ss"word`, "second-pw", "stomp secret"} {
		if !slices.Contains(got, want) {
			t.Errorf("secrets found %q, missing %q", got, want)
		}
	}
	var out bytes.Buffer
	s := newScrubber(&out)
	s.addConfig(cfg)
	for _, line := range []string{
		`err="dial amqp://u:p%40ss\"word@h1/: refused"`, // text handler quoting
		`{"err":"dial amqp://u:p%40ss\"word@h1/"}`,      // JSON
		"login failed for p@ss\"word",                   // percent-decoded
		"pass=stomp secret second-pw",
	} {
		out.Reset()
		if _, err := s.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		for _, sec := range []string{"p%40ss", "ss\\\"word", "p@ss", "stomp secret", "second-pw"} {
			if strings.Contains(out.String(), sec) {
				t.Errorf("%q came out as %q, still holding %q", line, out.String(), sec)
			}
		}
		if !strings.Contains(out.String(), "<redacted>") {
			t.Errorf("%q came out as %q without <redacted>", line, out.String())
		}
	}
}

func TestSecretSpans(t *testing.T) {
	for _, c := range []struct {
		plain, red string
		want       []string
	}{
		{"amqp://u:pw@h/", "amqp://u:<redacted>@h/", []string{"pw"}},
		{"a://u:x@h b://v:y@k", "a://u:<redacted>@h b://v:<redacted>@k", []string{"x", "y"}},
		{"whole", "<redacted>", []string{"whole"}},
		{"same", "same", nil},
	} {
		if got := secretSpans(c.plain, c.red); !slices.Equal(got, c.want) {
			t.Errorf("secretSpans(%q, %q) = %q, want %q", c.plain, c.red, got, c.want)
		}
	}
}
