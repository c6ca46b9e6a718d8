package message

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
)

// x509Manifest is the part of fedmsg-x509/manifest.json these tests use.
type x509Manifest struct {
	Files []struct {
		ID               string `json:"id"`
		File             string `json:"file"`
		ProducedBy       string `json:"produced_by"`
		DerivedFrom      string `json:"derived_from"`
		SigningInputFile string `json:"signing_input_file"`
	} `json:"files"`
}

func loadX509Manifest(t *testing.T) x509Manifest {
	t.Helper()
	var m x509Manifest
	if err := json.Unmarshal(sharedtest.Read(t, "fedmsg-x509", "manifest.json"), &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(m.Files) == 0 {
		t.Fatal("manifest.json lists no files")
	}
	return m
}

// TestSigningInputs checks the bytes fedmsg signed: for every envelope that
// has a .signing-input, the canonical JSON of the envelope without its
// credentials must be those bytes exactly.
func TestSigningInputs(t *testing.T) {
	dir := sharedtest.Dir(t, "fedmsg-x509", "signed")
	inputs, err := filepath.Glob(filepath.Join(dir, "*.signing-input"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 9 {
		t.Fatalf("found only %d .signing-input files in %s", len(inputs), dir)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".signing-input")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			frame, err := os.ReadFile(filepath.Join(dir, name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			env, err := DecodeObject(frame)
			if err != nil {
				t.Fatalf("DecodeObject: %v", err)
			}
			if _, ok := env["signature"]; !ok {
				t.Fatal("vector has no signature")
			}
			got, err := Canonical(WithoutCredentials(env))
			if err != nil {
				t.Fatalf("Canonical: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("signing input mismatch\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

// TestX509VectorsRecanonicalise: the published vectors (produced_by) are the
// frame fedmsg sent, i.e. canonical JSON with the credentials, so
// canonicalising them must be the identity. The README says the derived
// vectors were re-serialised with fedmsg.encoding.dumps too, except t07,
// which was written by plain json.dumps from v02-unicode's envelope.
func TestX509VectorsRecanonicalise(t *testing.T) {
	m := loadX509Manifest(t)
	base := sharedtest.Dir(t, "fedmsg-x509")
	published := 0
	for _, f := range m.Files {
		t.Run(f.ID, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(base, f.File))
			if err != nil {
				t.Fatal(err)
			}
			got, err := CanonicalizeBytes(data)
			if err != nil {
				t.Fatalf("CanonicalizeBytes: %v", err)
			}
			want := data
			switch {
			case f.ProducedBy != "":
				published++
			case f.ID == "t07-reserialized":
				if bytes.Equal(got, data) {
					t.Fatal("t07 is supposed to be non-canonical json.dumps output")
				}
				if want, err = os.ReadFile(filepath.Join(base, f.DerivedFrom)); err != nil {
					t.Fatal(err)
				}
			case f.DerivedFrom == "":
				t.Fatalf("%s: neither produced_by nor derived_from", f.ID)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("re-canonicalised %s differs\n got: %s\nwant: %s", f.File, got, want)
			}
		})
	}
	if published < 9 {
		t.Errorf("only %d published vectors in the manifest", published)
	}
}

// TestAllSignedFilesDecode: every file in signed/ (listed or not) must at
// least be an object we can read.
func TestAllSignedFilesDecode(t *testing.T) {
	dir := sharedtest.Dir(t, "fedmsg-x509", "signed")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in %s (%v)", dir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		env, err := DecodeObject(data)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if _, ok := env["topic"].(string); !ok {
			t.Errorf("%s: no string topic", filepath.Base(f))
		}
	}
}

// TestT03FloatTimestamp: datagrepper's float timestamp must stay a float
// (N.0) so that the signing input differs from the original integer one.
func TestT03FloatTimestamp(t *testing.T) {
	env, err := DecodeObject(sharedtest.Read(t, "fedmsg-x509", "signed", "t03-timestamp-float.json"))
	if err != nil {
		t.Fatal(err)
	}
	ts, ok := env["timestamp"].(Number)
	if !ok || !ts.IsFloat() {
		t.Fatalf("timestamp = %#v, want a float Number", env["timestamp"])
	}
	orig := sharedtest.Read(t, "fedmsg-x509", "signed", "v01-ascii.signing-input")
	got, err := Canonical(WithoutCredentials(env))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, orig) {
		t.Fatal("float timestamp canonicalised like the integer one")
	}
	if !bytes.Contains(got, []byte(`"timestamp":`+string(ts)+`,`)) || !strings.HasSuffix(string(ts), ".0") {
		t.Errorf("timestamp %s not kept as N.0 in %s", ts, got)
	}
}

func TestWireFrames(t *testing.T) {
	dir := sharedtest.Dir(t, "fedmsg-wire")
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, name := range []string{"logger-unsigned", "logger-signed-json", "logger-unicode-topic", "relay-in"} {
		t.Run(name, func(t *testing.T) {
			frame := read(name + ".frame1")
			got, err := CanonicalizeBytes(frame)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, frame) {
				t.Errorf("not a fixpoint\n got: %s\nwant: %s", got, frame)
			}
			// frame0 is the raw UTF-8 of the envelope's topic field.
			env, err := DecodeObject(frame)
			if err != nil {
				t.Fatal(err)
			}
			if topic := read(name + ".frame0"); env["topic"] != string(topic) {
				t.Errorf("topic field %q != frame0 %q", env["topic"], topic)
			}
		})
	}
	t.Run("relay-out", func(t *testing.T) {
		out := read("relay-out.frame1")
		got, err := CanonicalizeBytes(out)
		if err != nil {
			t.Fatal(err)
		}
		if want := read("relay-in.frame1"); !bytes.Equal(got, want) {
			t.Errorf("relay-out does not canonicalise to relay-in\n got: %s\nwant: %s", got, want)
		}
	})
}

// TestNewEnvelopeMatchesLogger builds what fedmsg-logger --message
// "Hello, world." published and compares it with the capture, after
// overwriting the three values that cannot match (msg_id, timestamp,
// username) with the same placeholders in both.
func TestNewEnvelopeMatchesLogger(t *testing.T) {
	frame := sharedtest.Read(t, "fedmsg-wire", "logger-unsigned.frame1")
	want, err := DecodeObject(frame)
	if err != nil {
		t.Fatal(err)
	}
	topic := Topic("org.fedoraproject", "dev", "logger", "log")
	env := NewEnvelope(topic, map[string]any{"log": "Hello, world."}, 1, "fedmsg", time.Now())
	for _, m := range []map[string]any{want, env} {
		if _, ok := m["msg_id"]; !ok {
			t.Fatalf("no msg_id in %v", m)
		}
		m["msg_id"] = "MSGID"
		m["timestamp"] = Number("1")
		m["username"] = "USER"
	}
	a, err := Canonical(env)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Canonical(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("built envelope differs from the capture\n got: %s\nwant: %s", a, b)
	}
}
