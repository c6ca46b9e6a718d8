package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

// x509Config writes a config file that trusts the vectors' test CA and
// signs as the named certificate for this host's short name.
func (b *bus) x509Config(t testing.TB, extra string) string {
	t.Helper()
	pki := sharedtest.Dir(t, "fedmsg-x509")
	host := fedmsg.ShortHostname()
	cfg := fmt.Sprintf(`ssldir: %s
ca_cert_location: %s
crl_location: %s
certnames:
  shell.%s: shell-app01.example.com
  bodhi.%s: bodhi-app01.example.com
  signing_relay: bodhi-app01.example.com
%s`, pki, filepath.Join(pki, "ca.crt"), filepath.Join(pki, "crl.pem"), host, host, extra)
	path := filepath.Join(b.dir, "x509.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type x509Manifest struct {
	Files []struct {
		ID              string `json:"id"`
		File            string `json:"file"`
		SigningCertname string `json:"signing_certname"`
		ProducedBy      string `json:"produced_by"`
		DerivedFrom     string `json:"derived_from"`
		Topic           string `json:"topic"`
	} `json:"files"`
	Cases []struct {
		ID        string         `json:"id"`
		File      string         `json:"file"`
		Validator string         `json:"validator"`
		Config    map[string]any `json:"config"`
		Expected  bool           `json:"expected"`
		Signer    string         `json:"signer"`
		FedmsgLog []string       `json:"fedmsg_log"`
	} `json:"cases"`
}

// Every x509 case of the manifest through `fedmsg verify`: the verdict
// real fedmsg gave, and exit 0/1 accordingly.
func TestVerifyCommandGivesFedmsgVerdicts(t *testing.T) {
	b := newBus(t)
	pki := sharedtest.Dir(t, "fedmsg-x509")
	var m x509Manifest
	if err := json.Unmarshal(sharedtest.Read(t, "fedmsg-x509", "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) < 29 {
		t.Fatalf("manifest has %d cases, want 29", len(m.Cases))
	}
	for i, c := range m.Cases {
		cfg := map[string]any{}
		for k, v := range c.Config {
			if s, ok := v.(string); ok && (k == "ca_cert_location" || k == "crl_location") {
				v = filepath.Join(pki, s)
			}
			cfg[k] = v
		}
		data, _ := json.Marshal(cfg)
		path := filepath.Join(b.dir, fmt.Sprintf("case%d.json", i))
		os.WriteFile(path, data, 0o644)
		args := []string{"verify", "--config", path, filepath.Join(pki, c.File)}
		if c.Validator == "validate_signed_by" {
			args = append(args, "--signer", c.Signer)
		}
		out, errOut, code := b.run("", args...)
		wantOut, wantCode := "valid\n", 0
		if !c.Expected {
			wantOut, wantCode = "invalid: ", 1
		}
		if !strings.HasPrefix(out, wantOut) || code != wantCode {
			t.Errorf("%s: fedmsg verify printed %q, exit %d; want %q…, exit %d (stderr %s)", c.ID, out, code, wantOut, wantCode, errOut)
		}
	}
}

// The gpg cases, with a keyring holding only key A as the manifest says.
func TestVerifyCommandGPG(t *testing.T) {
	b := newBus(t)
	dir := sharedtest.Dir(t, "fedmsg-gpg")
	var m struct {
		Cases []struct {
			ID       string         `json:"id"`
			File     string         `json:"file"`
			Config   map[string]any `json:"config"`
			Expected bool           `json:"expected"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(sharedtest.Read(t, "fedmsg-gpg", "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) < 6 {
		t.Fatalf("manifest has %d cases, want 6", len(m.Cases))
	}
	for i, c := range m.Cases {
		backends := []any{"gpg"}
		if v, ok := c.Config["crypto_validate_backends"].([]any); ok {
			backends = v
		}
		cfg := map[string]any{
			"crypto_validate_backends": backends,
			"gpg_keyring":              []string{filepath.Join(dir, "key-a.pub.asc")},
			// Never the default https CA: tests stay on this machine.
			"ca_cert_location": filepath.Join(sharedtest.Dir(t, "fedmsg-x509"), "ca.crt"),
		}
		data, _ := json.Marshal(cfg)
		path := filepath.Join(b.dir, fmt.Sprintf("gpg%d.json", i))
		os.WriteFile(path, data, 0o644)
		out, errOut, code := b.run("", "verify", "--config", path, filepath.Join(dir, c.File))
		valid := code == 0 && out == "valid\n"
		if valid != c.Expected || (code != 0 && code != 1) {
			t.Errorf("%s: fedmsg verify printed %q, exit %d (stderr %s); want valid=%v", c.ID, out, code, errOut, c.Expected)
		}
	}
}

// RSA PKCS#1 v1.5 is deterministic: `fedmsg sign` of a vector's envelope
// with the same key must give real fedmsg's published bytes exactly.
func TestSignCommandReproducesFedmsgBytes(t *testing.T) {
	b := newBus(t)
	cfgPath := b.x509Config(t, "")
	for _, id := range []string{"v01-ascii", "v02-unicode", "v04-scalars"} {
		want := sharedtest.Read(t, "fedmsg-x509", "signed", id+".json")
		env, err := message.DecodeObject(want)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"signature", "certificate", "crypto"} {
			delete(env, k)
		}
		in, _ := message.Canonical(env)
		prefix := map[string]string{"v01-ascii": "shell", "v02-unicode": "bodhi", "v04-scalars": "bodhi"}[id]
		out, errOut, code := b.run(string(in), "sign", "--config", cfgPath, "--cert-prefix", prefix)
		if code != 0 {
			t.Fatalf("%s: sign exited %d: %s", id, code, errOut)
		}
		if got := strings.TrimSuffix(out, "\n"); got != string(want) {
			t.Errorf("%s: fedmsg sign differs from real fedmsg:\n got %s\nwant %s", id, got, want)
		}
	}
}

// logger with sign_messages through the relay to tail --validate, and the
// signed frame shaped like the real fedmsg-logger's.
func TestSignedLoggerToValidatingTail(t *testing.T) {
	b := newBus(t)
	cfgPath := b.x509Config(t, "sign_messages: true\n")
	b.env = append(b.env, "FEDMSG_CONFIG="+cfgPath)
	b.startRelay()
	tail := b.startTail("--validate", "--json")

	in := `{"a": 1, "repo": "fedmsg", "authors": ["ralph"]}`
	if _, errOut, code := b.run(in, "logger", "--json-input", "--modname", "git", "--topic", "repo.update"); code != 0 {
		t.Fatalf("logger: %d %s", code, errOut)
	}
	got := []byte(tail.nextLine(t))
	_, want := wire(t, "logger-signed-json")
	g, _ := message.DecodeObject(got)
	w, _ := message.DecodeObject(want)
	if g["certificate"] != w["certificate"] {
		t.Errorf("certificate field differs from fedmsg-logger's (same cert, same encoding expected)")
	}
	for _, k := range []string{"crypto", "i", "topic"} {
		if fmt.Sprint(g[k]) != fmt.Sprint(w[k]) {
			t.Errorf("%s = %v, want %v", k, g[k], w[k])
		}
	}
	if sig, _ := g["signature"].(string); len(sig) != len(w["signature"].(string)) || !strings.HasSuffix(sig, "\n") {
		t.Errorf("signature not shaped like fedmsg's (344 base64 chars in 76-column lines + final newline): %q", sig)
	}

	// An unsigned message is dropped by the validating tail, with a reason.
	b.env = append(b.env, "FEDMSG_SIGN_MESSAGES=false")
	if _, errOut, code := b.run("unsigned\n", "logger", "--modname", "e2e", "--topic", "x"); code != 0 {
		t.Fatalf("logger: %d %s", code, errOut)
	}
	tail.waitStderr(t, "dropped invalid message")
	if !strings.Contains(tail.stderr.String(), "unsigned") {
		t.Errorf("the warning does not say why:\n%s", tail.stderr.String())
	}
}

// The signing relay signs what plain publishers send, and keeps order.
func TestSigningRelay(t *testing.T) {
	b := newBus(t)
	cfgPath := b.x509Config(t, "")
	b.env = append(b.env, "FEDMSG_CONFIG="+cfgPath)
	relay := b.start("signing-relay")
	relay.waitStderr(t, "signing relay started")
	tail := b.startTail("--json", "--topic", "org.fedoraproject.dev.e2e.")
	var lines bytes.Buffer
	for i := range 20 {
		fmt.Fprintf(&lines, "line %d\n", i)
	}
	if _, errOut, code := b.run(lines.String(), "logger", "--modname", "e2e", "--topic", "signed"); code != 0 {
		t.Fatalf("logger: %d %s", code, errOut)
	}
	var out bytes.Buffer
	for i := range 20 {
		line := tail.nextLine(t)
		if !strings.Contains(line, fmt.Sprintf(`"log":"line %d"`, i)) {
			t.Fatalf("message %d out of order: %s", i, line)
		}
		out.WriteString(line + "\n")
	}
	// Every one validates, signed by the signing relay's certificate.
	check := b.x509Config(t, "")
	res, errOut, code := b.run(out.String(), "verify", "--config", check, "--signer", "bodhi-app01.example.com")
	if code != 0 || strings.Count(res, "valid\n") != 20 {
		t.Errorf("signing relay output does not validate: exit %d\n%s%s", code, res, errOut)
	}
}
