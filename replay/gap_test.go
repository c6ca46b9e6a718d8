package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/gofedmsg/fedmsg/message"
)

// fakeServer answers seq_id_range queries from a map, per endpoint, and
// records what it was asked.
type fakeServer struct {
	stores map[string]map[int64]Envelope // endpoint -> seq_id -> envelope
	asked  []string                      // "endpoint from-to"
	err    error
	extra  []Envelope // appended to every answer (a misbehaving server)
}

func (f *fakeServer) fetch(_ context.Context, endpoint string, q Request) ([]Envelope, error) {
	if q.SeqIDRange == nil || q.SeqID != nil || q.SeqIDs != nil || q.MsgID != nil || q.MsgIDs != nil || q.Time != nil {
		return nil, fmt.Errorf("unexpected query %+v", q)
	}
	r := *q.SeqIDRange
	f.asked = append(f.asked, fmt.Sprintf("%s %d-%d", endpoint, r.From, r.To))
	if f.err != nil {
		return nil, f.err
	}
	var out []Envelope
	// Newest first, to check the tracker sorts.
	for id := r.To; id >= r.From; id-- {
		if e, ok := f.stores[endpoint][id]; ok {
			out = append(out, e)
		}
	}
	return append(out, f.extra...), nil
}

// env is an envelope of run "run" with seq_id s; its msg_id names both.
func env(run string, s int64) Envelope {
	fields := map[string]any{
		message.FieldSeqID: message.Number(strconv.FormatInt(s, 10)),
		message.FieldMsgID: fmt.Sprintf("%s-%d", run, s),
		message.FieldTopic: "org.fedoraproject.dev.test.thing",
	}
	return Envelope{Body: []byte(fmt.Sprintf(`{"seq_id":%d,"run":%q}`, s, run)), Fields: fields}
}

// storeOf holds run's seq_ids 1..n.
func storeOf(run string, n int64) map[int64]Envelope {
	m := map[int64]Envelope{}
	for i := int64(1); i <= n; i++ {
		m[i] = env(run, i)
	}
	return m
}

// ids lists what was delivered as "msg_id" or "msg_id(r)" when replayed.
func ids(es []Envelope) string {
	s := ""
	for i, e := range es {
		if i > 0 {
			s += " "
		}
		s += e.Fields[message.FieldMsgID].(string)
		if e.Replayed {
			s += "(r)"
		}
	}
	return s
}

func newTestTracker(f *fakeServer, maxGap int) *GapTracker {
	return NewGapTracker(GapOptions{
		Endpoints: map[string]string{"a.app01": "tcp://a:1", "b.app01": "tcp://b:1"},
		Fetch:     f.fetch,
		MaxGap:    maxGap,
		Window:    8,
	})
}

// step feeds envs from name and returns everything delivered.
func step(g *GapTracker, name string, envs ...Envelope) string {
	var all []Envelope
	for _, e := range envs {
		all = append(all, g.Next(context.Background(), name, e)...)
	}
	return ids(all)
}

func TestGapInOrderQueriesNothing(t *testing.T) {
	f := &fakeServer{}
	g := newTestTracker(f, 0)
	// The first envelope has no previous: delivered, nothing asked even
	// though its seq_id is not 1 (we joined late).
	if got := step(g, "a.app01", env("x", 5), env("x", 6), env("x", 7)); got != "x-5 x-6 x-7" {
		t.Fatalf("delivered %q", got)
	}
	if len(f.asked) != 0 {
		t.Fatalf("queried %v for an unbroken sequence", f.asked)
	}
}

func TestGapUntrackedAndUnnumberedPassThrough(t *testing.T) {
	f := &fakeServer{}
	g := newTestTracker(f, 0)
	// A name without replay_endpoints: no tracking, duplicates included.
	if got := step(g, "relay_outbound", env("x", 1), env("x", 5), env("x", 5)); got != "x-1 x-5 x-5" {
		t.Fatalf("untracked name: delivered %q", got)
	}
	// No seq_id, or a seq_id that is not a positive integer.
	noSeq := Envelope{Fields: map[string]any{message.FieldMsgID: "n"}}
	bad := Envelope{Fields: map[string]any{message.FieldMsgID: "b", message.FieldSeqID: message.Number("2.5")}}
	if got := step(g, "a.app01", env("x", 1), noSeq, bad, env("x", 2)); got != "x-1 n b x-2" {
		t.Fatalf("delivered %q", got)
	}
	if len(f.asked) != 0 {
		t.Fatalf("queried %v", f.asked)
	}
}

func TestGapDuplicateDropped(t *testing.T) {
	f := &fakeServer{}
	g := newTestTracker(f, 0)
	got := step(g, "a.app01", env("x", 1), env("x", 2), env("x", 2), env("x", 1), env("x", 3))
	if got != "x-1 x-2 x-3" {
		t.Fatalf("delivered %q, want each once", got)
	}
	if st := g.Stats(); st.Duplicates != 2 || st.Restarts != 0 || st.Delivered != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGapFilledInOrderOnce(t *testing.T) {
	f := &fakeServer{stores: map[string]map[int64]Envelope{"tcp://a:1": storeOf("x", 10)}}
	// The server also sends something outside the range and a repeat.
	f.extra = []Envelope{env("x", 9), env("x", 3)}
	g := newTestTracker(f, 0)
	got := step(g, "a.app01", env("x", 1), env("x", 2), env("x", 6), env("x", 7))
	if got != "x-1 x-2 x-3(r) x-4(r) x-5(r) x-6 x-7" {
		t.Fatalf("delivered %q", got)
	}
	if fmt.Sprint(f.asked) != "[tcp://a:1 3-5]" {
		t.Fatalf("asked %v, want only the missing seq_ids 3-5", f.asked)
	}
	// Replayed envelopes count as seen: they come again as duplicates.
	if got := step(g, "a.app01", env("x", 4), env("x", 8)); got != "x-8" {
		t.Fatalf("after the gap: delivered %q", got)
	}
	if st := g.Stats(); st.Replayed != 3 || st.Lost != 0 || st.Duplicates != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGapPartlyGoneFromStore(t *testing.T) {
	store := storeOf("x", 10)
	delete(store, 4)
	f := &fakeServer{stores: map[string]map[int64]Envelope{"tcp://a:1": store}}
	g := newTestTracker(f, 0)
	if got := step(g, "a.app01", env("x", 2), env("x", 6)); got != "x-2 x-3(r) x-5(r) x-6" {
		t.Fatalf("delivered %q", got)
	}
	if st := g.Stats(); st.Lost != 1 || st.Replayed != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGapQueryFailsCurrentStillDelivered(t *testing.T) {
	f := &fakeServer{err: errors.New("replay: no reply from tcp://a:1")}
	g := newTestTracker(f, 0)
	if got := step(g, "a.app01", env("x", 1), env("x", 4), env("x", 5)); got != "x-1 x-4 x-5" {
		t.Fatalf("delivered %q", got)
	}
	if fmt.Sprint(f.asked) != "[tcp://a:1 2-3]" {
		t.Fatalf("asked %v", f.asked)
	}
	// The sequence moved on: the next gap is asked from 6, not from 2.
	f.err = nil
	f.stores = map[string]map[int64]Envelope{"tcp://a:1": storeOf("x", 10)}
	if got := step(g, "a.app01", env("x", 7)); got != "x-6(r) x-7" {
		t.Fatalf("delivered %q", got)
	}
	if st := g.Stats(); st.Failures != 1 || st.Lost != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGapRestartIsNotADuplicate(t *testing.T) {
	f := &fakeServer{stores: map[string]map[int64]Envelope{"tcp://a:1": storeOf("new", 10)}}
	g := newTestTracker(f, 0)
	// The publisher sent 1..5, restarted (its store is in memory) and
	// numbers from 1 again: 1 is a restart, not a duplicate, and what
	// follows is delivered.
	got := step(g, "a.app01", env("old", 1), env("old", 2), env("old", 3), env("old", 4), env("old", 5),
		env("new", 1), env("new", 2), env("new", 3))
	if got != "old-1 old-2 old-3 old-4 old-5 new-1 new-2 new-3" {
		t.Fatalf("delivered %q", got)
	}
	// A restart seen at seq_id 3 (1 and 2 of the new run missed): a
	// remembered seq_id with another msg_id is a restart, and 1-2 of the
	// new run are fetched.
	g = newTestTracker(f, 0)
	got = step(g, "a.app01", env("old", 1), env("old", 2), env("old", 3), env("old", 4), env("new", 3), env("new", 4))
	if got != "old-1 old-2 old-3 old-4 new-1(r) new-2(r) new-3 new-4" {
		t.Fatalf("delivered %q", got)
	}
	// A big step back (older than the remembered window of 8): a restart.
	g = newTestTracker(f, 0)
	var old []Envelope
	for i := int64(100); i <= 120; i++ {
		old = append(old, env("old", i))
	}
	step(g, "a.app01", old...)
	if got := step(g, "a.app01", env("new", 2)); got != "new-1(r) new-2" {
		t.Fatalf("after a step back: delivered %q", got)
	}
	if st := g.Stats(); st.Restarts != 1 || st.Duplicates != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGapHugeGapBounded(t *testing.T) {
	f := &fakeServer{stores: map[string]map[int64]Envelope{"tcp://a:1": storeOf("x", 2000)}}
	g := newTestTracker(f, 10)
	out := g.Next(context.Background(), "a.app01", env("x", 1))
	out = append(out, g.Next(context.Background(), "a.app01", env("x", 1_000_000_000))...)
	if fmt.Sprint(f.asked) != "[tcp://a:1 999999990-999999999]" {
		t.Fatalf("asked %v, want only the newest 10 missing", f.asked)
	}
	if len(out) != 2 {
		t.Fatalf("delivered %q", ids(out))
	}
	// The store has the newest 10 of a gap it holds: 1990..1999 come back.
	g = newTestTracker(f, 10)
	got := step(g, "a.app01", env("x", 1), env("x", 2000))
	want := "x-1"
	for i := 1990; i <= 1999; i++ {
		want += fmt.Sprintf(" x-%d(r)", i)
	}
	if got != want+" x-2000" {
		t.Fatalf("delivered %q", got)
	}
	if st := g.Stats(); st.Lost != 1988 || st.Replayed != 10 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGapNamesIndependent(t *testing.T) {
	f := &fakeServer{stores: map[string]map[int64]Envelope{
		"tcp://a:1": storeOf("a", 10),
		"tcp://b:1": storeOf("b", 10),
	}}
	g := newTestTracker(f, 0)
	var all []Envelope
	for _, s := range []struct {
		name string
		e    Envelope
	}{
		{"a.app01", env("a", 1)}, {"b.app01", env("b", 5)}, {"a.app01", env("a", 2)},
		{"b.app01", env("b", 7)}, {"a.app01", env("a", 4)}, {"b.app01", env("b", 7)},
	} {
		all = append(all, g.Next(context.Background(), s.name, s.e)...)
	}
	if got := ids(all); got != "a-1 b-5 a-2 b-6(r) b-7 a-3(r) a-4" {
		t.Fatalf("delivered %q", got)
	}
	if fmt.Sprint(f.asked) != "[tcp://b:1 6-6 tcp://a:1 3-3]" {
		t.Fatalf("asked %v", f.asked)
	}
}
