package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/gofedmsg/fedmsg/datagrepper"
	"github.com/gofedmsg/fedmsg/internal/retry"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// BacklogSource is the Message.Source of messages fetched from
// datagrepper at start-up.
const BacklogSource = "datagrepper"

// Defaults of the backlog's retry pacing.
const (
	DefaultBacklogRetry    = time.Second
	DefaultBacklogMaxRetry = 5 * time.Minute
)

// Archive is where the backlog comes from; *datagrepper.Client is one.
type Archive interface {
	// Walk calls fn with every archived message whose timestamp is within
	// [start, end] (seconds), oldest first, as the archive stored it.
	Walk(ctx context.Context, start, end int64, fn func(env map[string]any) error) error
}

// startBacklogs starts, for every consumer whose status file a previous
// run left, the fetch of what it missed (spec §8.4). The messages join the
// consumer's queue alongside live traffic, as fedmsg's background thread
// does: the live bus is never held back while the archive is slow or
// down. The returned func stops the fetches and waits for them; Run calls
// it before closing the queues.
func (h *Hub) startBacklogs(ctx context.Context) (stop func()) {
	if h.opts.Archive == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, r := range h.runners {
		if r.status == nil || !r.status.found {
			continue
		}
		r.status.walking.Store(true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.status.walking.Store(false)
			r.backlog(ctx, h.opts)
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// backlog fetches the messages of r's topics from where its status file
// left off up to now, and queues each once, oldest first. A failing
// archive is retried with backoff, from the last message queued, until it
// answers or the hub stops.
func (r *runner) backlog(ctx context.Context, o Options) {
	s := r.status
	base, ceiling := o.BacklogRetry, o.BacklogMaxRetry
	if base <= 0 {
		base = DefaultBacklogRetry
	}
	if ceiling <= 0 {
		ceiling = DefaultBacklogMaxRetry
	}
	// The window is fixed now: what arrives from here on comes live.
	pos, end := s.startTS, time.Now().Unix()
	skip := map[string]bool{}
	for id := range s.startIDs {
		skip[id] = true
	}
	skipFirst := o.SkipLastMessage
	queued := 0
	r.log.Info("fetching the backlog from datagrepper", "since", pos, "until", end)
	for attempt := 0; ; attempt++ {
		err := o.Archive.Walk(ctx, pos, end, func(env map[string]any) error {
			topic, _ := env[message.FieldTopic].(string)
			if topic == "" || !message.MatchAny(r.patterns, topic) {
				return nil
			}
			if skipFirst { // skip_last_message
				skipFirst = false
				return nil
			}
			fixed := datagrepper.FixMessage(env)
			id, _ := fixed["msg_id"].(string)
			if id != "" && skip[id] {
				return nil
			}
			body, err := message.Canonical(fixed)
			if err != nil {
				r.log.Warn("backlog message has no canonical form; skipped", "msg_id", id, "err", err)
				return nil
			}
			// A retry starts again at the newest timestamp queued; what
			// was queued is skipped then.
			if ts, ok := datagrepper.Timestamp(fixed); ok && ts > pos {
				pos = ts
			}
			if id != "" {
				skip[id] = true
			}
			d := transport.NewDelivery(&transport.Message{Topic: topic, Body: body, ID: id}, BacklogSource, nil)
			s.queued.Add(1)
			r.act.queued()
			select {
			case r.jobs <- job{d: d, s: &settlement{d: d, pending: 1, log: r.log}}:
				queued++
				return nil
			case <-ctx.Done():
				s.queued.Add(-1)
				return ctx.Err()
			}
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			r.log.Info("backlog queued", "messages", queued)
			return
		}
		delay := retry.Jitter(retry.Exponential(attempt, base, ceiling))
		r.log.Warn("fetching the backlog failed; retrying", "err", err, "retry_in", delay.Round(time.Millisecond))
		if !retry.Sleep(ctx, delay) {
			return
		}
	}
}
