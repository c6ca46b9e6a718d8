package fedmsg_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/freeport"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/transporttest"
)

func TestOpenTransportRefusesUnknownKinds(t *testing.T) {
	_, err := fedmsg.OpenTransport(context.Background(), "mqtt", config.Default(), nil)
	if !errors.Is(err, fedmsg.ErrUnknownKind) || !strings.Contains(err.Error(), "mqtt") {
		t.Errorf("kind mqtt: %v, want ErrUnknownKind naming it", err)
	}
	cfg := config.Default()
	cfg.Name = "bodhi.app01"
	if _, err := fedmsg.OpenTransport(context.Background(), fedmsg.KindZMQ, cfg, nil); err == nil || !strings.Contains(err.Error(), "bodhi.app01") {
		t.Errorf("a name without endpoints: %v, want an error naming it", err)
	}
}

// A zmq transport with a name binds endpoints[name] and, like every
// subscriber, connects to all endpoints: here it hears itself.
func TestOpenTransportZMQPublishesAndSubscribes(t *testing.T) {
	addr := freeport.Endpoint(t)
	cfg := config.Default()
	cfg.Name = "svc"
	cfg.Endpoints = map[string][]string{"svc": {addr}}
	cfg.PostInitSleep = 0
	tr, err := fedmsg.OpenTransport(context.Background(), fedmsg.KindZMQ, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := tr.Subscribe(ctx, "org.fedoraproject.", transporttest.ProbeTopic)
	if err != nil {
		t.Fatal(err)
	}
	transporttest.SettleByProbe(t, tr, ch)
	body := []byte(`{"topic":"org.fedoraproject.dev.svc.x"}`)
	if err := tr.Publish(ctx, &transport.Message{Topic: "org.fedoraproject.dev.svc.x", Body: body}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ch:
		if string(d.Message.Body) != string(body) {
			t.Errorf("got %s", d.Message.Body)
		}
	case <-ctx.Done():
		t.Fatal(fmt.Errorf("nothing came back: %w", ctx.Err()))
	}
}
