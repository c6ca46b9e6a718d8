package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/memory"
)

// fakeTransport hands out deliveries the test pushes, each settled
// through a recording settler.
type fakeTransport struct {
	ch       chan *transport.Delivery
	patterns []string
	settled  chan settled
}

type settled struct {
	id    string
	ack   bool
	cause error
}

type recSettler struct {
	id string
	t  *fakeTransport
}

func (s *recSettler) Ack(context.Context) error {
	s.t.settled <- settled{id: s.id, ack: true}
	return nil
}

func (s *recSettler) Nack(_ context.Context, cause error) error {
	s.t.settled <- settled{id: s.id, cause: cause}
	return nil
}

func newFake() *fakeTransport {
	return &fakeTransport{ch: make(chan *transport.Delivery), settled: make(chan settled, 100)}
}

func (f *fakeTransport) Capabilities() transport.Capabilities {
	return transport.Capabilities{Redelivery: true}
}
func (f *fakeTransport) Publish(context.Context, ...*transport.Message) error { return nil }
func (f *fakeTransport) Subscribe(_ context.Context, p ...string) (<-chan *transport.Delivery, error) {
	f.patterns = p
	return f.ch, nil
}
func (f *fakeTransport) Close(context.Context) error { return nil }

// push delivers a message with id as its settlement name.
func (f *fakeTransport) push(t *testing.T, id, topic string, body []byte) {
	t.Helper()
	d := transport.NewDelivery(&transport.Message{Topic: topic, Body: body}, "fake", &recSettler{id: id, t: f})
	select {
	case f.ch <- d:
	case <-time.After(5 * time.Second):
		t.Fatalf("hub did not take message %s", id)
	}
}

func (f *fakeTransport) next(t *testing.T) settled {
	t.Helper()
	select {
	case s := <-f.settled:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no settlement within 5s")
	}
	return settled{}
}

// runHub starts h over tr and returns a stop that waits for Run's result.
func runHub(t *testing.T, h *Hub, tr transport.Transport) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, tr) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return within 10s")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// collector is a handler that records the topics it is given.
type collector struct {
	mu   sync.Mutex
	msgs []*Message
	got  chan *Message
}

func newCollector() *collector { return &collector{got: make(chan *Message, 100)} }

func (c *collector) handle(_ context.Context, m *Message) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	c.got <- m
	return nil
}

func (c *collector) topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		out = append(out, m.Topic)
	}
	return out
}

func envelope(topic string) []byte {
	b, err := message.Canonical(map[string]any{"topic": topic, "msg": map[string]any{}, "msg_id": "id-" + topic})
	if err != nil {
		panic(err)
	}
	return b
}

func TestMatching(t *testing.T) {
	all, prefix, glob, star, empty := newCollector(), newCollector(), newCollector(), newCollector(), newCollector()
	h, err := New([]Consumer{
		{Name: "all", Handler: all.handle},
		{Name: "prefix", Topics: []string{"org.fedoraproject.prod.bodhi."}, Handler: prefix.handle},
		{Name: "glob", Topics: []string{"*.git.receive", "org.fedoraproject.prod.pagure.?ull"}, Handler: glob.handle},
		{Name: "star", Topics: []string{"*"}, Handler: star.handle},
		{Name: "empty", Topics: []string{""}, Handler: empty.handle},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := h.Patterns(); p != nil {
		t.Errorf("Patterns() with a take-all consumer = %q, want none (every topic)", p)
	}
	mem, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close(context.Background())
	stop := runHub(t, h, mem)
	topics := []string{
		"org.fedoraproject.prod.bodhi.update.comment",
		"org.fedoraproject.prod.bodhix.y", // prefix "bodhi." does not match "bodhix."
		"org.fedoraproject.prod.git.receive",
		"org.fedoraproject.prod.git.receive.extra", // the glob is over the whole topic
		"org.fedoraproject.prod.pagure.pull",
		"org.fedoraproject.prod.pagure.pulls",
		"org.fedoraproject.stg.bodhi.update.comment",
	}
	// Wait until the subscription exists: publish a probe until "all" sees it.
	deadline := time.Now().Add(5 * time.Second)
	for len(all.topics()) == 0 {
		if err := mem.Publish(context.Background(), &transport.Message{Topic: "probe", Body: envelope("probe")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		if time.Now().After(deadline) {
			t.Fatal("hub never subscribed")
		}
	}
	for _, tp := range topics {
		if err := mem.Publish(context.Background(), &transport.Message{Topic: tp, Body: envelope(tp)}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until each consumer has at least what it should get; then
	// stop and compare exactly (nothing more may have come).
	for c, n := range map[*collector]int{all: len(topics), star: len(topics), empty: len(topics), prefix: 1, glob: 2} {
		deadline := time.Now().Add(5 * time.Second)
		for len(slices.DeleteFunc(c.topics(), func(s string) bool { return s == "probe" })) < n {
			if time.Now().After(deadline) {
				t.Fatalf("a consumer saw only %q, want %d messages", c.topics(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	check := func(name string, c *collector, want []string) {
		t.Helper()
		if got := c.topics(); !slices.Equal(got, want) {
			t.Errorf("%s got %q, want %q", name, got, want)
		}
	}
	check("prefix", prefix, []string{"org.fedoraproject.prod.bodhi.update.comment"})
	check("glob", glob, []string{"org.fedoraproject.prod.git.receive", "org.fedoraproject.prod.pagure.pull"})
	for _, c := range []*collector{all, star, empty} {
		got := slices.DeleteFunc(c.topics(), func(s string) bool { return s == "probe" })
		if !slices.Equal(got, topics) {
			t.Errorf("take-all consumer got %q, want %q", got, topics)
		}
	}
}

func TestPatternsUnion(t *testing.T) {
	nop := func(context.Context, *Message) error { return nil }
	h, err := New([]Consumer{
		{Name: "a", Topics: []string{"org.a.", "*.b"}, Handler: nop},
		{Name: "b", Topics: []string{"*.b", "org.c"}, Handler: nop},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Patterns(), []string{"org.a.", "*.b", "org.c"}; !slices.Equal(got, want) {
		t.Errorf("Patterns() = %q, want %q", got, want)
	}
	f := newFake()
	runHub(t, h, f)
	f.push(t, "1", "org.a.x", envelope("org.a.x"))
	f.next(t)
	if !slices.Equal(f.patterns, []string{"org.a.", "*.b", "org.c"}) {
		t.Errorf("subscribed with %q", f.patterns)
	}
}

func TestWrapping(t *testing.T) {
	const topic = "org.example.thing"
	cases := []struct {
		name, body string
		wrapped    bool
		wantBody   string
	}{
		{"envelope verbatim", `{"topic": "other.topic",  "msg": {"a": 1.0}}`, false, `{"topic": "other.topic",  "msg": {"a": 1.0}}`},
		{"object without topic", `{"a": 1}`, true, `{"msg":{"a":1},"topic":"org.example.thing"}`},
		{"list", `[1, 2]`, true, `{"msg":[1,2],"topic":"org.example.thing"}`},
		{"string", `"hello"`, true, `{"msg":"hello","topic":"org.example.thing"}`},
		{"number", `42`, true, `{"msg":42,"topic":"org.example.thing"}`},
		{"null", `null`, true, `{"msg":null,"topic":"org.example.thing"}`},
		{"not JSON", `hello world`, true, `{"msg":"hello world","topic":"org.example.thing"}`},
		{"empty", ``, true, `{"msg":{},"topic":"org.example.thing"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, body, wrapped, err := decodeEnvelope(topic, []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if wrapped != c.wrapped {
				t.Errorf("wrapped = %v, want %v", wrapped, c.wrapped)
			}
			if string(body) != c.wantBody {
				t.Errorf("body = %s, want %s", body, c.wantBody)
			}
			if c.wrapped && env["topic"] != topic {
				t.Errorf("wrapped topic = %v", env["topic"])
			}
		})
	}
	// Through a hub that does not validate, a wrapped message reaches the
	// handler with Raw kept.
	col := newCollector()
	h, err := New([]Consumer{{Name: "c", Handler: col.handle}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	runHub(t, h, f)
	f.push(t, "1", topic, []byte(`[1,2]`))
	if s := f.next(t); !s.ack {
		t.Errorf("wrapped message not acked: %+v", s)
	}
	m := <-col.got
	if !m.Wrapped || string(m.Raw) != `[1,2]` || string(m.Body) != `{"msg":[1,2],"topic":"org.example.thing"}` {
		t.Errorf("message = %+v", m)
	}
}

// vectors loads envelopes made by the real fedmsg and a validator for them.
func vectors(t *testing.T) (*signing.Validator, map[string][]byte) {
	t.Helper()
	dir := sharedtest.Dir(t, "fedmsg-x509")
	crl := filepath.Join(dir, "crl.pem")
	v, err := signing.NewValidator(signing.Options{CACertLocation: filepath.Join(dir, "ca.crt"), CRLLocation: &crl})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, name := range []string{"v01-ascii", "v02-unicode", "t08-unsigned", "t01-tampered-body", "n01-rogue",
		"n02-revoked", "t09-swapped-cert", "t02-tampered-topic", "t10-seq-id-added"} {
		out[name] = sharedtest.Read(t, "fedmsg-x509", "signed", name+".json")
	}
	return v, out
}

func topicOf(t *testing.T, body []byte) string {
	t.Helper()
	env, err := message.DecodeObject(body)
	if err != nil {
		t.Fatal(err)
	}
	return env["topic"].(string)
}

// TestCVE2017_1000001: a consumer that says nothing about
// validate_signatures, under a configuration that says true, must never
// be handed an unsigned or badly signed message. (Before fedmsg 0.18.2 it
// was: the consumer's default False won over the configuration.)
func TestCVE2017_1000001(t *testing.T) {
	v, vec := vectors(t)
	col := newCollector()
	h, err := New([]Consumer{{Name: "silent", Handler: col.handle}}, Options{ValidateSignatures: true, Validator: v})
	if err != nil {
		t.Fatal(err)
	}
	if !h.Validates()["silent"] {
		t.Fatal("a consumer without validate_signatures does not follow the configuration's true")
	}
	f := newFake()
	runHub(t, h, f)
	bad := []string{"t08-unsigned", "t01-tampered-body", "n01-rogue", "n02-revoked", "t09-swapped-cert", "t02-tampered-topic", "t10-seq-id-added"}
	for _, name := range bad {
		f.push(t, name, topicOf(t, vec[name]), vec[name])
		if s := f.next(t); !s.ack || s.id != name {
			t.Errorf("%s: rejected message settled %+v, want an ack", name, s)
		}
	}
	// A not-even-JSON body (wrapped, so unsigned) too.
	f.push(t, "text", "org.fedoraproject.dev.logger.log", []byte("hello"))
	f.next(t)
	f.push(t, "good", topicOf(t, vec["v01-ascii"]), vec["v01-ascii"])
	if s := f.next(t); !s.ack {
		t.Errorf("good message settled %+v", s)
	}
	select {
	case m := <-col.got:
		if !bytes.Equal(m.Body, vec["v01-ascii"]) || !m.Validated {
			t.Errorf("first message handed over is not the good one: %s", m.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the validly signed message never arrived")
	}
	select {
	case m := <-col.got:
		t.Fatalf("an invalid message reached the handler: %s", m.Body)
	default:
	}
	st := h.Stats()[0]
	if st.Rejected[RejectSignature] != uint64(len(bad)+1) || st.Handled != 1 {
		t.Errorf("stats = %+v, want %d signature rejections and 1 handled", st, len(bad)+1)
	}
}

// TestTriState tries every combination of the consumer's
// validate_signatures (unset, true, false) and the configuration's (true,
// false) against a good, an unsigned, a tampered message and a good one
// delivered under another topic.
func TestTriState(t *testing.T) {
	v, vec := vectors(t)
	type msg struct {
		name, topic string
		body        []byte
		valid       bool
	}
	good := vec["v01-ascii"]
	msgs := []msg{
		{"good", topicOf(t, good), good, true},
		{"unsigned", topicOf(t, vec["t08-unsigned"]), vec["t08-unsigned"], false},
		{"tampered", topicOf(t, vec["t01-tampered-body"]), vec["t01-tampered-body"], false},
		{"topic-mismatch", "org.fedoraproject.dev.logger.other", good, false},
	}
	owns := map[string]*bool{"unset": nil, "true": Bool(true), "false": Bool(false)}
	for ownName, own := range owns {
		for _, cfgVal := range []bool{true, false} {
			t.Run(fmt.Sprintf("consumer=%s/config=%v", ownName, cfgVal), func(t *testing.T) {
				effective := cfgVal
				if own != nil {
					effective = *own
				}
				col := newCollector()
				h, err := New([]Consumer{{Name: "c", ValidateSignatures: own, Handler: col.handle}},
					Options{ValidateSignatures: cfgVal, Validator: v})
				if err != nil {
					t.Fatal(err)
				}
				if got := h.Validates()["c"]; got != effective {
					t.Fatalf("effective validate_signatures = %v, want %v", got, effective)
				}
				f := newFake()
				runHub(t, h, f)
				var want []string
				for _, m := range msgs {
					f.push(t, m.name, m.topic, m.body)
					if s := f.next(t); !s.ack {
						t.Errorf("%s settled %+v, want ack", m.name, s)
					}
					if m.valid || !effective {
						want = append(want, m.topic)
					}
				}
				if got := col.topics(); !slices.Equal(got, want) {
					t.Errorf("handled %q, want %q", got, want)
				}
				st := h.Stats()[0]
				wantRejected := uint64(len(msgs) - len(want))
				if st.Rejected[RejectSignature]+st.Rejected[RejectTopicMismatch] != wantRejected {
					t.Errorf("rejected %v, want %d in all", st.Rejected, wantRejected)
				}
				if effective && st.Rejected[RejectTopicMismatch] != 1 {
					t.Errorf("topic mismatch not counted as such: %v", st.Rejected)
				}
			})
		}
	}
}

func TestValidatorRequired(t *testing.T) {
	nop := func(context.Context, *Message) error { return nil }
	if _, err := New([]Consumer{{Name: "c", Handler: nop}}, Options{ValidateSignatures: true}); !errors.Is(err, ErrNoValidator) {
		t.Errorf("config true, no validator: err = %v, want ErrNoValidator", err)
	}
	if _, err := New([]Consumer{{Name: "c", ValidateSignatures: Bool(true), Handler: nop}}, Options{}); !errors.Is(err, ErrNoValidator) {
		t.Errorf("consumer true, no validator: err = %v, want ErrNoValidator", err)
	}
	if _, err := New([]Consumer{{Name: "c", ValidateSignatures: Bool(false), Handler: nop}}, Options{ValidateSignatures: true}); err != nil {
		t.Errorf("consumer false needs no validator: %v", err)
	}
	if _, err := New([]Consumer{{Name: "c", Handler: nop}, {Name: "c", Handler: nop}}, Options{}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate names: %v", err)
	}
	if _, err := New([]Consumer{{Name: "c"}}, Options{}); !errors.Is(err, ErrNoHandler) {
		t.Errorf("no handler: %v", err)
	}
}

func TestAckNack(t *testing.T) {
	boom := errors.New("boom")
	var failNext atomic.Bool
	var calls atomic.Int32
	h, err := New([]Consumer{
		{Name: "flaky", Topics: []string{"a."}, Handler: func(context.Context, *Message) error {
			calls.Add(1)
			if failNext.Load() {
				return boom
			}
			return nil
		}},
		{Name: "steady", Topics: []string{"a.", "b."}, Handler: func(context.Context, *Message) error { return nil }},
		{Name: "panics", Topics: []string{"p."}, Handler: func(context.Context, *Message) error { panic("oops") }},
		{Name: "validating", Topics: []string{"v."}, ValidateSignatures: Bool(true),
			Handler: func(context.Context, *Message) error {
				t.Error("an unsigned message reached a validating consumer")
				return nil
			}},
	}, Options{Validator: rejectAll{}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	runHub(t, h, f)

	f.push(t, "ok", "a.x", envelope("a.x"))
	if s := f.next(t); !s.ack || s.id != "ok" {
		t.Errorf("handled by both: %+v, want ack", s)
	}
	failNext.Store(true)
	f.push(t, "fails", "a.x", envelope("a.x"))
	if s := f.next(t); s.ack || !errors.Is(s.cause, boom) {
		t.Errorf("one of two consumers failed: %+v, want a nack caused by boom", s)
	}
	if len(f.settled) != 0 {
		t.Error("a delivery was settled twice")
	}
	f.push(t, "other", "b.x", envelope("b.x"))
	if s := f.next(t); !s.ack {
		t.Errorf("message for steady only: %+v, want ack", s)
	}
	f.push(t, "nobody", "z.x", envelope("z.x"))
	if s := f.next(t); !s.ack {
		t.Errorf("message no consumer wants: %+v, want ack", s)
	}
	f.push(t, "panic", "p.x", envelope("p.x"))
	if s := f.next(t); s.ack || s.cause == nil {
		t.Errorf("panicking handler: %+v, want nack", s)
	}
	f.push(t, "rejected", "v.x", envelope("v.x"))
	if s := f.next(t); !s.ack {
		t.Errorf("rejected message: %+v, want ack (fedmsg acks rejected messages)", s)
	}
	st := h.Stats()
	if st[0].Handled != 1 || st[0].Failed != 1 || st[1].Handled != 3 || st[2].Failed != 1 || st[3].Rejected[RejectSignature] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

type rejectAll struct{}

func (rejectAll) Validate(context.Context, map[string]any) error { return signing.ErrUnsigned }

// TestSequentialOrder: one consumer's handler never runs twice at once and
// sees messages in arrival order, while another consumer is not held up
// by it.
func TestSequentialOrder(t *testing.T) {
	var inFlight, maxInFlight atomic.Int32
	var mu sync.Mutex
	var order []string
	slowDone := make(chan struct{})
	h, err := New([]Consumer{
		{Name: "slow", Handler: func(_ context.Context, m *Message) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			if n > maxInFlight.Load() {
				maxInFlight.Store(n)
			}
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			order = append(order, m.Topic)
			if len(order) == 20 {
				close(slowDone)
			}
			mu.Unlock()
			return nil
		}},
	}, Options{Queue: 4})
	if err != nil {
		t.Fatal(err)
	}
	mem, _ := memory.New(memory.Options{})
	defer mem.Close(context.Background())
	runHub(t, h, mem)
	// The memory transport subscribes synchronously inside Run; wait for it.
	time.Sleep(50 * time.Millisecond)
	var want []string
	for i := range 20 {
		tp := fmt.Sprintf("t.%02d", i)
		want = append(want, tp)
		if err := mem.Publish(context.Background(), &transport.Message{Topic: tp, Body: envelope(tp)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-slowDone:
	case <-time.After(10 * time.Second):
		t.Fatal("not all handled")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(order, want) {
		t.Errorf("order = %q, want %q", order, want)
	}
	if maxInFlight.Load() != 1 {
		t.Errorf("handler ran %d at once", maxInFlight.Load())
	}
}

// TestShutdownFinishesMessageInHand: after ctx ends the running handler
// completes with a live context and its message is acked; a message
// queued behind it is not started and is Nacked (redelivered on a queue).
func TestShutdownFinishesMessageInHand(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var handled atomic.Int32
	var ctxErr atomic.Value
	h, err := New([]Consumer{{Name: "c", Handler: func(ctx context.Context, m *Message) error {
		if handled.Add(1) == 1 {
			close(started)
			<-release
			if ctx.Err() != nil {
				ctxErr.Store(ctx.Err())
			}
		}
		return nil
	}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	stop := runHub(t, h, f)
	f.push(t, "first", "a", envelope("a"))
	<-started
	f.push(t, "second", "b", envelope("b")) // queued behind the first
	result := make(chan error, 1)
	go func() { result <- stop() }()
	time.Sleep(50 * time.Millisecond) // let Run see ctx end while the handler is busy
	close(release)
	if err := <-result; err != nil {
		t.Fatalf("Run after shutdown: %v", err)
	}
	got := map[string]settled{}
	for range 2 {
		s := f.next(t)
		got[s.id] = s
	}
	if !got["first"].ack {
		t.Errorf("message in hand: %+v, want ack", got["first"])
	}
	if got["second"].ack || got["second"].cause == nil {
		t.Errorf("queued message: %+v, want nack", got["second"])
	}
	if handled.Load() != 1 {
		t.Errorf("handler ran %d times, want 1 (the queued message must not start)", handled.Load())
	}
	if e := ctxErr.Load(); e != nil {
		t.Errorf("the handler's context was cancelled at shutdown: %v", e)
	}
}
