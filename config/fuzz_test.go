package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadYAML writes arbitrary bytes to a YAML file and loads it: Load
// must never panic, and anything it accepts must validate and print.
func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte("topic_prefix: org.example\nendpoints:\n  bodhi.app01: tcp://127.0.0.1:3000\n"))
	f.Add([]byte("fedmsg:\n  consumers:\n    gateway: {port: 9941}\n    relay: {enabled: \"True\"}\n"))
	f.Add([]byte("logging: {version: 1, handlers: {console: {class: logging.StreamHandler}}}\nirc: [{network: x, port: 6667}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("crl_location: null\nrelay_inbound: [tcp://a:1, 2]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(Sources{Dirs: []string{}, Files: []string{path}})
		if err != nil {
			if c != nil {
				t.Fatalf("Load returned a config with error %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted a config that does not validate: %v", err)
		}
		_ = c.Redacted()
		for _, k := range Keys() {
			if _, ok := c.Lookup(k); !ok {
				t.Fatalf("Lookup(%q) failed", k)
			}
		}
	})
}
