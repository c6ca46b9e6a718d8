package consumer

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/datagrepper"
	"github.com/gofedmsg/fedmsg/datagrepper/datagreppertest"
	"github.com/gofedmsg/fedmsg/message"
)

// archived returns the recorded datagrepper archive (real signed vectors
// v01..v07 as datagrepper stores them) and, for each, the envelope the
// publisher sent (the fixed copy, byte for byte the vector file).
func archived(t *testing.T) (stored []map[string]any, sent [][]byte) {
	t.Helper()
	stored, err := datagreppertest.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range stored {
		b, err := message.Canonical(datagrepper.FixMessage(m))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, b)
	}
	return stored, sent
}

func dgClient(t *testing.T, url string) *datagrepper.Client {
	t.Helper()
	c, err := datagrepper.New(url, datagrepper.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitBacklog waits until the consumer's backlog is fetched and handled.
func waitBacklog(t *testing.T, h *Hub) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.runners[0].status.inBacklog() {
		if time.Now().After(deadline) {
			t.Fatal("the backlog did not finish within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRequests waits until srv has answered n requests.
func waitRequests(t *testing.T, srv *datagreppertest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(srv.Requests()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("datagrepper got %d requests, want %d", len(srv.Requests()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(msgs []*Message) []string {
	var out []string
	for _, m := range msgs {
		id, _ := m.Envelope["msg_id"].(string)
		out = append(out, id)
	}
	return out
}

// A hub handles v01..v03 live and stops; datagrepper has v01..v07 (v02 to
// v07 share one second). The restart delivers v04..v07, validated, in
// order, once, byte for byte as published; a second restart delivers
// nothing (fedmsg's own rule, skip only the last msg_id, would repeat v02).
func TestBacklogResumesExactlyOnce(t *testing.T) {
	stored, sent := archived(t)
	v, _ := vectors(t)
	srv := datagreppertest.NewServer(stored)
	defer srv.Close()
	dir := t.TempDir()
	hub := func(col *collector) *Hub {
		h, err := New([]Consumer{{Name: "archive", Handler: col.handle}},
			Options{ValidateSignatures: true, Validator: v, StatusDirectory: dir, Archive: dgClient(t, srv.URL)})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	live := newCollector()
	f := newFake()
	stop := runHub(t, hub(live), f)
	for i, b := range sent[:3] {
		f.push(t, strconv.Itoa(i), topicOf(t, b), b)
		if s := f.next(t); !s.ack {
			t.Fatalf("live message %d not acked: %v", i, s.cause)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("no status file yet, but datagrepper was asked %d times", n)
	}
	if len(live.msgs) != 3 {
		t.Fatalf("live run handled %d messages, want 3", len(live.msgs))
	}

	before := time.Now().Unix()
	missed := newCollector()
	h := hub(missed)
	stop = runHub(t, h, newFake())
	for i := 3; i < len(sent); i++ {
		select {
		case m := <-missed.got:
			if !bytes.Equal(m.Body, sent[i]) || !m.Validated || m.Source != BacklogSource || m.Topic != topicOf(t, sent[i]) {
				t.Errorf("backlog message %d: validated %v source %q topic %q body\n%s\nwant\n%s", i, m.Validated, m.Source, m.Topic, m.Body, sent[i])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("backlog message %d never came; got %v", i, ids(missed.msgs))
		}
	}
	waitBacklog(t, h)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(missed.msgs) != len(sent)-3 {
		t.Errorf("restart handled %v, want only the 4 missed", ids(missed.msgs))
	}
	q := srv.Requests()[0].Query()
	if q.Get("start") != "1795604908" || q.Get("order") != "asc" || q.Get("rows_per_page") != "100" || q.Get("page") != "1" {
		t.Errorf("backlog query %s: want start=1795604908 (v03's timestamp) order=asc rows_per_page=100 page=1", srv.Requests()[0].RawQuery)
	}
	if end, _ := strconv.ParseInt(q.Get("end"), 10, 64); end < before || end > time.Now().Unix() {
		t.Errorf("end=%s is not the restart time", q.Get("end"))
	}

	again := newCollector()
	h = hub(again)
	n := len(srv.Requests())
	stop = runHub(t, h, newFake())
	waitRequests(t, srv, n+1)
	waitBacklog(t, h)
	time.Sleep(50 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(again.msgs) != 0 {
		t.Errorf("second restart handled %v again", ids(again.msgs))
	}
	if q := srv.Requests()[n].Query(); q.Get("start") != "1795604908" {
		t.Errorf("second restart asked from %s, want 1795604908 (v07's timestamp)", q.Get("start"))
	}
}

// syncBuf is a log sink tests can read while the hub writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// primeStatus runs a hub without an archive over bodies, leaving a status
// file for consumer "c" in dir.
func primeStatus(t *testing.T, dir string, bodies ...[]byte) {
	t.Helper()
	h, err := New([]Consumer{{Name: "c", Handler: newCollector().handle}}, Options{StatusDirectory: dir})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	stop := runHub(t, h, f)
	for i, b := range bodies {
		f.push(t, strconv.Itoa(i), topicOf(t, b), b)
		f.next(t)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// While datagrepper fails, the hub logs, retries with backoff and keeps
// handling live traffic; once datagrepper answers, the backlog comes.
func TestBacklogRetriesAFailingDatagrepper(t *testing.T) {
	stored, sent := archived(t)
	srv := datagreppertest.NewServer(stored)
	defer srv.Close()
	dir := t.TempDir()
	primeStatus(t, dir, stamped("org.fedoraproject.dev.x", "2026-prime", 1795604000))

	srv.FailNext(3)
	logs := &syncBuf{}
	col := newCollector()
	h, err := New([]Consumer{{Name: "c", Handler: col.handle}}, Options{StatusDirectory: dir, Archive: dgClient(t, srv.URL),
		BacklogRetry: 20 * time.Millisecond, BacklogMaxRetry: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	stop := runHub(t, h, f)
	liveBody := stamped("org.fedoraproject.dev.live", "2026-live", time.Now().Unix())
	f.push(t, "live", "org.fedoraproject.dev.live", liveBody)
	if s := f.next(t); !s.ack {
		t.Fatalf("live message not handled while datagrepper fails: %v", s.cause)
	}
	waitBacklog(t, h)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var backlog []string
	for _, m := range col.msgs {
		if m.Source == BacklogSource {
			backlog = append(backlog, string(m.Body))
		}
	}
	if len(backlog) != len(sent) {
		t.Fatalf("after the failures the backlog brought %d messages, want %d", len(backlog), len(sent))
	}
	for i := range sent {
		if backlog[i] != string(sent[i]) {
			t.Errorf("backlog message %d is %s, want %s", i, backlog[i], sent[i])
		}
	}
	if got := strings.Count(logs.String(), "fetching the backlog failed; retrying"); got != 3 {
		t.Errorf("logged %d retries, want 3:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "503") {
		t.Errorf("the retry log does not say what failed:\n%s", logs.String())
	}
}

// The backlog keeps only the consumer's topics; skip_last_message also
// drops the first message fetched.
func TestBacklogTopicsAndSkipLastMessage(t *testing.T) {
	stored, _ := archived(t)
	srv := datagreppertest.NewServer(stored)
	defer srv.Close()
	for _, c := range []struct {
		skipLast bool
		want     string
	}{
		{false, "2026-81559e8c-2f27-4dc2-b107-020387b56416,2026-a1ba976d-5d97-475a-b240-99578612c8d0,2026-33d5d033-9a12-42cf-b872-7cc324d7979e"},
		{true, "2026-a1ba976d-5d97-475a-b240-99578612c8d0,2026-33d5d033-9a12-42cf-b872-7cc324d7979e"},
	} {
		dir := t.TempDir()
		// The last message handled is not in the archive but has v01's second.
		primeStatus(t, dir, stamped("org.fedoraproject.dev.logger.log", "2026-elsewhere", 1795604907))
		col := newCollector()
		h, err := New([]Consumer{{Name: "c", Topics: []string{"org.fedoraproject.dev.logger."}, Handler: col.handle}},
			Options{StatusDirectory: dir, Archive: dgClient(t, srv.URL), SkipLastMessage: c.skipLast})
		if err != nil {
			t.Fatal(err)
		}
		n := len(srv.Requests())
		stop := runHub(t, h, newFake())
		waitRequests(t, srv, n+1)
		waitBacklog(t, h)
		stop()
		if got := strings.Join(ids(col.msgs), ","); got != c.want {
			t.Errorf("skip_last_message %v: got %s, want the logger messages %s", c.skipLast, got, c.want)
		}
	}
}

// archiveFunc is an Archive made of a function.
type archiveFunc func(ctx context.Context, start, end int64, fn func(map[string]any) error) error

func (a archiveFunc) Walk(ctx context.Context, start, end int64, fn func(map[string]any) error) error {
	return a(ctx, start, end, fn)
}

// A live message handled while the backlog is still coming does not move
// the restart point past the backlog messages not handled yet: a hub
// stopped then resumes at the backlog's position, skipping what it did.
func TestLiveTrafficDuringBacklogKeepsTheRestartPoint(t *testing.T) {
	dir := t.TempDir()
	primeStatus(t, dir, stamped("org.x.a", "2026-first", 900))
	first := make(chan struct{})
	arch := archiveFunc(func(ctx context.Context, start, end int64, fn func(map[string]any) error) error {
		if start != 900 {
			t.Errorf("backlog starts at %d, want 900", start)
		}
		env, _ := message.DecodeObject(stamped("org.x.a", "2026-backlog", 1000))
		if err := fn(env); err != nil {
			return err
		}
		close(first)
		<-ctx.Done() // the rest of the archive never comes
		return ctx.Err()
	})
	col := newCollector()
	h, err := New([]Consumer{{Name: "c", Handler: col.handle}}, Options{StatusDirectory: dir, Archive: arch})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	stop := runHub(t, h, f)
	<-first
	<-col.got
	f.push(t, "live", "org.x.a", stamped("org.x.a", "2026-live", 5000))
	f.next(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	doc := readStatus(t, statusPath(dir, "c"))
	checkStatus(t, doc, "org.x.a", stamped("org.x.a", "2026-live", 5000), StatusPost)
	resume, _ := doc["resume"].(map[string]any)
	if resume["timestamp"] != message.Number("1000") {
		t.Errorf("resume timestamp %v, want 1000 (the backlog's position, not the live message's 5000)", resume["timestamp"])
	}
	got := map[string]bool{}
	for _, id := range resume["msg_ids"].([]any) {
		got[id.(string)] = true
	}
	if !got["2026-backlog"] || !got["2026-live"] || got["2026-first"] {
		t.Errorf("resume msg_ids %v, want 2026-backlog and 2026-live (handled at or after 1000) only", resume["msg_ids"])
	}

	// The next start asks from 1000 and skips both.
	var start int64
	arch2 := archiveFunc(func(ctx context.Context, s, end int64, fn func(map[string]any) error) error {
		start = s
		for _, b := range [][]byte{stamped("org.x.a", "2026-backlog", 1000), stamped("org.x.a", "2026-next", 1001), stamped("org.x.a", "2026-live", 5000)} {
			env, _ := message.DecodeObject(b)
			if err := fn(env); err != nil {
				return err
			}
		}
		return nil
	})
	col2 := newCollector()
	h2, _ := New([]Consumer{{Name: "c", Handler: col2.handle}}, Options{StatusDirectory: dir, Archive: arch2})
	stop = runHub(t, h2, newFake())
	<-col2.got
	waitBacklog(t, h2)
	stop()
	if start != 1000 || strings.Join(ids(col2.msgs), ",") != "2026-next" {
		t.Errorf("restart from %d delivered %v, want from 1000 only 2026-next", start, ids(col2.msgs))
	}
}
