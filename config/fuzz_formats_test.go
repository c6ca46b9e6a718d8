package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadFuzzFile writes data under name and loads it as the only
// configuration file, then checks what a user relies on: Load never
// panics; a rejected file yields no config and an error naming the file;
// an accepted one validates, prints redacted and answers every key.
func loadFuzzFile(t *testing.T, name string, data []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(Sources{Dirs: []string{}, Files: []string{path}})
	if err != nil {
		if c != nil {
			t.Fatalf("Load returned a config with error %v", err)
		}
		if !errors.Is(err, ErrInvalid) && !strings.Contains(err.Error(), path) {
			t.Fatalf("the error names neither the file nor a sentinel: %v", err)
		}
		return
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Load accepted a config that does not validate: %v", err)
	}
	red := c.Redacted()
	for k, v := range red {
		if isSecretKey(k) && !isEmptyValue(v) && v != redactedText {
			t.Fatalf("Redacted shows secret key %s: %v", k, v)
		}
	}
	for _, k := range Keys() {
		if _, ok := c.Lookup(k); !ok {
			t.Fatalf("Lookup(%q) failed", k)
		}
	}
}

// FuzzLoadTOML is FuzzLoadYAML for .toml files (koanf's TOML parser).
func FuzzLoadTOML(f *testing.F) {
	f.Add([]byte("topic_prefix = \"org.example\"\n[endpoints]\n\"bodhi.app01\" = \"tcp://127.0.0.1:3000\"\n"))
	f.Add([]byte("sign_messages = true\nvalidate_signatures = false\nstomp_uri = \"a:61613,b:61613\"\nstomp_pass = \"hunter2\"\n"))
	f.Add([]byte("[fedmsg.consumers.gateway]\nport = 9941\n[[irc]]\nnetwork = \"x\"\nport = 6667\n"))
	f.Add([]byte("amqp_url = \"amqps://u:p@h:5671/%2f\"\nrelay_inbound = [\"tcp://a:1\", 2]\n"))
	f.Add([]byte("a = 1979-05-27T07:32:00Z\nb = inf\nc = nan\nd = 0x7fffffffffffffff\n"))
	f.Add([]byte("[a]\nb = 1\n[a]\nb = 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) { loadFuzzFile(t, "fuzz.toml", data) })
}

// FuzzLoadJSON is FuzzLoadYAML for .json files.
func FuzzLoadJSON(f *testing.F) {
	f.Add([]byte(`{"topic_prefix":"org.example","endpoints":{"bodhi.app01":["tcp://127.0.0.1:3000"]}}`))
	f.Add([]byte(`{"active":true,"high_water_mark":0,"zmq_linger":1000,"post_init_sleep":0.5}`))
	f.Add([]byte(`{"amqp_url":"amqp://guest:guest@localhost:5672/","stomp_pass":"x","crl_location":null}`))
	f.Add([]byte(`{"fedmsg":{"consumers":{"relay":{"enabled":"True"}}},"irc":[{"network":"x","port":6667}]}`))
	f.Add([]byte(`{"a":1e400,"b":-0,"c":"\ud800","a":2}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, data []byte) { loadFuzzFile(t, "fuzz.json", data) })
}
