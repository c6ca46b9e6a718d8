package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
)

// Activity is what one consumer did since the previous TakeActivity: the
// figures moksha's monitoring report gives for each consumer (spec §1.4).
// The counters and Times cover the interval only; Backlog and Initialized
// are the state at the moment of the call.
type Activity struct {
	Consumer string
	// Topics are the consumer's declared topics.
	Topics []string
	// Initialized says the hub is running: subscribed, its workers started.
	Initialized bool
	// Exceptions counts handler errors and panics (moksha's
	// _exception_count); rejected messages are not exceptions.
	Exceptions uint64
	// Backlog is how many messages wait in the consumer's queue.
	Backlog int
	// HeadcountIn counts messages queued for the consumer, HeadcountOut
	// the messages it took from its queue to handle.
	HeadcountIn, HeadcountOut uint64
	// Times are how long each message taken out took to handle, in order.
	Times []time.Duration
}

// maxTimes bounds the handling times kept between two reports, so a hub
// nobody takes activity from does not grow without limit. The report of
// a busy interval then shows the first maxTimes durations.
const maxTimes = 10000

// activity are a runner's monitoring counters, reset by take.
type activity struct {
	mu          sync.Mutex
	in, out     uint64
	exceptions  uint64
	backlog     int
	times       []time.Duration
	initialized bool // the hub's Run has started the runner's worker
}

// queued records a message put in the runner's queue.
func (a *activity) queued() {
	a.mu.Lock()
	a.in++
	a.backlog++
	a.mu.Unlock()
}

// started records a message taken from the queue.
func (a *activity) started() {
	a.mu.Lock()
	a.out++
	a.backlog--
	a.mu.Unlock()
}

// finished records how long a message took and whether the handler failed.
func (a *activity) finished(d time.Duration, failed bool) {
	a.mu.Lock()
	if len(a.times) < maxTimes {
		a.times = append(a.times, d)
	}
	if failed {
		a.exceptions++
	}
	a.mu.Unlock()
}

func (a *activity) setInitialized(v bool) {
	a.mu.Lock()
	a.initialized = v
	a.mu.Unlock()
}

// take returns the counters and resets them.
func (a *activity) take(name string, topics []string) Activity {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := Activity{Consumer: name, Topics: topics, Initialized: a.initialized, Exceptions: a.exceptions,
		Backlog: a.backlog, HeadcountIn: a.in, HeadcountOut: a.out, Times: a.times}
	if out.Backlog < 0 {
		out.Backlog = 0
	}
	a.in, a.out, a.exceptions, a.times = 0, 0, 0, nil
	return out
}

// TakeActivity returns each consumer's Activity since the previous call
// (since New for the first), in the consumers' order, and resets the
// counters: what a monitoring report needs every interval. Safe to call
// while Run runs.
func (h *Hub) TakeActivity() []Activity {
	out := make([]Activity, 0, len(h.runners))
	for _, r := range h.runners {
		out = append(out, r.act.take(r.c.Name, r.c.Topics))
	}
	return out
}

// setInitialized marks every runner as running or not.
func (h *Hub) setInitialized(v bool) {
	for _, r := range h.runners {
		r.act.setInitialized(v)
	}
}

// handleTimed is handle with the monitoring counters around it: the
// message leaves the queue, its handling is timed, a handler error counts
// as an exception.
func (r *runner) handleTimed(ctx context.Context, d *transport.Delivery) error {
	r.act.started()
	start := time.Now()
	err := r.handle(ctx, d) // only a handler's failure is an error
	r.act.finished(time.Since(start), err != nil)
	return err
}
