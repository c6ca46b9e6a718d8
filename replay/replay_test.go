package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// envelope builds a stored-looking envelope; ts is its timestamp.
func envelope(n int, ts int64) map[string]any {
	return map[string]any{
		"topic":     "org.fedoraproject.dev.replaytest.thing",
		"msg":       map[string]any{"n": int64(n)},
		"msg_id":    fmt.Sprintf("2024-id-%d", n),
		"timestamp": ts,
		"i":         int64(n),
		"username":  "tester",
	}
}

func filledStore(t *testing.T, limit, n int) *Store {
	t.Helper()
	s, err := NewStore(limit)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= n; k++ {
		if _, _, err := s.Add(envelope(k, 1000+int64(k)*10), nil); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func listen(t *testing.T, s *Store) *Server {
	t.Helper()
	o := zmq.DefaultOptions()
	srv, err := Listen(s, ServerOptions{Endpoint: "tcp://127.0.0.1:*", Socket: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

func seqIDsOf(t *testing.T, envs []map[string]any) []int64 {
	t.Helper()
	var out []int64
	for _, e := range envs {
		n, ok := e["seq_id"].(message.Number)
		if !ok {
			t.Fatalf("envelope without an integer seq_id: %v", e)
		}
		i, err := n.Int64()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, i)
	}
	return out
}

func TestStoreAssignsSeqIDsFromOne(t *testing.T) {
	s, _ := NewStore(10)
	in := envelope(1, 1000)
	for want := int64(1); want <= 3; want++ {
		out, body, err := s.Add(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if out["seq_id"] != want {
			t.Fatalf("seq_id = %v, want %d", out["seq_id"], want)
		}
		// The body is the canonical JSON of the returned envelope.
		canon, _ := message.Canonical(out)
		if !bytes.Equal(body, canon) {
			t.Fatalf("body is not canonical:\n%s\n%s", body, canon)
		}
		if !bytes.Contains(body, []byte(fmt.Sprintf(`"seq_id":%d`, want))) {
			t.Fatalf("body lacks seq_id %d: %s", want, body)
		}
	}
	if _, ok := in["seq_id"]; ok {
		t.Fatal("Add modified the caller's envelope")
	}
}

func TestStoreKeepsOnlyTheLast(t *testing.T) {
	s := filledStore(t, 3, 5)
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	oldest, newest, ok := s.Bounds()
	if !ok || oldest != 3 || newest != 5 {
		t.Fatalf("Bounds = %d, %d, %v; want 3, 5, true", oldest, newest, ok)
	}
	got := s.Find(Request{SeqIDRange: &Range{1, 100}})
	if len(got) != 3 {
		t.Fatalf("found %d, want 3", len(got))
	}
	for i, b := range got {
		if !bytes.Contains(b, []byte(fmt.Sprintf(`"seq_id":%d`, i+3))) {
			t.Fatalf("result %d is not seq_id %d: %s", i, i+3, b)
		}
	}
	if n := len(s.Find(Request{SeqIDs: []int64{1, 2}})); n != 0 {
		t.Fatalf("evicted envelopes still found: %d", n)
	}
	// Keeps wrapping correctly well past the limit.
	for k := 6; k <= 20; k++ {
		s.Add(envelope(k, 0), nil)
	}
	if oldest, newest, _ := s.Bounds(); oldest != 18 || newest != 20 || s.Len() != 3 {
		t.Fatalf("after 20: Bounds %d..%d Len %d, want 18..20 and 3", oldest, newest, s.Len())
	}
}

func TestStoreRefusesZeroLimit(t *testing.T) {
	if _, err := NewStore(0); !errors.Is(err, ErrBadLimit) {
		t.Fatalf("NewStore(0) = %v, want ErrBadLimit", err)
	}
}

func TestStoreSealSeesSeqIDAndFailureUsesNone(t *testing.T) {
	s, _ := NewStore(10)
	boom := errors.New("boom")
	_, _, err := s.Add(envelope(1, 0), func(env map[string]any) (map[string]any, error) {
		if env["seq_id"] != int64(1) {
			t.Errorf("seal saw seq_id %v, want 1", env["seq_id"])
		}
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	out, body, err := s.Add(envelope(2, 0), func(env map[string]any) (map[string]any, error) {
		env["signature"] = fmt.Sprint("sig-of-", env["seq_id"])
		return env, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out["seq_id"] != int64(1) || s.Len() != 1 {
		t.Fatalf("a failed seal used up a seq_id: got %v, Len %d", out["seq_id"], s.Len())
	}
	// What is stored (and replayed) is the sealed envelope.
	if !bytes.Contains(body, []byte(`"signature":"sig-of-1"`)) || !bytes.Equal(s.Find(Request{SeqIDs: []int64{1}})[0], body) {
		t.Fatalf("stored body is not the sealed envelope: %s", body)
	}
}

func ptr[T any](v T) *T { return &v }

// TestQueryForms: every key of the query object against a real REP server.
// Envelope k has seq_id k, msg_id 2024-id-k and timestamp 1000+10k.
func TestQueryForms(t *testing.T) {
	s := filledStore(t, 100, 6)
	srv := listen(t, s)
	cases := []struct {
		name string
		q    Request
		want []int64
	}{
		{"seq_id", Request{SeqID: ptr[int64](4)}, []int64{4}},
		{"seq_ids", Request{SeqIDs: []int64{5, 2, 99}}, []int64{2, 5}},
		{"seq_id_range inclusive", Request{SeqIDRange: &Range{2, 4}}, []int64{2, 3, 4}},
		{"seq_id_range one", Request{SeqIDRange: &Range{6, 6}}, []int64{6}},
		{"msg_id", Request{MsgID: ptr("2024-id-3")}, []int64{3}},
		{"msg_ids", Request{MsgIDs: []string{"2024-id-1", "nope", "2024-id-6"}}, []int64{1, 6}},
		{"time inclusive", Request{Time: &TimeRange{1020, 1040}}, []int64{2, 3, 4}},
		{"time fractional", Request{Time: &TimeRange{1029.5, 1030.5}}, []int64{3}},
		{"OR of keys", Request{SeqID: ptr[int64](1), MsgID: ptr("2024-id-6"), Time: &TimeRange{1030, 1030}}, []int64{1, 3, 6}},
		{"overlapping keys once", Request{SeqID: ptr[int64](2), SeqIDs: []int64{2}, SeqIDRange: &Range{1, 2}}, []int64{1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			envs, err := Query(ctx, srv.Addr(), c.q)
			if err != nil {
				t.Fatal(err)
			}
			got := seqIDsOf(t, envs)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("seq_ids = %v, want %v", got, c.want)
			}
			for _, e := range envs {
				n, _ := e["seq_id"].(message.Number).Int64()
				if e["msg_id"] != fmt.Sprintf("2024-id-%d", n) {
					t.Fatalf("envelope seq_id %d has msg_id %v", n, e["msg_id"])
				}
			}
		})
	}
}

// TestReplyFramesAreStoredBytes: each reply frame is exactly the canonical
// JSON that was stored (and so sent by the publisher), seq_id included.
func TestReplyFramesAreStoredBytes(t *testing.T) {
	s, _ := NewStore(10)
	var sent [][]byte
	for k := 1; k <= 3; k++ {
		_, body, _ := s.Add(envelope(k, 5), nil)
		sent = append(sent, body)
	}
	srv := listen(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	frames, err := Exchange(ctx, srv.Addr(), [][]byte{[]byte(`{"seq_id_range":[1,3]}`)}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 3 {
		t.Fatalf("%d frames, want 3", len(frames))
	}
	for i := range frames {
		if !bytes.Equal(frames[i], sent[i]) {
			t.Fatalf("frame %d:\n got %s\nwant %s", i, frames[i], sent[i])
		}
	}
}

// TestMalformedQueries: each gets one error frame with the expected text,
// and the server goes on answering.
func TestMalformedQueries(t *testing.T) {
	s := filledStore(t, 100, 3)
	srv := listen(t, s)
	huge := "[" + strings.Repeat("1,", MaxListLen) + "1]"
	cases := []struct {
		name    string
		request [][]byte
		want    string
	}{
		{"not JSON", [][]byte{[]byte("seq_id=1")}, "The query is not a JSON object"},
		{"empty frame", [][]byte{{}}, "The query is not a JSON object"},
		{"invalid UTF-8", [][]byte{[]byte("{\"seq_id\xff\":1}")}, "The query is not a JSON object"},
		{"a list", [][]byte{[]byte("[1,2]")}, "The query is not a JSON object"},
		{"a string", [][]byte{[]byte(`"seq_id"`)}, "The query is not a JSON object"},
		{"empty object", [][]byte{[]byte("{}")}, "The query is empty"},
		{"two frames", [][]byte{[]byte(`{"seq_id":1}`), []byte(`{"seq_id":2}`)}, "The query must be one frame, got 2"},
		{"unknown key", [][]byte{[]byte(`{"seq":1}`)}, `Unsupported field: "seq"`},
		{"unknown beside known", [][]byte{[]byte(`{"seq_id":1,"zzz":2}`)}, `Unsupported field: "zzz"`},
		{"seq_id string", [][]byte{[]byte(`{"seq_id":"1"}`)}, `Ill-format "seq_id" field`},
		{"seq_id float", [][]byte{[]byte(`{"seq_id":1.0}`)}, `Ill-format "seq_id" field`},
		{"seq_id bool", [][]byte{[]byte(`{"seq_id":true}`)}, `Ill-format "seq_id" field`},
		{"seq_id too big", [][]byte{[]byte(`{"seq_id":99999999999999999999}`)}, `Ill-format "seq_id" field`},
		{"seq_ids not a list", [][]byte{[]byte(`{"seq_ids":3}`)}, `Ill-format "seq_ids" field`},
		{"seq_ids with a string", [][]byte{[]byte(`{"seq_ids":[1,"2"]}`)}, `Ill-format "seq_ids" field`},
		{"seq_ids huge", [][]byte{[]byte(`{"seq_ids":` + huge + `}`)}, fmt.Sprintf(`Too many values in the field "seq_ids" (at most %d)`, MaxListLen)},
		{"msg_ids huge", [][]byte{[]byte(`{"msg_ids":` + strings.ReplaceAll(huge, "1", `"a"`) + `}`)}, fmt.Sprintf(`Too many values in the field "msg_ids" (at most %d)`, MaxListLen)},
		{"range reversed", [][]byte{[]byte(`{"seq_id_range":[3,1]}`)}, `Ill-format "seq_id_range" field`},
		{"range one value", [][]byte{[]byte(`{"seq_id_range":[1]}`)}, `Ill-format "seq_id_range" field`},
		{"range three values", [][]byte{[]byte(`{"seq_id_range":[1,2,3]}`)}, `Ill-format "seq_id_range" field`},
		{"range of strings", [][]byte{[]byte(`{"seq_id_range":["1","2"]}`)}, `Ill-format "seq_id_range" field`},
		{"range an object", [][]byte{[]byte(`{"seq_id_range":{"from":1}}`)}, `Ill-format "seq_id_range" field`},
		{"msg_id number", [][]byte{[]byte(`{"msg_id":5}`)}, `Ill-format "msg_id" field`},
		{"msg_ids with null", [][]byte{[]byte(`{"msg_ids":["a",null]}`)}, `Ill-format "msg_ids" field`},
		{"time reversed", [][]byte{[]byte(`{"time":[2000,1000]}`)}, `Ill-format "time" field`},
		{"time one value", [][]byte{[]byte(`{"time":[1000]}`)}, `Ill-format "time" field`},
		{"time infinite", [][]byte{[]byte(`{"time":[0,Infinity]}`)}, `Ill-format "time" field`},
		{"time NaN", [][]byte{[]byte(`{"time":[NaN,1]}`)}, `Ill-format "time" field`},
		{"time strings", [][]byte{[]byte(`{"time":["0","1"]}`)}, `Ill-format "time" field`},
		{"no match", [][]byte{[]byte(`{"seq_id":42}`)}, "There was no match for the given query"},
		{"empty list matches nothing", [][]byte{[]byte(`{"seq_ids":[]}`)}, "There was no match for the given query"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			frames, err := Exchange(ctx, srv.Addr(), c.request, ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := "error: '" + c.want + "'"
			if len(frames) != 1 || string(frames[0]) != want {
				t.Fatalf("reply %q, want one frame %q", frames, want)
			}
			// Still serving, and still right.
			envs, err := Query(ctx, srv.Addr(), Request{SeqID: ptr[int64](2)})
			if err != nil || len(envs) != 1 {
				t.Fatalf("after %s: %v, %v", c.name, envs, err)
			}
		})
	}
}

func TestOversizedQueryIsRefused(t *testing.T) {
	s := filledStore(t, 10, 1)
	o := zmq.DefaultOptions()
	o.MaxMsgSize = 64
	srv, err := Listen(s, ServerOptions{Endpoint: "tcp://127.0.0.1:*", Socket: o})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	big := `{"msg_id":"` + strings.Repeat("x", 100) + `"}`
	frames, err := Exchange(ctx, srv.Addr(), [][]byte{[]byte(big)}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "error: 'The query is larger than 64 bytes'"; len(frames) != 1 || string(frames[0]) != want {
		t.Fatalf("reply %q, want %q", frames, want)
	}
}

func TestClientErrors(t *testing.T) {
	s := filledStore(t, 10, 2)
	srv := listen(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err := Query(ctx, srv.Addr(), Request{SeqID: ptr[int64](7)})
	var se *ServerError
	if !errors.As(err, &se) || se.Text != "There was no match for the given query" {
		t.Fatalf("err = %v, want the server's no-match text", err)
	}
	if !errors.Is(err, ErrNoMatch) || !errors.Is(err, ErrRefused) {
		t.Fatalf("no-match error %v does not match ErrNoMatch and ErrRefused", err)
	}

	// The client refuses to send what the server would refuse anyway.
	if _, err := Query(ctx, srv.Addr(), Request{}); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("empty query: %v, want ErrBadQuery", err)
	}
	if _, err := Query(ctx, srv.Addr(), Request{SeqIDRange: &Range{5, 1}}); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("reversed range: %v, want ErrBadQuery", err)
	}
}

func TestClientRefusesNonJSONFrames(t *testing.T) {
	if _, err := decodeReply([][]byte{[]byte(`{"a":1}`), []byte("oops")}); !errors.Is(err, ErrBadReply) {
		t.Fatalf("err = %v, want ErrBadReply", err)
	}
	// A frame that merely starts like an error but is one of several is
	// not an error reply.
	if _, err := decodeReply([][]byte{[]byte("error: 'x'"), []byte(`{}`)}); !errors.Is(err, ErrBadReply) {
		t.Fatalf("err = %v, want ErrBadReply", err)
	}
}

func TestQueryTimesOut(t *testing.T) {
	// A bound REP that never answers: a server stuck, or a wrong port.
	s, _ := NewStore(1)
	srv := listen(t, s)
	addr := srv.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Close(ctx)
	cancel()

	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Query(ctx, addr, Request{SeqID: ptr[int64](1)})
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout wrapping the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timed out after %v, the deadline was 300ms", d)
	}
}

func TestListenBusyPort(t *testing.T) {
	s, _ := NewStore(1)
	srv := listen(t, s)
	if _, err := Listen(s, ServerOptions{Endpoint: srv.Addr(), Socket: zmq.DefaultOptions()}); !errors.Is(err, ErrBind) {
		t.Fatalf("second Listen on %s: %v, want ErrBind", srv.Addr(), err)
	}
}

func TestCloseIsBoundedAndIdempotent(t *testing.T) {
	s, _ := NewStore(1)
	srv, err := Listen(s, ServerOptions{Endpoint: "tcp://127.0.0.1:*", Socket: zmq.DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
}

// TestConcurrentClients: REP serves one request at a time; many REQ
// clients at once each get their own answer.
func TestConcurrentClients(t *testing.T) {
	s := filledStore(t, 100, 20)
	srv := listen(t, s)
	errs := make(chan error, 20)
	for k := 1; k <= 20; k++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			envs, err := Query(ctx, srv.Addr(), Request{SeqID: ptr(int64(k))})
			if err == nil && (len(envs) != 1 || envs[0]["msg_id"] != fmt.Sprintf("2024-id-%d", k)) {
				err = fmt.Errorf("query %d got %v", k, envs)
			}
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
