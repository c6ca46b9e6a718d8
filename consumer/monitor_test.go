package consumer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTakeActivityCountsAndResets: the monitoring figures of a consumer
// follow its queue (in, out, backlog), time each handled message, count
// handler failures as exceptions, and start again from zero after each
// TakeActivity, while Initialized follows Run.
func TestTakeActivityCountsAndResets(t *testing.T) {
	entered := make(chan string, 10)
	gate := make(chan struct{})
	slow := func(_ context.Context, m *Message) error {
		entered <- m.Topic
		<-gate
		if m.Topic == "org.x.slow.fail" {
			return errors.New("boom")
		}
		return nil
	}
	h, err := New([]Consumer{
		{Name: "slow", Topics: []string{"org.x.slow."}, Handler: slow},
		{Name: "idle", Topics: []string{"org.x.idle"}, Handler: func(context.Context, *Message) error { return nil }},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := h.TakeActivity()
	if len(before) != 2 || before[0].Consumer != "slow" || before[1].Consumer != "idle" {
		t.Fatalf("TakeActivity before Run = %+v, want slow and idle in order", before)
	}
	if before[0].Initialized {
		t.Errorf("a consumer is initialized before the hub runs")
	}
	if got := before[0].Topics; len(got) != 1 || got[0] != "org.x.slow." {
		t.Errorf("Topics = %q, want the declared [org.x.slow.]", got)
	}

	f := newFake()
	stop := runHub(t, h, f)
	f.push(t, "1", "org.x.slow.a", envelope("org.x.slow.a"))
	f.push(t, "2", "org.x.slow.fail", envelope("org.x.slow.fail"))
	f.push(t, "3", "org.x.slow.c", envelope("org.x.slow.c"))
	// A message nobody takes is settled at once; once it is, the hub has
	// queued the three before it (it reads in order).
	f.push(t, "none", "org.x.nobody", envelope("org.x.nobody"))
	if s := f.next(t); s.id != "none" {
		t.Fatalf("first settlement is %q, want the unmatched message", s.id)
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never started")
	}

	a := h.TakeActivity()
	s, idle := a[0], a[1]
	if !s.Initialized || !idle.Initialized {
		t.Errorf("Initialized while running = %v, %v, want true", s.Initialized, idle.Initialized)
	}
	if s.HeadcountIn != 3 || s.HeadcountOut != 1 || s.Backlog != 2 || len(s.Times) != 0 || s.Exceptions != 0 {
		t.Errorf("slow while the first message is in hand: in=%d out=%d backlog=%d times=%v exceptions=%d, want 3 1 2 [] 0",
			s.HeadcountIn, s.HeadcountOut, s.Backlog, s.Times, s.Exceptions)
	}
	if idle.HeadcountIn != 0 || idle.HeadcountOut != 0 || idle.Backlog != 0 {
		t.Errorf("idle consumer counted messages that were not its own: %+v", idle)
	}

	const hold = 20 * time.Millisecond
	go func() {
		for range 3 {
			time.Sleep(hold)
			gate <- struct{}{}
		}
	}()
	for range 3 {
		f.next(t)
	}
	a = h.TakeActivity()
	s = a[0]
	if s.HeadcountIn != 0 || s.HeadcountOut != 2 || s.Backlog != 0 || s.Exceptions != 1 {
		t.Errorf("slow after the interval: in=%d out=%d backlog=%d exceptions=%d, want 0 2 0 1 (counters reset, one failure)",
			s.HeadcountIn, s.HeadcountOut, s.Backlog, s.Exceptions)
	}
	if len(s.Times) != 3 {
		t.Fatalf("Times = %v, want one duration per handled message (3)", s.Times)
	}
	for _, d := range s.Times {
		// Each handler waited for the gate, at least hold after the last.
		if d < hold/2 {
			t.Errorf("handling time %v is shorter than the handler took (>= %v)", d, hold/2)
		}
	}

	a = h.TakeActivity()
	if s := a[0]; s.HeadcountIn != 0 || s.HeadcountOut != 0 || s.Exceptions != 0 || len(s.Times) != 0 {
		t.Errorf("a second take without traffic is not zero: %+v", s)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if h.TakeActivity()[0].Initialized {
		t.Errorf("consumer still initialized after Run returned")
	}
}
