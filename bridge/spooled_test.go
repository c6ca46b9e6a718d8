package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/spool"
	"github.com/gofedmsg/fedmsg/transport"
)

// zmqLike is a source that cannot redeliver, as ZeroMQ.
func zmqLike(t *testing.T) (limited, transport.Transport) {
	m := newMemory(t)
	return limited{m, transport.Capabilities{Ordered: true}}, m
}

func spooledRoute() []RouteConfig {
	return []RouteConfig{{Name: "bus-to-rabbit", From: "src", To: "dst", Delivery: AtLeastOnce}}
}

// confirmLater is a transport.Sender sink: Send publishes through the
// wrapped transport at once and resolves the Pending from another
// goroutine, as a broker's confirmation comes later. It fails the Sends
// for which fail returns true, and records the most messages in flight.
type confirmLater struct {
	transport.Transport
	fail func(call int) bool

	mu        sync.Mutex
	calls     int
	inFlight  int
	maxFlight int
}

func (c *confirmLater) Send(ctx context.Context, msgs ...*transport.Message) (*transport.Pending, error) {
	c.mu.Lock()
	call := c.calls
	c.calls++
	c.inFlight += len(msgs)
	c.maxFlight = max(c.maxFlight, c.inFlight)
	c.mu.Unlock()
	p := transport.NewPending()
	var err error
	if c.fail != nil && c.fail(call) {
		err = transport.ErrNotConnected
	} else {
		err = c.Transport.Publish(ctx, msgs...)
	}
	go func() {
		time.Sleep(time.Millisecond)
		c.mu.Lock()
		c.inFlight -= len(msgs)
		c.mu.Unlock()
		p.Resolve(err)
	}()
	return p, nil
}

func spoolBodies(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"%s": %d}`, prefix, i)
	}
	return out
}

// A ZeroMQ-like source on an at-least-once route is accepted with a
// spool; a sink that fails for a while loses nothing, and what arrives
// after the failures is in order once the duplicates of the resend are
// set aside.
func TestSpooledRouteSurvivesSinkFailures(t *testing.T) {
	noLeak(t)
	src, _ := zmqLike(t)
	dst := newMemory(t)
	for _, tc := range []struct {
		name string
		sink transport.Transport
	}{
		{"Publish", func() transport.Transport { f := &flaky{Transport: dst}; f.failLeft.Store(4); return f }()},
		{"Sender", &confirmLater{Transport: dst, fail: func(call int) bool { return call >= 2 && call < 6 }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(spooledRoute(), map[string]transport.Transport{"src": src, "dst": tc.sink},
				Options{RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond, MaxBatch: 8, Spool: SpoolOptions{Dir: t.TempDir()}})
			if err != nil {
				t.Fatal(err)
			}
			start(t, b)
			out := subscribe(t, dst)
			want := spoolBodies(200, tc.name)
			for _, body := range want {
				publish(t, src, "org.fedoraproject.dev.t", []byte(body))
			}
			seen := map[string]bool{}
			var order []string
			for len(seen) < len(want) {
				m := receive(t, out)
				if !seen[string(m.Body)] {
					order = append(order, string(m.Body))
				}
				seen[string(m.Body)] = true
			}
			// A Publish sink takes one batch at a time, so order holds
			// at first sight. The fake Sender fails calls on their own
			// while later ones succeed, which AMQP's does not (it sends
			// the unconfirmed again before any later batch): there only
			// completeness is checked.
			for i, body := range order {
				if _, ok := tc.sink.(*confirmLater); !ok && body != want[i] {
					t.Fatalf("message %d is %s, want %s: order lost", i, body, want[i])
				}
			}
			st := waitStats(t, b, 0, func(s RouteStats) bool { return s.Forwarded >= 200 })
			if st.Retried == 0 || st.DroppedTotal() != 0 {
				t.Errorf("stats %+v: want retries and no drop", st)
			}
			// Forwarded is counted as the removal from the spool starts.
			sp := waitSpool(t, b, func(s spool.Stats) bool { return s.Depth == 0 })
			if sp.Appended != 200 || sp.Dropped != 0 {
				t.Errorf("spool stats %+v, want 200 appended and an empty spool", sp)
			}
			if c, ok := tc.sink.(*confirmLater); ok && c.maxFlight > 8 {
				t.Errorf("%d messages in flight, more than max_batch 8", c.maxFlight)
			}
		})
	}
}

// waitSpool polls the route's spool counters until cond holds.
func waitSpool(t *testing.T, b *Bridge, cond func(spool.Stats) bool) spool.Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := b.SpoolStats()["bus-to-rabbit"]
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool counters never reached the expected state: %+v", s)
		}
		time.Sleep(time.Millisecond)
	}
}

// down fails every publish, as a broker that is not there.
type down struct{ transport.Transport }

func (down) Publish(context.Context, ...*transport.Message) error { return transport.ErrNotConnected }

// Messages spooled while the sink was down are sent, in order, by the
// next bridge that opens the same spool directory.
func TestSpooledRouteRestartSendsLeftovers(t *testing.T) {
	noLeak(t)
	dir := t.TempDir()
	src, _ := zmqLike(t)
	dst := newMemory(t)
	first, err := New(spooledRoute(), map[string]transport.Transport{"src": src, "dst": down{dst}},
		Options{RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond, Spool: SpoolOptions{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- first.Run(context.Background()) }()
	<-first.Ready()
	want := spoolBodies(30, "left")
	for _, body := range want {
		publish(t, src, "org.fedoraproject.dev.t", []byte(body))
	}
	waitSpool(t, first, func(s spool.Stats) bool { return s.Appended == 30 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if st := first.Stats()[0]; st.Forwarded != 0 {
		t.Fatalf("the first bridge forwarded %d through a sink that is down", st.Forwarded)
	}

	second, err := New(spooledRoute(), map[string]transport.Transport{"src": src, "dst": dst},
		Options{Spool: SpoolOptions{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	if st := second.SpoolStats()["bus-to-rabbit"]; st.Recovered != 30 {
		t.Fatalf("second bridge found %d messages, want 30", st.Recovered)
	}
	out := subscribe(t, dst)
	start(t, second)
	for i, body := range want {
		if got := string(receive(t, out).Body); got != body {
			t.Fatalf("leftover %d is %s, want %s", i, got, body)
		}
	}
	nothingMore(t, out)
}

// With no spool directory, or spool: false, the route is refused as
// before, naming the key to set.
func TestSpooledRouteRefused(t *testing.T) {
	src, _ := zmqLike(t)
	dst := newMemory(t)
	tr := map[string]transport.Transport{"src": src, "dst": dst}
	_, err := New(spooledRoute(), tr, Options{})
	if !errors.Is(err, ErrGuaranteeUnavailable) || !strings.Contains(err.Error(), "spool_dir") {
		t.Errorf("no spool directory: %v, want ErrGuaranteeUnavailable naming spool_dir", err)
	}
	off := false
	routes := spooledRoute()
	routes[0].Spool = &off
	_, err = New(routes, tr, Options{Spool: SpoolOptions{Dir: t.TempDir()}})
	if !errors.Is(err, ErrGuaranteeUnavailable) || !strings.Contains(err.Error(), "spool: false") {
		t.Errorf("spool: false: %v, want ErrGuaranteeUnavailable naming spool: false", err)
	}
	// A spool file held by another bridge is named in the error.
	dir := t.TempDir()
	holder, err := spool.Open(spool.Options{Path: SpoolFile(dir, "bus-to-rabbit"), LockTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := New(spooledRoute(), tr, Options{Spool: SpoolOptions{Dir: dir}})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, spool.ErrLocked) || !strings.Contains(err.Error(), SpoolFile(dir, "bus-to-rabbit")) {
			t.Errorf("spool in use: %v, want ErrLocked naming the file", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("New waited for a locked spool for more than 30s")
	}
}

// Loop and duplicate logic still runs before the spool: a msg_id seen
// twice is spooled once.
func TestSpooledRouteDeduplicates(t *testing.T) {
	src, _ := zmqLike(t)
	dst := newMemory(t)
	b, err := New(spooledRoute(), map[string]transport.Transport{"src": src, "dst": dst},
		Options{Spool: SpoolOptions{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	out := subscribe(t, dst)
	body := []byte(`{"msg_id": "2026-dup", "msg": {}}`)
	publish(t, src, "org.fedoraproject.dev.t", body)
	publish(t, src, "org.fedoraproject.dev.t", body)
	receive(t, out)
	st := waitStats(t, b, 0, func(s RouteStats) bool { return s.Received == 2 && s.Forwarded == 1 })
	if st.Dropped[DropDuplicate.String()] != 1 {
		t.Errorf("stats %+v, want one duplicate", st)
	}
	if sp := b.SpoolStats()["bus-to-rabbit"]; sp.Appended != 1 {
		t.Errorf("spool appended %d, want 1", sp.Appended)
	}
	nothingMore(t, out)
}

func TestSpoolFileNames(t *testing.T) {
	if got := SpoolFile("/d", "bus-to-rabbit"); got != "/d/bus-to-rabbit.spool" {
		t.Errorf("plain name: %s", got)
	}
	a, b := SpoolFile("/d", "a/b"), SpoolFile("/d", "a?b")
	if a == b || strings.Count(a, "/") != 2 {
		t.Errorf("names with odd characters: %s and %s, want two distinct files in /d", a, b)
	}
	if got := SpoolDirFromEnv(func(string) string { return "/var/lib/fedmsg:/other" }); got != "/var/lib/fedmsg/spool" {
		t.Errorf("STATE_DIRECTORY: %s", got)
	}
	if got := SpoolDirFromEnv(func(string) string { return "" }); got != DefaultSpoolDir {
		t.Errorf("no STATE_DIRECTORY: %s", got)
	}
}

// The spool keys of the bridge section and of a route decode, reach the
// options, and name the key when wrong.
func TestSpoolSettings(t *testing.T) {
	cfg, err := parse(t, `
transports: {a: {kind: zmq}, b: {kind: amqp}}
routes: [{name: r, from: a, to: b, delivery: at-least-once, spool: false}]
bridge: {spool_dir: /tmp/s, spool_max_bytes: 4096, spool_full: drop-oldest}
`)
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Routes[0]; r.Spool == nil || *r.Spool {
		t.Errorf("route spool %v, want false", r.Spool)
	}
	var opts Options
	cfg.Settings.Apply(&opts)
	if opts.Spool != (SpoolOptions{Dir: "/tmp/s", MaxBytes: 4096, Full: spool.DropOldest}) {
		t.Errorf("spool options %+v", opts.Spool)
	}
	for _, c := range []struct{ yaml, want string }{
		{`bridge: {spool_max_bytes: 10}`, `key "bridge.spool_max_bytes": must be at least 1024`},
		{`bridge: {spool_max_bytes: many}`, `key "bridge.spool_max_bytes": must be a number`},
		{`bridge: {spool_full: drop-newest}`, `key "bridge.spool_full": unknown value "drop-newest"`},
		{`bridge: {spool_dir: 7}`, `key "bridge.spool_dir": must be a string`},
	} {
		_, err := parse(t, "transports: {a: {kind: zmq}, b: {kind: stomp}}\nroutes: [{name: r, from: a, to: b}]\n"+c.yaml+"\n")
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.yaml, err, c.want)
		}
	}
	for _, c := range []struct{ route, want string }{
		{`{name: r, from: a, to: b, spool: yes}`, `route "r": key "spool": must be true or false`},
		{`{name: r, from: a, to: b, spool: true}`, `route "r": key "spool": a spool serves delivery: at-least-once only`},
	} {
		_, err := parse(t, "transports: {a: {kind: zmq}, b: {kind: stomp}}\nroutes: ["+c.route+"]\n")
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.route, err, c.want)
		}
	}
}

// Close is bounded while the sink never confirms; the message it was
// sending stays in the spool and the next bridge delivers it.
func TestSpooledRouteCloseBounded(t *testing.T) {
	noLeak(t)
	dir := t.TempDir()
	src, _ := zmqLike(t)
	dst := newMemory(t)
	sink := &stuck{Transport: dst, entered: make(chan struct{})}
	b, err := New(spooledRoute(), map[string]transport.Transport{"src": src, "dst": sink},
		Options{Spool: SpoolOptions{Dir: dir}, SettleTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- b.Run(context.Background()) }()
	<-b.Ready()
	publish(t, src, "org.fedoraproject.dev.t", []byte(`{"n": 1}`))
	select {
	case <-sink.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the sink was never called")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := b.Close(ctx); err == nil {
		t.Error("Close returned nil while the sink was stuck, want the deadline")
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("Close took %v", took)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	next, err := New(spooledRoute(), map[string]transport.Transport{"src": src, "dst": dst}, Options{Spool: SpoolOptions{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	out := subscribe(t, dst)
	start(t, next)
	if got := string(receive(t, out).Body); got != `{"n": 1}` {
		t.Fatalf("got %s", got)
	}
}

// Messages left in the spool by an earlier run (whose bridge id was not
// configured, so this run's differs) are recognised when they come back
// from the sink on a reverse route: counted as echoes, not forwarded.
func TestSpooledLeftoversNotEchoed(t *testing.T) {
	dir := t.TempDir()
	src, _ := zmqLike(t)
	dst := newMemory(t)
	first, err := New(spooledRoute(), map[string]transport.Transport{"src": src, "dst": down{dst}},
		Options{RetryMin: time.Millisecond, Spool: SpoolOptions{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- first.Run(context.Background()) }()
	<-first.Ready()
	publish(t, src, "org.fedoraproject.dev.t", []byte(`{"msg_id": "2026-left", "msg": {}}`))
	waitSpool(t, first, func(s spool.Stats) bool { return s.Appended == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-errc

	routes := append(spooledRoute(), RouteConfig{Name: "rabbit-to-bus", From: "dst", To: "src"})
	second, err := New(routes, map[string]transport.Transport{"src": src, "dst": dst}, Options{Spool: SpoolOptions{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	if first.ID() == second.ID() {
		t.Fatal("the two runs share a bridge id: the test needs them different")
	}
	back := subscribe(t, src)
	start(t, second)
	st := waitStats(t, second, 1, func(s RouteStats) bool { return s.Received == 1 })
	if st.Dropped[DropEcho.String()] != 1 || st.Forwarded != 0 {
		t.Errorf("reverse route %+v: want the leftover's echo dropped, not forwarded", st)
	}
	nothingMore(t, back)
}
