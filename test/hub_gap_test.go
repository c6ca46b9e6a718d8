package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/replay"
)

// TestHubRecoversGapsThroughReplay: a hub subscribed over ZeroMQ to a
// publisher with a replay server gets, through its file consumer, the
// messages the wire skipped, in order, once each; /metrics counts them
// as recovered. Before, only `fedmsg tail` recovered gaps.
func TestHubRecoversGapsThroughReplay(t *testing.T) {
	pubEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	replayEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	store, err := replay.NewStore(100)
	if err != nil {
		t.Fatal(err)
	}
	bodies := numbered(t, store, "hub", 6)
	listenReplay(t, store, replayEP)

	send := rawPublisher(t, pubEP)
	b := replayBus(t, pubEP, replayEP, "FEDMSG_TIMEOUT=1", "FEDMSG_VALIDATE_SIGNATURES=false")
	probeFile := filepath.Join(b.dir, "probe.jsonl")
	outFile := filepath.Join(b.dir, "out.jsonl")
	cfg := filepath.Join(b.dir, "hub.yaml")
	yaml := "consumers:\n" +
		"  - {name: probe, kind: file, topics: [org.fedoraproject.dev.e2e.probe], path: " + probeFile + "}\n" +
		"  - {name: things, kind: file, topics: [" + gapTopic + "], path: " + outFile + "}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	hub := b.start("hub", "--config", cfg, "--metrics-addr", addr)
	hub.waitStderr(t, "hub started")

	// Probes carry no seq_id: gap tracking lets them through. The first
	// in the file says the hub's subscription is up.
	probe, _ := message.Canonical(map[string]any{"topic": "org.fedoraproject.dev.e2e.probe", "msg_id": "probe", "msg": map[string]any{}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		send("org.fedoraproject.dev.e2e.probe", probe)
		if st, err := os.Stat(probeFile); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub saw no probe within 20s; stderr:\n%s", hub.stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// 1, 2, 5 on the wire, then 5 again and 3 again (duplicates), then 6.
	for _, k := range []int{1, 2, 5, 5, 3, 6} {
		send(gapTopic, bodies[k-1])
	}
	var want strings.Builder
	for _, body := range bodies {
		want.Write(body)
		want.WriteByte('\n')
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		got, _ := os.ReadFile(outFile)
		if string(got) == want.String() {
			break
		}
		if time.Now().After(deadline) || len(got) > want.Len() {
			t.Fatalf("the consumer wrote:\n%s\nwant seq_ids 1-6 in order, once each:\n%s\nhub stderr:\n%s", got, want.String(), hub.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitHTTP(t, "http://"+addr+"/metrics", "2 recovered messages", 10*time.Second, func(code int, body string) bool {
		v, ok := metricValue(body, `fedmsg_replay_recovered_messages_total{source="zmq"}`)
		return code == 200 && ok && v == 2
	})
	// Nothing more arrives later (a late duplicate would).
	time.Sleep(500 * time.Millisecond)
	if got, _ := os.ReadFile(outFile); string(got) != want.String() {
		t.Fatalf("the consumer wrote more than once each:\n%s", got)
	}
}
