// Package loadgen is the engine of `fedmsg bench`: it publishes numbered,
// timestamped fedmsg envelopes through one transport, receives them from
// another (or the same), and reports throughput, loss, duplicates,
// reordering and latency. It knows transports only by the
// transport.Transport contract, so the same run measures ZeroMQ, STOMP,
// AMQP, a relay between two ZeroMQ endpoints or a bridge between kinds.
// A publishing transport that is a transport.Sender (AMQP with confirms)
// keeps several batches awaiting confirmation, as the bridge does, so the
// run measures the broker rather than one round trip per batch.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
)

// Defaults for the zero values of Options.
const (
	DefaultSize         = 609 // the size of shared/notes/brokers.md's raw baselines
	DefaultWindow       = 5000
	DefaultBatch        = 64
	DefaultWait         = 3 * time.Second
	DefaultReadyTimeout = 20 * time.Second
	DefaultProgress     = 500 * time.Millisecond
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotReady: no probe came through the path within ReadyTimeout.
	ErrNotReady = errors.New("loadgen: nothing came through")
	// ErrPublish: the publishing transport refused or failed a message.
	ErrPublish = errors.New("loadgen: publish failed")
	// ErrOptions wraps every validation error of Options.
	ErrOptions = errors.New("loadgen: bad options")
)

// maxPendingSends bounds the batches a transport.Sender (AMQP with
// confirms) has in flight unconfirmed: enough to keep the broker busy
// while confirms come back, as the bridge does.
const maxPendingSends = 16

// publishTimeout bounds one Publish (or a Send's confirmation): a broker
// that went away must not hang the run, interrupt or not (publishing is
// not cut short by an interrupt). It is well inside the 30 s the fedmsg
// command allows a process after SIGINT.
const publishTimeout = 10 * time.Second

// Options configure a run.
type Options struct {
	// Topic is the fully-qualified topic every message is published on and
	// the receiver subscribes to. Required.
	Topic string
	// Username goes into each envelope's username field.
	Username string
	// Count is how many messages to send. With Duration as well, the run
	// stops at whichever comes first; with neither, when ctx ends.
	Count int
	// Duration bounds the time spent sending.
	Duration time.Duration
	// Size is each body's size in bytes (the envelope is padded to it).
	// 0 means DefaultSize.
	Size int
	// Rate is the target in messages a second; 0 sends as fast as the
	// window allows.
	Rate float64
	// Window bounds the messages sent but not yet received: the publisher
	// waits when it is full, so a path slower than the publisher does not
	// queue without bound (and ZeroMQ's high-water marks do not drop).
	// 0 means DefaultWindow.
	Window int
	// Batch bounds the messages given to one Publish (or Send) call.
	// 0 means DefaultBatch.
	Batch int
	// Warmup messages are sent and received before measuring, unnumbered
	// (a JVM broker is slow for its first few thousand).
	Warmup int
	// Wait is how long the run waits, after sending, for missing messages
	// while none arrives; also how long the publisher waits on a full
	// window before it gives up. 0 means DefaultWait.
	Wait time.Duration
	// ReadyTimeout bounds the wait for the first probe to come through.
	// 0 means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Progress, when not nil, is called every ProgressEvery (0:
	// DefaultProgress) while the run measures, from a goroutine of its own.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

func (o Options) withDefaults() Options {
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.Wait == 0 {
		o.Wait = DefaultWait
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = DefaultProgress
	}
	return o
}

// Validate reports every option that cannot work.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrOptions}, args...)...))
	}
	if o.Topic == "" {
		bad("Topic is empty")
	}
	if o.Count < 0 {
		bad("Count must be >= 0, got %d", o.Count)
	}
	if o.Duration < 0 {
		bad("Duration must be >= 0, got %v", o.Duration)
	}
	if o.Size < 0 {
		bad("Size must be >= 0, got %d", o.Size)
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		bad("Rate must be a number >= 0, got %v", o.Rate)
	}
	if o.Window < 0 {
		bad("Window must be >= 0, got %d", o.Window)
	}
	if o.Batch < 0 {
		bad("Batch must be >= 0, got %d", o.Batch)
	}
	if o.Warmup < 0 {
		bad("Warmup must be >= 0, got %d", o.Warmup)
	}
	if o.Wait < 0 || o.ReadyTimeout < 0 || o.ProgressEvery < 0 {
		bad("Wait, ReadyTimeout and ProgressEvery must be >= 0")
	}
	return errors.Join(errs...)
}

// MinSize is the smallest Size a run on topic with username can have:
// the envelope's fixed fields without padding.
func MinSize(topic, username string) (int, error) {
	e, err := newEnvelope(topic, username, 1<<20, time.Now())
	if err != nil {
		return 0, err
	}
	return len(e.template) - e.pad, nil
}

// Progress is a snapshot of a run, for a live display.
type Progress struct {
	Elapsed  time.Duration
	Sent     int64
	Received int64
}

// Report is the outcome of a run. Rates are messages a second; latencies
// are from just before a message's Publish call to its arrival.
type Report struct {
	Topic  string  `json:"topic"`
	Size   int     `json:"size"`
	Rate   float64 `json:"target_rate"` // 0: as fast as possible
	Window int     `json:"window"`
	Batch  int     `json:"batch"`

	Sent       int64 `json:"sent"`
	Received   int64 `json:"received"` // distinct messages of this run
	Lost       int64 `json:"lost"`     // sent and never received
	Duplicates int64 `json:"duplicates"`
	Reordered  int64 `json:"reordered"` // arrived after a higher-numbered one
	Foreign    int64 `json:"foreign"`   // other messages on the topic, ignored

	// SendSeconds is from the first send to the last Publish returning;
	// Seconds is from the first send to the last arrival.
	SendSeconds float64 `json:"send_seconds"`
	Seconds     float64 `json:"seconds"`
	SentRate    float64 `json:"sent_per_second"`
	RecvRate    float64 `json:"received_per_second"`

	Latency Latency `json:"-"`
	P50us   float64 `json:"latency_p50_us"`
	P90us   float64 `json:"latency_p90_us"`
	P99us   float64 `json:"latency_p99_us"`
	MaxUs   float64 `json:"latency_max_us"`

	// Interrupted: ctx ended before every message was sent.
	Interrupted bool `json:"interrupted"`
	// Stalled: the window stayed full for Wait with nothing arriving, so
	// sending stopped early.
	Stalled bool `json:"stalled"`
	// Error is why the run ended early, when it did.
	Error string `json:"error,omitempty"`
}

// OK reports whether every message sent arrived and the run failed in no
// other way.
func (r *Report) OK() bool { return r.Lost == 0 && r.Error == "" && !r.Stalled }

// Run measures the path from pub to sub: it subscribes to Topic on sub,
// sends probes through pub until one arrives, sends Warmup unmeasured
// messages, then the measured ones, and waits for the stragglers. When
// ctx ends (an interrupt) it stops sending, still waits up to Wait for
// what is on the way, and reports. pub and sub may be the same transport.
//
// The report is returned whenever measuring started, also with an error
// (ErrPublish wrapped) that ended the run early; before that, only the
// error (ErrNotReady, the subscription's).
func Run(ctx context.Context, pub, sub transport.Transport, o Options) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	env, err := newEnvelope(o.Topic, o.Username, o.Size, time.Now())
	if err != nil {
		return nil, err
	}
	// The subscription outlives ctx (an interrupt): stragglers are still
	// received after it.
	subCtx, stopSub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSub()
	deliveries, err := sub.Subscribe(subCtx, o.Topic)
	if err != nil {
		return nil, fmt.Errorf("loadgen: subscribe to %q: %w", o.Topic, err)
	}
	r := &run{opts: o, env: env, pub: pub, wake: make(chan struct{}, 1)}
	r.target.Store(math.MaxInt64)
	r.probeTarget.Store(math.MaxInt64)
	r.sender, _ = pub.(transport.Sender)
	// Publishing, too, outlives ctx: a batch cut short by an interrupt
	// would be neither sent nor lost.
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	r.pubCtx = pubCtx

	received := make(chan struct{})
	go func() {
		defer close(received)
		r.receive(subCtx, deliveries)
	}()
	finish := func() {
		stopSub()
		<-received
	}

	if err := r.ready(ctx); err != nil {
		finish()
		return nil, err
	}
	rep := r.measure(ctx)
	finish()
	r.fill(rep)
	if rep.Error != "" {
		return rep, fmt.Errorf("%w: %s", ErrPublish, rep.Error)
	}
	return rep, nil
}

// run is the state of one Run shared by the sending and receiving
// goroutines.
type run struct {
	opts   Options
	env    *envelope
	pub    transport.Transport
	sender transport.Sender // pub as a Sender, or nil
	pubCtx context.Context

	// Written by the receiver only, read by everyone.
	got         atomic.Int64 // distinct measured messages received
	probes      atomic.Int64 // probe and warm-up arrivals
	lastArrival atomic.Int64 // ns since env.epoch of the last measured arrival
	// The receiver signals wake (without blocking) when got reaches
	// target or probes reaches probeTarget, so that a waiting sender is
	// woken when what it waits for has come, not for every message.
	target, probeTarget atomic.Int64
	wake                chan struct{}

	mu      sync.Mutex // guards counter and foreign after the receiver ends
	counter Counter
	foreign int64

	sent      atomic.Int64
	sendStart time.Time
	sendEnd   time.Time
}

func (r *run) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// receive counts every delivery until the subscription ends.
func (r *run) receive(ctx context.Context, deliveries <-chan *transport.Delivery) {
	for d := range deliveries {
		now := time.Since(r.env.epoch)
		seq, sent, ok := r.env.parse(d.Message.Body)
		// Settle at once: with redelivering transports an unsettled
		// delivery holds the broker's prefetch window.
		_ = d.Ack(ctx)
		switch {
		case !ok:
			r.mu.Lock()
			r.foreign++
			r.mu.Unlock()
		case seq >= probeBase:
			if r.probes.Add(1) >= r.probeTarget.Load() {
				r.signal()
			}
		default:
			r.mu.Lock()
			first := r.counter.Add(seq, now-sent)
			r.mu.Unlock()
			if first {
				r.lastArrival.Store(int64(now))
				if r.got.Add(1) >= r.target.Load() {
					r.signal()
				}
			}
		}
	}
}

// probeQuiet is how long no probe must arrive before the path is taken to
// be empty of probes; probeEvery paces the readiness probes.
const (
	probeQuiet = 300 * time.Millisecond
	probeEvery = 50 * time.Millisecond
)

// ready sends probes until one comes through (a ZeroMQ subscription or a
// broker binding settles asynchronously, and nothing else says when),
// then the warm-up messages, then waits until the path is quiet.
func (r *run) ready(ctx context.Context) error {
	deadline := time.Now().Add(r.opts.ReadyTimeout)
	probe := probeBase
	var lastErr error // why the last probe could not be published, if it could not
	for r.probes.Load() == 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("loadgen: interrupted before the path was ready: %w", err)
		}
		if time.Now().After(deadline) {
			if lastErr != nil {
				return fmt.Errorf("%w: no probe on %q arrived within %v; the last publish: %w", ErrNotReady, r.opts.Topic, r.opts.ReadyTimeout, lastErr)
			}
			return fmt.Errorf("%w: no probe on %q arrived within %v", ErrNotReady, r.opts.Topic, r.opts.ReadyTimeout)
		}
		// A broker transport waits for its connection within pctx: a
		// failure by the deadline is the path not being up, not an error
		// of its own.
		pctx, cancel := context.WithDeadline(ctx, deadline)
		lastErr = r.pub.Publish(pctx, r.message(probe))
		cancel()
		probe++
		if lastErr != nil && ctx.Err() == nil && time.Now().Before(deadline) {
			return fmt.Errorf("%w: probe: %w", ErrPublish, lastErr)
		}
		r.waitWake(ctx, probeEvery)
	}
	// Warm-up: as the measured run sends, windowed, but unnumbered.
	for sent := 0; sent < r.opts.Warmup; {
		if ctx.Err() != nil {
			return fmt.Errorf("loadgen: interrupted during the warm-up: %w", ctx.Err())
		}
		inFlight := int(probe-probeBase) - int(r.probes.Load())
		if inFlight >= r.opts.Window {
			r.probeTarget.Store(int64(probe-probeBase) - int64(r.opts.Window/2))
			if !r.waitWake(ctx, r.opts.Wait) && r.probes.Load() < r.probeTarget.Load() {
				return fmt.Errorf("%w: warm-up stalled: %d of %d warm-up messages arrived", ErrNotReady, r.probes.Load(), probe-probeBase)
			}
			continue
		}
		n := min(r.opts.Batch, r.opts.Warmup-sent, r.opts.Window-inFlight)
		msgs := make([]*transport.Message, n)
		for i := range msgs {
			msgs[i] = r.message(probe)
			probe++
		}
		if err := r.publish(msgs); err != nil {
			return fmt.Errorf("%w: warm-up: %w", ErrPublish, err)
		}
		sent += n
	}
	r.probeTarget.Store(math.MaxInt64)
	for last, since := r.probes.Load(), time.Now(); ctx.Err() == nil; {
		left := probeQuiet - time.Since(since)
		if left <= 0 {
			break
		}
		r.waitWake(ctx, left)
		if now := r.probes.Load(); now != last {
			last, since = now, time.Now()
		}
	}
	return nil
}

// waitWake waits for a signal from the receiver, at most d, or until ctx
// ends; it reports whether it was woken.
func (r *run) waitWake(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.wake:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (r *run) message(seq uint64) *transport.Message {
	return &transport.Message{Topic: r.opts.Topic, Body: r.env.body(seq, time.Now()), ID: r.env.msgID(seq)}
}

// measure sends the measured messages and waits for them; the report's
// counts are filled by fill once the receiver has stopped.
func (r *run) measure(ctx context.Context) *Report {
	o := r.opts
	rep := &Report{Topic: o.Topic, Size: len(r.env.template), Rate: o.Rate, Window: o.Window, Batch: o.Batch}

	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	r.sendStart = time.Now()
	if o.Progress != nil {
		go func() {
			defer close(progressDone)
			t := time.NewTicker(o.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					o.Progress(Progress{Elapsed: time.Since(r.sendStart), Sent: r.sent.Load(), Received: r.got.Load()})
				case <-stopProgress:
					return
				}
			}
		}()
	} else {
		close(progressDone)
	}

	// Sends in flight, oldest first, each with the cancel of the ctx its
	// confirmation is awaited in.
	type sending struct {
		p      *transport.Pending
		cancel context.CancelFunc
	}
	var pending []sending
	var sendErr error
	done := func(err error) {
		if err != nil && sendErr == nil {
			sendErr = err
		}
		pending[0].cancel()
		pending = pending[1:]
	}
	// settle waits for the pending Sends until at most keep remain.
	settle := func(keep int) {
		for len(pending) > keep {
			done(pending[0].p.Wait(r.pubCtx))
		}
	}
	// collect drops the pending Sends already resolved, oldest first.
	collect := func() {
		for len(pending) > 0 {
			select {
			case <-pending[0].p.Done():
				done(pending[0].p.Err())
				continue
			default:
			}
			break
		}
	}

	var deadline time.Time
	if o.Duration > 0 {
		deadline = r.sendStart.Add(o.Duration)
	}
	var seq uint64
	for sendErr == nil {
		if ctx.Err() != nil {
			rep.Interrupted = true
			break
		}
		if o.Count > 0 && seq >= uint64(o.Count) {
			break
		}
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			break
		}
		n := o.Batch
		if o.Count > 0 {
			n = min(n, o.Count-int(seq))
		}
		if o.Rate > 0 {
			// Message i is due at sendStart + i/Rate.
			due := int64(now.Sub(r.sendStart).Seconds()*o.Rate) + 1 - int64(seq)
			if due <= 0 {
				next := r.sendStart.Add(time.Duration(float64(seq) / o.Rate * float64(time.Second)))
				sleep(ctx, time.Until(next))
				continue
			}
			n = int(min(int64(n), due))
		}
		inFlight := int(int64(seq) - r.got.Load())
		if inFlight >= o.Window {
			r.target.Store(int64(seq) - int64(o.Window/2))
			if r.got.Load() < r.target.Load() && !r.waitWake(ctx, o.Wait) && r.got.Load() < r.target.Load() && ctx.Err() == nil {
				rep.Stalled = true
				break
			}
			r.target.Store(math.MaxInt64)
			continue
		}
		n = min(n, o.Window-inFlight)
		msgs := make([]*transport.Message, n)
		for i := range msgs {
			msgs[i] = r.message(seq + uint64(i))
		}
		if r.sender != nil {
			collect()
			settle(maxPendingSends - 1)
			sctx, cancel := context.WithTimeout(r.pubCtx, publishTimeout)
			p, err := r.sender.Send(sctx, msgs...)
			if err != nil {
				cancel()
				sendErr = err
				break
			}
			pending = append(pending, sending{p, cancel})
		} else if err := r.publish(msgs); err != nil {
			sendErr = err
			break
		}
		seq += uint64(n)
		r.sent.Store(int64(seq))
	}
	settle(0)
	r.sendEnd = time.Now()
	if sendErr != nil {
		rep.Error = sendErr.Error()
	}

	// Wait for the stragglers: until all have come, or none came for Wait.
	sent := int64(seq)
	r.target.Store(sent)
	// A wake may be stale (left by an earlier wait), so progress is
	// judged by the count over time, not by being woken.
	for got, since := r.got.Load(), time.Now(); got < sent; {
		left := o.Wait - time.Since(since)
		if left <= 0 {
			break
		}
		r.waitWake(context.Background(), left)
		if now := r.got.Load(); now != got {
			got, since = now, time.Now()
		}
	}
	r.target.Store(math.MaxInt64)
	if r.got.Load() >= sent && sent > 0 {
		// A message delivered twice after the last one counted would be
		// missed: give it a moment.
		time.Sleep(100 * time.Millisecond)
	}
	close(stopProgress)
	<-progressDone
	return rep
}

// fill completes rep from the counts, once the receiver has stopped.
func (r *run) fill(rep *Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.Sent = r.sent.Load()
	rep.Received = r.counter.Received()
	rep.Lost = r.counter.Missing(rep.Sent)
	rep.Duplicates = r.counter.Duplicates()
	rep.Reordered = r.counter.Reordered()
	rep.Foreign = r.foreign
	rep.Latency = r.counter.Latencies()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	rep.P50us, rep.P90us, rep.P99us, rep.MaxUs = us(rep.Latency.P50), us(rep.Latency.P90), us(rep.Latency.P99), us(rep.Latency.Max)
	rep.SendSeconds = r.sendEnd.Sub(r.sendStart).Seconds()
	end := r.sendEnd
	if last := r.env.epoch.Add(time.Duration(r.lastArrival.Load())); last.After(end) {
		end = last
	}
	rep.Seconds = end.Sub(r.sendStart).Seconds()
	if rep.SendSeconds > 0 {
		rep.SentRate = float64(rep.Sent) / rep.SendSeconds
	}
	if rep.Seconds > 0 {
		rep.RecvRate = float64(rep.Received) / rep.Seconds
	}
}

// publish publishes msgs within publishTimeout.
func (r *run) publish(msgs []*transport.Message) error {
	ctx, cancel := context.WithTimeout(r.pubCtx, publishTimeout)
	defer cancel()
	return r.pub.Publish(ctx, msgs...)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
