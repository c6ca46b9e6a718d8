package fedmsg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/freeport"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

func freeEndpoint(t testing.TB) string { return freeport.Endpoint(t) }

// A service publishing with the library binds its own endpoint; a plain
// ZeroMQ SUB (what Python fedmsg's tail is) receives fedmsg's exact frames.
func TestPublishToPlainZeroMQSubscriber(t *testing.T) {
	ep := freeEndpoint(t)
	cfg := config.Default()
	cfg.Name = "logger.app01"
	cfg.Endpoints = map[string][]string{"logger.app01": {ep}}
	cfg.PostInitSleep = 0
	fc, err := fedmsg.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close(context.Background())

	zctx, _ := zmq4.NewContext()
	sub, _ := zctx.NewSocket(zmq4.SUB)
	defer func() { sub.Close(); zctx.Term() }()
	sub.SetLinger(0)
	sub.SetSubscribe("org.fedoraproject.dev.logger.log")
	if err := sub.Connect(ep); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	msg := map[string]any{"log": "Hello, world."}
	// The subscription reaches the publisher asynchronously: publish until
	// one arrives, then check one more, as a fresh message.
	sub.SetRcvtimeo(50 * time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := fc.Publish(ctx, "log", "logger", msg); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.RecvMessageBytes(0); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing arrived within 10s")
		}
	}
	for {
		if _, err := sub.RecvMessageBytes(0); err != nil {
			break
		}
	}
	if err := fc.Publish(ctx, "log", "logger", msg); err != nil {
		t.Fatal(err)
	}
	sub.SetRcvtimeo(10 * time.Second)
	frames, err := sub.RecvMessageBytes(0)
	if err != nil {
		t.Fatal(err)
	}
	want0 := sharedtest.Read(t, "fedmsg-wire", "logger-unsigned.frame0")
	want1 := sharedtest.Read(t, "fedmsg-wire", "logger-unsigned.frame1")
	if len(frames) != 2 || !bytes.Equal(frames[0], want0) {
		t.Fatalf("frames %q, want two with topic %q", frames, want0)
	}
	got, err := message.DecodeObject(frames[1])
	if err != nil {
		t.Fatal(err)
	}
	want, _ := message.DecodeObject(want1)
	if i, _ := got["i"].(message.Number).Int64(); i < 2 {
		t.Errorf("i = %v, want the per-context counter past 1", got["i"])
	}
	for _, k := range []string{"msg_id", "timestamp", "username", "i"} {
		got[k] = want[k]
	}
	canon, _ := message.Canonical(got)
	if !bytes.Equal(canon, want1) {
		t.Errorf("envelope differs from fedmsg-logger's beyond msg_id/timestamp/username/i:\n got %s\nwant %s", canon, want1)
	}
	if c, _ := message.Canonical(mustDecode(t, frames[1])); !bytes.Equal(c, frames[1]) {
		t.Errorf("frame 1 is not canonical JSON: %s", frames[1])
	}
}

func mustDecode(t testing.TB, b []byte) any {
	v, err := message.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPublishErrors(t *testing.T) {
	cfg := config.Default()
	fc, err := fedmsg.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close(context.Background())
	if err := fc.Publish(context.Background(), "log", "", nil); !errors.Is(err, fedmsg.ErrNoModname) {
		t.Errorf("no modname: got %v", err)
	}
	err = fc.Publish(context.Background(), "log", "bodhi", nil)
	if !errors.Is(err, fedmsg.ErrNoPublisher) || !strings.Contains(err.Error(), "relay_inbound") {
		t.Errorf("no publisher: got %v, want ErrNoPublisher explaining active/relay_inbound", err)
	}

	busy := freeEndpoint(t)
	l, err := net.Listen("tcp", strings.TrimPrefix(busy, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg = config.Default()
	cfg.Name = "bodhi.app01"
	cfg.Endpoints = map[string][]string{"bodhi.app01": {busy}}
	_, err = fedmsg.New(cfg)
	if err == nil || !strings.Contains(err.Error(), `endpoints["bodhi.app01"]`) {
		t.Errorf("busy endpoint: got %v, want an error naming endpoints[\"bodhi.app01\"]", err)
	}
}

func TestSubscribeEndpoints(t *testing.T) {
	cfg := config.Default()
	cfg.Endpoints = map[string][]string{
		"relay_outbound": {"tcp://127.0.0.1:4001"},
		"bodhi.app01":    {"tcp://*:3000", "tcp://127.0.0.1:4001"},
		"relay_inbound":  {"tcp://127.0.0.1:2003"},
	}
	got := fedmsg.SubscribeEndpoints(cfg)
	want := []string{"tcp://127.0.0.1:3000", "tcp://127.0.0.1:4001"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SubscribeEndpoints = %v, want %v", got, want)
	}
}

// TestEndpointNames: the name a received message is tied to (and looked
// up in replay_endpoints) is the endpoints key of the URL it came from;
// a URL under several keys gets the first key in sorted order.
func TestEndpointNames(t *testing.T) {
	cfg := config.Default()
	cfg.Endpoints = map[string][]string{
		"relay_outbound": {"tcp://127.0.0.1:4001"},
		"bodhi.app01":    {"tcp://*:3000", "tcp://127.0.0.1:4001"},
		"relay_inbound":  {"tcp://127.0.0.1:2003"},
	}
	got := fedmsg.EndpointNames(cfg)
	want := map[string]string{"tcp://127.0.0.1:3000": "bodhi.app01", "tcp://127.0.0.1:4001": "bodhi.app01"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("EndpointNames = %v, want %v", got, want)
	}
}
