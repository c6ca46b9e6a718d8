package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/message"
)

// replayPublisher publishes n messages from this test process through the
// library with persistent_store, so its replay server answers on the
// returned endpoint; msg {"n": k} has seq_id k.
func replayPublisher(t *testing.T, n int) string {
	t.Helper()
	replayEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	cfg := config.Default()
	cfg.Name = "e2e.app01"
	cfg.Endpoints = map[string][]string{"e2e.app01": {fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))}}
	cfg.ReplayEndpoints = map[string]string{"e2e.app01": replayEP}
	cfg.PersistentStore = map[string]any{"limit": 100}
	cfg.PostInitSleep = 0
	fc, err := fedmsg.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		fc.Close(ctx)
	})
	for k := 1; k <= n; k++ {
		// Nobody subscribes: the PUB drops the message, the store keeps it.
		if err := fc.Publish(context.Background(), "thing", "e2e", map[string]any{"n": k}); err != nil {
			t.Fatal(err)
		}
	}
	return replayEP
}

// lineFields decodes the command's output: one canonical envelope per line.
func lineFields(t *testing.T, out string) (seqIDs []int64, msgIDs []string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		env, err := message.DecodeObject([]byte(line))
		if err != nil {
			t.Fatalf("line is not an envelope: %v: %s", err, line)
		}
		if c, _ := message.Canonical(env); string(c) != line {
			t.Fatalf("line is not canonical JSON:\n%s\n%s", line, c)
		}
		id, _ := env["seq_id"].(message.Number).Int64()
		n, _ := env["msg"].(map[string]any)["n"].(message.Number).Int64()
		if n != id {
			t.Fatalf("seq_id %d carries message %d", id, n)
		}
		seqIDs = append(seqIDs, id)
		msgIDs = append(msgIDs, env["msg_id"].(string))
	}
	return seqIDs, msgIDs
}

// TestReplayCommand: `fedmsg replay` in its own process against a
// publisher's replay server, every query form, and its exit codes.
func TestReplayCommand(t *testing.T) {
	ep := replayPublisher(t, 5)
	b := newBus(t)
	b.env = append(b.env, "FEDMSG_REPLAY_ENDPOINTS={e2e.app01: "+ep+"}")

	out, errOut, code := b.run("", "replay", "e2e.app01", "--seq-id-range", "1:5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	all, msgIDs := lineFields(t, out)
	if fmt.Sprint(all) != "[1 2 3 4 5]" {
		t.Fatalf("seq_ids %v, want 1..5", all)
	}
	now := time.Now().Unix()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--seq-id", "3"}, "[3]"},
		{[]string{"--seq-ids", "5,1"}, "[1 5]"},
		{[]string{"--seq-id-range", "2:4"}, "[2 3 4]"},
		{[]string{"--msg-id", msgIDs[1]}, "[2]"},
		{[]string{"--msg-ids", msgIDs[3] + "," + msgIDs[0]}, "[1 4]"},
		{[]string{"--time", fmt.Sprintf("%d:%d", now-60, now+60)}, "[1 2 3 4 5]"},
		{[]string{"--since", fmt.Sprint(now - 60)}, "[1 2 3 4 5]"},
		{[]string{"--since", time.Unix(now-60, 0).UTC().Format(time.RFC3339), "--until", time.Unix(now+60, 0).UTC().Format(time.RFC3339)}, "[1 2 3 4 5]"},
		{[]string{"--seq-id", "1", "--msg-id", msgIDs[4]}, "[1 5]"},
		// By explicit endpoint instead of name.
		{[]string{"--endpoint", ep, "--seq-id", "4"}, "[4]"},
	}
	for _, c := range cases {
		args := append([]string{"replay"}, c.args...)
		if c.args[0] != "--endpoint" {
			args = append([]string{"replay", "e2e.app01"}, c.args...)
		}
		out, errOut, code := b.run("", args...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s", c.args, code, errOut)
			continue
		}
		if got, _ := lineFields(t, out); fmt.Sprint(got) != c.want {
			t.Errorf("%v: seq_ids %v, want %s", c.args, got, c.want)
		}
	}
}

func TestReplayCommandErrors(t *testing.T) {
	ep := replayPublisher(t, 2)
	b := newBus(t)
	b.env = append(b.env, "FEDMSG_REPLAY_ENDPOINTS={e2e.app01: "+ep+"}")
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		// The server's error text, exit 1.
		{[]string{"e2e.app01", "--seq-id", "99"}, 1, "There was no match for the given query"},
		{[]string{"e2e.app01", "--time", "0:1"}, 1, "There was no match for the given query"},
		// Nobody answers within --timeout: exit 1.
		{[]string{"--endpoint", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), "--seq-id", "1", "--timeout", "0.3"}, 1, "no reply"},
		// Misuse: exit 2.
		{[]string{"ghost.app01", "--seq-id", "1"}, 2, "no appropriate replay endpoint found for ghost.app01"},
		{[]string{"e2e.app01"}, 2, "give at least one of"},
		{[]string{"--seq-id", "1"}, 2, "give the NAME"},
		{[]string{"e2e.app01", "--seq-id-range", "4:2"}, 2, "--seq-id-range"},
		{[]string{"e2e.app01", "--seq-id-range", "4"}, 2, "--seq-id-range"},
		{[]string{"e2e.app01", "--time", "1:2", "--since", "0"}, 2, "--time and --since"},
		{[]string{"e2e.app01", "--since", "yesterday"}, 2, "--since"},
		{[]string{"e2e.app01", "--seq-ids", "1,x"}, 2, "seq-ids"},
	}
	for _, c := range cases {
		out, errOut, code := b.run("", append([]string{"replay"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, errOut, c.code, c.stderr)
		}
		if out != "" {
			t.Errorf("%v: printed %q on an error", c.args, out)
		}
	}
}
