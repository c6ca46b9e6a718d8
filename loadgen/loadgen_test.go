package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/memory"
)

const testTopic = "org.fedoraproject.dev.bench.test"

var msgIDForm = regexp.MustCompile(`^\d{4}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEnvelopeIsAFedmsgEnvelopeOfTheSize(t *testing.T) {
	for _, size := range []int{250, 609, 4096} {
		e, err := newEnvelope(testTopic, "fedmsg", size, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, seq := range []uint64{0, 1, 255, 1 << 40, probeBase + 3} {
			b := e.body(seq, time.Now())
			if len(b) != size {
				t.Fatalf("size %d: body of %d bytes", size, len(b))
			}
			// fedmsg publishes canonical JSON: re-canonicalising changes nothing.
			canon, err := message.CanonicalizeBytes(b)
			if err != nil || !bytes.Equal(canon, b) {
				t.Fatalf("body is not canonical JSON (%v):\n got %s\nwant %s", err, b, canon)
			}
			var env map[string]any
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"topic", "msg", "timestamp", "msg_id", "i", "username"} {
				if _, ok := env[k]; !ok {
					t.Errorf("envelope without %q: %s", k, b)
				}
			}
			if env["topic"] != testTopic || env["username"] != "fedmsg" {
				t.Errorf("topic/username: %s", b)
			}
			if ts, _ := env["timestamp"].(float64); time.Since(time.Unix(int64(ts), 0)).Abs() > time.Minute {
				t.Errorf("timestamp %v is not now", env["timestamp"])
			}
			id, _ := env["msg_id"].(string)
			if !msgIDForm.MatchString(id) || id != e.msgID(seq) {
				t.Errorf("msg_id %q (want the form of fedmsg's and %q)", id, e.msgID(seq))
			}
			if ids[id] {
				t.Errorf("msg_id %q twice", id)
			}
			ids[id] = true
			got, _, ok := e.parse(b)
			if !ok || got != seq {
				t.Errorf("parse: seq %d ok %v, want %d", got, ok, seq)
			}
		}
	}
}

func TestEnvelopeParse(t *testing.T) {
	epoch := time.Now()
	e, err := newEnvelope(testTopic, "fedmsg", 609, epoch)
	if err != nil {
		t.Fatal(err)
	}
	b := e.body(42, epoch.Add(1234567*time.Nanosecond))
	seq, sent, ok := e.parse(b)
	if !ok || seq != 42 || sent != 1234567*time.Nanosecond {
		t.Fatalf("parse = %d, %v, %v; want 42, 1.234567ms, true", seq, sent, ok)
	}
	// Re-serialised on the way (a relay that re-encodes JSON): still read.
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	seq, sent, ok = e.parse(pretty.Bytes())
	if !ok || seq != 42 || sent != 1234567*time.Nanosecond {
		t.Fatalf("parse(re-serialised) = %d, %v, %v; want 42, 1.234567ms, true", seq, sent, ok)
	}
	// Another run's message of the same shape, and things that are no
	// bench message at all, are not this run's.
	other, err := newEnvelope(testTopic, "fedmsg", 609, epoch)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{other.body(42, epoch), []byte(`{"msg":{}}`), []byte("not json"), nil} {
		if _, _, ok := e.parse(body); ok {
			t.Errorf("parse(%.60q) accepted", body)
		}
	}
}

func TestMinSize(t *testing.T) {
	min, err := MinSize(testTopic, "fedmsg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newEnvelope(testTopic, "fedmsg", min, time.Now()); err != nil {
		t.Errorf("size %d (MinSize): %v", min, err)
	}
	if _, err := newEnvelope(testTopic, "fedmsg", min-1, time.Now()); !errors.Is(err, ErrSize) {
		t.Errorf("size %d (MinSize-1): %v, want ErrSize", min-1, err)
	}
}

// TestCounter checks the counting against a hand-worked sequence of
// arrivals.
func TestCounter(t *testing.T) {
	var c Counter
	ms := time.Millisecond
	// seq:      0  2  1  3  3  5  4  0
	// first?    y  y  y  y  n  y  y  n     -> 6 distinct, 2 duplicates
	// reorder?  -  -  y  -  -  -  y  -     -> 1 after 2, 4 after 5
	arrivals := []struct {
		seq uint64
		lat time.Duration
	}{{0, 7 * ms}, {2, 1 * ms}, {1, 5 * ms}, {3, 3 * ms}, {3, 100 * ms}, {5, 2 * ms}, {4, 6 * ms}, {0, 200 * ms}}
	for _, a := range arrivals {
		c.Add(a.seq, a.lat)
	}
	if c.Received() != 6 || c.Duplicates() != 2 || c.Reordered() != 2 {
		t.Errorf("received %d, duplicates %d, reordered %d; want 6, 2, 2", c.Received(), c.Duplicates(), c.Reordered())
	}
	// Sent 0..7: 6 and 7 never came.
	if got := c.Missing(8); got != 2 {
		t.Errorf("Missing(8) = %d, want 2", got)
	}
	// First arrivals' latencies, sorted: 1 2 3 5 6 7 (ms), n = 6.
	// Nearest rank: p50 -> ceil(3) = 3rd = 3ms; p90 -> ceil(5.4) = 6th = 7ms;
	// p99 -> ceil(5.94) = 6th = 7ms; max 7ms. The duplicates' 100ms and
	// 200ms do not count.
	want := Latency{P50: 3 * ms, P90: 7 * ms, P99: 7 * ms, Max: 7 * ms}
	if got := c.Latencies(); got != want {
		t.Errorf("latencies %+v, want %+v", got, want)
	}
}

func TestPercentile(t *testing.T) {
	// 1..200 microseconds: the p-th percentile by nearest rank is the
	// value at rank ceil(p*200/100) = 2p.
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i)*time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 100}, {90, 180}, {99, 198}, {99.9, 200}, {100, 200}, {0.1, 1}} {
		if got := Percentile(ds, c.p); got != c.want*time.Microsecond {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want*time.Microsecond)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
	// 0.29 * 100 is 29.000000000000004 in floating point: still rank 29.
	ds = ds[:100]
	if got := Percentile(ds, 29); got != 29*time.Microsecond {
		t.Errorf("p29 of 1..100 = %v, want 29µs", got)
	}
}

func newMemory(t *testing.T) *memory.Transport {
	t.Helper()
	m, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func checkSane(t *testing.T, r *Report) {
	t.Helper()
	if r.SentRate <= 0 || r.RecvRate <= 0 {
		t.Errorf("rates sent %v received %v, want > 0", r.SentRate, r.RecvRate)
	}
	if !(r.Latency.P50 <= r.Latency.P90 && r.Latency.P90 <= r.Latency.P99 && r.Latency.P99 <= r.Latency.Max) || r.Latency.Max <= 0 {
		t.Errorf("latencies not ordered: %+v", r.Latency)
	}
}

func TestRunMemory(t *testing.T) {
	m := newMemory(t)
	r, err := Run(context.Background(), m, m, Options{Topic: testTopic, Username: "fedmsg", Count: 2000, Warmup: 100, Window: 300})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 2000 || r.Received != 2000 || r.Lost != 0 || r.Duplicates != 0 || r.Reordered != 0 || r.Foreign != 0 {
		t.Errorf("report %+v, want 2000 sent and received, nothing else", r)
	}
	if !r.OK() || r.Interrupted || r.Stalled || r.Size != DefaultSize {
		t.Errorf("report %+v", r)
	}
	checkSane(t, r)
}

// faulty wraps a memory transport and, on the measured messages (by the
// sequence number in their msg_id), drops some, publishes some twice and
// holds some back until the next message has gone.
type faulty struct {
	transport.Transport
	drop, dup, late map[uint64]bool

	mu   sync.Mutex
	held *transport.Message
}

func seqOf(m *transport.Message) uint64 {
	n, _ := strconv.ParseUint(m.ID[len(m.ID)-seqDigits:], 16, 64)
	return n
}

func (f *faulty) Publish(ctx context.Context, msgs ...*transport.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*transport.Message
	for _, m := range msgs {
		seq := seqOf(m)
		switch {
		case seq >= probeBase:
			out = append(out, m)
		case f.drop[seq]:
		case f.dup[seq]:
			out = append(out, m, m)
		case f.late[seq]:
			f.held = m
			continue
		default:
			out = append(out, m)
		}
		if f.held != nil {
			out = append(out, f.held)
			f.held = nil
		}
	}
	return f.Transport.Publish(ctx, out...)
}

func TestRunCountsLossDuplicatesReordering(t *testing.T) {
	m := newMemory(t)
	f := &faulty{Transport: m,
		drop: map[uint64]bool{10: true, 11: true, 500: true},
		dup:  map[uint64]bool{20: true},
		late: map[uint64]bool{30: true, 777: true}}
	r, err := Run(context.Background(), f, m, Options{Topic: testTopic, Count: 1000, Batch: 7, Wait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 1000 || r.Received != 997 || r.Lost != 3 || r.Duplicates != 1 || r.Reordered != 2 {
		t.Errorf("sent %d received %d lost %d duplicates %d reordered %d; want 1000 997 3 1 2",
			r.Sent, r.Received, r.Lost, r.Duplicates, r.Reordered)
	}
	if r.OK() {
		t.Error("OK() with messages lost")
	}
	checkSane(t, r)
}

func TestRunWindowBoundsWhatIsInFlight(t *testing.T) {
	m := newMemory(t)
	all := map[uint64]bool{}
	for i := range uint64(1000) {
		all[i] = true
	}
	f := &faulty{Transport: m, drop: all}
	r, err := Run(context.Background(), f, m, Options{Topic: testTopic, Count: 1000, Window: 100, Batch: 30, Wait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing arrives: the publisher stops once the window is full.
	if !r.Stalled || r.Sent != 100 || r.Lost != 100 || r.OK() {
		t.Errorf("stalled %v sent %d lost %d; want true 100 100", r.Stalled, r.Sent, r.Lost)
	}
}

// bursty wraps a transport whose subscriptions deliver what arrived in
// bursts, every 25ms, as a path that batches would: between bursts
// nothing arrives while much is on the way.
type bursty struct{ transport.Transport }

const burstEvery = 25 * time.Millisecond

func (b *bursty) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	in, err := b.Transport.Subscribe(ctx, patterns...)
	if err != nil {
		return nil, err
	}
	out := make(chan *transport.Delivery)
	go func() {
		defer close(out)
		tick := time.NewTicker(burstEvery)
		defer tick.Stop()
		var held []*transport.Delivery
		for in != nil || len(held) > 0 {
			select {
			case d, ok := <-in:
				if !ok {
					in = nil
					continue
				}
				held = append(held, d)
			case <-tick.C:
				for _, d := range held {
					out <- d
				}
				held = held[:0]
			}
		}
	}()
	return out, nil
}

// TestRunWaitsForMessagesOnTheWay: on a path that delivers in bursts,
// the messages still on the way when sending ends are waited for, not
// counted lost, however the waits for the window went before.
func TestRunWaitsForMessagesOnTheWay(t *testing.T) {
	m := newMemory(t)
	r, err := Run(context.Background(), m, &bursty{m}, Options{Topic: testTopic, Count: 3000, Window: 200, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 3000 || r.Received != 3000 || r.Lost != 0 {
		t.Errorf("sent %d received %d lost %d; want 3000 3000 0", r.Sent, r.Received, r.Lost)
	}
	checkSane(t, r)
}

func TestRunNotReady(t *testing.T) {
	m := newMemory(t)
	other := newMemory(t) // nothing is published here
	_, err := Run(context.Background(), m, other, Options{Topic: testTopic, Count: 10, ReadyTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("err %v, want ErrNotReady", err)
	}
}

func TestRunRate(t *testing.T) {
	m := newMemory(t)
	r, err := Run(context.Background(), m, m, Options{Topic: testTopic, Count: 250, Rate: 500})
	if err != nil {
		t.Fatal(err)
	}
	// Message i goes at i/500 s: the last (249) not before 0.498 s. Only
	// the lower bound: a busy machine may be slower, never faster.
	if r.SendSeconds < 0.49 || r.Lost != 0 {
		t.Errorf("250 messages at 500/s sent in %.3fs (lost %d), want >= 0.498s", r.SendSeconds, r.Lost)
	}
}

func TestRunDuration(t *testing.T) {
	m := newMemory(t)
	r, err := Run(context.Background(), m, m, Options{Topic: testTopic, Duration: 300 * time.Millisecond, Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if r.SendSeconds < 0.29 || r.Sent < 100 || r.Lost != 0 || !r.OK() {
		t.Errorf("sent %d in %.3fs, lost %d; want about 300 in 0.3s, none lost", r.Sent, r.SendSeconds, r.Lost)
	}
}

func TestRunInterrupt(t *testing.T) {
	m := newMemory(t)
	ctx, cancel := context.WithCancel(context.Background())
	var progress []Progress
	var mu sync.Mutex
	go func() {
		time.Sleep(time.Second)
		cancel()
	}()
	// No count and no duration: until interrupted.
	r, err := Run(ctx, m, m, Options{Topic: testTopic, Rate: 2000, ProgressEvery: 100 * time.Millisecond,
		Progress: func(p Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted || r.Sent == 0 || r.Received != r.Sent || !r.OK() {
		t.Errorf("interrupted %v sent %d received %d", r.Interrupted, r.Sent, r.Received)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) < 2 {
		t.Fatalf("%d progress calls in about a second, want several", len(progress))
	}
	last := progress[len(progress)-1]
	if last.Sent == 0 || last.Sent > r.Sent || last.Received > last.Sent {
		t.Errorf("last progress %+v, report sent %d", last, r.Sent)
	}
}

func TestValidate(t *testing.T) {
	for _, o := range []Options{{}, {Topic: "t", Count: -1}, {Topic: "t", Rate: -1}, {Topic: "t", Window: -1}, {Topic: "t", Size: -5}} {
		if err := o.Validate(); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: %v, want ErrOptions", o, err)
		}
	}
}
