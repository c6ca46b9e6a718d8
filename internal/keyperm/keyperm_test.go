package keyperm

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoose(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode  os.FileMode
		loose bool
	}{{0o600, false}, {0o400, false}, {0o700, false}, {0o640, os.Getuid() != 0}, {0o440, os.Getuid() != 0},
		{0o604, true}, {0o620, true}, {0o644, true}, {0o660, true}, {0o601, true}} {
		p := filepath.Join(dir, tc.mode.String())
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		if perm, got := Loose(p); got != tc.loose || perm != tc.mode {
			t.Errorf("Loose(%v) = %v, %v; want %v", tc.mode, perm, got, tc.loose)
		}
	}
	if _, got := Loose(filepath.Join(dir, "missing")); got {
		t.Error("a missing file is loose")
	}
	if _, got := Loose(dir); got {
		t.Error("a directory is loose")
	}
}

// A nil logger does not use up the one warning a file gets.
func TestWarnNilLoggerKeepsTheWarning(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.key")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if !Warn(nil, "stomp_ssl_key", p) {
		t.Error("Warn(nil) did not report the loose file")
	}
	var b bytes.Buffer
	Warn(slog.New(slog.NewTextHandler(&b, nil)), "stomp_ssl_key", p)
	if !strings.Contains(b.String(), "file="+p) || !strings.Contains(b.String(), "key=stomp_ssl_key") {
		t.Errorf("log %q does not name the file and key", b.String())
	}
}
