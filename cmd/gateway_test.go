package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/internal/freeport"
)

func TestIsOwnEndpoint(t *testing.T) {
	host, _ := os.Hostname()
	cases := []struct {
		ep   string
		want bool
	}{
		{"tcp://*:9940", true},
		{"tcp://127.0.0.1:9940", true},
		{"tcp://localhost:9940", true},
		{"tcp://[::1]:9940", true},
		{"tcp://0.0.0.0:9940", true},
		{"tcp://" + host + ":9940", true},
		{"tcp://127.0.0.1:9941", false},
		{"tcp://192.0.2.1:9940", false}, // TEST-NET: never a local address
		{"tcp://hub.example.org:9940", false},
		{"ipc:///tmp/9940", false},
		{"tcp://nocolon", false},
	}
	for _, c := range cases {
		if got := isOwnEndpoint(c.ep, 9940); got != c.want {
			t.Errorf("isOwnEndpoint(%q, 9940) = %v, want %v", c.ep, got, c.want)
		}
	}
}

func freeTCPPort(t *testing.T) int { return freeport.Port(t) }

// TestGatewayForwardsDropsAndSkipsItself runs the gateway in-process
// between a plain PUB and a plain SUB: malformed frames are dropped and
// counted, good ones arrive byte for byte and once (its own port, listed
// in endpoints, is not subscribed to), and ending the context exits 0.
func TestGatewayForwardsDropsAndSkipsItself(t *testing.T) {
	srcPort, gwPort := freeTCPPort(t), freeTCPPort(t)
	zctx, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := zctx.NewSocket(zmq4.PUB)
	sub, _ := zctx.NewSocket(zmq4.SUB)
	defer func() { pub.Close(); sub.Close(); zctx.Term() }()
	pub.SetLinger(0)
	sub.SetLinger(0)
	if err := pub.Bind(fmt.Sprintf("tcp://127.0.0.1:%d", srcPort)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr lockedBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr, environ: []string{
		"HOME=" + t.TempDir(),
		fmt.Sprintf("FEDMSG_ENDPOINTS={src: [tcp://127.0.0.1:%d], gateway: [tcp://*:%d]}", srcPort, gwPort),
		fmt.Sprintf("FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT=%d", gwPort),
	}}
	done := make(chan int, 1)
	go func() { done <- run(ctx, e, []string{"/usr/local/bin/fedmsg-gateway"}) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "gateway started") {
		select {
		case code := <-done:
			t.Fatalf("gateway exited %d before starting:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never started:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("skipped_own=[tcp://127.0.0.1:%d]", gwPort)) {
		t.Errorf("start-up log does not say the gateway's own endpoint was skipped:\n%s", stderr.String())
	}

	sub.SetSubscribe("")
	if err := sub.Connect(fmt.Sprintf("tcp://127.0.0.1:%d", gwPort)); err != nil {
		t.Fatal(err)
	}
	// Probe until both subscriptions (gateway's and ours) have settled.
	sub.SetRcvtimeo(100 * time.Millisecond)
	for deadline := time.Now().Add(20 * time.Second); ; {
		pub.SendMessage("probe", "{}")
		if f, err := sub.RecvMessageBytes(0); err == nil && string(f[0]) == "probe" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe came through the gateway:\n%s", stderr.String())
		}
	}
	for {
		if _, err := sub.RecvMessageBytes(0); err != nil {
			break
		}
	}

	pub.SendMessage("only-one-frame")
	pub.SendMessage("org.example.x", `"not an object"`)
	topic := []byte("org.example.prod.café")
	body := []byte(`{"i":1,  "msg":{"b":2,"a":1}, "timestamp":1.50}`) // not canonical: must stay so
	pub.SendMessage(topic, body)
	sub.SetRcvtimeo(10 * time.Second)
	got, err := sub.RecvMessageBytes(0)
	if err != nil {
		t.Fatalf("good message never arrived: %v", err)
	}
	if len(got) != 2 || !bytes.Equal(got[0], topic) || !bytes.Equal(got[1], body) {
		t.Fatalf("gateway changed the frames:\n got %q\nwant %q %q", got, topic, body)
	}
	sub.SetRcvtimeo(500 * time.Millisecond)
	if extra, err := sub.RecvMessageBytes(0); err == nil {
		t.Errorf("a second copy (echo?) arrived: %q", extra)
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after cancel, want 0:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not stop")
	}
	if !strings.Contains(stderr.String(), "dropped=2") {
		t.Errorf("stop log does not count the 2 drops:\n%s", stderr.String())
	}
}

func TestGatewayNothingToSubscribeExits2(t *testing.T) {
	port := freeTCPPort(t)
	var stderr lockedBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr, environ: []string{
		"HOME=" + t.TempDir(),
		// endpoints always has relay_outbound (merged with the defaults):
		// make it the gateway's own port, the only one listed.
		fmt.Sprintf("FEDMSG_ENDPOINTS={relay_outbound: [tcp://127.0.0.1:%d]}", port),
		fmt.Sprintf("FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT=%d", port),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code := run(ctx, e, []string{"fedmsg", "gateway"}); code != exitUsage || !strings.Contains(stderr.String(), "nothing to subscribe to") {
		t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr.String())
	}
}
