package loadgen

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofedmsg/fedmsg/message"
)

// ErrSize: the requested body size is below the smallest envelope the
// run can build (its fixed fields alone).
var ErrSize = errors.New("loadgen: body size below the envelope's fixed fields")

// Widths of the fields stamped into each body. Fixed widths keep every
// body exactly Size bytes, so stamping is a copy into a template, not a
// JSON encoding per message.
const (
	seqDigits  = 12 // hex digits: the last group of the msg_id's UUID
	sentDigits = 19 // decimal nanoseconds since the run's epoch
	// probeBase numbers the messages that are not measured (readiness
	// probes and warm-up): far above any count a run can send.
	probeBase = uint64(1) << 44
)

// envelope builds and reads the bodies of one run. A body is a canonical
// fedmsg envelope (keys sorted, as fedmsg serialises, so it is what a
// fedmsg publisher could have sent):
//
//	{"i":1,"msg":{"bench":RUN,"pad":"xx…","sent":"<ns>"},"msg_id":"<year>-<uuid>","timestamp":T,"topic":…,"username":…}
//
// The UUID's last group is the sequence number, so each message has its
// own msg_id (a bridge suppresses repeated msg_ids); "sent" is the send
// time in nanoseconds since epoch on this process's monotonic clock: both
// ends of a measurement are in this process. "i" stays 1: a counter of
// varying width would change the size.
type envelope struct {
	run      string // random; tells this run's messages from anyone else's
	epoch    time.Time
	template []byte
	head     []byte // template up to the end of the run id: a body of this run starts with it
	sentAt   int    // offset of the sent digits
	seqAt    int    // offset of the sequence digits
	stampAt  int    // offset of the timestamp's digits
	idPrefix string // msg_id without its sequence digits
	pad      int    // bytes of padding
}

// newEnvelope lays out the template of a run for topic and username,
// padded to size bytes.
func newEnvelope(topic, username string, size int, now time.Time) (*envelope, error) {
	var rnd [10]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read does not fail
	run := hex.EncodeToString(rnd[:4])
	h := hex.EncodeToString(rnd[4:])
	// <year>-RRRRRRRR-hhhh-4hhh-{8..b}hhh-SSSSSSSSSSSS: a version-4 UUID
	// whose first group is the run and last the sequence number.
	variant := "89ab"[rnd[9]&3]
	idPrefix := fmt.Sprintf("%d-%s-%s-4%s-%c%s-", now.Year(), run, h[0:4], h[4:7], variant, h[7:10])

	topicJSON, err := message.Canonical(topic)
	if err != nil {
		return nil, fmt.Errorf("loadgen: topic %q: %w", topic, err)
	}
	userJSON, err := message.Canonical(username)
	if err != nil {
		return nil, fmt.Errorf("loadgen: username %q: %w", username, err)
	}
	head := `{"i":1,"msg":{"bench":"` + run + `"`
	pre := head + `,"pad":"`
	mid := `","sent":"` + zeros(sentDigits) + `"},"msg_id":"` + idPrefix + zeros(seqDigits) + `","timestamp":`
	stamp := strconv.FormatInt(now.Unix(), 10)
	tail := `,"topic":` + string(topicJSON) + `,"username":` + string(userJSON) + `}`
	fixed := len(pre) + len(mid) + len(stamp) + len(tail)
	if size < fixed {
		return nil, fmt.Errorf("%w: %d bytes, the least for topic %q is %d", ErrSize, size, topic, fixed)
	}
	pad := bytes.Repeat([]byte("x"), size-fixed)
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(pre)
	b.Write(pad)
	b.WriteString(mid)
	stampAt := b.Len()
	b.WriteString(stamp)
	b.WriteString(tail)
	e := &envelope{
		run:      run,
		epoch:    now,
		template: b.Bytes(),
		head:     []byte(head),
		sentAt:   len(pre) + len(pad) + len(`","sent":"`),
		stampAt:  stampAt,
		idPrefix: idPrefix,
		pad:      len(pad),
	}
	e.seqAt = e.sentAt + sentDigits + len(`"},"msg_id":"`) + len(idPrefix)
	return e, nil
}

func zeros(n int) string { return string(bytes.Repeat([]byte("0"), n)) }

// body returns the envelope of message seq, stamped with now.
func (e *envelope) body(seq uint64, now time.Time) []byte {
	b := bytes.Clone(e.template)
	putHex(b[e.seqAt:e.seqAt+seqDigits], seq)
	putDec(b[e.sentAt:e.sentAt+sentDigits], uint64(now.Sub(e.epoch)))
	// The timestamp keeps its width (10 digits) until the year 2286.
	if s := now.Unix(); s >= 1e9 && s < 1e10 {
		putDec(b[e.stampAt:e.stampAt+10], uint64(s))
	}
	return b
}

// msgID returns the msg_id of message seq.
func (e *envelope) msgID(seq uint64) string {
	var d [seqDigits]byte
	putHex(d[:], seq)
	return e.idPrefix + string(d[:])
}

func putHex(dst []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = digits[v&15]
		v >>= 4
	}
}

func putDec(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// parse reads the sequence number and send time (since epoch) of a body
// of this run; ok is false for anything else (another run, another
// publisher, a body that is not JSON). A body as the run built it is read
// at its fixed offsets; one that was re-serialised on the way (a relay
// that re-encodes JSON) is decoded.
func (e *envelope) parse(body []byte) (seq uint64, sent time.Duration, ok bool) {
	if len(body) == len(e.template) && bytes.HasPrefix(body, e.head) &&
		string(body[e.seqAt-len(e.idPrefix):e.seqAt]) == e.idPrefix {
		s, err1 := strconv.ParseUint(string(body[e.seqAt:e.seqAt+seqDigits]), 16, 64)
		ns, err2 := strconv.ParseUint(string(body[e.sentAt:e.sentAt+sentDigits]), 10, 63)
		if err1 == nil && err2 == nil {
			return s, time.Duration(ns), true
		}
	}
	var v struct {
		MsgID string `json:"msg_id"`
		Msg   struct {
			Bench string `json:"bench"`
			Sent  string `json:"sent"`
		} `json:"msg"`
	}
	if json.Unmarshal(body, &v) != nil || v.Msg.Bench != e.run ||
		len(v.MsgID) != len(e.idPrefix)+seqDigits || v.MsgID[:len(e.idPrefix)] != e.idPrefix {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(v.MsgID[len(e.idPrefix):], 16, 64)
	ns, err2 := strconv.ParseUint(v.Msg.Sent, 10, 63)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return s, time.Duration(ns), true
}
