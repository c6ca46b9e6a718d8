package brokertest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
)

// ErrNoDurable: ActiveMQ has no such durable subscription (already
// removed, or never made).
var ErrNoDurable = errors.New("brokertest: no such durable subscription")

// CleanupActiveMQDurable removes durable subscription subName of
// client-id clientID from ActiveMQ when t ends (RemoveActiveMQDurable),
// retrying while ActiveMQ still holds the client-id of a connection just
// closed; a subscription already gone is fine. Register it before the
// cleanups that close the subscribers (cleanups run last in, first out).
func CleanupActiveMQDurable(t testing.TB, clientID, subName string) {
	t.Cleanup(func() {
		var err error
		for range 20 {
			err = RemoveActiveMQDurable(ActiveMQSTOMP.Addr, clientID, subName)
			if err == nil || errors.Is(err, ErrNoDurable) {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Errorf("removing durable subscription %s (client-id %s) from ActiveMQ: %v", subName, clientID, err)
	})
}

// RemoveActiveMQDurable removes durable subscription subName of client-id
// clientID from the ActiveMQ at addr, as the STOMP transport's
// documentation tells operators to: UNSUBSCRIBE with
// activemq.subscriptionName on a connection with that client-id.
// ActiveMQ would otherwise keep collecting messages for it for ever.
// go-stomp cannot unsubscribe what its connection did not subscribe,
// hence the frames by hand.
func RemoveActiveMQDurable(addr, clientID, subName string) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	w := frame.NewWriter(nc)
	if err := w.Write(frame.New(frame.CONNECT, frame.AcceptVersion, "1.2", frame.Host, "/",
		frame.Login, "guest", frame.Passcode, "guest", "client-id", clientID)); err != nil {
		return err
	}
	// ActiveMQ wants an id on every UNSUBSCRIBE, even one naming the
	// durable subscription; no subscription has it on this connection.
	if err := w.Write(frame.New(frame.UNSUBSCRIBE, frame.Id, "remove",
		"activemq.subscriptionName", subName, frame.Receipt, "removed")); err != nil {
		return err
	}
	r := frame.NewReader(nc)
	for {
		f, err := r.Read()
		if err != nil {
			return err
		}
		if f == nil {
			continue // a heart-beat
		}
		switch f.Command {
		case frame.ERROR:
			msg := f.Header.Get(frame.Message)
			if strings.Contains(msg, "No durable subscription exists") {
				return fmt.Errorf("%w: %s", ErrNoDurable, msg)
			}
			return fmt.Errorf("%s: %s", msg, strings.TrimSpace(string(f.Body)))
		case frame.RECEIPT:
			_ = w.Write(frame.New(frame.DISCONNECT))
			return nil
		}
	}
}
