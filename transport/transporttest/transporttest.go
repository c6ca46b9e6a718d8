// Package transporttest is the conformance suite every transport of
// gofedmsg passes: one set of tests of the transport contract, run against
// each transport through a Factory.
//
// Tests that need a capability (transport.Capabilities) run only when the
// transport declares it, and otherwise say so with t.Skipf("capability X
// not declared"); the broker fault tests also need the Factory's broker
// hooks and say so when they are missing. SenderOrdering runs only for a
// publisher that implements the optional transport.Sender, and says so
// otherwise. No test skips for any other reason.
//
// Every test publishes on topics of its own, under
// "org.fedoraproject.transporttest.<run>.<test>", and ignores (acking)
// anything it receives outside that namespace, so transports on a shared
// broker and Settle's probes (on ProbeTopic) do not disturb it.
package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/gofedmsg/fedmsg/transport"
)

// ProbeTopic is the topic Settle functions publish their probes on. When
// Factory.Settle is set, the suite subscribes every subscription that has
// patterns to ProbeTopic as well, so probes can reach it, and ignores
// messages on it.
const ProbeTopic = "gofedmsg.transporttest.probe"

// Timeouts. receiveTimeout is generous for brokers; quiet is how long the
// suite listens for messages that must not arrive when it cannot rely on
// ordering (a redelivery may be queued behind a later message).
const (
	receiveTimeout = 10 * time.Second
	settleTimeout  = 10 * time.Second
	quiet          = 150 * time.Millisecond
)

// Factory makes the transports under test.
type Factory struct {
	// New returns a fresh, isolated transport pair (publisher side and
	// subscriber side may be the same value) and registers its cleanup
	// with t.Cleanup; each test calls it so tests do not see each other's
	// messages. Close must be idempotent: the suite closes the transports
	// itself in some tests, before the cleanup closes them again. Every
	// goroutine New starts must end once both transports are closed (the
	// leak test checks it).
	New func(t testing.TB) (pub, sub transport.Transport)
	// Settle is called after Subscribe and before the first Publish, for
	// transports whose subscriptions settle asynchronously (ZeroMQ's slow
	// joiner); it must return once a message published now would be
	// delivered. It may publish probes on ProbeTopic (see SettleByProbe)
	// and should drain them. nil = nothing to wait for.
	Settle func(t testing.TB, pub transport.Transport, sub <-chan *transport.Delivery)
	// StopBroker and StartBroker stop and restart the broker the
	// transports use, for the fault tests. nil: those tests are reported
	// as not applicable (skipped, saying so), never passed. Setting
	// StopBroker requires StartBroker.
	StopBroker, StartBroker func(t testing.TB)
	// ClaimBroker, when set, is called by the fault tests before they
	// connect: the broker is then theirs alone until the test ends, so
	// that another test process's fault injection cannot cut their
	// connections while they wait to stop it themselves.
	ClaimBroker func(t testing.TB)
}

// SettleByProbe is a Settle for transports like ZeroMQ: it publishes a
// probe on ProbeTopic every 20 ms until one arrives on sub, then drains
// what follows until sub has been quiet for 50 ms.
func SettleByProbe(t testing.TB, pub transport.Transport, sub <-chan *transport.Delivery) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	probe := &transport.Message{Topic: ProbeTopic, Body: []byte(`{"probe":true}`)}
	send := func() {
		if err := pub.Publish(ctx, probe); err != nil && ctx.Err() == nil {
			t.Fatalf("transporttest: settle: publish probe: %v", err)
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	send()
	for {
		select {
		case d, ok := <-sub:
			if !ok {
				t.Fatal("transporttest: settle: subscription closed before a probe arrived")
			}
			_ = d.Ack(ctx)
			if d.Message.Topic != ProbeTopic {
				continue
			}
			for {
				select {
				case d, ok := <-sub:
					if !ok {
						return
					}
					_ = d.Ack(ctx)
				case <-time.After(50 * time.Millisecond):
					return
				}
			}
		case <-tick.C:
			send()
		case <-ctx.Done():
			t.Fatalf("transporttest: settle: no probe arrived within %v", settleTimeout)
		}
	}
}

// Run runs the whole suite against the transports f makes.
func Run(t *testing.T, f Factory) {
	if f.New == nil {
		t.Fatal("transporttest: Factory.New is nil")
	}
	run := fmt.Sprintf("r%08x", rand.Uint32())
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"PublishSubscribe", testPublishSubscribe},
		{"ManyTopics", testManyTopics},
		{"TopicIsolation", testTopicIsolation},
		{"PatternSemantics", testPatternSemantics},
		{"InvalidPatternRefused", testInvalidPattern},
		{"BodyVerbatim", testBodyVerbatim},
		{"Ordering", testOrdering},
		{"SenderOrdering", testSenderOrdering},
		{"ConcurrentPublish", testConcurrentPublish},
		{"CloseBoundedByContext", testCloseBounded},
		{"SubscribeContextCancel", testSubscribeCancel},
		{"UseAfterClose", testUseAfterClose},
		{"NackRedelivers", testNackRedelivers},
		{"NackPermanentDoesNotRedeliver", testNackPermanent},
		{"SettleIdempotent", testSettleIdempotent},
		{"NoGoroutineLeak", testNoGoroutineLeak},
		{"PublishFailsWhenBrokerDown", testBrokerDown},
		{"ReconnectWhilePublishing", testReconnect},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, &env{f: f, base: "org.fedoraproject.transporttest." + run + "." + topicWord(tc.name)})
		})
	}
}

func topicWord(name string) string {
	return strings.Map(func(r rune) rune {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return unicode.ToLower(r)
		}
		return -1
	}, name)
}

// env is one test's view of the factory.
type env struct {
	f    Factory
	base string // every topic the test publishes starts with base + "."
}

func (e *env) topic(suffix string) string { return e.base + "." + suffix }

func (e *env) newPair(t *testing.T) (pub, sub transport.Transport) {
	t.Helper()
	pub, sub = e.f.New(t)
	if pub == nil || sub == nil {
		t.Fatal("transporttest: Factory.New returned a nil transport")
	}
	return pub, sub
}

// ordered: the pair promises one publisher's order end to end.
func ordered(pub, sub transport.Transport) bool {
	return pub.Capabilities().Ordered && sub.Capabilities().Ordered
}

func needs(t *testing.T, declared bool, capability string) {
	t.Helper()
	if !declared {
		t.Skipf("capability %s not declared", capability)
	}
}

// subscribe subscribes sub to patterns (adding ProbeTopic when Settle is
// set and there are patterns) and settles the subscription.
func (e *env) subscribe(t *testing.T, ctx context.Context, pub, sub transport.Transport, patterns ...string) *reader {
	t.Helper()
	ps := patterns
	if e.f.Settle != nil && len(ps) > 0 {
		ps = append(slices.Clone(ps), ProbeTopic)
	}
	ch, err := sub.Subscribe(ctx, ps...)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", patterns, err)
	}
	if ch == nil {
		t.Fatalf("Subscribe(%q) returned a nil channel", patterns)
	}
	if e.f.Settle != nil {
		e.f.Settle(t, pub, ch)
	}
	return &reader{ch: ch, base: e.base + "."}
}

func (e *env) publish(t *testing.T, tr transport.Transport, msgs ...*transport.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), receiveTimeout)
	defer cancel()
	if err := tr.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish of %d message(s): %v", len(msgs), err)
	}
}

// publishAsync publishes batches, one Publish call each, from a goroutine:
// the test reads while it publishes, since a transport may apply flow
// control and hold only a few unread messages. wait reports the outcome.
func (e *env) publishAsync(t *testing.T, tr transport.Transport, batches ...[]*transport.Message) (wait func()) {
	return background(t, "publishing", func() error {
		for _, b := range batches {
			ctx, cancel := context.WithTimeout(context.Background(), receiveTimeout)
			err := tr.Publish(ctx, b...)
			cancel()
			if err != nil {
				return fmt.Errorf("transporttest: Publish of %d message(s): %w", len(b), err)
			}
		}
		return nil
	})
}

// background runs fn in a goroutine; wait fails the test if fn failed or
// has not finished within receiveTimeout.
func background(t *testing.T, what string, fn func() error) (wait func()) {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return func() {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(receiveTimeout):
			t.Errorf("%s did not finish within %v", what, receiveTimeout)
		}
	}
}

// each makes one batch per message.
func each(msgs ...*transport.Message) [][]*transport.Message {
	out := make([][]*transport.Message, len(msgs))
	for i, m := range msgs {
		out[i] = []*transport.Message{m}
	}
	return out
}

func msg(topic, body string) *transport.Message {
	return &transport.Message{Topic: topic, Body: []byte(body)}
}

// reader receives one subscription's deliveries, skipping (and acking)
// what is outside the test's namespace: probes, other tests' traffic.
type reader struct {
	ch   <-chan *transport.Delivery
	base string
}

var (
	errTimeout = errors.New("timed out")
	errEnded   = errors.New("subscription channel closed")
)

func (r *reader) next(timeout time.Duration) (*transport.Delivery, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case d, ok := <-r.ch:
			if !ok {
				return nil, errEnded
			}
			if d == nil || d.Message == nil {
				return d, nil // reported by the caller
			}
			if !strings.HasPrefix(d.Message.Topic, r.base) {
				_ = d.Ack(context.Background())
				continue
			}
			return d, nil
		case <-timer.C:
			return nil, errTimeout
		}
	}
}

// must is next that fails the test on timeout or a closed channel.
func (r *reader) must(t *testing.T, what string) *transport.Delivery {
	t.Helper()
	d, err := r.next(receiveTimeout)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	if d == nil || d.Message == nil {
		t.Fatalf("waiting for %s: got a nil delivery or message", what)
	}
	return d
}

// awaitEnd reads until the channel is closed (acking what comes).
func (r *reader) awaitEnd(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		d, err := r.next(time.Until(deadline))
		switch {
		case errors.Is(err, errEnded):
			return nil
		case err != nil:
			return fmt.Errorf("channel still open after %v", timeout)
		}
		if d != nil {
			_ = d.Ack(context.Background())
		}
	}
}

// expectExactly (safe to call from several goroutines, one per reader)
// reads r until the message with body fence has arrived
// (and, without ordering, every message of want too, then a quiet period)
// and checks that each message of want arrived exactly once, with its
// topic, and nothing else did. Deliveries are acked.
func expectExactly(t *testing.T, r *reader, isOrdered bool, what string, want []*transport.Message, fence string) {
	t.Helper()
	wantTopic := make(map[string]string, len(want))
	for _, m := range want {
		wantTopic[string(m.Body)] = m.Topic
	}
	seen := map[string]int{}
	var problems []string
	record := func(d *transport.Delivery) {
		_ = d.Ack(context.Background())
		b := string(d.Message.Body)
		topic, ok := wantTopic[b]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("unexpected message on %q: %.80s", d.Message.Topic, b))
		case topic != d.Message.Topic:
			problems = append(problems, fmt.Sprintf("message %.80s came with topic %q, published on %q", b, d.Message.Topic, topic))
		}
		seen[b]++
	}
	fenceSeen := false
	done := func() bool {
		if !fenceSeen {
			return false
		}
		if isOrdered {
			return true
		}
		for b := range wantTopic {
			if seen[b] == 0 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(receiveTimeout)
	for !done() {
		d, err := r.next(time.Until(deadline))
		if err != nil {
			break
		}
		if d == nil || d.Message == nil {
			t.Errorf("%s: got a nil delivery or message", what)
			return
		}
		if string(d.Message.Body) == fence {
			_ = d.Ack(context.Background())
			fenceSeen = true
			continue
		}
		record(d)
	}
	if !fenceSeen {
		problems = append(problems, fmt.Sprintf("the closing message did not arrive within %v", receiveTimeout))
	}
	if !isOrdered {
		for {
			d, err := r.next(quiet)
			if err != nil {
				break
			}
			if d != nil && d.Message != nil && string(d.Message.Body) != fence {
				record(d)
			}
		}
	}
	for _, m := range want {
		switch n := seen[string(m.Body)]; {
		case n == 0:
			problems = append(problems, fmt.Sprintf("missing: %q %.80s", m.Topic, m.Body))
		case n > 1:
			problems = append(problems, fmt.Sprintf("delivered %d times: %q %.80s", n, m.Topic, m.Body))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s:\n\t%s", what, strings.Join(problems, "\n\t"))
	}
}

func testPublishSubscribe(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.topic("one"))
	m := msg(e.topic("one.update"), `{"hello":"world"}`)
	e.publish(t, pub, m)
	d := r.must(t, "the published message")
	if d.Message.Topic != m.Topic || !bytes.Equal(d.Message.Body, m.Body) {
		t.Fatalf("got %q %q, want %q %q", d.Message.Topic, d.Message.Body, m.Topic, m.Body)
	}
	if err := d.Ack(ctx); err != nil {
		t.Errorf("Ack: %v", err)
	}
}

func testManyTopics(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.base+".")
	var want []*transport.Message
	for i := range 100 {
		want = append(want, msg(e.topic(fmt.Sprintf("t%03d.%s", i, []string{"a", "b.c", "d.e.f"}[i%3])), fmt.Sprintf(`{"n":%d}`, i)))
	}
	// one call each, then one call for many
	batches := append(each(want[:50]...), want[50:], []*transport.Message{msg(e.topic("fence"), `{"fence":true}`)})
	wait := e.publishAsync(t, pub, batches...)
	expectExactly(t, r, ordered(pub, sub), "100 topics", want, `{"fence":true}`)
	wait()
}

func testTopicIsolation(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ra := e.subscribe(t, ctx, pub, sub, e.topic("a."))
	rb := e.subscribe(t, ctx, pub, sub, e.topic("b."), e.topic("c.x"))
	rall := e.subscribe(t, ctx, pub, sub) // no pattern: everything
	a1 := msg(e.topic("a.1"), `{"m":"a1"}`)
	b1 := msg(e.topic("b.1"), `{"m":"b1"}`)
	cx := msg(e.topic("c.x"), `{"m":"cx"}`)
	cy := msg(e.topic("c.y"), `{"m":"cy"}`)
	a2 := msg(e.topic("a.2"), `{"m":"a2"}`)
	b2 := msg(e.topic("b.2"), `{"m":"b2"}`)
	d1 := msg(e.topic("d.1"), `{"m":"d1"}`)
	ab := msg(e.topic("ab"), `{"m":"ab"}`) // not "a." although it starts with "a"
	fa := msg(e.topic("a.fence"), `{"fence":"a"}`)
	fb := msg(e.topic("b.fence"), `{"fence":"b"}`)
	wait := e.publishAsync(t, pub, []*transport.Message{a1, b1, cx, cy, ab}, []*transport.Message{a2, b2, d1, fa, fb})
	ord := ordered(pub, sub)
	var wg sync.WaitGroup
	for _, c := range []struct {
		r     *reader
		what  string
		want  []*transport.Message
		fence string
	}{
		{ra, "subscription to " + e.topic("a."), []*transport.Message{a1, a2}, `{"fence":"a"}`},
		{rb, "subscription to " + e.topic("b.") + " and " + e.topic("c.x"), []*transport.Message{b1, cx, b2}, `{"fence":"b"}`},
		{rall, "subscription with no pattern", []*transport.Message{a1, b1, cx, cy, ab, a2, b2, d1, fa}, `{"fence":"b"}`},
	} {
		wg.Go(func() { expectExactly(t, c.r, ord, c.what, c.want, c.fence) })
	}
	wg.Wait()
	wait()
}

// patternCases are fedmsg's topic patterns (message.Pattern) written out:
// a plain prefix, or an fnmatch glob over the whole topic. "B" stands for
// the test's namespace. The expected values are Python fnmatch's.
var patternCases = []struct {
	patterns []string
	match    []string
	noMatch  []string
}{
	{[]string{""}, []string{"B.x", "B.x.y"}, nil},
	{[]string{"B.prod.bodhi"},
		[]string{"B.prod.bodhi", "B.prod.bodhi.update", "B.prod.bodhix"},
		[]string{"B.prod.bod", "B.stg.bodhi.update"}},
	{[]string{"B.*.bodhi.update"},
		[]string{"B.prod.bodhi.update", "B.a.b.bodhi.update"},
		[]string{"B.prod.bodhi.update.extra", "B.prod.bodhi.updat", "B.bodhi.update"}},
	{[]string{"B.prod.*"},
		[]string{"B.prod.x", "B.prod.x.y"},
		[]string{"B.prod", "B.production", "B.stg.x"}},
	{[]string{"B.*"}, []string{"B.x", "B.x.y.z"}, nil},
	{[]string{"B.a?c"},
		[]string{"B.abc", "B.a.c"},
		[]string{"B.ac", "B.abbc", "B.abcd"}},
	{[]string{"B.[!x]y"},
		[]string{"B.ay", "B.zy"},
		[]string{"B.xy", "B.y", "B.aay"}},
	{[]string{"B.[a-c]z.*"},
		[]string{"B.bz.1", "B.az.x.y"},
		[]string{"B.dz.1", "B.bz"}},
	{[]string{"B.wiki["}, // no closing ']': a literal '[', and a whole-topic glob
		[]string{"B.wiki["},
		[]string{"B.wiki[x", "B.wiki"}},
	{[]string{"B.caf?.*"},
		[]string{"B.café.ümläut"},
		[]string{"B.cafe", "B.cafxx.y"}},
	{[]string{"B.one.", "B.*.two"},
		[]string{"B.one.x", "B.z.two", "B.one.two"},
		[]string{"B.three", "B.one", "B.two.x"}},
}

func testPatternSemantics(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	ord := ordered(pub, sub)
	expand := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = strings.Replace(s, "B", e.base, 1)
		}
		return out
	}
	for i, c := range patternCases {
		patterns := expand(c.patterns)
		if c.patterns[0] == "" {
			patterns = []string{""}
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := e.subscribe(t, ctx, pub, sub, patterns...)
		var want, all []*transport.Message
		for _, topic := range expand(c.match) {
			m := msg(topic, fmt.Sprintf(`{"case":%d,"topic":%q}`, i, topic))
			want = append(want, m)
			all = append(all, m)
		}
		for _, topic := range expand(c.noMatch) {
			all = append(all, msg(topic, fmt.Sprintf(`{"case":%d,"topic":%q}`, i, topic)))
		}
		fence := fmt.Sprintf(`{"case":%d,"fence":true}`, i)
		all = append(all, msg(want[0].Topic, fence))
		wait := e.publishAsync(t, pub, all)
		expectExactly(t, r, ord, fmt.Sprintf("patterns %q", c.patterns), want, fence)
		wait()
		cancel()
		if err := r.awaitEnd(receiveTimeout); err != nil {
			t.Fatalf("patterns %q: after cancel: %v", c.patterns, err)
		}
	}
}

func testInvalidPattern(t *testing.T, e *env) {
	_, sub := e.newPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, e.topic("ok"), "org.fedoraproject.\xff*")
	if err == nil {
		t.Fatalf("Subscribe accepted a pattern that is not UTF-8 (channel %v)", ch != nil)
	}
}

func testBodyVerbatim(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.topic("body."))

	big := make([]byte, 1<<20)
	copy(big, `{"big":"`)
	for i := len(`{"big":"`); i < len(big)-2; i++ {
		big[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i%36]
	}
	copy(big[len(big)-2:], `"}`)
	bodies := [][]byte{
		// escapes a re-serialiser would change, and raw UTF-8
		[]byte(`{"b":"\u0000\u0001\u001f\u007f\u00ff\ud800\udfff\\u0000\"\/","raw":"café ☃ 😀"}`),
		// not canonical: spacing, key order, number spellings
		[]byte("{\n  \"z\" : 1.0,\n  \"a\" : [ -0, 1E+2, 1e400 ],\t\"m\":{}\n}"),
		[]byte(`{}`),
		big,
	}
	var want []*transport.Message
	var published [][]byte
	for i, b := range bodies {
		buf := bytes.Clone(b)
		published = append(published, buf)
		want = append(want, &transport.Message{Topic: e.topic(fmt.Sprintf("body.%d", i)), Body: buf})
	}
	wait := background(t, "publishing", func() error {
		pctx, cancel := context.WithTimeout(ctx, receiveTimeout)
		defer cancel()
		if err := pub.Publish(pctx, want...); err != nil {
			return err
		}
		for _, buf := range published { // the caller may reuse its buffers now
			for i := range buf {
				buf[i] = 'X'
			}
		}
		return nil
	})
	defer wait()
	got := map[string][]byte{}
	for range want {
		d := r.must(t, fmt.Sprintf("%d bodies", len(want)))
		got[d.Message.Topic] = d.Message.Body
		_ = d.Ack(ctx)
	}
	for i, b := range bodies {
		topic := e.topic(fmt.Sprintf("body.%d", i))
		g, ok := got[topic]
		switch {
		case !ok:
			t.Errorf("body %d never arrived", i)
		case !bytes.Equal(g, b):
			t.Errorf("body %d changed (%d bytes, want %d):\n got %.120q\nwant %.120q", i, len(g), len(b), g, b)
		}
	}
}

func testOrdering(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	needs(t, ordered(pub, sub), "Ordered")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.base+".")
	const n = 300
	var msgs []*transport.Message
	for i := range n {
		msgs = append(msgs, msg(e.topic([]string{"x", "y.z", "w"}[i%3]), fmt.Sprintf(`{"seq":%d}`, i)))
	}
	var batches [][]*transport.Message
	for i := 0; i < n; {
		k := min(1+i%7, n-i) // calls of 1 to 7 messages
		batches = append(batches, msgs[i:i+k])
		i += k
	}
	defer e.publishAsync(t, pub, batches...)()
	for i := range n {
		d := r.must(t, fmt.Sprintf("message %d of %d", i, n))
		_ = d.Ack(ctx)
		if string(d.Message.Body) != string(msgs[i].Body) {
			t.Fatalf("message %d: got %s, want %s", i, d.Message.Body, msgs[i].Body)
		}
	}
}

// testSenderOrdering: many Sends without waiting for their Pendings (how
// the bridge pipelines batches) keep one publisher's order, and every
// Pending completes with nil. transport.Sender is an optional interface,
// not a capability: a transport without it is not at fault, so the test is
// skipped, saying so.
func testSenderOrdering(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	s, ok := pub.(transport.Sender)
	if !ok {
		t.Skipf("optional interface transport.Sender not implemented by %T", pub)
	}
	needs(t, ordered(pub, sub), "Ordered")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.base+".")
	const n = 300
	var msgs []*transport.Message
	for i := range n {
		msgs = append(msgs, msg(e.topic([]string{"x", "y.z", "w"}[i%3]), fmt.Sprintf(`{"seq":%d}`, i)))
	}
	// The Pendings' ctx outlives them, as the contract asks; Sends run
	// while the test reads, since a broker may apply flow control.
	sendCtx, sendCancel := context.WithTimeout(context.Background(), receiveTimeout)
	defer sendCancel()
	pendings := make(chan *transport.Pending, n)
	wait := background(t, "sending", func() error {
		defer close(pendings)
		for i := 0; i < n; {
			k := min(1+i%7, n-i) // calls of 1 to 7 messages
			p, err := s.Send(sendCtx, msgs[i:i+k]...)
			if err != nil {
				return fmt.Errorf("transporttest: Send of messages %d..%d: %w", i, i+k-1, err)
			}
			if p == nil {
				return fmt.Errorf("transporttest: Send of messages %d..%d returned a nil Pending", i, i+k-1)
			}
			pendings <- p
			i += k
		}
		return nil
	})
	for i := range n {
		d := r.must(t, fmt.Sprintf("message %d of %d", i, n))
		_ = d.Ack(ctx)
		if string(d.Message.Body) != string(msgs[i].Body) {
			t.Fatalf("message %d: got %s, want %s", i, d.Message.Body, msgs[i].Body)
		}
	}
	wait()
	i := 0
	for p := range pendings {
		if err := p.Wait(sendCtx); err != nil {
			t.Errorf("Pending of Send %d: %v", i, err)
		}
		i++
	}
}

func testConcurrentPublish(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.topic("c."))
	const goroutines, perGoroutine = 8, 50
	var want []*transport.Message
	for g := range goroutines {
		for i := range perGoroutine {
			want = append(want, msg(e.topic(fmt.Sprintf("c.g%d", g)), fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)))
		}
	}
	// Publishers run while the test reads; the fence follows them all.
	wait := background(t, "concurrent publishing", func() error {
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Go(func() {
				for _, m := range want[g*perGoroutine : (g+1)*perGoroutine] {
					pctx, cancel := context.WithTimeout(ctx, receiveTimeout)
					err := pub.Publish(pctx, m)
					cancel()
					if err != nil {
						errs <- fmt.Errorf("goroutine %d: %w", g, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		var failed []error
		for err := range errs {
			failed = append(failed, err)
		}
		if len(failed) > 0 {
			return errors.Join(failed...)
		}
		pctx, cancel := context.WithTimeout(ctx, receiveTimeout)
		defer cancel()
		return pub.Publish(pctx, msg(e.topic("c.fence"), `{"fence":true}`))
	})
	defer wait()

	// Checked here rather than by expectExactly, to also see each
	// goroutine's order on ordered transports.
	ord := ordered(pub, sub)
	last := make([]int, goroutines)
	for g := range last {
		last[g] = -1
	}
	wantSet := map[string]bool{}
	for _, m := range want {
		wantSet[string(m.Body)] = true
	}
	var got []*transport.Message
	for {
		d := r.must(t, fmt.Sprintf("%d concurrently published messages and a fence (%d so far)", len(want), len(got)))
		_ = d.Ack(ctx)
		if string(d.Message.Body) == `{"fence":true}` {
			break
		}
		got = append(got, d.Message)
		var g, i int
		if _, err := fmt.Sscanf(string(d.Message.Body), `{"g":%d,"i":%d}`, &g, &i); err == nil && g < goroutines && ord {
			if i <= last[g] {
				t.Errorf("goroutine %d: message %d arrived after %d", g, i, last[g])
			}
			last[g] = i
		}
	}
	if !ord {
		for len(got) < len(want) {
			d, err := r.next(receiveTimeout)
			if err != nil {
				break
			}
			_ = d.Ack(ctx)
			got = append(got, d.Message)
		}
	}
	count := map[string]int{}
	for _, m := range got {
		count[string(m.Body)]++
		if !wantSet[string(m.Body)] {
			t.Errorf("unexpected message %q %s", m.Topic, m.Body)
		}
	}
	for _, m := range want {
		if n := count[string(m.Body)]; n != 1 {
			t.Errorf("%s arrived %d times, want once", m.Body, n)
		}
	}
}

func testCloseBounded(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.base+".")
	// Leave work in flight: messages nobody reads, a publisher perhaps
	// blocked by flow control. Close must end it either way.
	var inflight []*transport.Message
	for i := range 20 {
		inflight = append(inflight, msg(e.topic("inflight"), fmt.Sprintf(`{"n":%d}`, i)))
	}
	publishing := background(t, "publishing while closing", func() error {
		pctx, cancel := context.WithTimeout(ctx, receiveTimeout)
		defer cancel()
		for _, m := range inflight {
			if err := pub.Publish(pctx, m); err != nil {
				if errors.Is(err, transport.ErrClosed) {
					return nil
				}
				return err
			}
		}
		return nil
	})
	// Let some of it through first.
	if d, err := r.next(receiveTimeout); err == nil && d != nil {
		_ = d.Ack(ctx)
	}
	expired, cancelExpired := context.WithCancel(context.Background())
	cancelExpired()
	for _, side := range []struct {
		name string
		tr   transport.Transport
	}{{"subscriber", sub}, {"publisher", pub}} {
		start := time.Now()
		err := side.tr.Close(expired)
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: Close with an expired ctx took %v (err %v)", side.name, took, err)
		}
		// A second Close with time to spare finishes the job.
		cctx, ccancel := context.WithTimeout(context.Background(), receiveTimeout)
		if err := side.tr.Close(cctx); err != nil {
			t.Errorf("%s: Close after an expired Close: %v", side.name, err)
		}
		if err := side.tr.Close(cctx); err != nil {
			t.Errorf("%s: Close is not idempotent: %v", side.name, err)
		}
		ccancel()
	}
	if err := r.awaitEnd(receiveTimeout); err != nil {
		t.Errorf("subscription after Close: %v", err)
	}
	publishing()
}

func testSubscribeCancel(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := e.subscribe(t, ctx, pub, sub, e.topic("cancel."))
	e.publish(t, pub, msg(e.topic("cancel.before"), `{"n":1}`))
	cancel()
	if err := r.awaitEnd(receiveTimeout); err != nil {
		t.Fatalf("after its ctx was cancelled, the subscription's %v", err)
	}
	// Only that subscription ended: the transports go on.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	r2 := e.subscribe(t, ctx2, pub, sub, e.topic("cancel."))
	m := msg(e.topic("cancel.after"), `{"n":2}`)
	e.publish(t, pub, m)
	d := r2.must(t, "a message on a new subscription after another was cancelled")
	// A Durable transport keeps, for the next subscription, what the
	// cancelled one never received (a named queue): it may come first.
	if sub.Capabilities().Durable && string(d.Message.Body) == `{"n":1}` {
		_ = d.Ack(ctx2)
		d = r2.must(t, "a message on a new subscription after another was cancelled")
	}
	if !bytes.Equal(d.Message.Body, m.Body) {
		t.Errorf("got %s, want %s", d.Message.Body, m.Body)
	}
	_ = d.Ack(ctx2)
}

func testUseAfterClose(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), receiveTimeout)
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.topic("closed."))
	for _, tr := range []transport.Transport{sub, pub} {
		if err := tr.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := r.awaitEnd(receiveTimeout); err != nil {
		t.Errorf("subscription after Close: %v", err)
	}
	if err := pub.Publish(ctx, msg(e.topic("closed.x"), `{}`)); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Publish after Close: want an error wrapping transport.ErrClosed, got %v", err)
	}
	if _, err := sub.Subscribe(ctx, e.topic("closed.")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Subscribe after Close: want an error wrapping transport.ErrClosed, got %v", err)
	}
}

func testNackRedelivers(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	needs(t, sub.Capabilities().Redelivery, "Redelivery")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.topic("nack."))
	m := msg(e.topic("nack.x"), `{"retry":"me"}`)
	e.publish(t, pub, m)
	d := r.must(t, "the message")
	if err := d.Nack(ctx, errors.New("handler failed, try again")); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	d2 := r.must(t, "the redelivery after Nack")
	if d2.Message.Topic != m.Topic || !bytes.Equal(d2.Message.Body, m.Body) {
		t.Fatalf("redelivered %q %s, want %q %s", d2.Message.Topic, d2.Message.Body, m.Topic, m.Body)
	}
	if err := d2.Ack(ctx); err != nil {
		t.Fatalf("Ack of the redelivery: %v", err)
	}
	fence := `{"fence":true}`
	e.publish(t, pub, msg(e.topic("nack.fence"), fence))
	expectExactly(t, r, false, "after the redelivery was acked", nil, fence)
}

func testNackPermanent(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	needs(t, sub.Capabilities().Redelivery, "Redelivery")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.topic("nack."))
	e.publish(t, pub, msg(e.topic("nack.poison"), `{"poison":true}`))
	d := r.must(t, "the message")
	if err := d.Nack(ctx, fmt.Errorf("undecodable: %w", transport.ErrPermanent)); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	fence := `{"fence":true}`
	e.publish(t, pub, msg(e.topic("nack.fence"), fence))
	// Not ordered: a redelivery may be queued behind the fence.
	expectExactly(t, r, false, "after a permanent Nack", nil, fence)
}

func testSettleIdempotent(t *testing.T, e *env) {
	pub, sub := e.newPair(t)
	redelivers := sub.Capabilities().Redelivery
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.topic("settle."))
	acked := msg(e.topic("settle.acked"), `{"settle":"ack"}`)
	nacked := msg(e.topic("settle.nacked"), `{"settle":"nack"}`)
	dropped := msg(e.topic("settle.dropped"), `{"settle":"permanent"}`)
	fence := `{"fence":true}`
	defer e.publishAsync(t, pub, []*transport.Message{acked, nacked, dropped, msg(e.topic("settle.fence"), fence)})()
	transient := errors.New("try again")
	permanent := fmt.Errorf("refused: %w", transport.ErrPermanent)
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	seen := map[string]int{}
	fenceSeen := false
	wantRedelivery := 0
	if redelivers {
		wantRedelivery = 1
	}
	complete := func() bool {
		return fenceSeen && seen[string(acked.Body)] > 0 && seen[string(dropped.Body)] > 0 &&
			seen[string(nacked.Body)] > wantRedelivery
	}
	handle := func(d *transport.Delivery) {
		b := string(d.Message.Body)
		seen[b]++
		switch {
		case b == fence:
			fenceSeen = true
			check("Ack of the fence", d.Ack(ctx))
		case b == string(acked.Body) && seen[b] == 1:
			check("Ack", d.Ack(ctx))
			check("second Ack", d.Ack(ctx))
			check("Nack after Ack", d.Nack(ctx, transient))
		case b == string(nacked.Body) && seen[b] == 1:
			check("Nack", d.Nack(ctx, transient))
			check("second Nack", d.Nack(ctx, transient))
			check("Ack after Nack", d.Ack(ctx))
		case b == string(nacked.Body) && seen[b] == 2 && redelivers:
			check("Ack of the redelivery", d.Ack(ctx))
		case b == string(dropped.Body) && seen[b] == 1:
			check("permanent Nack", d.Nack(ctx, permanent))
			check("second permanent Nack", d.Nack(ctx, permanent))
		default:
			_ = d.Ack(ctx)
			t.Errorf("delivered again or unexpected: %q %s", d.Message.Topic, b)
		}
	}
	deadline := time.Now().Add(receiveTimeout)
	for !complete() {
		d, err := r.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for the three messages, the fence and %d redelivery: %v (seen %v)", wantRedelivery, err, seen)
		}
		handle(d)
	}
	for {
		d, err := r.next(quiet)
		if err != nil {
			break
		}
		handle(d)
	}
}

// testNoGoroutineLeak runs a whole life cycle twice (the first one starts
// whatever the runtime and libraries start lazily) and then expects the
// number of goroutines to come back to what it was before the second.
func testNoGoroutineLeak(t *testing.T, e *env) {
	cycle := func(round int) {
		pub, sub := e.newPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		r := e.subscribe(t, ctx, pub, sub, e.topic("leak."))
		r2 := e.subscribe(t, context.Background(), pub, sub, e.topic("leak."))
		m := msg(e.topic("leak.x"), fmt.Sprintf(`{"round":%d}`, round))
		e.publish(t, pub, m)
		for _, rr := range []*reader{r, r2} {
			d := rr.must(t, "the message")
			_ = d.Ack(ctx)
		}
		cancel()
		if err := r.awaitEnd(receiveTimeout); err != nil {
			t.Fatalf("cancelled subscription: %v", err)
		}
		cctx, ccancel := context.WithTimeout(context.Background(), receiveTimeout)
		defer ccancel()
		for _, tr := range []transport.Transport{sub, pub} {
			if err := tr.Close(cctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		if err := r2.awaitEnd(receiveTimeout); err != nil {
			t.Fatalf("subscription after Close: %v", err)
		}
	}
	cycle(0)
	before := stableGoroutines()
	cycle(1)
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > before {
		var buf bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("%d goroutines before a publish/subscribe/close cycle, %d five seconds after it:\n%s", before, n, buf.String())
	}
}

// stableGoroutines waits (up to a second) for the goroutine count to stop
// falling, so goroutines of earlier tests that are still ending do not
// count.
func stableGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func (e *env) brokerHooks(t *testing.T) {
	t.Helper()
	if e.f.StopBroker == nil {
		t.Skip("not applicable: Factory.StopBroker is nil (no broker to stop for this transport)")
	}
	if e.f.StartBroker == nil {
		t.Fatal("transporttest: Factory.StopBroker is set but StartBroker is nil: the broker would stay down")
	}
	if e.f.ClaimBroker != nil {
		e.f.ClaimBroker(t)
	}
}

func testBrokerDown(t *testing.T, e *env) {
	e.brokerHooks(t)
	pub, _ := e.newPair(t)
	needs(t, pub.Capabilities().Confirms, "Confirms")
	e.publish(t, pub, msg(e.topic("down.before"), `{"up":true}`))
	e.f.StopBroker(t)
	defer e.f.StartBroker(t)
	const limit = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	err := pub.Publish(ctx, msg(e.topic("down.during"), `{"up":false}`))
	took := time.Since(start)
	if err == nil {
		t.Fatal("Publish returned nil (confirmed) while the broker was stopped")
	}
	if took > limit+2*time.Second {
		t.Errorf("Publish took %v, beyond its ctx of %v", took, limit)
	}
	t.Logf("Publish with the broker stopped: %v (after %v)", err, took.Round(time.Millisecond))
}

// testReconnect publishes without pause while the broker is stopped and
// started again. The subscription must survive (re-subscribe), publishing
// must resume, and every confirmed message must arrive, except, on a
// transport that is not Durable, those confirmed in the window from the
// last check before the stop to the re-subscription (a non-durable queue
// dies with its broker, and nothing is bound until the subscriber is back).
func testReconnect(t *testing.T, e *env) {
	e.brokerHooks(t)
	pub, sub := e.newPair(t)
	needs(t, pub.Capabilities().Confirms, "Confirms")
	durable := pub.Capabilities().Durable && sub.Capabilities().Durable
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.subscribe(t, ctx, pub, sub, e.topic("reconnect."))

	// The publisher goroutine records each attempt; progress says "more".
	var (
		mu        sync.Mutex
		confirmed = map[int]bool{}
		attempts  int
	)
	progress := make(chan struct{}, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			err := pub.Publish(pctx, msg(e.topic("reconnect.m"), fmt.Sprintf(`{"i":%d}`, i)))
			pcancel()
			mu.Lock()
			attempts = i + 1
			if err == nil {
				confirmed[i] = true
			}
			mu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
			select { // pace the loop; not a synchronisation
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	stopPublisher := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopPublisher()
	snapshot := func() (n int, ok []int) {
		mu.Lock()
		defer mu.Unlock()
		for i := range confirmed {
			ok = append(ok, i)
		}
		return attempts, ok
	}

	received := map[int]int{}
	receive := func(d *transport.Delivery) int {
		_ = d.Ack(ctx)
		var i int
		if _, err := fmt.Sscanf(string(d.Message.Body), `{"i":%d}`, &i); err != nil {
			t.Errorf("unexpected message %q %s", d.Message.Topic, d.Message.Body)
			return -1
		}
		received[i]++
		return i
	}
	// Phase 1, broker up: everything confirmed so far arrives.
	for len(received) < 20 {
		receive(r.must(t, "messages before the broker stops"))
	}
	checkedUpTo, early := snapshot()
	for _, i := range early {
		for received[i] == 0 {
			receive(r.must(t, fmt.Sprintf("confirmed message %d, before the broker stops", i)))
		}
	}
	e.f.StopBroker(t)
	stoppedAt, _ := snapshot()
	// Publishing goes on against the stopped broker for a while.
	time.Sleep(500 * time.Millisecond)
	e.f.StartBroker(t)
	restartedAt, _ := snapshot()

	// Phase 2: the subscription is back once a message published after
	// the restart arrives.
	const resume = 60 * time.Second
	deadline := time.Now().Add(resume)
	firstAfter := -1
	for firstAfter < 0 {
		d, err := r.next(time.Until(deadline))
		if errors.Is(err, errEnded) {
			t.Fatal("the subscription ended when the broker restarted: transports must re-subscribe")
		}
		if err != nil {
			t.Fatalf("no message published after the broker restarted arrived within %v", resume)
		}
		if i := receive(d); i >= restartedAt {
			firstAfter = i
		}
	}
	// Phase 3: 20 more confirmed messages after that one.
	for {
		_, ok := snapshot()
		n := 0
		for _, i := range ok {
			if i > firstAfter {
				n++
			}
		}
		if n >= 20 {
			break
		}
		select {
		case <-progress:
		case <-time.After(resume):
			t.Fatalf("publishing did not resume after the restart: fewer than 20 confirmed within %v", resume)
		}
	}
	stopPublisher()
	_, all := snapshot()
	slices.Sort(all)
	for _, i := range all {
		if i <= firstAfter {
			continue
		}
		for received[i] == 0 {
			d, err := r.next(receiveTimeout)
			if err != nil {
				t.Fatalf("confirmed message %d (published after the subscription was back) never arrived: %v", i, err)
			}
			receive(d)
		}
	}
	for { // and whatever else is still on its way
		d, err := r.next(quiet)
		if err != nil {
			break
		}
		receive(d)
	}

	var lost, excused, dups []int
	for _, i := range all {
		if received[i] > 0 {
			continue
		}
		if !durable && i >= checkedUpTo && i < firstAfter {
			excused = append(excused, i)
		} else {
			lost = append(lost, i)
		}
	}
	for i, n := range received {
		if n > 1 {
			dups = append(dups, i)
		}
	}
	slices.Sort(dups)
	refused := 0
	for i := stoppedAt; i < restartedAt; i++ {
		if !slices.Contains(all, i) {
			refused++
		}
	}
	t.Logf("%d publishes while the broker was stopped, %d refused; the subscription was back at message %d; duplicates (allowed): %v",
		restartedAt-stoppedAt, refused, firstAfter, dups)
	if len(excused) > 0 {
		t.Logf("not Durable: %d messages confirmed around the outage, before the re-subscription, were lost: %v", len(excused), excused)
	}
	if len(lost) > 0 {
		t.Errorf("confirmed messages lost: %v", lost)
	}
}
