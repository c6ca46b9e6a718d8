package gpg

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
)

// dearmor returns the binary packets of an armored vector key file.
func dearmor(t testing.TB, name string) []byte {
	t.Helper()
	b, err := armor.Decode(bytes.NewReader(sharedtest.Read(t, vecDir, name)))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(b.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// withTrustPackets inserts a GnuPG 1.x ring trust packet (old format, tag 12)
// after every packet of a binary key, as a legacy pubring.gpg has them.
func withTrustPackets(t testing.TB, data []byte) []byte {
	t.Helper()
	var out []byte
	for len(data) > 0 {
		n := packetLen(t, data)
		out = append(out, data[:n]...)
		out = append(out, 0xB0, 0x02, 0x00, 0x00) // tag 12, length 2
		data = data[n:]
	}
	return out
}

// packetLen returns the length (header included) of the first packet of data.
func packetLen(t testing.TB, data []byte) int {
	t.Helper()
	h := data[0]
	if h&0x80 == 0 {
		t.Fatalf("bad packet header %#x", h)
	}
	if h&0x40 == 0 { // old format
		switch h & 3 {
		case 0:
			return 2 + int(data[1])
		case 1:
			return 3 + (int(data[1])<<8 | int(data[2]))
		case 2:
			return 5 + (int(data[1])<<24 | int(data[2])<<16 | int(data[3])<<8 | int(data[4]))
		}
		t.Fatal("indeterminate length")
	}
	switch l := data[1]; {
	case l < 192:
		return 2 + int(l)
	case l < 224:
		return 3 + (int(l)-192)<<8 + int(data[2]) + 192
	case l == 255:
		return 6 + (int(data[2])<<24 | int(data[3])<<16 | int(data[4])<<8 | int(data[5]))
	}
	t.Fatal("partial length")
	return 0
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadKeyring(t *testing.T) {
	m := loadManifest(t)
	pubA := sharedtest.Read(t, vecDir, "key-a.pub.asc")
	pubB := sharedtest.Read(t, vecDir, "key-b.pub.asc")
	binA := dearmor(t, "key-a.pub.asc")
	binB := dearmor(t, "key-b.pub.asc")
	g01 := readEnvelope(t, "signed/g01-dict.json")
	g05 := readEnvelope(t, "signed/g05-untrusted-key.json") // key B

	t.Run("binary export", func(t *testing.T) {
		kr, err := LoadKeyring(writeFile(t, t.TempDir(), "a.gpg", binA))
		if err != nil {
			t.Fatal(err)
		}
		if kr.Len() != 1 || kr.Verify(g01) != nil {
			t.Fatalf("Len %d, Verify %v", kr.Len(), kr.Verify(g01))
		}
	})
	t.Run("concatenated armor blocks", func(t *testing.T) {
		data := append(append([]byte("comment line\n"), pubA...), pubB...)
		kr, err := LoadKeyring(writeFile(t, t.TempDir(), "ab.asc", data))
		if err != nil {
			t.Fatal(err)
		}
		if got := kr.Fingerprints(); len(got) != 2 || got[0] != m.Keys.KeyAFingerprint || got[1] != m.Keys.KeyBFingerprint {
			t.Fatalf("fingerprints %v", got)
		}
		if kr.Verify(g01) != nil || kr.Verify(g05) != nil {
			t.Fatal("a keyring with A and B must accept both")
		}
	})
	t.Run("secret key file as keyring", func(t *testing.T) {
		kr, err := LoadKeyring(sharedtest.Dir(t, vecDir, "key-a.sec.asc"))
		if err != nil {
			t.Fatal(err)
		}
		if err := kr.Verify(g01); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("several paths, duplicates", func(t *testing.T) {
		kr, err := LoadKeyring(sharedtest.Dir(t, vecDir, "key-a.pub.asc"), sharedtest.Dir(t, vecDir, "key-a.sec.asc"),
			sharedtest.Dir(t, vecDir, "key-b.pub.asc"))
		if err != nil {
			t.Fatal(err)
		}
		if kr.Len() != 2 {
			t.Fatalf("Len %d, want 2", kr.Len())
		}
	})
	t.Run("legacy gpg home", func(t *testing.T) {
		home := t.TempDir()
		writeFile(t, home, "pubring.gpg", withTrustPackets(t, binA))
		writeFile(t, home, "trustdb.gpg", []byte("gpg\x03 not keys at all"))
		writeFile(t, home, "secring.gpg", []byte("not read"))
		writeFile(t, home, "random_seed", []byte("x"))
		writeFile(t, home, "gpg.conf", []byte("x"))
		if err := os.Mkdir(filepath.Join(home, "private-keys-v1.d"), 0o700); err != nil {
			t.Fatal(err)
		}
		kr, err := LoadKeyring(home)
		if err != nil {
			t.Fatal(err)
		}
		if kr.Len() != 1 || kr.Verify(g01) != nil {
			t.Fatalf("Len %d, Verify %v", kr.Len(), kr.Verify(g01))
		}
		// Extra exported keys beside it are read too.
		writeFile(t, home, "extra.asc", pubB)
		kr, err = LoadKeyring(home)
		if err != nil {
			t.Fatal(err)
		}
		if kr.Len() != 2 || kr.Verify(g05) != nil {
			t.Fatalf("Len %d, Verify %v", kr.Len(), kr.Verify(g05))
		}
	})
	t.Run("directory of exports", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "b.gpg", binB)
		writeFile(t, dir, "a.asc", pubA)
		writeFile(t, dir, "README", []byte("not a key"))
		kr, err := LoadKeyring(dir)
		if err != nil {
			t.Fatal(err)
		}
		if kr.Len() != 2 {
			t.Fatalf("Len %d", kr.Len())
		}
	})

	bad := []struct {
		name    string
		setup   func(t *testing.T) []string
		mention []string
	}{
		{"no paths", func(t *testing.T) []string { return nil }, []string{"no keyring"}},
		{"missing file", func(t *testing.T) []string {
			return []string{filepath.Join(t.TempDir(), "missing.asc")}
		}, []string{"missing.asc"}},
		{"garbage file", func(t *testing.T) []string {
			return []string{writeFile(t, t.TempDir(), "junk.gpg", []byte("hello, not OpenPGP"))}
		}, []string{"junk.gpg"}},
		{"empty file", func(t *testing.T) []string {
			return []string{writeFile(t, t.TempDir(), "empty.gpg", nil)}
		}, []string{"empty.gpg"}},
		{"armored signature, not a key", func(t *testing.T) []string {
			sig := armoredSig(t, sharedtest.Read(t, vecDir, "signed/g01-dict.sig"))
			return []string{writeFile(t, t.TempDir(), "sig.asc", sig)}
		}, []string{"sig.asc", "PGP SIGNATURE"}},
		{"corrupt armor checksum", func(t *testing.T) []string {
			bad := corruptArmor(t, pubA)
			return []string{writeFile(t, t.TempDir(), "bad.asc", bad)}
		}, []string{"bad.asc"}},
		{"bad file among good", func(t *testing.T) []string {
			dir := t.TempDir()
			return []string{sharedtest.Dir(t, vecDir, "key-a.pub.asc"), writeFile(t, dir, "bad.gpg", []byte{0x99, 0x01})}
		}, []string{"bad.gpg"}},
		{"empty directory", func(t *testing.T) []string { return []string{t.TempDir()} }, []string{"no key files"}},
		{"keybox only", func(t *testing.T) []string {
			home := t.TempDir()
			writeFile(t, home, "pubring.kbx", []byte("\x00\x00\x00\x20\x01\x01KBXf"))
			writeFile(t, home, "trustdb.gpg", []byte("x"))
			return []string{home}
		}, []string{"pubring.kbx", "gpg --homedir", "--export > keys.gpg"}},
		{"keybox beside a stale pubring.gpg", func(t *testing.T) []string {
			home := t.TempDir()
			writeFile(t, home, "pubring.kbx", []byte("\x00\x00\x00\x20\x01\x01KBXf"))
			writeFile(t, home, "pubring.gpg", binA)
			return []string{home}
		}, []string{"stale", "--export"}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			kr, err := LoadKeyring(c.setup(t)...)
			if err == nil {
				t.Fatalf("no error, %d keys", kr.Len())
			}
			for _, s := range c.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}

	t.Run("keybox plus exported keys", func(t *testing.T) {
		home := t.TempDir()
		writeFile(t, home, "pubring.kbx", []byte("\x00\x00\x00\x20\x01\x01KBXf"))
		writeFile(t, home, "keys.gpg", binA)
		kr, err := LoadKeyring(home)
		if err != nil {
			t.Fatal(err)
		}
		if kr.Len() != 1 {
			t.Fatalf("Len %d", kr.Len())
		}
	})
}

func TestNilKeyring(t *testing.T) {
	var kr *Keyring
	if kr.Len() != 0 {
		t.Fatal("nil Len")
	}
	if err := kr.Verify(readEnvelope(t, "signed/g01-dict.json")); err == nil {
		t.Fatal("nil keyring accepted a message")
	}
}

// armoredSig wraps binary signature packets in ASCII armor, as
// `gpg --armor --detach-sign` writes them.
func armoredSig(t testing.TB, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, "PGP SIGNATURE", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// corruptArmor flips one character of the base64 body of an armored block
// (the CRC-24 line then no longer matches).
func corruptArmor(t testing.TB, armored []byte) []byte {
	t.Helper()
	lines := strings.Split(string(armored), "\n")
	for i, l := range lines {
		if len(l) == 64 {
			c := byte('A')
			if l[10] == 'A' {
				c = 'B'
			}
			lines[i] = l[:10] + string(c) + l[11:]
			return []byte(strings.Join(lines, "\n"))
		}
	}
	t.Fatal("no body line found")
	return nil
}
