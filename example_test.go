package fedmsg_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// Publish a message through a relay and read it back with Tail, as
// fedmsg-logger and fedmsg-tail do.
func Example() {
	// A relay on loopback, as `fedmsg relay` runs it.
	relay, err := zmq.NewRelay(zmq.DefaultOptions(), []string{"tcp://127.0.0.1:*"}, []string{"tcp://127.0.0.1:*"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go relay.Run(ctx)

	cfg := config.Default() // or config.Load(config.Sources{...})
	cfg.RelayInbound = relay.InboundAddrs()
	cfg.Endpoints = map[string][]string{"relay_outbound": {relay.OutboundAddr()}}
	cfg.Active = true // publish through the relay

	bus, err := fedmsg.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(context.Background())

	tailCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Publish until the tail's subscription has settled (ZeroMQ's slow
	// joiner), then print what arrives.
	go func() {
		for tailCtx.Err() == nil {
			bus.Publish(tailCtx, "update.comment", "bodhi", map[string]any{"karma": 1})
			time.Sleep(50 * time.Millisecond)
		}
	}()
	for m, err := range bus.Tail(tailCtx, "org.fedoraproject.dev.bodhi.") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(m.Topic, m.Envelope["msg"])
		break
	}
	// Output: org.fedoraproject.dev.bodhi.update.comment map[karma:1]
}
