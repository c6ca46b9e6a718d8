package test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

func wire(t testing.TB, name string) (frame0, frame1 []byte) {
	return sharedtest.Read(t, "fedmsg-wire", name+".frame0"), sharedtest.Read(t, "fedmsg-wire", name+".frame1")
}

// splitTailLine splits tail's default output "<topic> <body>".
func splitTailLine(t testing.TB, line string) (string, []byte) {
	t.Helper()
	topic, body, ok := strings.Cut(line, " ")
	if !ok {
		t.Fatalf("tail line is not '<topic> <body>': %q", line)
	}
	return topic, []byte(body)
}

func TestLoggerThroughRelayToTailMatchesPythonFedmsg(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	tail := b.startTail()

	t.Run("stdin line", func(t *testing.T) {
		frame0, frame1 := wire(t, "logger-unsigned")
		if _, errOut, code := b.run("Hello, world.\n", "logger"); code != 0 {
			t.Fatalf("logger exited %d: %s", code, errOut)
		}
		topic, body := splitTailLine(t, tail.nextLine(t))
		if topic != string(frame0) {
			t.Errorf("topic %q, want %q", topic, frame0)
		}
		sameFieldsAs(t, body, frame1)
	})

	t.Run("unicode topic", func(t *testing.T) {
		frame0, frame1 := wire(t, "logger-unicode-topic")
		if _, errOut, code := b.run("Grüße ☃\n", "logger", "--modname", "wiki", "--topic", "café.ümläut"); code != 0 {
			t.Fatalf("logger exited %d: %s", code, errOut)
		}
		topic, body := splitTailLine(t, tail.nextLine(t))
		if topic != string(frame0) {
			t.Errorf("frame 0 %q, want the raw UTF-8 %q", topic, frame0)
		}
		sameFieldsAs(t, body, frame1)
	})

	t.Run("json input", func(t *testing.T) {
		_, signed := wire(t, "logger-signed-json")
		// sign_messages is off by default: compare with the envelope unsigned.
		env, err := message.DecodeObject(signed)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"signature", "certificate", "crypto"} {
			delete(env, k)
		}
		want, _ := message.Canonical(env)
		in := "{\"a\": 1,\n \"repo\": \"fedmsg\",\n \"authors\": [\"ralph\"]}\n"
		if _, errOut, code := b.run(in, "logger", "--json-input", "--modname", "git", "--topic", "repo.update"); code != 0 {
			t.Fatalf("logger exited %d: %s", code, errOut)
		}
		_, body := splitTailLine(t, tail.nextLine(t))
		sameFieldsAs(t, body, want)
	})

	t.Run("several lines keep order and count", func(t *testing.T) {
		if _, errOut, code := b.run("one\n\n  three  \n", "logger"); code != 0 {
			t.Fatalf("logger exited %d: %s", code, errOut)
		}
		for i, want := range []string{`"log":"one"`, `"log":""`, `"log":"three"`} {
			_, body := splitTailLine(t, tail.nextLine(t))
			if !bytes.Contains(body, []byte(want)) || !bytes.Contains(body, []byte(`"i":`+string(rune('1'+i))+`,`)) {
				t.Errorf("message %d: %s, want %s with i=%d", i, body, want, i+1)
			}
		}
	})
}

func TestTailJSONPrintsFrameOneVerbatim(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	tail := b.startTail("--json", "--topic", "org.fedoraproject.dev.e2e.")
	if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "real", "--message", "x"); code != 0 {
		t.Fatalf("logger exited %d: %s", code, errOut)
	}
	line := tail.nextLine(t)
	env, err := message.DecodeObject([]byte(line))
	if err != nil {
		t.Fatalf("--json line is not a JSON object: %v: %s", err, line)
	}
	canon, _ := message.Canonical(env)
	if string(canon) != line {
		t.Errorf("--json changed the body:\n got %s\nwant %s", line, canon)
	}
}

// rawSockets gives the test a plain ZeroMQ PUB into the relay and SUB out
// of it, to send what our own tools never would.
func rawSockets(t testing.TB, b *bus) (pub, sub *zmq4.Socket) {
	zctx, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ = zctx.NewSocket(zmq4.PUB)
	sub, _ = zctx.NewSocket(zmq4.SUB)
	t.Cleanup(func() { pub.Close(); sub.Close(); zctx.Term() })
	pub.SetLinger(0)
	sub.SetLinger(0)
	sub.SetSubscribe("")
	if err := pub.Connect(b.inbound); err != nil {
		t.Fatal(err)
	}
	if err := sub.Connect(b.outbound); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		pub.SendMessage("probe", "{}")
		sub.SetRcvtimeo(100 * time.Millisecond)
		if frames, err := sub.RecvMessageBytes(0); err == nil && string(frames[0]) == "probe" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no probe came through the relay within 20s")
		}
	}
	for { // drain later probes
		if _, err := sub.RecvMessageBytes(0); err != nil {
			break
		}
	}
	sub.SetRcvtimeo(15 * time.Second)
	return pub, sub
}

func TestRelayDropsBadFramesAndForwardsPythonFramesVerbatim(t *testing.T) {
	b := newBus(t)
	relay := b.startRelay()
	pub, sub := rawSockets(t, b)

	for _, frames := range [][]any{
		{"only-one-frame"},
		{"org.fedoraproject.dev.x", `{"a":1}`, "third"},
		{[]byte("org.fedoraproject.dev.\xc3\x28"), `{"a":1}`},
		{"org.fedoraproject.dev.x", `"a string"`},
		{"org.fedoraproject.dev.x", `{"unterminated":`},
		{"org.fedoraproject.dev.x", []byte{0xff, 0xfe, '{', '}'}},
		{"org.fedoraproject.dev.x", `{"big":"` + strings.Repeat("x", 5<<20) + `"}`},
	} {
		if _, err := pub.SendMessage(frames...); err != nil {
			t.Fatal(err)
		}
	}
	frame0, frame1 := wire(t, "relay-in")
	if _, err := pub.SendMessage(frame0, frame1); err != nil {
		t.Fatal(err)
	}
	got, err := sub.RecvMessageBytes(0)
	if err != nil {
		t.Fatalf("the good message after the bad ones never arrived: %v", err)
	}
	if len(got) != 2 || !bytes.Equal(got[0], frame0) || !bytes.Equal(got[1], frame1) {
		t.Fatalf("relay changed the frames:\n got %q\nwant %q %q", got, frame0, frame1)
	}
	// Python's relay re-serialises (relay-out); ours forwards bytes, and the
	// two are the same message once canonicalised.
	_, pyOut := wire(t, "relay-out")
	a, _ := message.CanonicalizeBytes(pyOut)
	if !bytes.Equal(a, got[1]) {
		t.Errorf("canonical form of Python's relay output differs from what we forwarded")
	}
	if code := relay.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("relay exited %d on SIGTERM, want 0", code)
	}
	if !strings.Contains(relay.stderr.String(), "dropped=7") || !strings.Contains(relay.stderr.String(), "oversize:1") {
		t.Errorf("relay did not report the 7 drops on exit:\n%s", relay.stderr.String())
	}
}

func TestSignalsExitCleanly(t *testing.T) {
	b := newBus(t)
	relay := b.startRelay()
	tail := b.startTail()
	// A logger reading a stdin that never ends.
	logger := b.command("logger")
	stdin, err := logger.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := logger.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdin.Write([]byte("first line\n"))
	if l := tail.nextLine(t); !strings.Contains(l, "first line") {
		t.Fatalf("tail got %q", l)
	}
	logger.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- logger.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("logger on SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		logger.Process.Kill()
		t.Fatal("logger blocked on stdin ignored SIGTERM")
	}
	if code := tail.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("tail exited %d on SIGINT, want 0", code)
	}
	if code := relay.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("relay exited %d on SIGINT, want 0", code)
	}
}

func TestTailCountExits(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	tail := b.start("tail", "--count", "2")
	done := make(chan error, 1)
	go func() { done <- tail.cmd.Wait() }()
	// Publish until tail has had its two (its subscription settles at an
	// unknown moment), then it must exit by itself.
	deadline := time.After(20 * time.Second)
	for {
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "real", "--message", "x"); code != 0 {
			t.Fatalf("logger: %d %s", code, errOut)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tail --count 2: %v", err)
			}
			n := 0
			for range tail.lines {
				n++
			}
			if n != 2 {
				t.Fatalf("tail --count 2 printed %d lines", n)
			}
			return
		case <-deadline:
			t.Fatal("tail --count 2 did not exit")
		default:
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	b := newBus(t)
	badCfg := filepath.Join(b.dir, "bad.yaml")
	os.WriteFile(badCfg, []byte("topic_prefx: org.example\n"), 0o644)
	wrongType := filepath.Join(b.dir, "wrong.yaml")
	os.WriteFile(wrongType, []byte("high_water_mark: lots\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want []string // in stderr
	}{
		{[]string{}, []string{"a command is required"}},
		{[]string{"bogus"}, []string{"unknown command"}},
		{[]string{"tail", "--nope"}, []string{"--nope"}},
		{[]string{"tail", "--include", "("}, []string{"--include"}},
		{[]string{"relay", "extra-arg"}, []string{"extra-arg"}},
		{[]string{"relay", "--config", filepath.Join(b.dir, "missing.yaml")}, []string{"missing.yaml"}},
		{[]string{"config", "--config", badCfg}, []string{"topic_prefx", badCfg}},
		{[]string{"config", "--config", wrongType}, []string{"high_water_mark", wrongType}},
		{[]string{"logger", "--json-input", "--message", "{not json"}, []string{"--message"}},
	} {
		_, errOut, code := b.run("", tc.args...)
		if code != 2 {
			t.Errorf("fedmsg %v exited %d, want 2; stderr: %s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("fedmsg %v: stderr %q does not name %q", tc.args, errOut, w)
			}
		}
	}
}

// TestHelpForEveryCommand: every command the bare `fedmsg` lists has
// help, and every flag of it says what it does.
func TestHelpForEveryCommand(t *testing.T) {
	b := newBus(t)
	_, errOut, code := b.run("")
	_, list, found := strings.Cut(strings.SplitN(errOut, "\n", 2)[0], "a command is required: one of ")
	if code != 2 || !found {
		t.Fatalf("bare fedmsg exited %d: %q, want 2 and the list of commands", code, errOut)
	}
	commands := strings.Split(list, ", ")
	if len(commands) < 16 {
		t.Fatalf("bare fedmsg lists %d commands (%s), want at least 16", len(commands), list)
	}
	// A flag line: "  -c, --flag type   what it does".
	flagLine := regexp.MustCompile(`^\s+(-\w, )?--[\w.-]+(\[=[^\]]*\])?( \S+)?\s{2,}\S`)
	for _, cmd := range append([][]string{{"--help"}}, func() (all [][]string) {
		for _, c := range commands {
			all = append(all, []string{c, "--help"})
		}
		return
	}()...) {
		out, errOut, code := b.run("", cmd...)
		if code != 0 {
			t.Errorf("fedmsg %v exited %d: %s", cmd, code, errOut)
		}
		if !strings.Contains(out, "Usage:") || !strings.Contains(out, "--config") {
			t.Errorf("fedmsg %v: help lacks usage or --config:\n%s", cmd, out)
		}
		inFlags := false
		for _, line := range strings.Split(out, "\n") {
			switch {
			case strings.HasSuffix(line, "Flags:"):
				inFlags = true
				continue
			case strings.TrimSpace(line) == "":
				inFlags = false
			}
			if inFlags && strings.HasPrefix(strings.TrimSpace(line), "-") && !flagLine.MatchString(line) {
				t.Errorf("fedmsg %v: a flag without help: %q", cmd, line)
			}
		}
	}
}

func TestOldCommandNamesByArgv0(t *testing.T) {
	b := newBus(t)
	link := filepath.Join(b.dir, "fedmsg-config")
	if err := os.Symlink(fedmsgBin, link); err != nil {
		t.Fatal(err)
	}
	c := b.command("--query", "relay_inbound")
	c.Path, c.Args[0] = link, link
	out, err := c.Output()
	if err != nil {
		t.Fatalf("fedmsg-config --query: %v", err)
	}
	if strings.TrimSpace(string(out)) != b.inbound {
		t.Errorf("fedmsg-config --query relay_inbound = %q, want %q", out, b.inbound)
	}
}

func TestConfigCommand(t *testing.T) {
	b := newBus(t)
	b.env = append(b.env, "FEDMSG_STOMP_PASS=hunter2", "FEDMSG_AMQP_URL=[amqp://bridge:s3cret@127.0.0.1:5672/]")
	out, errOut, code := b.run("", "config")
	if code != 0 {
		t.Fatalf("config exited %d: %s", code, errOut)
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "s3cret") {
		t.Errorf("fedmsg config printed a secret:\n%s", out)
	}
	if !strings.Contains(out, `"topic_prefix": "org.fedoraproject"`) {
		t.Errorf("fedmsg config lacks the default topic_prefix:\n%s", out)
	}
	out, _, code = b.run("", "config", "--query", "endpoints.relay_outbound")
	if code != 0 || strings.TrimSpace(out) != b.outbound {
		t.Errorf("--query endpoints.relay_outbound = %q (exit %d), want %q", out, code, b.outbound)
	}
	_, errOut, code = b.run("", "config", "--query", "no_such_key")
	if code != 1 || !strings.Contains(errOut, "no_such_key") {
		t.Errorf("--query of a missing key: exit %d, stderr %q; want 1 naming the key", code, errOut)
	}
	out, _, _ = b.run("", "config", "--query", "stomp_pass")
	if strings.Contains(out, "hunter2") {
		t.Errorf("--query stomp_pass printed the secret")
	}
}

func TestTailReallyPrettyStripsCredentials(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	tail := b.start("tail", "--really-pretty", "--topic", "org.fedoraproject.dev.git.")
	pub, _ := rawSockets(t, b)
	frame0, frame1 := wire(t, "logger-signed-json")
	// tail's own subscription settles at an unknown moment: resend until
	// the first line comes out.
	var first string
	deadline := time.Now().Add(20 * time.Second)
	for first == "" {
		pub.SendMessage(frame0, frame1)
		select {
		case first = <-tail.lines:
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail printed nothing; stderr:\n%s", tail.stderr.String())
		}
	}
	if first != "{" {
		t.Fatalf("first line %q, want the opening of indented JSON", first)
	}
	var lines []string
	for l := tail.nextLine(t); l != "}"; l = tail.nextLine(t) {
		lines = append(lines, l)
	}
	out := strings.Join(lines, "\n")
	if strings.Contains(out, "signature") || strings.Contains(out, "certificate") || strings.Contains(out, "\x1b[") {
		t.Errorf("--really-pretty to a pipe must strip credentials and colours:\n%s", out)
	}
	for _, want := range []string{`  "crypto": "x509",`, `  "topic": "org.fedoraproject.dev.git.repo.update",`, `    "authors": [`} {
		if !strings.Contains(out, want) {
			t.Errorf("--really-pretty output lacks %q:\n%s", want, out)
		}
	}
}
