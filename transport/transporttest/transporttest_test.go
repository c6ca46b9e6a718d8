package transporttest_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/memory"
	"github.com/gofedmsg/fedmsg/transport/transporttest"
)

// fakeBroker is the memory transport behind a switch: while "stopped",
// Publish fails with ErrNotConnected. It exists to run the broker fault
// tests of the suite itself, which no in-process transport otherwise can.
type fakeBroker struct {
	*memory.Transport
	down *atomic.Bool
}

func (f fakeBroker) Publish(ctx context.Context, msgs ...*transport.Message) error {
	if f.down.Load() {
		return fmt.Errorf("fake broker stopped: %w", transport.ErrNotConnected)
	}
	return f.Transport.Publish(ctx, msgs...)
}

func TestSuiteWithBrokerHooks(t *testing.T) {
	down := &atomic.Bool{}
	transporttest.Run(t, transporttest.Factory{
		New: func(t testing.TB) (transport.Transport, transport.Transport) {
			tr, err := memory.New(memory.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				tr.Close(ctx)
			})
			f := fakeBroker{tr, down}
			return f, f
		},
		StopBroker:  func(testing.TB) { down.Store(true) },
		StartBroker: func(testing.TB) { down.Store(false) },
	})
}
