package fedmsg_test

import (
	"context"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/replay"
)

// TestTailReplayedMessagesFilteredAndMarked: Tail with a topic pattern
// fills a gap but yields only the replayed messages its pattern matches,
// marked Replayed, with the endpoint name and the replay endpoint.
func TestTailReplayedMessagesFilteredAndMarked(t *testing.T) {
	pubEP, replayEP := freeEndpoint(t), freeEndpoint(t)
	store, _ := replay.NewStore(10)
	topics := []string{"a.want", "a.want", "a.other", "a.want", "a.want"}
	var bodies [][]byte
	for k, tp := range topics {
		_, body, err := store.Add(message.NewEnvelope(tp, map[string]any{"k": k + 1}, int64(k+1), "u", time.Now()), nil)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	srv, err := replay.Listen(store, replay.ServerOptions{Endpoint: replayEP})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	pub, _ := zmq4.NewSocket(zmq4.PUB)
	defer pub.Close()
	pub.SetLinger(0)
	if err := pub.Bind(pubEP); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Endpoints = map[string][]string{"a.app01": {pubEP}}
	cfg.ReplayEndpoints = map[string]string{"a.app01": replayEP}
	cfg.PostInitSleep = 0
	fc, err := fedmsg.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Until the subscription is up, send seq_id 1 again and again (the
	// repeats are duplicates, dropped); then 5, skipping 2-4 on the wire.
	up := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for {
			select {
			case <-up:
				pub.SendMessage("a.want", bodies[4])
				return
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
				pub.SendMessage("a.want", bodies[0])
			}
		}
	}()
	defer func() { <-sent }()
	var got []*fedmsg.Received
	for m, err := range fc.Tail(ctx, "a.want") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
		if len(got) == 1 {
			close(up)
		}
		if len(got) == 4 {
			break
		}
	}
	if len(got) != 4 {
		t.Fatalf("got %d messages before the deadline", len(got))
	}
	for i, want := range []struct {
		body     []byte
		replayed bool
	}{{bodies[0], false}, {bodies[1], true}, {bodies[3], true}, {bodies[4], false}} {
		m := got[i]
		if string(m.Body) != string(want.body) || m.Replayed != want.replayed || m.Name != "a.app01" {
			t.Errorf("message %d: name %q replayed %v body %s; want a.app01, %v, %s", i, m.Name, m.Replayed, m.Body, want.replayed, want.body)
		}
		if wantEP := map[bool]string{true: replayEP, false: pubEP}[want.replayed]; m.Endpoint != wantEP {
			t.Errorf("message %d: endpoint %s, want %s", i, m.Endpoint, wantEP)
		}
	}
}
