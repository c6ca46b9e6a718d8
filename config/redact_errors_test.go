package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A secret given with the wrong type (a numeric password, YAML reads
// 98765432 as an integer) is refused with an error that names the key
// and the type, never the value; a URL password in a refused value is
// hidden too.
func TestTypeErrorsHideSecrets(t *testing.T) {
	for _, tc := range []struct{ yaml, secret, want string }{
		{"stomp_pass: 98765432\n", "98765432", `key "stomp_pass": want a string, got integer`},
		{"stomp_pass: 9876.5432\n", "9876.5432", `key "stomp_pass": want a string, got float`},
		{"stomp_pass: true\n", "true", `key "stomp_pass": want a string, got boolean`},
		{"zmq_linger: \"amqp://u:UrlPw4711@h/\"\n", "UrlPw4711", `key "zmq_linger"`},
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(Sources{Dirs: []string{}, Files: []string{path}})
		if err == nil {
			t.Errorf("%q: loaded", tc.yaml)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q does not say %q", tc.yaml, err, tc.want)
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Errorf("%q: error %q shows the secret", tc.yaml, err)
		}
	}
	// Environment variables take the same path.
	_, err := Load(Sources{Dirs: []string{}, Environ: []string{"FEDMSG_ZMQ_LINGER=amqp://u:EnvPw4711@h/"}})
	if err == nil || strings.Contains(err.Error(), "EnvPw4711") {
		t.Errorf("FEDMSG_ZMQ_LINGER with a URL password: %v", err)
	}
}
