package transport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
)

type countingSettler struct{ acks, nacks int }

func (s *countingSettler) Ack(context.Context) error { s.acks++; return nil }
func (s *countingSettler) Nack(context.Context, error) error {
	s.nacks++
	return errors.New("broker gone")
}

// Only the first settlement reaches the source; later ones return its result.
func TestDeliverySettlesOnce(t *testing.T) {
	ctx := context.Background()
	s := &countingSettler{}
	d := transport.NewDelivery(&transport.Message{Topic: "t"}, "src", s)
	if err := d.Nack(ctx, transport.ErrPermanent); err == nil {
		t.Fatal("Nack's error was lost")
	}
	if err := d.Ack(ctx); err == nil {
		t.Error("a second settlement must report the first one's result")
	}
	d.Nack(ctx, nil)
	if s.acks != 0 || s.nacks != 1 {
		t.Errorf("source saw %d acks and %d nacks, want 0 and 1", s.acks, s.nacks)
	}
	// Transports that cannot settle pass nil: Ack and Nack are no-ops.
	n := transport.NewDelivery(&transport.Message{}, "zmq", nil)
	if n.Ack(ctx) != nil || n.Nack(ctx, nil) != nil {
		t.Error("settling without a settler must succeed")
	}
}

// A Pending completes once: a Sender that resolves it again (a late confirm
// after a failure, say) must not change the outcome its caller already saw.
func TestPendingResolvesOnce(t *testing.T) {
	p := transport.NewPending()
	if err := p.Err(); err != nil {
		t.Fatalf("Err before Done = %v, want nil", err)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed before Resolve")
	default:
	}
	first := errors.New("nacked by broker")
	p.Resolve(first)
	p.Resolve(nil) // ignored
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Resolve")
	}
	if err := p.Err(); !errors.Is(err, first) {
		t.Errorf("Err = %v, want the first Resolve's %v", err, first)
	}
	if err := p.Wait(context.Background()); !errors.Is(err, first) {
		t.Errorf("Wait = %v, want %v", err, first)
	}

	ok := transport.NewPending()
	ok.Resolve(nil)
	ok.Resolve(first) // ignored
	if err := ok.Wait(context.Background()); err != nil {
		t.Errorf("Wait after Resolve(nil) then Resolve(err) = %v, want nil", err)
	}
}

// Wait gives up with ctx's error when ctx ends before the outcome is known,
// and the Pending stays unresolved (Err still nil) for a later Wait.
func TestPendingWaitCtx(t *testing.T) {
	p := transport.NewPending()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled ctx = %v, want context.Canceled", err)
	}
	tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer tcancel()
	if err := p.Wait(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past deadline = %v, want context.DeadlineExceeded", err)
	}
	if err := p.Err(); err != nil {
		t.Errorf("Err after Wait gave up = %v, want nil (still unresolved)", err)
	}
	// Resolved later, a fresh Wait sees the outcome even on a live ctx.
	go p.Resolve(nil)
	if err := p.Wait(context.Background()); err != nil {
		t.Errorf("Wait after a late Resolve = %v, want nil", err)
	}
}
