package transport_test

import (
	"context"
	"errors"
	"testing"

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
