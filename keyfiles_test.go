package fedmsg_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
)

// A private key file others can read, or the group can write, produces
// one warning that names the file and the key it came from; a 0600 one
// produces none.
// Covers the x509 signing keys (ssldir/certnames), the gpg secret keyring
// and the STOMP and AMQP TLS client keys.
func TestWarnKeyFilesNamesReadableKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	loose := write("bodhi-app01.example.com.key", 0o644)
	write("shell-app01.example.com.key", 0o600)
	group := write("stomp-client.key", 0o660)
	tight := write("amqp-client.key", 0o600)
	ring := write("secring.gpg", 0o604)

	cfg := config.Default()
	cfg.SSLDir = dir
	cfg.Certnames = map[string]string{
		"bodhi.app01": "bodhi-app01.example.com",
		"shell.app01": "shell-app01.example.com",
		"gone.app01":  "missing.example.com",
	}
	cfg.StompSSLKey, cfg.AMQPSSLKey = group, tight
	cfg.GPGSecretKeyring = []string{ring}

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	got := fedmsg.WarnKeyFiles(cfg, log)
	if len(got) != 3 {
		t.Errorf("WarnKeyFiles found %q, want the 3 readable files", got)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), logs.String())
	}
	for _, want := range []struct{ file, key, mode string }{
		{loose, "ssldir/certnames.bodhi.app01", "0644"},
		{group, "stomp_ssl_key", "0660"},
		{ring, "gpg_secret_keyring", "0604"},
	} {
		found := false
		for _, l := range lines {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "file="+want.file) &&
				strings.Contains(l, "key="+want.key) && strings.Contains(l, "mode="+want.mode) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning naming %s (%s, %s):\n%s", want.file, want.key, want.mode, logs.String())
		}
	}
	if strings.Contains(logs.String(), "shell-app01") || strings.Contains(logs.String(), tight) {
		t.Errorf("warned about a 0600 key:\n%s", logs.String())
	}

	// Once per file per process: the command and the library context it
	// opens both check.
	logs.Reset()
	fedmsg.WarnKeyFiles(cfg, log)
	if logs.Len() != 0 {
		t.Errorf("warned twice:\n%s", logs.String())
	}
}
