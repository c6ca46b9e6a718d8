package replay

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/gofedmsg/fedmsg/message"
)

// DefaultLimit is how many envelopes a store keeps unless told otherwise.
const DefaultLimit = 10000

// ErrBadLimit: a store must keep at least one envelope.
var ErrBadLimit = errors.New("replay: store limit must be at least 1")

// Store keeps the most recent envelopes of one publisher (one endpoint
// name) and numbers them: seq_id 1 for the first, then 1 more for each
// (spec §7.4). A subscriber's gap detection relies on the numbers of one
// publisher being consecutive, so a store belongs to one name and is never
// shared. When full, the oldest envelope makes room; seq_ids keep rising.
// It is safe for concurrent use.
type Store struct {
	mu    sync.Mutex
	limit int
	next  int64   // seq_id the next Add assigns
	ring  []entry // grows to limit, then wraps
	head  int     // index of the oldest entry once the ring is full
}

type entry struct {
	seqID   int64
	msgID   string
	time    float64 // the envelope's timestamp, seconds since the epoch
	hasTime bool
	body    []byte // canonical JSON of the stored envelope, seq_id included
}

// NewStore makes a store that keeps the last limit envelopes.
func NewStore(limit int) (*Store, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w, got %d", ErrBadLimit, limit)
	}
	return &Store{limit: limit, next: 1}, nil
}

// Seal turns an envelope that carries its seq_id into the envelope that
// is sent, typically by signing it. It runs while the store is locked, so
// envelopes are stored in seq_id order.
type Seal func(env map[string]any) (map[string]any, error)

// Add gives a copy of env the next seq_id, passes it to seal (nil: none),
// stores the result and returns it with its canonical JSON, which is what
// the publisher should send. When seal or encoding fails nothing is stored
// and the seq_id is not used up, so the sequence has no hole a subscriber
// could never fill.
func (s *Store) Add(env map[string]any, seal Seal) (map[string]any, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]any, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out[message.FieldSeqID] = s.next
	if seal != nil {
		var err error
		if out, err = seal(out); err != nil {
			return nil, nil, err
		}
	}
	body, err := message.Canonical(out)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: store: %w", err)
	}
	e := entry{seqID: s.next, body: body}
	e.msgID, _ = out[message.FieldMsgID].(string)
	e.time, e.hasTime = seconds(out[message.FieldTimestamp])
	if len(s.ring) < s.limit {
		s.ring = append(s.ring, e)
	} else {
		s.ring[s.head] = e
		s.head = (s.head + 1) % s.limit
	}
	s.next++
	return out, body, nil
}

// Len is the number of envelopes held.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ring)
}

// Bounds are the oldest and newest seq_ids held; ok is false when empty.
func (s *Store) Bounds() (oldest, newest int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == 0 {
		return 0, 0, false
	}
	return s.ring[s.head].seqID, s.next - 1, true
}

// Find returns the stored envelopes (canonical JSON) that match q, oldest
// first. The slices are shared with the store and must not be modified.
func (s *Store) Find(q Request) [][]byte {
	m := newMatcher(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for i := range s.ring {
		e := &s.ring[(s.head+i)%len(s.ring)]
		if m.matches(e) {
			out = append(out, e.body)
		}
	}
	return out
}

// seconds reads an envelope timestamp: an integer (what fedmsg writes), or
// a float (datagrepper copies). Anything else has no time.
func seconds(v any) (float64, bool) {
	switch t := v.(type) {
	case message.Number:
		f, err := t.Float64()
		return f, err == nil && !math.IsNaN(f)
	case int64:
		return float64(t), true
	case int:
		return float64(t), true
	case float64:
		return t, !math.IsNaN(t)
	}
	return 0, false
}
