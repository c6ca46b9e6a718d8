package test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
)

// TestHubOverSTOMPQueue: with zmq_enabled false and stomp_queue (on
// RabbitMQ) or stomp_durable_name (on ActiveMQ), fedmsg hub consumes only
// that queue or durable subscription (spec §9.4). A non-fedmsg body is
// wrapped and handed over (spec §8.3 step 1); a consumer that fails gets
// the message again (a Nack redelivers: a NACK on RabbitMQ, a reconnect on
// ActiveMQ), and succeeds.
func TestHubOverSTOMPQueue(t *testing.T) {
	for _, tc := range []struct {
		sb    int    // index in stompBrokers
		key   string // the configuration key that names the consumer
		value func(name string) string
		clean func(t *testing.T, name string) // removes it when t ends
	}{
		// RabbitMQ: /queue/<name> is durable, bound to every /topic/ message.
		{0, "stomp_queue", func(name string) string { return "/queue/" + name }, func(t *testing.T, name string) {
			t.Cleanup(func() {
				if out, err := exec.Command("rabbitmqctl", "-q", "delete_queue", name).CombinedOutput(); err != nil {
					t.Logf("rabbitmqctl delete_queue %s: %v: %s", name, err, out)
				}
			})
		}},
		// ActiveMQ: a durable subscription to every topic.
		{1, "stomp_durable_name", func(name string) string { return name }, func(t *testing.T, name string) {
			brokertest.CleanupActiveMQDurable(t, name, name)
		}},
	} {
		sb := stompBrokers[tc.sb]
		t.Run(sb.broker.Name, func(t *testing.T) {
			brokertest.Use(t, sb.broker)
			name := fmt.Sprintf("gofedmsg-hub-test-%08x", rand.Uint32())
			tc.clean(t, name)
			value := tc.value(name)
			b, prefix := brokerBus(t, "FEDMSG_STOMP_URI="+sb.broker.Addr, "FEDMSG_"+strings.ToUpper(tc.key)+"="+value)
			hubOverSTOMPConsumer(t, b, prefix, sb.broker.Addr, sb.login, tc.key+"="+value)
		})
	}
}

// hubOverSTOMPConsumer runs the hub on b (configured for one STOMP queue
// or durable subscription, which it logs as logged) and checks what its
// consumers get of messages a plain client sends to the broker at addr.
func hubOverSTOMPConsumer(t *testing.T, b *bus, prefix, addr string, login []func(*stomp.Conn) error, logged string) {
	conn, err := stomp.Dial("tcp", addr, login...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Disconnect()
	send := plainSTOMPSender(t, conn)

	probeFile := filepath.Join(b.dir, "probe.jsonl")
	seenFile := filepath.Join(b.dir, "seen.jsonl")
	flakyOut := filepath.Join(b.dir, "flaky.out")
	marker := filepath.Join(b.dir, "failed-once")
	cfg := filepath.Join(b.dir, "hub.yaml")
	yaml := fmt.Sprintf(`consumers:
  - {name: probe, kind: file, topics: ["%[1]s.dev.e2e.probe"], path: %[2]s}
  - {name: seen, kind: file, topics: ["%[1]s.dev.e2e.[at]*"], path: %[3]s}
  - name: flaky
    kind: exec
    topics: ["%[1]s.dev.e2e.flaky"]
    command: 'if [ -e %[4]s ]; then cat > %[5]s; else touch %[4]s; exit 1; fi'
`, prefix, probeFile, seenFile, marker, flakyOut)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	hub := b.start("hub", "--config", cfg)
	hub.waitStderr(t, "hub started")
	if !strings.Contains(hub.stderr.String(), logged) {
		t.Errorf("hub did not say what it consumes (%s):\n%s", logged, hub.stderr.String())
	}
	probeTopic := prefix + ".dev.e2e.probe"
	deadline := time.Now().Add(30 * time.Second)
	for {
		send(probeTopic, []byte(`{"msg":{},"topic":"`+probeTopic+`"}`))
		if st, err := os.Stat(probeFile); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub saw no probe within 30s; stderr:\n%s", hub.stderr.String())
		}
		time.Sleep(300 * time.Millisecond)
	}

	envTopic, textTopic, flakyTopic := prefix+".dev.e2e.a", prefix+".dev.e2e.text", prefix+".dev.e2e.flaky"
	envBody := `{"msg":{"f":1.0,"u":"caf\u00e9"},"msg_id":"2026-x","topic":"` + envTopic + `"}`
	flakyBody := `{"msg":{"n":1},"topic":"` + flakyTopic + `"}`
	send(envTopic, []byte(envBody))
	send(textTopic, []byte("plain text, not fedmsg"))
	send(flakyTopic, []byte(flakyBody))

	want := envBody + "\n" + `{"msg":"plain text, not fedmsg","topic":"` + textTopic + `"}` + "\n"
	deadline = time.Now().Add(20 * time.Second)
	for {
		seen, _ := os.ReadFile(seenFile)
		done, _ := os.ReadFile(flakyOut)
		if (len(seen) >= len(want) && len(done) > 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if code := hub.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("hub exited %d on SIGTERM; stderr:\n%s", code, hub.stderr.String())
	}
	if seen, _ := os.ReadFile(seenFile); string(seen) != want {
		t.Errorf("seen consumer wrote\n%s\nwant\n%s", seen, want)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the flaky consumer never failed: %v", err)
	}
	if got, _ := os.ReadFile(flakyOut); string(got) != flakyBody {
		t.Errorf("after its failure the flaky consumer got %q, want the message again: %q; stderr:\n%s", got, flakyBody, hub.stderr.String())
	}
	if !strings.Contains(hub.stderr.String(), "handler failed") {
		t.Errorf("the failure was not logged:\n%s", hub.stderr.String())
	}
}
