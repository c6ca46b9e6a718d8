package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/gofedmsg/fedmsg/transport"
)

func open(t testing.TB, o Options) *Spool {
	t.Helper()
	if o.Path == "" {
		o.Path = filepath.Join(t.TempDir(), "route.db")
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func msg(i int) *transport.Message {
	return &transport.Message{
		Topic:   "org.fedoraproject.dev.test." + strconv.Itoa(i),
		Body:    []byte(fmt.Sprintf(`{"i": %d, "msg": {"x": 1.0}, "msg_id": "id-%d"}`, i, i)),
		ID:      fmt.Sprintf("id-%d", i),
		Headers: map[string]string{"x-gofedmsg-hops": "1", "k": strconv.Itoa(i)},
	}
}

func readAll(t *testing.T, s *Spool) []Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []Entry
	var after uint64
	for s.Stats().Depth > len(out) {
		es, err := s.Read(ctx, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, es...)
		after = es[len(es)-1].Seq
	}
	return out
}

func sameMessage(t *testing.T, got, want *transport.Message) {
	t.Helper()
	if got.Topic != want.Topic || string(got.Body) != string(want.Body) || got.ID != want.ID || len(got.Headers) != len(want.Headers) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for k, v := range want.Headers {
		if got.Headers[k] != v {
			t.Fatalf("header %q = %q, want %q", k, got.Headers[k], v)
		}
	}
}

// Messages come back in append order, byte for byte, and Ack removes them.
func TestAppendReadAckInOrder(t *testing.T) {
	s := open(t, Options{})
	ctx := context.Background()
	for i := range 10 {
		if err := s.Append(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Append(ctx, msg(10), msg(11), msg(12)); err != nil {
		t.Fatal(err)
	}
	es := readAll(t, s)
	if len(es) != 13 {
		t.Fatalf("read %d entries, want 13", len(es))
	}
	for i, e := range es {
		sameMessage(t, e.Msg, msg(i))
		if i > 0 && e.Seq <= es[i-1].Seq {
			t.Fatalf("seq %d after %d: not increasing", e.Seq, es[i-1].Seq)
		}
	}
	if err := s.Ack(ctx, es[0].Seq, es[1].Seq, es[5].Seq); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Depth != 10 || st.Appended != 13 || st.Acked != 3 {
		t.Fatalf("stats %+v, want depth 10, appended 13, acked 3", st)
	}
	rest := readAll(t, s)
	if rest[0].Seq != es[2].Seq || rest[3].Seq != es[6].Seq {
		t.Fatalf("after acks read seqs %d.., want %d..", rest[0].Seq, es[2].Seq)
	}
	// A message with no headers and an empty body survives too.
	if err := s.Append(ctx, &transport.Message{Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	es = readAll(t, s)
	if last := es[len(es)-1].Msg; last.Topic != "t" || len(last.Body) != 0 || last.Headers != nil {
		t.Fatalf("empty message came back as %+v", last)
	}
}

// Read waits for an Append.
func TestReadWaitsForAppend(t *testing.T) {
	s := open(t, Options{})
	got := make(chan []Entry, 1)
	go func() {
		es, err := s.Read(context.Background(), 0, 10)
		if err != nil {
			t.Error(err)
		}
		got <- es
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.Append(context.Background(), msg(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case es := <-got:
		if len(es) != 1 {
			t.Fatalf("read %d entries, want 1", len(es))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not wake up on Append")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Read(ctx, 1, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with nothing new: %v, want deadline exceeded", err)
	}
}

// What was not acked is there after Close and Open, in order, and new
// appends continue after it.
func TestReopenReturnsUnacked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 20 {
		if err := s.Append(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	es := readAll(t, s)
	if err := s.Ack(ctx, es[0].Seq, es[1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = open(t, Options{Path: path})
	if st := s.Stats(); st.Recovered != 18 || st.Depth != 18 {
		t.Fatalf("after reopen %+v, want 18 recovered", st)
	}
	if err := s.Append(ctx, msg(20)); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s)
	for i, e := range got {
		sameMessage(t, e.Msg, msg(i+2))
	}
	if got[len(got)-1].Seq <= es[len(es)-1].Seq {
		t.Fatal("a sequence number was reused after reopening")
	}
}

// A crash leaves the file as the last commit wrote it: a copy taken while
// the spool is open and never closed holds every appended message.
func TestCrashWithoutCloseKeepsAppended(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Path: filepath.Join(dir, "live.db")})
	ctx := context.Background()
	for i := range 50 {
		if err := s.Append(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "crashed.db")
	if err := os.WriteFile(crashed, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c := open(t, Options{Path: crashed})
	got := readAll(t, c)
	if len(got) != 50 {
		t.Fatalf("recovered %d messages, want 50", len(got))
	}
	for i, e := range got {
		sameMessage(t, e.Msg, msg(i))
	}
}

// Block: a full spool makes Append wait for an Ack, or fail with ErrFull
// when its ctx ends; nothing is dropped.
func TestFullBlockWaitsForAck(t *testing.T) {
	s := open(t, Options{MaxBytes: 2048, Full: Block})
	ctx := context.Background()
	n := 0
	for s.Stats().Bytes+200 < 2048 {
		if err := s.Append(ctx, msg(n)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	big := &transport.Message{Topic: "t", Body: make([]byte, 300)}
	if err := s.Append(short, big); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "spool_max_bytes") {
		t.Fatalf("Append to a full spool: %v, want ErrFull naming spool_max_bytes", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Append(ctx, big) }()
	select {
	case err := <-done:
		t.Fatalf("Append returned (%v) while the spool was full", err)
	case <-time.After(100 * time.Millisecond):
	}
	es := readAll(t, s)
	if err := s.Ack(ctx, es[0].Seq, es[1].Seq); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Append still blocked after an Ack made room")
	}
	if st := s.Stats(); st.Dropped != 0 || st.Bytes > 2048 {
		t.Fatalf("stats %+v: want no drop and bytes within the bound", st)
	}
	if err := s.Append(ctx, &transport.Message{Body: make([]byte, 4096)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a message larger than the spool: %v, want ErrTooLarge", err)
	}
}

// DropOldest: Append never waits; the oldest messages go, counted.
func TestFullDropOldest(t *testing.T) {
	s := open(t, Options{MaxBytes: 4096, Full: DropOldest})
	ctx := context.Background()
	for i := range 100 {
		if err := s.Append(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Bytes > 4096 || st.Dropped == 0 || int(st.Dropped)+st.Depth != 100 {
		t.Fatalf("stats %+v: want bytes <= 4096 and dropped+depth = 100", st)
	}
	es := readAll(t, s)
	for i, e := range es {
		sameMessage(t, e.Msg, msg(int(st.Dropped)+i))
	}
	if es[len(es)-1].Msg.ID != "id-99" {
		t.Fatalf("newest message %s, want id-99 kept", es[len(es)-1].Msg.ID)
	}
}

func TestOptionsNameTheKey(t *testing.T) {
	_, err := Open(Options{Path: filepath.Join(t.TempDir(), "x.db"), MaxBytes: 10, Full: "drop-newest", MaxBytesKey: "bridge.spool_max_bytes"})
	for _, w := range []string{"bridge.spool_max_bytes", "spool_full", "drop-newest"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not name %q", err, w)
		}
	}
	// A file that is not a bbolt database is reported with its name.
	bad := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(bad, []byte(strings.Repeat("not a database", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Path: bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("opening garbage: %v, want an error naming %s", err, bad)
	}
}

// Several goroutines append while another reads and acks: every message
// is read exactly once, each writer's messages in its order.
func TestConcurrentAppendAck(t *testing.T) {
	s := open(t, Options{})
	ctx := context.Background()
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := &transport.Message{Topic: strconv.Itoa(w), ID: strconv.Itoa(i)}
				if err := s.Append(ctx, m); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	next := make([]int, writers)
	var after uint64
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for total := 0; total < writers*each; {
		es, err := s.Read(rctx, after, 50)
		if err != nil {
			t.Fatalf("after %d messages: %v", total, err)
		}
		seqs := make([]uint64, len(es))
		for i, e := range es {
			w, _ := strconv.Atoi(e.Msg.Topic)
			if e.Msg.ID != strconv.Itoa(next[w]) {
				t.Fatalf("writer %d: got message %s, want %d", w, e.Msg.ID, next[w])
			}
			next[w]++
			seqs[i] = e.Seq
		}
		if err := s.Ack(ctx, seqs...); err != nil {
			t.Fatal(err)
		}
		after = es[len(es)-1].Seq
		total += len(es)
	}
	wg.Wait()
	if st := s.Stats(); st.Depth != 0 || st.Bytes != 0 || st.Acked != writers*each {
		t.Fatalf("stats %+v, want empty and all acked", st)
	}
}

// A closed spool refuses work with ErrClosed; Close is bounded and
// idempotent.
func TestClose(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, msg(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := s.Read(ctx, 0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

// childEnv makes the test binary a child that appends in a loop and
// prints the index of each message after its Append returned.
const childEnv = "GOFEDMSG_SPOOL_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		child(path)
		return
	}
	os.Exit(m.Run())
}

func child(path string) {
	s, err := Open(Options{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if err := s.Append(context.Background(), msg(i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(w, i)
		w.Flush()
	}
}

// A process killed with SIGKILL while appending loses nothing it was told
// was appended: every index the child printed is in the file, in order.
func TestKill9KeepsEveryReturnedAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kill.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last := -1
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		last = n
		if last == 300 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	// Lines printed before the kill landed are confirmed appends too.
	rest, _ := io.ReadAll(out)
	for _, l := range strings.Fields(string(rest)) {
		if n, err := strconv.Atoi(l); err == nil {
			last = n
		}
	}
	_ = cmd.Wait()
	if last < 300 {
		t.Fatalf("child stopped at %d before the kill", last)
	}
	s := open(t, Options{Path: path})
	got := readAll(t, s)
	if len(got) < last+1 {
		t.Fatalf("after SIGKILL %d messages in the spool, want at least %d (every Append that returned)", len(got), last+1)
	}
	for i := 0; i <= last; i++ {
		sameMessage(t, got[i].Msg, msg(i))
	}
}

// BenchmarkAppendAck measures a spool in front of a sink: append a
// 609-byte message, read it, ack it. Serial pays one commit per message;
// Batch64 appends 64 at once (a bridge route's burst); Parallel lets the
// group commit join concurrent publishers.
func BenchmarkAppendAck(b *testing.B) {
	body := []byte(strings.Repeat("x", 609))
	m := &transport.Message{Topic: "org.fedoraproject.prod.bench", Body: body, ID: "2026-abc"}
	ctx := context.Background()
	b.Run("Serial", func(b *testing.B) {
		s := open(b, Options{})
		b.SetBytes(int64(len(body)))
		var after uint64
		for b.Loop() {
			if err := s.Append(ctx, m); err != nil {
				b.Fatal(err)
			}
			es, err := s.Read(ctx, after, 1)
			if err != nil {
				b.Fatal(err)
			}
			after = es[0].Seq
			if err := s.Ack(ctx, after); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("Batch64", func(b *testing.B) {
		s := open(b, Options{})
		batch := make([]*transport.Message, 64)
		for i := range batch {
			batch[i] = m
		}
		b.SetBytes(int64(len(body)) * 64)
		var after uint64
		for b.Loop() {
			if err := s.Append(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			es, err := s.Read(ctx, after, 64)
			if err != nil {
				b.Fatal(err)
			}
			seqs := make([]uint64, len(es))
			for i, e := range es {
				seqs[i] = e.Seq
			}
			after = seqs[len(seqs)-1]
			if err := s.Ack(ctx, seqs...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("Parallel", func(b *testing.B) {
		s := open(b, Options{})
		b.SetBytes(int64(len(body)))
		b.SetParallelism(16)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Append(ctx, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
		// Acks of everything, as a sender would, in batches.
		var after uint64
		for s.Stats().Depth > 0 {
			es, err := s.Read(ctx, after, 256)
			if err != nil {
				b.Fatal(err)
			}
			seqs := make([]uint64, len(es))
			for i, e := range es {
				seqs[i] = e.Seq
			}
			after = seqs[len(seqs)-1]
			if err := s.Ack(ctx, seqs...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}

// decode reads what is on disk: whatever the bytes, it returns a message
// or an error, never panics, and what encode wrote comes back the same.
func FuzzDecode(f *testing.F) {
	for i := range 3 {
		f.Add(encode(msg(i)))
	}
	f.Add(encode(&transport.Message{}))
	f.Add([]byte{recordVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{recordVersion, 0, 0, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decode(data)
		if err != nil {
			return
		}
		again, err := decode(encode(m))
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", m, err)
		}
		sameMessage(t, again, m)
	})
}

// A record that cannot be decoded is skipped, counted and removed; the
// messages around it are delivered.
func TestCorruptRecordSkipped(t *testing.T) {
	s := open(t, Options{})
	ctx := context.Background()
	for i := range 3 {
		if err := s.Append(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Spoil the middle record in place, as a disk fault would.
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketName).Put(seqKey(2), []byte{99, 1, 2})
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.Read(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Msg.ID != "id-0" || es[1].Msg.ID != "id-2" {
		t.Fatalf("read %d entries around a corrupt one, want id-0 and id-2", len(es))
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Depth != 2 || s.Stats().Corrupt != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: want the corrupt record counted and removed", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// The collector reports each spool's counts under its label.
func TestCollector(t *testing.T) {
	s := open(t, Options{})
	if err := s.Append(context.Background(), msg(1), msg(2)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(func() map[string]Stats { return map[string]Stats{"bus-to-rabbit": s.Stats()} }))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() != "bus-to-rabbit" {
				t.Errorf("%s labelled %v", f.GetName(), m.GetLabel())
			}
			got[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if got["fedmsg_spool_appended_total"] != 2 || got["fedmsg_spool_messages"] != 2 || got["fedmsg_spool_bytes"] != float64(s.Stats().Bytes) {
		t.Errorf("metrics %v, want 2 appended and held", got)
	}
}
