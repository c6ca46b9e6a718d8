package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
)

// SIGHUP reloads the configuration where that is safe and says what it
// could not reload. These tests edit the --config file of a running
// daemon, send SIGHUP and check what changed.

// fileBus is a bus whose relay_inbound and endpoints come from a
// configuration file rather than the environment (which would win over
// any edit of the file).
func fileBus(t *testing.T) *bus {
	b := newBus(t)
	var env []string
	for _, kv := range b.env {
		if !strings.HasPrefix(kv, "FEDMSG_RELAY_INBOUND=") && !strings.HasPrefix(kv, "FEDMSG_ENDPOINTS=") {
			env = append(env, kv)
		}
	}
	b.env = env
	return b
}

// hup sends SIGHUP and waits until the process has logged want, counting
// only what it logs after the signal.
func (p *proc) hup(t *testing.T, want string) {
	t.Helper()
	before := len(p.stderr.String())
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String()[before:], want) {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP %v never logged %q; stderr since:\n%s", p.cmd.Args, want, p.stderr.String()[before:])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The relay: a new log_level takes effect (a dropped frame is logged at
// debug only after the reload), a changed endpoint is reported as needing
// a restart and the relay goes on publishing where it did, and a bad
// configuration is refused, named, and survived.
func TestRelayReloadsLogLevelAndReportsEndpoints(t *testing.T) {
	b := fileBus(t)
	cfg := filepath.Join(b.dir, "relay.yaml")
	write := func(level, outbound string) {
		t.Helper()
		text := fmt.Sprintf("relay_inbound: [%q]\nendpoints: {relay_outbound: [%q]}\nlog_level: %s\n", b.inbound, outbound, level)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("info", b.outbound)
	relay := b.start("relay", "--config", cfg)
	relay.waitStderr(t, "relay started")
	pub, sub := rawSockets(t, b)

	// A bad frame, then a good one: once the good one is out, the relay
	// has handled the bad one.
	badThenGood := func(tag string) {
		t.Helper()
		if _, err := pub.SendMessage("only-one-frame"); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.SendMessage("org.fedoraproject.dev.reload", `{"tag":"`+tag+`"}`); err != nil {
			t.Fatal(err)
		}
		for {
			frames, err := sub.RecvMessageBytes(0)
			if err != nil {
				t.Fatalf("the relay stopped forwarding (%s): %v; stderr:\n%s", tag, err, relay.stderr.String())
			}
			if strings.Contains(string(frames[len(frames)-1]), tag) {
				return
			}
		}
	}
	const dropLog = "relay dropped malformed message"
	badThenGood("at-info")
	if strings.Contains(relay.stderr.String(), dropLog) {
		t.Fatalf("at log_level info the relay logged a debug line:\n%s", relay.stderr.String())
	}

	newOut := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	write("debug", newOut)
	relay.hup(t, "reload: applied")
	relay.waitStderr(t, "needs a restart: endpoints.relay_outbound")
	badThenGood("at-debug") // still on the old endpoint
	relay.waitStderr(t, dropLog)

	// A bad value: refused, named, the running configuration kept.
	if err := os.WriteFile(cfg, []byte("relay_inbound: ["+b.inbound+"]\nlog_level: loud\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	relay.hup(t, "reload failed")
	if tail := relay.stderr.String(); !strings.Contains(tail[strings.LastIndex(tail, "reload failed"):], "log_level") {
		t.Errorf("the reload error does not name log_level:\n%s", tail)
	}
	n := strings.Count(relay.stderr.String(), dropLog)
	badThenGood("after-bad-reload")
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(relay.stderr.String(), dropLog) == n {
		if time.Now().After(deadline) {
			t.Fatalf("after a refused reload the relay no longer logs at debug:\n%s", relay.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := relay.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("relay exited %d on SIGTERM after the reloads, want 0; stderr:\n%s", code, relay.stderr.String())
	}
}

// The hub: a consumer added to the file starts receiving after SIGHUP,
// the one already there goes on, and a broken consumers section is
// refused with the consumer and key named, the running hub kept.
func TestHubReloadStartsAnAddedConsumer(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	probeFile := filepath.Join(b.dir, "probe.jsonl")
	addedFile := filepath.Join(b.dir, "added.jsonl")
	cfg := filepath.Join(b.dir, "hub.yaml")
	probe := `consumers:
  - name: probe
    kind: file
    topics: [org.fedoraproject.dev.e2e.probe]
    path: ` + probeFile + "\n"
	if err := os.WriteFile(cfg, []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	hub := b.start("hub", "--config", cfg)
	hub.waitStderr(t, "hub started")

	// publishUntil publishes topic until file has more than it had.
	publishUntil := func(topic, file string) {
		t.Helper()
		size := func() int64 {
			if st, err := os.Stat(file); err == nil {
				return st.Size()
			}
			return 0
		}
		before := size()
		deadline := time.Now().Add(20 * time.Second)
		for size() == before {
			if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", topic, "--message", topic); code != 0 {
				t.Fatalf("logger exited %d: %s", code, errOut)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached %s within 20s; hub stderr:\n%s", topic, file, hub.stderr.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	publishUntil("probe", probeFile)
	// Before the reload nobody takes "added": publish one, then a probe
	// behind it, so the hub has seen it when the probe is written.
	if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "added", "--message", "too early"); code != 0 {
		t.Fatalf("logger exited %d: %s", code, errOut)
	}
	publishUntil("probe", probeFile)

	added := probe + `  - name: added
    kind: file
    topics: [org.fedoraproject.dev.e2e.added]
    path: ` + addedFile + "\n"
	if err := os.WriteFile(cfg, []byte(added), 0o644); err != nil {
		t.Fatal(err)
	}
	hub.hup(t, "hub reloaded")
	publishUntil("added", addedFile)
	publishUntil("probe", probeFile)
	if got, _ := os.ReadFile(addedFile); strings.Contains(string(got), "too early") {
		t.Errorf("the added consumer got a message published before it existed:\n%s", got)
	}

	broken := probe + "  - {name: broken, kind: carrier-pigeon}\n"
	if err := os.WriteFile(cfg, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	hub.hup(t, "reload failed")
	if s := hub.stderr.String(); !strings.Contains(s[strings.LastIndex(s, "reload failed"):], "broken") {
		t.Errorf("the reload error does not name the consumer:\n%s", s)
	}
	// Both consumers of the last good configuration still run.
	publishUntil("added", addedFile)
	publishUntil("probe", probeFile)
	if code := hub.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("hub exited %d on SIGTERM after the reloads, want 0; stderr:\n%s", code, hub.stderr.String())
	}
}

// The hub over a broker (AMQP, a durable amqp_queue): after SIGHUP the new
// consumers subscribe again on the same transport, the added one and the
// one that was there both receive.
func TestHubReloadOverAMQP(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	b, prefix := brokerBus(t, "FEDMSG_AMQP_URL="+rabbitURL())
	// The queue and its binding exist before the hub starts, so nothing
	// published before its subscription is live goes unrouted.
	queue, _ := durableQueue(t, "amq.topic", prefix+".#")
	b.env = append(b.env, "FEDMSG_AMQP_QUEUE="+queue)
	send := plainAMQPPublisher(t, rabbitURL())
	firstFile := filepath.Join(b.dir, "first.jsonl")
	addedFile := filepath.Join(b.dir, "added.jsonl")
	cfg := filepath.Join(b.dir, "hub.yaml")
	first := fmt.Sprintf(`consumers:
  - {name: first, kind: file, topics: ["%s.first"], path: %s}
`, prefix, firstFile)
	if err := os.WriteFile(cfg, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	hub := b.start("hub", "--config", cfg)
	hub.waitStderr(t, "hub started")
	publish := func(topic string, i int) {
		send(topic, fmt.Appendf(nil, `{"msg":{"i":%d},"msg_id":"%s-%d","topic":"%s"}`, i, topic, i, topic))
	}
	waitLines := func(file string, n int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			data, _ := os.ReadFile(file)
			if got := strings.Count(string(data), "\n"); got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not get %d lines within 15s; hub stderr:\n%s", file, n, hub.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	publish(prefix+".first", 1)
	waitLines(firstFile, 1)

	added := first + fmt.Sprintf("  - {name: added, kind: file, topics: [\"%s.added\"], path: %s}\n", prefix, addedFile)
	if err := os.WriteFile(cfg, []byte(added), 0o644); err != nil {
		t.Fatal(err)
	}
	hub.hup(t, "hub reloaded")
	publish(prefix+".added", 1)
	publish(prefix+".first", 2)
	waitLines(addedFile, 1)
	waitLines(firstFile, 2)
	if code := hub.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("hub exited %d on SIGTERM after the reload, want 0; stderr:\n%s", code, hub.stderr.String())
	}
}
