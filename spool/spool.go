// Package spool is a durable, ordered queue of transport.Message on disk,
// for messages that were taken from a source that cannot redeliver
// (ZeroMQ, an application's Publish call) and not yet confirmed by the
// sink (a broker). Append returns only once the messages are committed
// to disk, so a process killed with SIGKILL finds every appended and
// not yet acked message again, in order, when it opens the file again.
//
// The store is a bbolt file: one bucket keyed by a big-endian sequence
// number that only grows, so a cursor walks the messages in the order
// they were appended. Appends and acks that arrive while a commit is in
// progress are written together in the next transaction (group commit):
// one fsync covers a whole burst, which is what makes a durable queue
// fast enough to sit in front of a broker.
//
// The spool is bounded by the bytes it holds (spool_max_bytes). When
// full, Append either waits for acks to make room (Block, bounded by
// its ctx) or removes the oldest messages to make room (DropOldest,
// counted and logged).
package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/gofedmsg/fedmsg/transport"
)

// Sentinel errors, wrapped with the file at fault.
var (
	// ErrClosed: the spool was closed.
	ErrClosed = errors.New("spool: closed")
	// ErrTooLarge: a message (or one Append's messages) is larger than
	// the whole spool may hold, so no amount of waiting makes room.
	ErrTooLarge = errors.New("spool: larger than spool_max_bytes")
	// ErrFull: a Block spool stayed full until the Append's ctx ended.
	ErrFull = errors.New("spool: full")
	// ErrCorrupt: a stored record cannot be decoded (logged; the record
	// is removed).
	ErrCorrupt = errors.New("spool: corrupt record")
	// ErrInvalidOptions: Options do not validate.
	ErrInvalidOptions = errors.New("spool: invalid options")
	// ErrLocked: another process holds the spool file.
	ErrLocked = errors.New("spool: file in use by another process")
)

// Policy is what Append does when the spool is full.
type Policy string

const (
	// Block makes Append wait until acks free enough room, or its ctx
	// ends (ErrFull). Nothing is lost; the source is slowed instead.
	Block Policy = "block"
	// DropOldest removes the oldest messages to make room. They are
	// counted (Stats.Dropped) and logged: the newest messages win.
	DropOldest Policy = "drop-oldest"
)

// Defaults of the Options fields that have one.
const (
	DefaultMaxBytes    = 256 << 20 // 256 MiB
	DefaultPolicy      = Block
	DefaultLockTimeout = 5 * time.Second
)

// recordOverhead is counted per message on top of its encoded size: the
// key and bbolt's per-item bookkeeping, so that many tiny messages do not
// slip past the bound.
const recordOverhead = 8 + 16

// Options configure a spool. Keys name the configuration keys they come
// from, for errors.
type Options struct {
	// Path is the bbolt file; its directory is created if missing.
	Path string
	// MaxBytes bounds the messages held (spool_max_bytes). 0 means
	// DefaultMaxBytes.
	MaxBytes int64
	// Full is the policy when full (spool_full). "" means Block.
	Full Policy
	// Logger receives drop and recovery events; nil discards them.
	Logger *slog.Logger
	// LockTimeout bounds the wait for another process to release the
	// file. 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// MaxBytesKey and FullKey name the configuration keys in errors;
	// empty means "spool_max_bytes" and "spool_full".
	MaxBytesKey, FullKey string
}

func (o *Options) withDefaults() {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Full == "" {
		o.Full = DefaultPolicy
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxBytesKey == "" {
		o.MaxBytesKey = "spool_max_bytes"
	}
	if o.FullKey == "" {
		o.FullKey = "spool_full"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the options, naming the key at fault.
func (o Options) Validate() error {
	o.withDefaults()
	var errs []error
	if o.Path == "" {
		errs = append(errs, fmt.Errorf("%w: no spool file given", ErrInvalidOptions))
	}
	if o.MaxBytes < 1024 {
		errs = append(errs, fmt.Errorf("%w: key %q: must be at least 1024 bytes, got %d", ErrInvalidOptions, o.MaxBytesKey, o.MaxBytes))
	}
	if err := CheckPolicy(o.FullKey, string(o.Full)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CheckPolicy reports whether v is a Policy, naming key when it is not.
func CheckPolicy(key, v string) error {
	switch Policy(v) {
	case "", Block, DropOldest:
		return nil
	}
	return fmt.Errorf("%w: key %q: unknown value %q (want %s or %s)", ErrInvalidOptions, key, v, Block, DropOldest)
}

// Entry is a spooled message and its sequence number, for Ack.
type Entry struct {
	Seq uint64
	Msg *transport.Message
}

// Stats counts what the spool did since it was opened (Appended, Acked,
// Dropped) and what it holds now (Bytes, Depth).
type Stats struct {
	Appended, Acked, Dropped uint64
	Corrupt                  uint64 // unreadable records found and removed
	Bytes                    int64  // encoded size of the messages held
	Depth                    int    // messages held
	Recovered                int    // messages found when the file was opened
	RecoveredUpTo            uint64 // the highest seq among them
}

// Spool is a durable queue. Its methods are safe for concurrent use.
type Spool struct {
	opts Options
	db   *bolt.DB
	log  *slog.Logger

	reqs chan *request
	quit chan struct{} // closed by Close: the writer stops
	gone chan struct{} // closed when the writer has returned

	mu       sync.Mutex
	closed   bool
	bytes    int64 // committed
	reserved int64 // Block: admitted appends not yet committed
	depth    int
	added    chan struct{} // closed and replaced when messages are committed
	freed    chan struct{} // closed and replaced when room is made
	stats    Stats
}

var bucketName = []byte("messages")

type request struct {
	msgs [][]byte // encoded appends
	size int64    // their accounted size
	acks []uint64
	done chan error
}

// Open opens (creating if needed) the spool file at o.Path. Messages left
// by an earlier process are kept and counted in Stats.Recovered.
func Open(o Options) (*Spool, error) {
	o.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o750); err != nil {
		return nil, fmt.Errorf("spool: %s: create directory: %w", o.Path, err)
	}
	db, err := bolt.Open(o.Path, 0o600, &bolt.Options{
		Timeout: o.LockTimeout,
		// The freelist is rebuilt from the pages on open instead of
		// being written at every commit: fewer bytes per fsync.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (still locked after %v; two processes cannot share a spool file)", ErrLocked, o.Path, o.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", o.Path, err)
	}
	s := &Spool{opts: o, db: db, log: o.Logger.With("spool", o.Path),
		reqs: make(chan *request, 64), quit: make(chan struct{}), gone: make(chan struct{}),
		added: make(chan struct{}), freed: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		if k, _ := b.Cursor().Last(); k != nil {
			s.stats.RecoveredUpTo = binary.BigEndian.Uint64(k)
		}
		return b.ForEach(func(_, v []byte) error {
			s.bytes += int64(len(v)) + recordOverhead
			s.depth++
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("spool: open %s: %w", o.Path, err)
	}
	s.stats.Recovered = s.depth
	if s.depth > 0 {
		s.log.Info("spool: messages left by an earlier run will be sent first", "messages", s.depth, "bytes", s.bytes)
	}
	go s.writer()
	return s, nil
}

// Path is the spool's file.
func (s *Spool) Path() string { return s.opts.Path }

// Append stores msgs, in order after every message appended before, and
// returns once they are on disk. With Block it first waits, within ctx,
// for room.
func (s *Spool) Append(ctx context.Context, msgs ...*transport.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	r := &request{msgs: make([][]byte, len(msgs)), done: make(chan error, 1)}
	for i, m := range msgs {
		r.msgs[i] = encode(m)
		r.size += int64(len(r.msgs[i])) + recordOverhead
	}
	if r.size > s.opts.MaxBytes {
		return fmt.Errorf("%w: %s: %d bytes to append, %s is %d", ErrTooLarge, s.opts.Path, r.size, s.opts.MaxBytesKey, s.opts.MaxBytes)
	}
	if err := s.admit(ctx, r.size); err != nil {
		return err
	}
	return s.submit(ctx, r)
}

// admit waits, under the Block policy, until size fits, and reserves it.
func (s *Spool) admit(ctx context.Context, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return fmt.Errorf("%w: %s", ErrClosed, s.opts.Path)
		}
		if s.opts.Full == DropOldest || s.bytes+s.reserved+size <= s.opts.MaxBytes {
			s.reserved += size
			return nil
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			s.mu.Lock()
			return fmt.Errorf("%w: %s: %s (%d bytes) reached and nothing was acked: %w", ErrFull, s.opts.Path, s.opts.MaxBytesKey, s.opts.MaxBytes, ctx.Err())
		}
		s.mu.Lock()
	}
}

// submit hands r to the writer and waits for its commit. Once the writer
// has it, the outcome is awaited even if ctx ends, so that a caller is
// never told "failed" about messages that were in fact stored.
func (s *Spool) submit(ctx context.Context, r *request) error {
	select {
	case s.reqs <- r:
	case <-s.quit:
		s.unreserve(r.size)
		return fmt.Errorf("%w: %s", ErrClosed, s.opts.Path)
	case <-ctx.Done():
		s.unreserve(r.size)
		return ctx.Err()
	}
	return <-r.done
}

func (s *Spool) unreserve(size int64) {
	s.mu.Lock()
	s.reserved -= size
	s.mu.Unlock()
}

// Ack removes the messages with these sequence numbers (sent and
// confirmed). Seqs no longer held (dropped) are ignored. An ack lost in a
// crash only means the message is sent again.
func (s *Spool) Ack(ctx context.Context, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	r := &request{acks: seqs, done: make(chan error, 1)}
	return s.submit(ctx, r)
}

// Read returns up to max messages whose Seq is greater than after, oldest
// first, waiting within ctx until there is at least one.
func (s *Spool) Read(ctx context.Context, after uint64, max int) ([]Entry, error) {
	if max <= 0 {
		max = 1
	}
	for {
		s.mu.Lock()
		closed, added := s.closed, s.added
		s.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("%w: %s", ErrClosed, s.opts.Path)
		}
		out, err := s.read(after, max)
		if err != nil || len(out) > 0 {
			return out, err
		}
		select {
		case <-added:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.quit:
		}
	}
}

// TryRead is Read without the wait: it returns what there is, maybe
// nothing. Take Appended first to wait for more without missing any.
func (s *Spool) TryRead(after uint64, max int) ([]Entry, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: %s", ErrClosed, s.opts.Path)
	}
	return s.read(after, max)
}

// Appended is closed at the next commit that adds messages.
func (s *Spool) Appended() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.added
}

func (s *Spool) read(after uint64, max int) ([]Entry, error) {
	var out []Entry
	var bad []uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketName).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			m, err := decode(v)
			if err != nil {
				// One unreadable record must not stop the queue
				// behind it for ever: it is logged, counted and
				// removed.
				s.log.Error("spool: unreadable record removed", "err", fmt.Errorf("%w: %s: seq %d: %w", ErrCorrupt, s.opts.Path, seq, err))
				bad = append(bad, seq)
				continue
			}
			out = append(out, Entry{Seq: seq, Msg: m})
		}
		return nil
	})
	if len(bad) > 0 {
		s.mu.Lock()
		s.stats.Corrupt += uint64(len(bad))
		s.mu.Unlock()
		go func() { _ = s.Ack(context.Background(), bad...) }()
	}
	if err != nil {
		err = fmt.Errorf("spool: read %s: %w", s.opts.Path, err)
	}
	return out, err
}

// Stats returns the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Bytes, st.Depth = s.bytes, s.depth
	return st
}

// Close stops the spool: Appends and Acks waiting or coming fail with
// ErrClosed, the commit in progress is finished, and the file is closed.
// It returns ctx's error if the commit did not finish in time (the file
// is then closed by the writer when it does).
func (s *Spool) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.quit)
	close(s.freed) // wake blocked Appends: they see closed
	s.freed = make(chan struct{})
	s.mu.Unlock()
	select {
	case <-s.gone:
	case <-ctx.Done():
		return fmt.Errorf("spool: close %s: %w", s.opts.Path, ctx.Err())
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("spool: close %s: %w", s.opts.Path, err)
	}
	return nil
}

// maxGroup bounds the requests written in one transaction, so one commit
// does not grow without end under a flood.
const maxGroup = 1024

// writer commits requests, grouping those that are waiting.
func (s *Spool) writer() {
	defer close(s.gone)
	group := make([]*request, 0, maxGroup)
	for {
		group = group[:0]
		select {
		case <-s.quit:
			s.failWaiting()
			return
		case r := <-s.reqs:
			group = append(group, r)
		}
	more:
		for len(group) < maxGroup {
			select {
			case r := <-s.reqs:
				group = append(group, r)
			default:
				break more
			}
		}
		s.commit(group)
	}
}

func (s *Spool) failWaiting() {
	for {
		select {
		case r := <-s.reqs:
			s.unreserve(r.size)
			r.done <- fmt.Errorf("%w: %s", ErrClosed, s.opts.Path)
		default:
			return
		}
	}
}

// commit writes one group in one transaction and then updates the
// in-memory view, only if the commit succeeded.
func (s *Spool) commit(group []*request) {
	s.mu.Lock()
	bytes, depth := s.bytes, s.depth
	s.mu.Unlock()
	var appended, acked, dropped uint64
	var reserved int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		for _, r := range group {
			for _, seq := range r.acks {
				k := seqKey(seq)
				v := b.Get(k)
				if v == nil {
					continue
				}
				bytes -= int64(len(v)) + recordOverhead
				depth--
				acked++
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			for _, v := range r.msgs {
				seq, err := b.NextSequence()
				if err != nil {
					return err
				}
				if err := b.Put(seqKey(seq), v); err != nil {
					return err
				}
				depth++
				appended++
			}
			bytes += r.size
			reserved += r.size
		}
		if bytes <= s.opts.MaxBytes {
			return nil
		}
		// DropOldest (Block admitted only what fits): make room from
		// the front. A dropped message that is in flight is still
		// delivered; its Ack is then a no-op.
		c := b.Cursor()
		for k, v := c.First(); k != nil && bytes > s.opts.MaxBytes; k, v = c.First() {
			bytes -= int64(len(v)) + recordOverhead
			depth--
			dropped++
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	s.mu.Lock()
	s.reserved -= reserved
	if err == nil {
		s.bytes, s.depth = bytes, depth
		s.stats.Appended += appended
		s.stats.Acked += acked
		s.stats.Dropped += dropped
		if appended > 0 {
			close(s.added)
			s.added = make(chan struct{})
		}
	}
	// Room may have been made by acks, or given back by a failed commit.
	close(s.freed)
	s.freed = make(chan struct{})
	total := s.stats.Dropped
	s.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("spool: write %s: %w", s.opts.Path, err)
		s.log.Error("spool: commit failed", "err", err)
	}
	if dropped > 0 {
		s.log.Warn("spool: full, oldest messages dropped", s.opts.FullKey, string(DropOldest),
			s.opts.MaxBytesKey, s.opts.MaxBytes, "dropped", dropped, "dropped_total", total)
	}
	for _, r := range group {
		r.done <- err
	}
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// recordVersion starts every record, so that a later format can be told
// apart from this one.
const recordVersion = 1

// encode writes m as: version, topic, id, header count, headers (each a
// length-prefixed key and value), then the body verbatim to the end.
func encode(m *transport.Message) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(m.Topic) + len(m.ID) + len(m.Body)
	for k, v := range m.Headers {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, recordVersion)
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	str(m.Topic)
	str(m.ID)
	buf = binary.AppendUvarint(buf, uint64(len(m.Headers)))
	for k, v := range m.Headers {
		str(k)
		str(v)
	}
	return append(buf, m.Body...)
}

var errShort = errors.New("record truncated")

// decode reads a record written by encode, copying everything out of v
// (bbolt's memory is only valid inside the transaction).
func decode(v []byte) (*transport.Message, error) {
	if len(v) == 0 || v[0] != recordVersion {
		return nil, fmt.Errorf("unknown record version")
	}
	p := v[1:]
	str := func() (string, error) {
		n, w := binary.Uvarint(p)
		if w <= 0 || n > uint64(len(p)-w) {
			return "", errShort
		}
		s := string(p[w : w+int(n)])
		p = p[w+int(n):]
		return s, nil
	}
	m := &transport.Message{}
	var err error
	if m.Topic, err = str(); err != nil {
		return nil, err
	}
	if m.ID, err = str(); err != nil {
		return nil, err
	}
	nh, w := binary.Uvarint(p)
	if w <= 0 || nh > uint64(len(p)) {
		return nil, errShort
	}
	p = p[w:]
	if nh > 0 {
		m.Headers = make(map[string]string, nh)
		for range nh {
			k, err := str()
			if err != nil {
				return nil, err
			}
			val, err := str()
			if err != nil {
				return nil, err
			}
			m.Headers[k] = val
		}
	}
	m.Body = append([]byte{}, p...)
	return m, nil
}
