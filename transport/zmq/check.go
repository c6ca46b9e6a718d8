package zmq

import (
	"sync/atomic"
	"unicode/utf8"

	"github.com/gofedmsg/fedmsg/message"
)

// DropReason says why a received ZeroMQ message was not delivered.
type DropReason int

// Reasons for dropping input. None of them is fatal: the message is
// counted and the socket goes on.
const (
	DropNone      DropReason = iota
	DropFrames               // not exactly two frames
	DropTopicUTF8            // frame 0 is not valid UTF-8
	DropOversize             // frame 1 is larger than MaxMsgSize
	DropNotObject            // frame 1 is not a JSON object
	DropTransform            // the relay's transform (signing) failed
	numDropReasons
)

func (r DropReason) String() string {
	switch r {
	case DropFrames:
		return "bad_frame_count"
	case DropTopicUTF8:
		return "topic_not_utf8"
	case DropOversize:
		return "oversize"
	case DropNotObject:
		return "body_not_json_object"
	case DropTransform:
		return "transform_failed"
	}
	return "none"
}

// Stats counts what a socket forwarded and what it dropped, by reason.
// It is safe for concurrent use.
type Stats struct {
	received atomic.Uint64
	dropped  [numDropReasons]atomic.Uint64
}

// Received is the number of well-formed messages received.
func (s *Stats) Received() uint64 { return s.received.Load() }

// Dropped is the number of messages dropped for reason.
func (s *Stats) Dropped(reason DropReason) uint64 {
	if reason <= DropNone || reason >= numDropReasons {
		return 0
	}
	return s.dropped[reason].Load()
}

// DroppedTotal is the number of messages dropped for any reason.
func (s *Stats) DroppedTotal() uint64 {
	var n uint64
	for r := DropNone + 1; r < numDropReasons; r++ {
		n += s.dropped[r].Load()
	}
	return n
}

// DroppedByReason returns the non-zero drop counts keyed by reason name.
func (s *Stats) DroppedByReason() map[string]uint64 {
	out := map[string]uint64{}
	for r := DropNone + 1; r < numDropReasons; r++ {
		if n := s.dropped[r].Load(); n > 0 {
			out[r.String()] = n
		}
	}
	return out
}

func (s *Stats) count(r DropReason) {
	if r == DropNone {
		s.received.Add(1)
		return
	}
	s.dropped[r].Add(1)
}

// checkFrames applies fedmsg's wire rules to one received multipart message:
// exactly two frames, a UTF-8 topic, a body that is a JSON object no larger
// than maxSize. Anything else is dropped, never fatal.
func checkFrames(frames [][]byte, maxSize int) DropReason {
	if len(frames) != 2 {
		return DropFrames
	}
	if !utf8.Valid(frames[0]) {
		return DropTopicUTF8
	}
	if len(frames[1]) > maxSize {
		return DropOversize
	}
	if message.ValidateObject(frames[1]) != nil {
		return DropNotObject
	}
	return DropNone
}

// Check applies the relay's wire rules (checkFrames) to one received
// multipart message and counts the outcome in s, so that forwarders outside
// this package (fedmsg gateway) drop and count exactly as the relay does.
func (s *Stats) Check(frames [][]byte, maxSize int) DropReason {
	r := checkFrames(frames, maxSize)
	s.count(r)
	return r
}
