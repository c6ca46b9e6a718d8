package replay

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gofedmsg/fedmsg/message"
)

// DefaultMaxGap is how many missing messages one gap fetches at most
// unless GapOptions.MaxGap says otherwise. It is also the size of one
// reply held in memory.
const DefaultMaxGap = 1000

// DefaultWindow is how many recent (seq_id, msg_id) pairs a GapTracker
// remembers per replay name to tell a duplicate from a publisher restart.
const DefaultWindow = 1024

// Envelope is one message of a publisher's sequence: the bytes as received
// (or as the replay server sent them) and their decoding.
type Envelope struct {
	Body   []byte
	Fields map[string]any
	// Replayed is set on the envelopes a GapTracker fetched from the
	// replay server; the envelope passed to Next has it false.
	Replayed bool
}

// Fetch asks the replay server at endpoint for q. QueryEnvelopes is the
// real one; tests pass a fake.
type Fetch func(ctx context.Context, endpoint string, q Request) ([]Envelope, error)

// GapOptions configure a GapTracker.
type GapOptions struct {
	// Endpoints is replay_endpoints: replay name -> replay URL. Only the
	// sequences of these names are tracked; any other message is delivered
	// as it comes, as in fedmsg.
	Endpoints map[string]string
	// Fetch queries a replay server; nil means QueryEnvelopes with
	// default client options.
	Fetch Fetch
	// Timeout bounds one query (0: DefaultTimeout).
	Timeout time.Duration
	// MaxGap bounds how many missing messages one gap fetches (0:
	// DefaultMaxGap). A larger gap fetches only its newest MaxGap
	// messages and reports the older ones as lost.
	MaxGap int
	// Window is how many recent seq_ids per name are remembered with their
	// msg_id (0: DefaultWindow).
	Window int
	// Logger receives the warnings (lost messages, failed queries) and the
	// debug lines (duplicates); nil discards them.
	Logger *slog.Logger
}

// GapStats counts what a GapTracker did.
type GapStats struct {
	Delivered  int64 // envelopes passed to Next and delivered
	Replayed   int64 // envelopes fetched and delivered
	Duplicates int64 // envelopes passed to Next and dropped
	Lost       int64 // seq_ids of a gap that could not be recovered
	Restarts   int64 // publisher restarts seen
	Failures   int64 // replay queries that failed
}

// GapTracker is the subscriber's side of replay (fedmsg's
// check_for_replay, spec §7.3), fixed: it takes each envelope received
// from a replay name and returns what to deliver, in order, each once.
//
// Per replay name it remembers the last seq_id delivered. For an envelope
// with seq_id S from a tracked name whose last seq_id is L:
//
//   - no seq_id (or not a positive integer), or the first envelope of the
//     name: delivered, nothing fetched (what came before the subscriber
//     connected is not its business, as in fedmsg);
//   - S == L+1: delivered;
//   - S > L+1, a gap: seq_id_range [L+1, S-1] is fetched from the name's
//     replay endpoint, at most MaxGap messages (the newest ones of the
//     gap), and what comes back is delivered in seq_id order, each once,
//     before the envelope; seq_ids the server no longer has, or that the
//     bound left out, are counted as lost and logged. A failed query is
//     logged with the endpoint and the error and the envelope is still
//     delivered: the subscriber never stops because of replay.
//   - S <= L: a duplicate (dropped, logged at debug) when the name's
//     recent seq_id S carried the same msg_id, or when S is within the
//     remembered window but was never seen (a late message: dropped, as
//     fedmsg does, so order holds). Otherwise it is a publisher restart:
//     the store is in the publisher's memory, so a restarted publisher
//     numbers from 1 again. That is S == 1 (unless it is the very envelope
//     seen as 1 before), S older than the window (a big step back), or a
//     remembered S whose msg_id differs. On a restart the name's state is
//     reset and S is handled as if L were 0: seq_ids 1..S-1 of the new
//     run are fetched if S > 1.
//
// Fixed from fedmsg: the range is the missing seq_ids only (fedmsg asks
// for [L, S] and so re-fetches L); every replayed envelope is delivered
// (fedmsg's tail returns the first one only) and a dropped duplicate
// yields nothing (fedmsg yields None); and a restart does not make the
// subscriber drop every message until the new numbers pass the old ones.
//
// A GapTracker is safe for concurrent use; Next holds its lock while it
// queries, so envelopes are handled one at a time.
type GapTracker struct {
	o     GapOptions
	log   *slog.Logger
	mu    sync.Mutex
	names map[string]*sequence
	stats GapStats
}

// sequence is what is known of one replay name.
type sequence struct {
	last   int64
	recent map[int64]string // seq_id -> msg_id of the last Window seq_ids seen
	order  []int64          // the keys of recent, ascending (seq_ids only grow)
}

// NewGapTracker makes a tracker.
func NewGapTracker(o GapOptions) *GapTracker {
	if o.Fetch == nil {
		o.Fetch = func(ctx context.Context, endpoint string, q Request) ([]Envelope, error) {
			return QueryEnvelopes(ctx, endpoint, q, ClientOptions{})
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxGap <= 0 {
		o.MaxGap = DefaultMaxGap
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &GapTracker{o: o, log: log, names: map[string]*sequence{}}
}

// Stats returns the counters so far.
func (g *GapTracker) Stats() GapStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// SeqID reads an envelope's seq_id; ok is false when it has none or it
// is not a positive integer.
func SeqID(env map[string]any) (int64, bool) {
	var n int64
	switch v := env[message.FieldSeqID].(type) {
	case message.Number:
		i, err := v.Int64()
		if err != nil {
			return 0, false
		}
		n = i
	case int64:
		n = v
	case int:
		n = int64(v)
	default:
		return 0, false
	}
	return n, n >= 1
}

// Next takes an envelope received from the endpoint named name and
// returns what to deliver, in order: fetched envelopes first (Replayed
// set), then e itself; nothing when e is a duplicate.
func (g *GapTracker) Next(ctx context.Context, name string, e Envelope) []Envelope {
	g.mu.Lock()
	defer g.mu.Unlock()
	endpoint, tracked := g.o.Endpoints[name]
	s, ok := SeqID(e.Fields)
	if !tracked || !ok {
		g.stats.Delivered++
		return []Envelope{e}
	}
	msgID, _ := e.Fields[message.FieldMsgID].(string)
	seq := g.names[name]
	if seq == nil {
		seq = &sequence{recent: map[int64]string{}}
		g.names[name] = seq
		seq.add(s, msgID, g.o.Window)
		g.stats.Delivered++
		return []Envelope{e}
	}
	if s <= seq.last {
		seen, remembered := seq.recent[s]
		oldest := seq.last
		if len(seq.order) > 0 {
			oldest = seq.order[0]
		}
		switch {
		case remembered && seen == msgID, !remembered && s != 1 && s >= oldest:
			g.stats.Duplicates++
			g.log.Debug("replay: duplicate dropped", "name", name, "seq_id", s, "last_seq_id", seq.last, "msg_id", msgID)
			return nil
		}
		g.stats.Restarts++
		g.log.Info("replay: publisher restarted, its seq_id started again", "name", name, "seq_id", s, "last_seq_id", seq.last)
		*seq = sequence{recent: map[int64]string{}}
	}
	var out []Envelope
	if s > seq.last+1 {
		out = g.fill(ctx, name, endpoint, seq, s)
	}
	seq.add(s, msgID, g.o.Window)
	g.stats.Delivered++
	return append(out, e)
}

// fill fetches the seq_ids between seq.last and s (exclusive), at most
// MaxGap of them, and returns those that came back, in order, recording
// them as seen.
func (g *GapTracker) fill(ctx context.Context, name, endpoint string, seq *sequence, s int64) []Envelope {
	from, to := seq.last+1, s-1
	if to-from+1 > int64(g.o.MaxGap) {
		skipped := to - int64(g.o.MaxGap) + 1 - from
		g.stats.Lost += skipped
		g.log.Warn("replay: gap larger than the most one query fetches; the oldest are lost", "name", name, "endpoint", endpoint, "lost_from", from, "lost_to", from+skipped-1, "max_gap", g.o.MaxGap)
		from += skipped
	}
	want := to - from + 1
	qctx, cancel := context.WithTimeout(ctx, g.o.Timeout)
	got, err := g.o.Fetch(qctx, endpoint, Request{SeqIDRange: &Range{From: from, To: to}})
	cancel()
	if err != nil {
		g.stats.Failures++
		g.stats.Lost += want
		g.log.Warn("replay: query for missing messages failed; they are lost", "name", name, "endpoint", endpoint, "from", from, "to", to, "err", err)
		return nil
	}
	// Keep what is in the range, each seq_id once, in order: the server is
	// not trusted to answer exactly what was asked.
	bySeq := make(map[int64]Envelope, len(got))
	for _, r := range got {
		id, ok := SeqID(r.Fields)
		if !ok || id < from || id > to {
			continue
		}
		if _, dup := bySeq[id]; !dup {
			r.Replayed = true
			bySeq[id] = r
		}
	}
	ids := make([]int64, 0, len(bySeq))
	for id := range bySeq {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]Envelope, 0, len(ids))
	for _, id := range ids {
		r := bySeq[id]
		msgID, _ := r.Fields[message.FieldMsgID].(string)
		seq.add(id, msgID, g.o.Window)
		out = append(out, r)
	}
	g.stats.Replayed += int64(len(out))
	if lost := want - int64(len(out)); lost > 0 {
		g.stats.Lost += lost
		g.log.Warn("replay: the replay server no longer has some missing messages; they are lost", "name", name, "endpoint", endpoint, "from", from, "to", to, "lost", lost)
	}
	g.log.Debug("replay: gap recovered", "name", name, "endpoint", endpoint, "from", from, "to", to, "replayed", len(out))
	return out
}

// add records seq_id s (greater than every seq_id recorded) as seen.
func (q *sequence) add(s int64, msgID string, window int) {
	q.last = s
	q.recent[s] = msgID
	q.order = append(q.order, s)
	for len(q.order) > window {
		delete(q.recent, q.order[0])
		q.order = q.order[1:]
	}
}
