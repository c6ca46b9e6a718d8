package consumer

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/config"
)

// FuzzConsumersConfig loads an arbitrary YAML file's consumers section the
// way `fedmsg hub` does (config.ReadFile, then the "consumers" list to
// DecodeConfig). Nothing may panic; a rejected section gives an ErrConfig
// error; an accepted one has unique non-empty names, known kinds, the
// kind's required keys, and timeouts that mean what was written: a
// number of seconds n gives exactly n seconds, never a wrapped-around
// value.
func FuzzConsumersConfig(f *testing.F) {
	f.Add([]byte(`consumers:
  - {name: log, kind: file, path: /tmp/x.jsonl, topics: ["org.fedoraproject.#"]}
  - {name: run, kind: exec, command: [/bin/echo, hi], timeout: 2.5, validate_signatures: false}
  - name: hook
    kind: webhook
    url: "https://user:pw@example.org/hook"
    timeout: 10s
    backoff: 1
    max_backoff: 60
    max_attempts: 5
    headers: {Authorization: "Bearer x"}
`))
	f.Add([]byte("consumers: [{name: a, kind: file, path: p}, {name: a, kind: file, path: q}]\n"))
	f.Add([]byte("consumers: [{name: e, kind: exec, command: \"echo 'a b' c\", timeout: -1}]\n"))
	f.Add([]byte("consumers: [{name: w, kind: webhook, url: ftp://x, timeout: 1e300, max_attempts: 1.5, headers: [1]}]\n"))
	f.Add([]byte("consumers: [{name: w, kind: webhook, url: http://x, timeout: 18446744074}]\n"))
	f.Add([]byte("consumers: [{name: w, kind: webhook, url: http://x, backoff: 9223372037}]\n"))
	f.Add([]byte("consumers: [{kind: nope, topics: 7}, 3]\n"))
	f.Add([]byte("consumers: {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "hub.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := config.ReadFile(path)
		if err != nil {
			return
		}
		raw, ok := m["consumers"]
		if !ok {
			return
		}
		specs, err := DecodeConfig(raw)
		if err != nil {
			if specs != nil {
				t.Fatalf("DecodeConfig returned specs with error %v", err)
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		list := raw.([]any)
		if len(specs) == 0 || len(specs) != len(list) {
			t.Fatalf("%d entries gave %d specs", len(list), len(specs))
		}
		names := map[string]bool{}
		for i, s := range specs {
			if s.Name == "" || names[s.Name] || !slices.Contains(Kinds, s.Kind) {
				t.Fatalf("accepted spec %+v", s)
			}
			names[s.Name] = true
			entry := list[i].(map[string]any)
			durs := map[string]time.Duration{}
			switch s.Kind {
			case KindFile:
				if s.File.Path == "" {
					t.Fatalf("file consumer %q without a path", s.Name)
				}
			case KindExec:
				if len(s.Exec.Command) == 0 {
					t.Fatalf("exec consumer %q without a command", s.Name)
				}
				durs["timeout"] = s.Exec.Timeout
			case KindWebhook:
				if s.Webhook.URL == "" {
					t.Fatalf("webhook consumer %q without a url", s.Name)
				}
				durs["timeout"] = s.Webhook.Timeout
				durs["backoff"] = s.Webhook.Backoff
				durs["max_backoff"] = s.Webhook.MaxBackoff
			}
			for key, d := range durs {
				v, given := entry[key]
				if !given {
					continue
				}
				if d <= 0 {
					t.Fatalf("consumer %q: %s %v accepted as %v", s.Name, key, v, d)
				}
				var secs float64
				switch x := v.(type) {
				case int:
					secs = float64(x)
				case int64:
					secs = float64(x)
				case float64:
					secs = x
				default:
					continue
				}
				if got := d.Seconds(); math.Abs(got-secs) > 1e-6*math.Max(1, secs) {
					t.Fatalf("consumer %q: %s: %v seconds became %v", s.Name, key, v, d)
				}
			}
		}
	})
}
