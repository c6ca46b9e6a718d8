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

// TestHubOverSTOMPQueue: with zmq_enabled false and stomp_queue, fedmsg
// hub consumes only that queue (spec §9.4). A non-fedmsg body is wrapped
// and handed over (spec §8.3 step 1); a consumer that fails gets the
// message again (Nack on a queue redelivers), and succeeds.
func TestHubOverSTOMPQueue(t *testing.T) {
	sb := stompBrokers[0] // RabbitMQ: /queue/<name> is durable, bound to every /topic/ message
	brokertest.Use(t, sb.broker)
	name := fmt.Sprintf("gofedmsg-hub-test-%08x", rand.Uint32())
	t.Cleanup(func() {
		if out, err := exec.Command("rabbitmqctl", "-q", "delete_queue", name).CombinedOutput(); err != nil {
			t.Logf("rabbitmqctl delete_queue %s: %v: %s", name, err, out)
		}
	})
	b, prefix := brokerBus(t, "FEDMSG_STOMP_URI="+sb.broker.Addr, "FEDMSG_STOMP_QUEUE=/queue/"+name)
	conn, err := stomp.Dial("tcp", sb.broker.Addr, sb.login...)
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
	if !strings.Contains(hub.stderr.String(), "stomp_queue=/queue/"+name) {
		t.Errorf("hub did not say it consumes the queue:\n%s", hub.stderr.String())
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
