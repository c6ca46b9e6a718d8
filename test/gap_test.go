package test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/replay"
)

const gapTopic = "org.fedoraproject.dev.e2e.thing"

// numbered stores n envelopes of run in store and returns their bytes,
// index k-1 for seq_id k.
func numbered(t *testing.T, store *replay.Store, run string, n int) [][]byte {
	t.Helper()
	var bodies [][]byte
	for k := 1; k <= n; k++ {
		env := message.NewEnvelope(gapTopic, map[string]any{"run": run, "k": k}, int64(k), "e2e", time.Now())
		_, body, err := store.Add(env, nil)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	return bodies
}

func listenReplay(t *testing.T, store *replay.Store, ep string) *replay.Server {
	t.Helper()
	var srv *replay.Server
	var err error
	// The port of a server closed a moment ago may take a moment to free.
	for range 50 {
		if srv, err = replay.Listen(store, replay.ServerOptions{Endpoint: ep}); err == nil {
			t.Cleanup(func() { srv.Close(context.Background()) })
			return srv
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// rawPublisher binds a plain ZeroMQ PUB on ep, so tests can skip seq_ids
// on the wire on purpose, and returns its send.
func rawPublisher(t *testing.T, ep string) func(topic string, body []byte) {
	t.Helper()
	pub, err := zmq4.NewSocket(zmq4.PUB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	pub.SetLinger(0)
	if err := pub.Bind(ep); err != nil {
		t.Fatal(err)
	}
	return func(topic string, body []byte) {
		t.Helper()
		if _, err := pub.SendMessage(topic, body); err != nil {
			t.Fatal(err)
		}
	}
}

// replayBus is a bus whose only endpoint is the publisher at pubEP, named
// e2e.app01, with its replay server at replayEP; extra are more
// environment settings.
func replayBus(t *testing.T, pubEP, replayEP string, extra ...string) *bus {
	b := newBus(t)
	var env []string
	for _, e := range b.env {
		if !strings.HasPrefix(e, "FEDMSG_ENDPOINTS=") {
			env = append(env, e)
		}
	}
	b.env = append(append(env,
		"FEDMSG_ENDPOINTS={e2e.app01: ["+pubEP+"]}",
		"FEDMSG_REPLAY_ENDPOINTS={e2e.app01: "+replayEP+"}",
	), extra...)
	return b
}

// TestTailRecoversGapsThroughReplay: `fedmsg tail` in its own process
// subscribes to a publisher (a raw ZeroMQ PUB in this process, so seq_ids
// can be skipped on the wire on purpose) whose envelopes are all in a
// store served by a real replay server. What the wire skips, tail fetches
// and prints in order, once; a repeated seq_id is not printed again; a
// publisher restart (seq_id 1 again) is followed, not dropped; a replay
// server that does not answer is logged and the current message printed.
func TestTailRecoversGapsThroughReplay(t *testing.T) {
	pubEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	replayEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))

	store, err := replay.NewStore(100)
	if err != nil {
		t.Fatal(err)
	}
	run1 := numbered(t, store, "one", 6)
	srv := listenReplay(t, store, replayEP)

	send := rawPublisher(t, pubEP)
	b := replayBus(t, pubEP, replayEP, "FEDMSG_TIMEOUT=0.5")
	tail := b.start("tail", "--json", "--no-validate")

	// Probes carry no seq_id, so gap tracking lets them through; the first
	// one out says the subscription is up (the slow joiner).
	probe, _ := message.Canonical(map[string]any{"topic": "org.fedoraproject.dev.e2e.probe", "msg_id": "probe", "msg": map[string]any{}})
	deadline := time.Now().Add(20 * time.Second)
probing:
	for {
		send("org.fedoraproject.dev.e2e.probe", probe)
		select {
		case l := <-tail.lines:
			if l != string(probe) {
				t.Fatalf("unexpected line before the probe: %s", l)
			}
			b.drainProbes(tail)
			break probing
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail saw no probe within 20s; stderr:\n%s", tail.stderr.String())
		}
	}

	expect := func(what string, want ...[]byte) {
		t.Helper()
		for i, w := range want {
			if got := tail.nextLine(t); got != string(w) {
				t.Fatalf("%s: line %d:\n got %s\nwant %s", what, i+1, got, w)
			}
		}
	}
	expectNothing := func(what string) {
		t.Helper()
		select {
		case l := <-tail.lines:
			t.Fatalf("%s: unexpected line %s", what, l)
		case <-time.After(500 * time.Millisecond):
		}
	}

	// Only 1, 2 and 5 go on the wire: 3 and 4 come from the replay server,
	// before 5, byte for byte as stored.
	send(gapTopic, run1[0])
	send(gapTopic, run1[1])
	send(gapTopic, run1[4])
	expect("gap 3-4", run1[0], run1[1], run1[2], run1[3], run1[4])

	// A repeat of 5 (and of 3, which came by replay) is dropped; 6 follows.
	send(gapTopic, run1[4])
	send(gapTopic, run1[2])
	send(gapTopic, run1[5])
	expect("after duplicates", run1[5])
	expectNothing("after duplicates")

	// The publisher restarts: a new store numbering from 1 and a new
	// replay server on the same endpoint. Its 1 is printed, not taken for a
	// duplicate, and its 2 is fetched when 3 arrives.
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	store2, _ := replay.NewStore(100)
	run2 := numbered(t, store2, "two", 3)
	srv2 := listenReplay(t, store2, replayEP)
	send(gapTopic, run2[0])
	send(gapTopic, run2[2])
	expect("after a restart", run2[0], run2[1], run2[2])

	// The replay server is gone: the gap is logged with the endpoint and
	// the error, and the message that showed it is still printed.
	run2 = append(run2, numbered(t, store2, "two", 3)...) // seq_ids 4-6
	if err := srv2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	send(gapTopic, run2[5])
	expect("failed replay", run2[5])
	tail.waitStderr(t, "replay: query for missing messages failed")
	if log := tail.stderr.String(); !strings.Contains(log, replayEP) {
		t.Fatalf("the failure does not name the endpoint %s:\n%s", replayEP, log)
	}
	expectNothing("at the end")
	if code := tail.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("tail exited %d; stderr:\n%s", code, tail.stderr.String())
	}
}
