package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

// announceTopic is where fedmsg-announce publishes (spec §13: modname
// announce, topic announcement) with the bus's prefix and environment.
const announceTopic = "org.fedoraproject.dev.announce.announcement"

// cutTailLine splits tail's default "<frame topic> <body>" line and
// decodes the body.
func cutTailLine(t *testing.T, line string) (string, map[string]any) {
	t.Helper()
	topic, body := splitTailLine(t, line)
	env, err := message.DecodeObject(body)
	if err != nil {
		t.Fatalf("body does not decode: %v: %s", err, body)
	}
	return topic, env
}

// wantMsg is the canonical JSON of the body an announcement must carry.
func wantMsg(t *testing.T, text string, link any) string {
	t.Helper()
	b, err := message.Canonical(map[string]any{"message": text, "link": link})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func msgOf(t *testing.T, env map[string]any) string {
	t.Helper()
	b, err := message.Canonical(env["msg"])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fedmsg announce, and its old name fedmsg-announce, through a relay: the
// stdin lines stripped and joined with "\n", --link or null, on
// <prefix>.<env>.announce.announcement in frame 0 and the envelope.
func TestAnnounceEnvelope(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	tail := b.startTail()

	stdin := "  The build system is back.  \n\tSee the link.\n\n"
	if _, errOut, code := b.run(stdin, "announce", "--link", "https://status.example.org/1"); code != 0 {
		t.Fatalf("announce exited %d: %s", code, errOut)
	}
	topic, env := cutTailLine(t, tail.nextLine(t))
	if topic != announceTopic || env["topic"] != announceTopic {
		t.Errorf("frame topic %q, envelope topic %v; want %q for both", topic, env["topic"], announceTopic)
	}
	if got, want := msgOf(t, env), wantMsg(t, "The build system is back.\nSee the link.\n", "https://status.example.org/1"); got != want {
		t.Errorf("msg = %s\nwant %s", got, want)
	}
	if _, ok := env["signature"]; ok {
		t.Errorf("signed without sign_messages: %v", env)
	}

	// Without --link the key is there, null; called by its old name.
	link := filepath.Join(b.dir, "fedmsg-announce")
	if err := os.Symlink(fedmsgBin, link); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(link)
	c.Dir, c.Env = b.dir, b.env
	c.Stdin = strings.NewReader("single line without newline")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("fedmsg-announce: %v: %s", err, out)
	}
	topic, env = cutTailLine(t, tail.nextLine(t))
	if topic != announceTopic {
		t.Errorf("fedmsg-announce published on %q", topic)
	}
	msg, _ := env["msg"].(map[string]any)
	if v, ok := msg["link"]; !ok || v != nil {
		t.Errorf(`msg["link"] = %v (present %v), want null`, v, ok)
	}
	if got, want := msgOf(t, env), wantMsg(t, "single line without newline", nil); got != want {
		t.Errorf("msg = %s\nwant %s", got, want)
	}
}

// With sign_messages, announce signs with certnames["announce.<host>"]
// even when cert_prefix says otherwise, so routing_policy can pin
// announcements to that certificate.
func TestAnnounceSignsWithTheAnnounceCertificate(t *testing.T) {
	b := newBus(t)
	pki := sharedtest.Dir(t, "fedmsg-x509")
	host := fedmsg.ShortHostname()
	cfg := fmt.Sprintf(`ssldir: %s
ca_cert_location: %s
crl_location: %s
sign_messages: true
cert_prefix: shell
certnames:
  shell.%s: shell-app01.example.com
  announce.%s: bodhi-app01.example.com
`, pki, filepath.Join(pki, "ca.crt"), filepath.Join(pki, "crl.pem"), host, host)
	cfgPath := filepath.Join(b.dir, "announce.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	b.env = append(b.env, "FEDMSG_CONFIG="+cfgPath)
	b.startRelay()
	tail := b.startTail("--validate", "--json")

	if _, errOut, code := b.run("signed news\n", "announce"); code != 0 {
		t.Fatalf("announce exited %d: %s", code, errOut)
	}
	body := tail.nextLine(t)
	// Valid, and signed by the announce certificate, not the shell one.
	if out, errOut, code := b.run(body+"\n", "verify", "--signer", "bodhi-app01.example.com"); code != 0 {
		t.Errorf("verify --signer bodhi-app01.example.com: exit %d: %s%s", code, out, errOut)
	}
	if out, _, code := b.run(body+"\n", "verify", "--signer", "shell-app01.example.com"); code == 0 {
		t.Errorf("announcement also verifies as signed by the shell certificate: %s", out)
	}
	env, err := message.DecodeObject([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := msgOf(t, env), wantMsg(t, "signed news", nil); !bytes.Equal([]byte(got), []byte(want)) {
		t.Errorf("msg = %s\nwant %s", got, want)
	}
}
