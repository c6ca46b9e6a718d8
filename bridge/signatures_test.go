package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/transport"
)

type vectorCase struct {
	ID       string `json:"id"`
	File     string `json:"file"`
	Expected bool   `json:"expected"`
}

type vectorFile struct {
	ID    string `json:"id"`
	File  string `json:"file"`
	Topic string `json:"topic"`
}

// vectors returns the manifest's envelopes with real fedmsg's verdict
// under the default config (the CA and the CRL), the "<id>/default" case.
func vectors(t *testing.T) (files []vectorFile, valid map[string]bool) {
	t.Helper()
	var m struct {
		Files []vectorFile `json:"files"`
		Cases []vectorCase `json:"cases"`
	}
	if err := json.Unmarshal(sharedtest.Read(t, "fedmsg-x509", "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	valid = map[string]bool{}
	for _, c := range m.Cases {
		for _, f := range m.Files {
			if c.ID == f.ID+"/default" {
				valid[f.ID] = c.Expected
			}
		}
	}
	for _, f := range m.Files {
		if _, ok := valid[f.ID]; !ok {
			t.Fatalf("vector %s has no default case", f.ID)
		}
	}
	return m.Files, valid
}

func newValidator(t *testing.T) *signing.Validator {
	t.Helper()
	dir := sharedtest.Dir(t, "fedmsg-x509")
	crl := filepath.Join(dir, "crl.pem")
	v, err := signing.NewValidator(signing.Options{CACertLocation: filepath.Join(dir, "ca.crt"), CRLLocation: &crl})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The reason each rejected vector is counted under; signing's own tests
// pin the sentinel, this pins the label an operator sees.
var wantReason = map[string]string{
	"n01-rogue":           "signature_untrusted",
	"n02-revoked":         "signature_revoked",
	"t01-tampered-body":   "signature_bad",
	"t02-tampered-topic":  "signature_bad",
	"t03-timestamp-float": "signature_bad",
	"t04-no-crypto-field": "signature_bad",
	"t05-crypto-gpg":      "signature_backend_disallowed",
	"t08-unsigned":        "signature_unsigned",
	"t09-swapped-cert":    "signature_bad",
	"t10-seq-id-added":    "signature_bad",
}

// require-valid passes exactly the vectors real fedmsg accepts, byte for
// byte, and drops the others for good (no redelivery loop on an
// at-least-once route), counted by reason.
func TestRequireValidWithFedmsgVectors(t *testing.T) {
	noLeak(t)
	files, valid := vectors(t)
	src, dst := newMemory(t), newMemory(t)
	b, err := New([]RouteConfig{{Name: "amq-to-bus", From: "amq", To: "bus", Signatures: RequireValid, Delivery: AtLeastOnce}},
		map[string]transport.Transport{"amq": src, "bus": dst},
		// The vectors are variants of a few messages and share msg_ids:
		// deduplication would (rightly) stop the second valid copy.
		Options{Validator: newValidator(t), DedupWindow: -1})
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	out := subscribe(t, dst)

	wantDropped := map[string]uint64{}
	var passed []vectorFile
	for _, f := range files {
		publish(t, src, f.Topic, sharedtest.Read(t, "fedmsg-x509", f.File))
		if valid[f.ID] {
			passed = append(passed, f)
			continue
		}
		r, ok := wantReason[f.ID]
		if !ok {
			t.Fatalf("rejected vector %s has no expected reason", f.ID)
		}
		wantDropped[r]++
	}
	for _, f := range passed {
		got := receive(t, out)
		if want := sharedtest.Read(t, "fedmsg-x509", f.File); !bytes.Equal(got.Body, want) {
			t.Errorf("%s: body changed or out of order (got topic %s)", f.ID, got.Topic)
		}
	}
	s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Forwarded+s.DroppedTotal() == uint64(len(files)) })
	if s.Forwarded != uint64(len(passed)) {
		t.Errorf("forwarded %d, want %d", s.Forwarded, len(passed))
	}
	if len(s.Dropped) != len(wantDropped) {
		t.Errorf("dropped %v, want %v", s.Dropped, wantDropped)
	}
	for r, n := range wantDropped {
		if s.Dropped[r] != n {
			t.Errorf("dropped[%s] = %d, want %d (all: %v)", r, s.Dropped[r], n, s.Dropped)
		}
	}
	if s.Retried != 0 {
		t.Errorf("%d retries: invalid messages must not be redelivered", s.Retried)
	}
	nothingMore(t, out)
}

// resign replaces whatever credentials a message carries with the
// bridge's: the output validates and names the bridge's certificate, the
// rest of the envelope is unchanged. A body that is not an envelope is
// dropped, not forwarded unsigned.
func TestResignOutputValidates(t *testing.T) {
	noLeak(t)
	dir := sharedtest.Dir(t, "fedmsg-x509")
	signer, err := signing.NewX509Signer(filepath.Join(dir, "shell-app01.example.com.crt"), filepath.Join(dir, "shell-app01.example.com.key"))
	if err != nil {
		t.Fatal(err)
	}
	v := newValidator(t)
	src, dst := newMemory(t), newMemory(t)
	b, err := New([]RouteConfig{{Name: "resign", From: "a", To: "b", Signatures: Resign}},
		map[string]transport.Transport{"a": src, "b": dst}, Options{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	out := subscribe(t, dst)

	// Unsigned, signed by another (bodhi) cert, and tampered: all come out
	// signed by the bridge.
	inputs := []string{"signed/t08-unsigned.json", "signed/v02-unicode.json", "signed/t01-tampered-body.json"}
	for _, f := range inputs {
		publish(t, src, "org.fedoraproject.dev.x", sharedtest.Read(t, "fedmsg-x509", f))
	}
	publish(t, src, "org.fedoraproject.dev.x", []byte("not an envelope"))
	for _, f := range inputs {
		got := receive(t, out)
		if err := v.ValidateSignedBy(context.Background(), mustDecode(t, got.Body), "shell-app01.example.com"); err != nil {
			t.Errorf("%s: resigned message does not validate as the bridge's: %v", f, err)
		}
		in := signing.StripCredentials(mustDecode(t, sharedtest.Read(t, "fedmsg-x509", f)))
		outEnv := signing.StripCredentials(mustDecode(t, got.Body))
		delete(in, message.FieldCrypto)
		delete(outEnv, message.FieldCrypto)
		a, _ := message.Canonical(in)
		c, _ := message.Canonical(outEnv)
		if !bytes.Equal(a, c) {
			t.Errorf("%s: resign changed the envelope:\n in %s\nout %s", f, a, c)
		}
	}
	s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Forwarded+s.DroppedTotal() == 4 })
	if s.Forwarded != 3 || s.Dropped["resign_failed"] != 1 {
		t.Errorf("stats %+v", s)
	}
	nothingMore(t, out)
}

func mustDecode(t *testing.T, body []byte) map[string]any {
	t.Helper()
	env, err := message.DecodeObject(body)
	if err != nil {
		t.Fatal(err)
	}
	return env
}
