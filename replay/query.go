package replay

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofedmsg/fedmsg/message"
)

// The keys of fedmsg's query object (spec §7.2).
const (
	KeySeqID      = "seq_id"
	KeySeqIDs     = "seq_ids"
	KeySeqIDRange = "seq_id_range"
	KeyMsgID      = "msg_id"
	KeyMsgIDs     = "msg_ids"
	KeyTime       = "time"
)

// MaxListLen bounds seq_ids and msg_ids: a query is one ZeroMQ frame read
// into memory, and no store holds more messages than this by default, so a
// longer list can only be a mistake or an attack.
const MaxListLen = 10000

// Texts the server answers with, inside "error: '...'". Those fedmsg has
// are fedmsg's, word for word, so a client that matches on them keeps
// working.
const (
	textNoMatch     = "There was no match for the given query"
	textUnsupported = `Unsupported field: "%s"`
	textIllFormat   = `Ill-format "%s" field`
	// Texts fedmsg never produced (its server died on these inputs or
	// answered oddly): same style, so they read as the same family.
	textNotObject = "The query is not a JSON object"
	textEmpty     = "The query is empty"
	textTooMany   = `Too many values in the field "%s" (at most %d)`
	textTooBig    = "The query is larger than %d bytes"
	textFrames    = "The query must be one frame, got %d"
)

// ErrBadQuery is wrapped by every *QueryError.
var ErrBadQuery = errors.New("replay: bad query")

// QueryError is a query the server refuses. Text is what goes back to the
// client, in fedmsg's words where fedmsg has them.
type QueryError struct{ Text string }

func (e *QueryError) Error() string { return "replay: bad query: " + e.Text }
func (e *QueryError) Unwrap() error { return ErrBadQuery }

func queryErr(format string, args ...any) *QueryError {
	return &QueryError{Text: fmt.Sprintf(format, args...)}
}

// Range is an inclusive seq_id range.
type Range struct{ From, To int64 }

// TimeRange is an inclusive range of envelope timestamps, in seconds since
// the epoch. fedmsg compares local-time datetimes; comparing the epoch
// seconds themselves gives the same answer without the DST ambiguity.
type TimeRange struct{ From, To float64 }

// Request is fedmsg's replay query object (what a client sends). Every field that is set is one
// predicate; an envelope matches when any predicate does (OR). A nil slice
// is "not set"; an empty one is set and matches nothing, as in fedmsg.
type Request struct {
	SeqID      *int64
	SeqIDs     []int64
	SeqIDRange *Range
	MsgID      *string
	MsgIDs     []string
	Time       *TimeRange
}

// IsZero reports whether no field is set.
func (q Request) IsZero() bool {
	return q.SeqID == nil && q.SeqIDs == nil && q.SeqIDRange == nil &&
		q.MsgID == nil && q.MsgIDs == nil && q.Time == nil
}

// ParseRequest reads a query object as the replay server receives it.
// Every problem is a *QueryError; keys are looked at in sorted order so
// the same bad query always gets the same answer.
func ParseRequest(data []byte) (Request, error) {
	var q Request
	obj, err := message.DecodeObject(data)
	if err != nil {
		return q, queryErr(textNotObject)
	}
	if len(obj) == 0 {
		// OR over no predicates: rather than guess between "everything"
		// and "nothing", say so.
		return q, queryErr(textEmpty)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := obj[k]
		var ok bool
		switch k {
		case KeySeqID:
			var n int64
			n, ok = asInt(v)
			q.SeqID = &n
		case KeySeqIDs:
			if q.SeqIDs, ok, err = list(k, v, asInt); err != nil {
				return Request{}, err
			}
		case KeySeqIDRange:
			var r []int64
			if r, ok, err = list(k, v, asInt); err != nil {
				return Request{}, err
			}
			ok = ok && len(r) == 2 && r[0] <= r[1]
			if ok {
				q.SeqIDRange = &Range{r[0], r[1]}
			}
		case KeyMsgID:
			var s string
			s, ok = v.(string)
			q.MsgID = &s
		case KeyMsgIDs:
			if q.MsgIDs, ok, err = list(k, v, asString); err != nil {
				return Request{}, err
			}
		case KeyTime:
			var r []float64
			if r, ok, err = list(k, v, asSeconds); err != nil {
				return Request{}, err
			}
			ok = ok && len(r) == 2 && r[0] <= r[1]
			if ok {
				q.Time = &TimeRange{r[0], r[1]}
			}
		default:
			// fedmsg's text has the literal word key here (a formatting
			// bug); we name the offending key. Only the part inside the
			// quotes differs, so a client matching the start still works.
			return Request{}, queryErr(textUnsupported, shorten(k))
		}
		if !ok {
			return Request{}, queryErr(textIllFormat, k)
		}
	}
	return q, nil
}

// list converts a JSON array with conv. ok is false when v is not an
// array or an element does not convert; a list longer than MaxListLen is
// an error of its own.
func list[T any](key string, v any, conv func(any) (T, bool)) (out []T, ok bool, err error) {
	a, isList := v.([]any)
	if !isList {
		return nil, false, nil
	}
	if len(a) > MaxListLen {
		return nil, false, queryErr(textTooMany, key, MaxListLen)
	}
	out = make([]T, 0, len(a))
	for _, e := range a {
		x, good := conv(e)
		if !good {
			return nil, false, nil
		}
		out = append(out, x)
	}
	return out, true, nil
}

// asInt accepts JSON integers that fit in an int64. Python would also take
// true/false and 3.0 as 1/0/3 in a SQL comparison; those are refused here
// because they are never what a client meant.
func asInt(v any) (int64, bool) {
	n, ok := v.(message.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

func asString(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

// asSeconds accepts any finite JSON number.
func asSeconds(v any) (float64, bool) {
	n, ok := v.(message.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
}

// shorten keeps an echoed key readable and the reply small.
func shorten(s string) string {
	const most = 64
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= most {
		return s
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Encode writes q as the canonical JSON fedmsg's get_replay sends. A query
// with nothing set, or with a reversed range, is an error: the server would
// refuse it anyway.
func (q Request) Encode() ([]byte, error) {
	if q.IsZero() {
		return nil, queryErr(textEmpty)
	}
	obj := map[string]any{}
	ints := func(xs []int64) []any {
		out := make([]any, len(xs))
		for i, x := range xs {
			out[i] = intNumber(x)
		}
		return out
	}
	if q.SeqID != nil {
		obj[KeySeqID] = intNumber(*q.SeqID)
	}
	if q.SeqIDs != nil {
		obj[KeySeqIDs] = ints(q.SeqIDs)
	}
	if r := q.SeqIDRange; r != nil {
		if r.From > r.To {
			return nil, queryErr(textIllFormat, KeySeqIDRange)
		}
		obj[KeySeqIDRange] = ints([]int64{r.From, r.To})
	}
	if q.MsgID != nil {
		obj[KeyMsgID] = *q.MsgID
	}
	if q.MsgIDs != nil {
		ids := make([]any, len(q.MsgIDs))
		for i, id := range q.MsgIDs {
			ids[i] = id
		}
		obj[KeyMsgIDs] = ids
	}
	if t := q.Time; t != nil {
		if !(t.From <= t.To) || math.IsInf(t.From, 0) || math.IsInf(t.To, 0) {
			return nil, queryErr(textIllFormat, KeyTime)
		}
		obj[KeyTime] = []any{secondsNumber(t.From), secondsNumber(t.To)}
	}
	return message.Canonical(obj)
}

func intNumber(i int64) message.Number { return message.Number(strconv.FormatInt(i, 10)) }

// secondsNumber writes whole seconds as an integer (what fedmsg clients
// send) and anything else as Python would print the float.
func secondsNumber(f float64) message.Number {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 && !(f == 0 && math.Signbit(f)) {
		return intNumber(int64(f))
	}
	return message.Number(message.FormatFloat(f))
}

// matcher is a Request made ready for scanning a store: the lists become
// sets, so a long list against a full store stays linear.
type matcher struct {
	q      Request
	seqIDs map[int64]struct{}
	msgIDs map[string]struct{}
}

func newMatcher(q Request) *matcher {
	m := &matcher{q: q}
	if len(q.SeqIDs) > 0 {
		m.seqIDs = make(map[int64]struct{}, len(q.SeqIDs))
		for _, id := range q.SeqIDs {
			m.seqIDs[id] = struct{}{}
		}
	}
	if len(q.MsgIDs) > 0 {
		m.msgIDs = make(map[string]struct{}, len(q.MsgIDs))
		for _, id := range q.MsgIDs {
			m.msgIDs[id] = struct{}{}
		}
	}
	return m
}

// matches reports whether e satisfies any predicate of the query.
func (m *matcher) matches(e *entry) bool {
	q := m.q
	if q.SeqID != nil && e.seqID == *q.SeqID {
		return true
	}
	if r := q.SeqIDRange; r != nil && r.From <= e.seqID && e.seqID <= r.To {
		return true
	}
	if _, ok := m.seqIDs[e.seqID]; ok {
		return true
	}
	if e.msgID != "" {
		if q.MsgID != nil && e.msgID == *q.MsgID {
			return true
		}
		if _, ok := m.msgIDs[e.msgID]; ok {
			return true
		}
	}
	return q.Time != nil && e.hasTime && q.Time.From <= e.time && e.time <= q.Time.To
}
