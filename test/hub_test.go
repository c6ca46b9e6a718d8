package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHubFileConsumerSeesExactlyMatchingTopics: fedmsg logger publishes
// through the relay; fedmsg hub, with a file consumer, writes exactly the
// messages whose topics match its patterns, byte for byte as they went
// over the wire (fedmsg tail --json shows those bytes), in order.
func TestHubFileConsumerSeesExactlyMatchingTopics(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	tail := b.startTail("--json")

	probeFile := filepath.Join(b.dir, "probe.jsonl")
	outFile := filepath.Join(b.dir, "out.jsonl")
	cfg := filepath.Join(b.dir, "hub.yaml")
	yaml := `consumers:
  - name: probe
    kind: file
    topics: [org.fedoraproject.dev.e2e.probe]
    path: ` + probeFile + `
  - name: watched
    kind: file
    topics: ["org.fedoraproject.dev.e2e.want.", "*.glob.hit"]
    path: ` + outFile + `
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	hub := b.start("hub", "--config", cfg)
	hub.waitStderr(t, "hub started")
	// The hub's SUB settles asynchronously (ZeroMQ's slow joiner): probe
	// until its probe consumer has written one.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
			t.Fatalf("probe logger exited %d: %s", code, errOut)
		}
		if st, err := os.Stat(probeFile); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub saw no probe within 20s; stderr:\n%s", hub.stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	type pub struct {
		topic, stdin string
		args         []string
		match        bool
	}
	pubs := []pub{
		{topic: "want.a", args: []string{"--message", "first"}, match: true},
		{topic: "other.x", args: []string{"--message", "not for the hub"}},
		{topic: "wantx", args: []string{"--message", "prefix is want. with its dot"}},
		{topic: "glob.hit", args: []string{"--message", "glob"}, match: true},
		{topic: "glob.hit.not", args: []string{"--message", "a glob matches the whole topic"}},
		{topic: "want.json", args: []string{"--json-input"}, stdin: `{"f": 1.0, "u": "caf\u00e9", "n": [1, 2.50]}`, match: true},
		{topic: "want.b", args: []string{"--message", "last"}, match: true},
	}
	for _, p := range pubs {
		args := append([]string{"logger", "--modname", "e2e", "--topic", p.topic}, p.args...)
		if _, errOut, code := b.run(p.stdin, args...); code != 0 {
			t.Fatalf("logger %v exited %d: %s", p.args, code, errOut)
		}
	}
	// The bytes on the wire, as tail prints them, in order.
	var want []string
	for i := 0; i < len(pubs); {
		l := tail.nextLine(t)
		if strings.Contains(l, `"org.fedoraproject.dev.e2e.probe"`) {
			continue
		}
		if !strings.Contains(l, `"org.fedoraproject.dev.e2e.`+pubs[i].topic+`"`) {
			t.Fatalf("tail line %d is not %s: %s", i, pubs[i].topic, l)
		}
		if pubs[i].match {
			want = append(want, l)
		}
		i++
	}
	wantText := strings.Join(want, "\n") + "\n"
	deadline = time.Now().Add(15 * time.Second)
	for {
		got, _ := os.ReadFile(outFile)
		if len(got) >= len(wantText) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Room for a message that should not be there to arrive.
	time.Sleep(300 * time.Millisecond)
	if code := hub.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("hub exited %d on SIGTERM, want 0; stderr:\n%s", code, hub.stderr.String())
	}
	got, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != wantText {
		t.Errorf("hub's file consumer wrote\n%s\nwant (tail's bytes of the matching topics)\n%s", got, wantText)
	}
	if !strings.Contains(hub.stderr.String(), "consumer stopped") {
		t.Errorf("hub did not log its consumers' counts at exit:\n%s", hub.stderr.String())
	}
}
