package consumer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gofedmsg/fedmsg/datagrepper"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// DefaultProcessName is the folder under Options.StatusDirectory that
// holds the status files: fedmsg names it after the OS process, which is
// fedmsg-hub for the hub (spec §8.4).
const DefaultProcessName = "fedmsg-hub"

// Status values of a status file.
const (
	StatusPre  = "pre"  // the handler is running on the message
	StatusPost = "post" // the handler returned
)

// maxResumeIDs bounds the msg_ids a status file remembers; forgetting one
// can only make a restart deliver a message again, never lose one.
const maxResumeIDs = 1000

// ErrStatusFile wraps problems with status_directory found at start-up.
var ErrStatusFile = errors.New("consumer: status file")

// statusFile is one consumer's status file (spec §8.4):
// <status_directory>/<process name>/<consumer name>, holding the canonical
// JSON of
//
//	{"message": {"body": <envelope>, "topic": <topic>},
//	 "resume": {"msg_ids": [...], "timestamp": T},
//	 "status": "pre"|"post"}
//
// "message" and "status" are fedmsg's: the message the handler is on (pre)
// or last finished (post). "resume" is ours: where a backlog fetched at
// the next start-up begins. fedmsg restarts from the last message's
// timestamp and skips only that message, so the other messages of the
// same second come again, and a live message handled while the backlog
// was still being fetched moved the restart point past what was not
// fetched yet. resume keeps T (the last message's timestamp, where during
// a backlog only backlog messages move it) and the msg_ids handled at or
// after T, which the next backlog skips. fedmsg itself reads only
// "message", so the file stays readable by it.
//
// A file is replaced by writing a temporary file beside it and renaming
// it over the old one: a crash leaves the old or the new file, never part
// of one. It is not fsynced (two per message would be costly): after a
// power loss it may be one message behind.
//
// Only the runner's worker writes it; the backlog goroutine only touches
// the atomic counters.
type statusFile struct {
	path, dir, name string
	log             *slog.Logger

	// Where the next restart resumes (see above).
	mark    int64
	hasMark bool
	seen    []seenID // handled, timestamp >= mark, oldest first

	// What the file said at start-up: the backlog starts there.
	found    bool
	startTS  int64
	startIDs map[string]bool

	// While walking or queued > 0 a backlog is in progress: only its
	// messages move mark.
	walking atomic.Bool
	queued  atomic.Int64

	failing bool // the last write failed (logged once until it works again)
}

type seenID struct {
	id string
	ts int64
}

// attachStatus gives r its status file when Options.StatusDirectory is
// set, creating the folder and reading what a previous run left.
func (h *Hub) attachStatus(r *runner) error {
	if h.opts.StatusDirectory == "" {
		return nil
	}
	name := r.c.Name
	if name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: consumer %q: a name used as a file name under status_directory cannot be . or .. or hold a slash", ErrStatusFile, name)
	}
	proc := h.opts.ProcessName
	if proc == "" {
		proc = DefaultProcessName
	}
	dir := filepath.Join(h.opts.StatusDirectory, proc)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: status_directory: %w", ErrStatusFile, err)
	}
	s := &statusFile{path: filepath.Join(dir, name), dir: dir, name: name, log: r.log}
	if err := s.load(); err != nil {
		// A damaged file costs the backlog, never the hub.
		r.log.Warn("status file unreadable: no backlog this time", "path", s.path, "err", err)
	}
	r.status = s
	return nil
}

// load reads the file a previous run left, if any.
func (s *statusFile) load() error {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	doc, err := message.DecodeObject(data)
	if err != nil {
		return err
	}
	wrapper, _ := doc["message"].(map[string]any)
	body := wrapper["body"]
	if text, ok := body.(string); ok { // a consumer that did not jsonify
		if body, err = message.Decode([]byte(text)); err != nil {
			return fmt.Errorf("message.body: %w", err)
		}
	}
	last, ok := body.(map[string]any)
	if !ok {
		return errors.New("no message.body object")
	}
	s.startIDs = map[string]bool{}
	if id, ok := last["msg_id"].(string); ok {
		s.startIDs[id] = true
	}
	ts, ok := datagrepper.Timestamp(last)
	if resume, isMap := doc["resume"].(map[string]any); isMap {
		if t, good := datagrepper.Timestamp(resume); good {
			ts, ok = t, true
		}
		ids, _ := resume["msg_ids"].([]any)
		for _, v := range ids {
			if id, good := v.(string); good {
				s.startIDs[id] = true
				s.seen = append(s.seen, seenID{id: id, ts: ts})
			}
		}
	}
	if !ok {
		return errors.New("the last message has no usable timestamp")
	}
	s.found, s.startTS = true, ts
	s.mark, s.hasMark = ts, true
	return nil
}

// handled is called once for every delivery the runner took, accepted
// or not: it counts down the backlog's queued messages.
func (s *statusFile) handled(d *transport.Delivery) {
	if s != nil && d.Source == BacklogSource {
		s.queued.Add(-1)
	}
}

func (s *statusFile) inBacklog() bool {
	return s.walking.Load() || s.queued.Load() > 0
}

// pre records that the handler starts on m.
func (s *statusFile) pre(m *Message) {
	if s != nil {
		s.write(m, StatusPre)
	}
}

// post records that the handler finished m (successfully or not: the
// message is not delivered again either way, as on ZeroMQ) and moves the
// restart point past it.
func (s *statusFile) post(m *Message) {
	if s == nil {
		return
	}
	if ts, ok := datagrepper.Timestamp(m.Envelope); ok {
		id, _ := m.Envelope["msg_id"].(string)
		if m.Source == BacklogSource || !s.inBacklog() || !s.hasMark {
			s.mark, s.hasMark = ts, true
			kept := s.seen[:0]
			for _, e := range s.seen {
				if e.ts >= ts {
					kept = append(kept, e)
				}
			}
			s.seen = kept
		}
		if id != "" && ts >= s.mark {
			s.seen = append(s.seen, seenID{id: id, ts: ts})
			if n := len(s.seen) - maxResumeIDs; n > 0 {
				s.seen = append(s.seen[:0], s.seen[n:]...)
			}
		}
	}
	s.write(m, StatusPost)
}

// document is the file's content for m.
func (s *statusFile) document(m *Message, status string) ([]byte, error) {
	doc := map[string]any{
		"message": map[string]any{"body": m.Envelope, "topic": m.Topic},
		"status":  status,
	}
	if s.hasMark {
		ids := make([]any, 0, len(s.seen))
		for _, e := range s.seen {
			ids = append(ids, e.id)
		}
		doc["resume"] = map[string]any{
			"msg_ids":   ids,
			"timestamp": message.Number(strconv.FormatInt(s.mark, 10)),
		}
	}
	return message.Canonical(doc)
}

func (s *statusFile) write(m *Message, status string) {
	err := s.replace(m, status)
	switch {
	case err != nil && !s.failing:
		s.failing = true
		s.log.Warn("cannot write the status file (further failures are not logged until it works again)", "path", s.path, "err", err)
	case err == nil && s.failing:
		s.failing = false
		s.log.Info("status file written again", "path", s.path)
	}
}

// replace writes the file atomically: temporary file, then rename.
func (s *statusFile) replace(m *Message, status string) error {
	data, err := s.document(m, status)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, "."+s.name+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
