package zmq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
)

// Workers finish out of order on purpose; the relay must still send in the
// order messages arrived, and drop (and count) the ones the transform refuses.
func TestRunTransformKeepsOrderAcrossWorkers(t *testing.T) {
	o := testOptions(t)
	r, err := NewRelay(o, []string{"tcp://127.0.0.1:*"}, []string{"tcp://127.0.0.1:*"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.RunTransform(ctx, func(topic string, body []byte) ([]byte, error) {
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			if string(body) == `{"n":13}` {
				return nil, errors.New("unlucky")
			}
			return append([]byte(`{"signed":true,`), body[1:]...), nil
		}, 4)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunTransform: %v", err)
		}
	}()

	sub, err := New(func() Options { o := o; o.Subscribe = []string{r.OutboundAddr()}; return o }())
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, sub)
	pub, err := New(func() Options { o := o; o.Connect = r.InboundAddrs(); return o }())
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, pub)
	recv, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	awaitFlow(t, func() { pub.Publish(ctx, probe) }, recv)

	const n = 500
	for i := range n {
		if err := pub.Publish(ctx, &transport.Message{Topic: "t", Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if i == 13 {
			continue
		}
		d := receive(t, recv)
		if want := fmt.Sprintf(`{"signed":true,"n":%d}`, i); string(d.Message.Body) != want {
			t.Fatalf("got %s, want %s: order lost", d.Message.Body, want)
		}
	}
	if got := r.Stats().Dropped(DropTransform); got != 1 {
		t.Errorf("transform drops = %d, want 1", got)
	}
}
