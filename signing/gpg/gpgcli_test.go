package gpg

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

// gnupg runs the gpg binary against a private home directory.
type gnupg struct {
	t    *testing.T
	bin  string
	home string
}

// newGnuPG returns a gpg with a fresh home, or skips the test when gpg is not
// installed: the cross-check is optional tooling, nothing is installed for it.
func newGnuPG(t *testing.T) *gnupg {
	t.Helper()
	bin, err := exec.LookPath("gpg")
	if err != nil {
		t.Skip("gpg binary not installed: the cross-check against GnuPG was not run (nothing installed for it)")
	}
	// gpg-agent sockets live in the home: keep the path short.
	home, err := os.MkdirTemp("", "gpgx")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gnupg{t: t, bin: bin, home: home}
	t.Cleanup(func() {
		// Stop an agent or dirmngr gpg may have started for this home only.
		if gc, err := exec.LookPath("gpgconf"); err == nil {
			cmd := exec.Command(gc, "--homedir", home, "--kill", "all")
			cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
			_ = cmd.Run()
		}
		os.RemoveAll(home)
	})
	return g
}

// run runs gpg and returns its exit code and combined output.
func (g *gnupg) run(args ...string) (int, string) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.bin, append([]string{"--homedir", g.home, "--batch", "--no-tty", "--no-autostart"}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		}
		g.t.Fatalf("gpg %v: %v", args, err)
	}
	return 0, out.String()
}

func (g *gnupg) file(name string, data []byte) string {
	g.t.Helper()
	return writeFile(g.t, g.home, name, data)
}

// TestGnuPGCrossCheck verifies our signatures with the real gpg, the way
// fedmsg's validate does (`gpg --homedir H --verify sig data`).
func TestGnuPGCrossCheck(t *testing.T) {
	g := newGnuPG(t)
	m := loadManifest(t)
	if code, out := g.run("--import", sharedtest.Dir(t, vecDir, "key-a.pub.asc")); code != 0 {
		t.Fatalf("import: %d\n%s", code, out)
	}
	_, version := g.run("--version")
	t.Logf("cross-checking with %s", strings.SplitN(version, "\n", 2)[0])

	s := signerA(t)
	for _, file := range []string{"signed/g01-dict.json", "signed/g02-unicode.json"} {
		env := readEnvelope(t, file)
		delete(env, message.FieldSignature)
		out, err := s.Sign(env)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(out[message.FieldSignature].(string))
		if err != nil {
			t.Fatal(err)
		}
		data := mustCanonical(t, env[message.FieldMsg])
		sigPath, dataPath := g.file("msg.sig", raw), g.file("msg.data", data)

		code, outText := g.run("--status-fd", "1", "--verify", sigPath, dataPath)
		if code != 0 {
			t.Fatalf("%s: gpg --verify exit %d:\n%s", file, code, outText)
		}
		if !strings.Contains(outText, "[GNUPG:] GOODSIG") || !strings.Contains(outText, "[GNUPG:] VALIDSIG "+m.Keys.KeyAFingerprint) {
			t.Fatalf("%s: gpg did not report a good signature by key A:\n%s", file, outText)
		}
		// VALIDSIG fields: ... pubkey-algo hash-algo sig-class ...: RSA(1), SHA512(10), 00.
		for _, l := range strings.Split(outText, "\n") {
			if f := strings.Fields(l); len(f) > 10 && f[1] == "VALIDSIG" {
				if f[8] != "1" || f[9] != "10" || f[10] != "00" {
					t.Errorf("VALIDSIG algo %s hash %s class %s, want 1 10 00", f[8], f[9], f[10])
				}
			}
		}
		// gpg also rejects it over other bytes.
		g.file("msg.data", append(bytes.Clone(data), ' '))
		if code, outText := g.run("--verify", sigPath, dataPath); code == 0 {
			t.Fatalf("gpg accepted the signature over changed data:\n%s", outText)
		}
		// gpg accepts base64 of an armored signature too, so Verify does.
		g.file("msg.data", data)
		if code, outText := g.run("--verify", g.file("msg.asc", armoredSig(t, raw)), dataPath); code != 0 {
			t.Fatalf("armored: gpg --verify exit %d:\n%s", code, outText)
		}
	}

	// And the vectors' own signatures, the other way round (sanity of the
	// harness): g05's key B is not in this home.
	for id, want := range map[string]bool{"g01-dict": true, "g05-untrusted-key": false} {
		code, out := g.run("--verify", sharedtest.Dir(t, vecDir, "signed", id+".sig"), sharedtest.Dir(t, vecDir, "signed", id+".signed-data"))
		if (code == 0) != want {
			t.Fatalf("%s: gpg exit %d, want success=%v\n%s", id, code, want, out)
		}
	}
}

// TestGnuPGLegacyHome loads a gpg home whose public keyring gpg itself wrote
// in the legacy pubring.gpg format (with its trust packets).
func TestGnuPGLegacyHome(t *testing.T) {
	g := newGnuPG(t)
	// An existing pubring.gpg makes GnuPG 2.1+ keep using the legacy format.
	g.file("pubring.gpg", nil)
	for _, k := range []string{"key-a.pub.asc", "key-b.pub.asc"} {
		if code, out := g.run("--import", sharedtest.Dir(t, vecDir, k)); code != 0 {
			t.Fatalf("import %s: %d\n%s", k, code, out)
		}
	}
	if _, err := os.Stat(filepath.Join(g.home, keyboxPubring)); err == nil {
		t.Fatal("gpg created a keybox despite pubring.gpg")
	}
	kr, err := LoadKeyring(g.home)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 2 {
		t.Fatalf("Len %d, want 2", kr.Len())
	}
	for _, f := range []string{"signed/g01-dict.json", "signed/g02-unicode.json", "signed/g05-untrusted-key.json"} {
		if err := kr.Verify(readEnvelope(t, f)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}
