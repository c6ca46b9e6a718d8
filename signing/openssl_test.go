package signing

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenSSLVerifiesOurSignatures is an independent check of the signer:
// for every published vector, sign the unsigned envelope with our signer,
// then have the openssl command verify the raw signature over the recorded
// signing input (bytes real fedmsg produced, not ours) with the public key
// openssl itself extracts from the certificate field we wrote. openssl also
// signs the input with the same key, and the two signatures must be equal.
// A missing openssl binary is a failure, not a skip.
func TestOpenSSLVerifiesOurSignatures(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("the openssl command is required for this test (Debian package openssl): %v", err)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(openssl, args...).CombinedOutput()
		return string(out), err
	}
	m := loadManifest(t)
	dir := t.TempDir()
	n := 0
	for _, f := range m.Files {
		if f.SigningInputFile == "" {
			continue
		}
		n++
		env := vectorEnv(t, f.File)
		delete(env, "signature")
		delete(env, "certificate")
		delete(env, "crypto")
		signed, err := signerFor(t, f.SigningCertname).Sign(env)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := decodeBase64(nil, signed["signature"].(string))
		if err != nil {
			t.Fatal(err)
		}
		certPEM, err := decodeBase64(nil, signed["certificate"].(string))
		if err != nil {
			t.Fatal(err)
		}
		sigPath := writeTemp(t, dir, f.ID+".sig", sig)
		certPath := writeTemp(t, dir, f.ID+".crt", certPEM)
		inputPath := filepath.Join(x509Dir(t), filepath.FromSlash(f.SigningInputFile))
		pubPath := filepath.Join(dir, f.ID+".pub")

		if out, err := run("x509", "-in", certPath, "-noout", "-pubkey", "-out", pubPath); err != nil {
			t.Fatalf("%s: openssl x509 -pubkey: %v\n%s", f.ID, err, out)
		}
		out, err := run("dgst", "-sha1", "-verify", pubPath, "-signature", sigPath, inputPath)
		if err != nil || strings.TrimSpace(out) != "Verified OK" {
			t.Errorf("%s: openssl dgst -verify: %q (%v)", f.ID, out, err)
		}
		// A changed input must fail, or the check above proves nothing.
		input, _ := os.ReadFile(inputPath)
		tampered := writeTemp(t, dir, f.ID+".tampered", append(bytes.Clone(input), ' '))
		if out, err := run("dgst", "-sha1", "-verify", pubPath, "-signature", sigPath, tampered); err == nil || !strings.Contains(out, "Verification failure") {
			t.Errorf("%s: openssl accepted a tampered input: %q", f.ID, out)
		}
		// openssl's own signature with the key equals ours.
		keyPath := filepath.Join(x509Dir(t), f.SigningCertname+".key")
		osslSig := filepath.Join(dir, f.ID+".osslsig")
		if out, err := run("dgst", "-sha1", "-sign", keyPath, "-out", osslSig, inputPath); err != nil {
			t.Fatalf("%s: openssl dgst -sign: %v\n%s", f.ID, err, out)
		}
		theirs, _ := os.ReadFile(osslSig)
		if !bytes.Equal(theirs, sig) {
			t.Errorf("%s: openssl's signature differs from ours", f.ID)
		}
		// And the certificate we embed is the file's certificate.
		want, _ := run("x509", "-in", filepath.Join(x509Dir(t), f.SigningCertname+".crt"), "-noout", "-fingerprint", "-sha256")
		got, _ := run("x509", "-in", certPath, "-noout", "-fingerprint", "-sha256")
		if want == "" || got != want {
			t.Errorf("%s: embedded certificate fingerprint %q, file's %q", f.ID, got, want)
		}
	}
	if n != 9 {
		t.Errorf("%d vectors checked, want 9", n)
	}
}
