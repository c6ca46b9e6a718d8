package datagrepper_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/datagrepper"
	"github.com/gofedmsg/fedmsg/datagrepper/datagreppertest"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/signing"
)

func validator(t *testing.T) *signing.Validator {
	t.Helper()
	dir := sharedtest.Dir(t, "fedmsg-x509")
	crl := filepath.Join(dir, "crl.pem")
	v, err := signing.NewValidator(signing.Options{CACertLocation: filepath.Join(dir, "ca.crt"), CRLLocation: &crl})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func recorded(t *testing.T) []map[string]any {
	t.Helper()
	msgs, err := datagreppertest.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// A datagrepper copy of a real signed envelope does not validate; fixed,
// it validates and is byte for byte the envelope the publisher sent.
func TestFixMessageRestoresSignedEnvelopes(t *testing.T) {
	v := validator(t)
	ctx := context.Background()
	originals := map[string][]byte{}
	for _, f := range validVectors(t) {
		data := sharedtest.Read(t, "fedmsg-x509", f)
		originals[message.MsgID(data)] = data
	}
	msgs := recorded(t)
	if len(msgs) != len(originals) {
		t.Fatalf("recorded archive has %d messages, the shared vectors %d", len(msgs), len(originals))
	}
	for _, m := range msgs {
		id, _ := m["msg_id"].(string)
		if err := v.Validate(ctx, m); err == nil {
			t.Errorf("%s: the unfixed datagrepper copy validated", id)
		}
		fixed := datagrepper.FixMessage(m)
		if err := v.Validate(ctx, fixed); err != nil {
			t.Errorf("%s: the fixed copy does not validate: %v", id, err)
		}
		got, err := message.Canonical(fixed)
		if err != nil {
			t.Fatal(err)
		}
		if want := originals[id]; !bytes.Equal(got, want) {
			t.Errorf("%s: fixed copy differs from the published envelope:\n got %s\nwant %s", id, got, want)
		}
		if _, ok := m["source_name"]; !ok {
			t.Errorf("%s: FixMessage changed its argument", id)
		}
	}
}

// t03-timestamp-float is a published vector with its timestamp made a float: it fails as
// is (real fedmsg said so), and passes once a datagrepper copy of it is
// fixed, since fix_datagrepper_message turns the float back into an int.
func TestFixMessageOnTimestampFloatVector(t *testing.T) {
	v := validator(t)
	ctx := context.Background()
	env, err := message.DecodeObject(sharedtest.Read(t, "fedmsg-x509", "signed", "t03-timestamp-float.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ts, _ := env["timestamp"].(message.Number); !ts.IsFloat() {
		t.Fatalf("t03's timestamp %v is not a float; the vector changed", env["timestamp"])
	}
	if err := v.Validate(ctx, env); err == nil {
		t.Fatal("t03 validated as is; real fedmsg rejected it")
	}
	// No source_* keys: not a datagrepper copy, left alone.
	if err := v.Validate(ctx, datagrepper.FixMessage(env)); err == nil {
		t.Error("FixMessage fixed a message without source_name/source_version")
	}
	env["source_name"], env["source_version"], env["headers"] = "datanommer", "1.0.3", nil
	if err := v.Validate(ctx, datagrepper.FixMessage(env)); err != nil {
		t.Errorf("the fixed datagrepper copy of t03 does not validate: %v", err)
	}
}

func TestFixMessageRules(t *testing.T) {
	decode := func(s string) map[string]any {
		m, err := message.DecodeObject([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, c := range []struct{ name, in, want string }{
		{"only source_name", `{"source_name":"datanommer","timestamp":1.5,"headers":{}}`, `{"headers":{},"source_name":"datanommer","timestamp":1.5}`},
		{"only source_version", `{"source_version":"1","timestamp":1.5}`, `{"source_version":"1","timestamp":1.5}`},
		{"empty headers", `{"source_name":"d","source_version":"1","headers":{},"timestamp":12.9}`, `{"timestamp":12}`},
		{"null headers", `{"source_name":"d","source_version":"1","headers":null,"timestamp":12.0}`, `{"timestamp":12}`},
		{"headers kept", `{"source_name":"d","source_version":"1","headers":{"a":"b"},"timestamp":12}`, `{"headers":{"a":"b"},"timestamp":12}`},
		{"no headers key", `{"source_name":"d","source_version":"1","timestamp":1e9}`, `{"timestamp":1000000000}`},
		{"negative float truncates to zero", `{"source_name":"d","source_version":"1","timestamp":-0.5}`, `{"timestamp":0}`},
		{"no timestamp", `{"source_name":"d","source_version":"1","msg":{"x":1.0}}`, `{"msg":{"x":1.0}}`},
		{"string timestamp kept", `{"source_name":"d","source_version":"1","timestamp":"1.5"}`, `{"timestamp":"1.5"}`},
		{"other numbers untouched", `{"source_name":"d","source_version":"1","timestamp":3.0,"msg":{"f":2.50,"e":1E5}}`, `{"msg":{"e":100000.0,"f":2.5},"timestamp":3}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := message.Canonical(datagrepper.FixMessage(decode(c.in)))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("FixMessage(%s) = %s, want %s", c.in, got, c.want)
			}
		})
	}
}

func client(t *testing.T, url string) *datagrepper.Client {
	t.Helper()
	c, err := datagrepper.New(url, datagrepper.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Raw asks exactly what fedmsg asks (spec §8.4) and reads pages and
// raw_messages from the reply.
func TestRawSendsFedmsgsQuery(t *testing.T) {
	srv := datagreppertest.NewServer(recorded(t))
	defer srv.Close()
	// A hub's datagrepper_url points at /raw; both forms reach the same place.
	for _, u := range []string{srv.URL, srv.URL + "/", srv.URL + "/raw", srv.URL + "/raw/"} {
		p, err := client(t, u).Raw(context.Background(), datagrepper.Query{Start: 1795604908, End: 1795700000, Page: 1})
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if p.Pages != 1 || len(p.Messages) != 6 {
			t.Errorf("%s: pages %d, %d messages; want 1 page of the 6 messages at or after 1795604908", u, p.Pages, len(p.Messages))
		}
	}
	reqs := srv.Requests()
	last := reqs[len(reqs)-1]
	if last.Path != "/raw" {
		t.Errorf("path %q, want /raw", last.Path)
	}
	want := map[string]string{"rows_per_page": "100", "page": "1", "start": "1795604908", "end": "1795700000", "order": "asc"}
	q := last.Query()
	if len(q) != len(want) {
		t.Errorf("query %s has other parameters than %v", last.RawQuery, want)
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q (query %s)", k, q.Get(k), v, last.RawQuery)
		}
	}
}

func synthetic(n int, from int64) []map[string]any {
	var out []map[string]any
	for i := range n {
		out = append(out, map[string]any{
			"msg_id":         fmt.Sprintf("2026-%08d", i),
			"topic":          "org.fedoraproject.dev.test.n",
			"msg":            map[string]any{"n": message.Number(strconv.Itoa(i))},
			"timestamp":      message.Number(strconv.FormatInt(from+int64(i), 10) + ".0"),
			"source_name":    "datanommer",
			"source_version": "1",
			"headers":        nil,
		})
	}
	return out
}

// Walk goes through every page in order, inside [start, end].
func TestWalkEveryPageInOrder(t *testing.T) {
	srv := datagreppertest.NewServer(synthetic(260, 1000))
	defer srv.Close()
	var got []string
	err := client(t, srv.URL).Walk(context.Background(), 1010, 1245, func(env map[string]any) error {
		got = append(got, env["msg_id"].(string))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 236 {
		t.Fatalf("walked %d messages, want 236 (timestamps 1010..1245)", len(got))
	}
	for i, id := range got {
		if want := fmt.Sprintf("2026-%08d", i+10); id != want {
			t.Fatalf("message %d is %s, want %s", i, id, want)
		}
	}
	var pages []string
	for _, r := range srv.Requests() {
		pages = append(pages, r.Query().Get("page"))
	}
	if strings.Join(pages, ",") != "1,2,3" {
		t.Errorf("pages requested %v, want 1,2,3", pages)
	}
	// The callback's error stops the walk and comes back.
	stop := errors.New("stop")
	n := 0
	err = client(t, srv.URL).Walk(context.Background(), 0, 5000, func(map[string]any) error {
		if n++; n == 150 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 150 {
		t.Errorf("walk with a failing callback: err %v after %d messages", err, n)
	}
}

func TestByID(t *testing.T) {
	msgs := recorded(t)
	srv := datagreppertest.NewServer(msgs)
	defer srv.Close()
	c := client(t, srv.URL)
	id := msgs[3]["msg_id"].(string)
	got, err := c.ByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := message.Canonical(got)
	b, _ := message.Canonical(msgs[3])
	if !bytes.Equal(a, b) {
		t.Errorf("ByID(%s) = %s, want %s", id, a, b)
	}
	if r := srv.Requests()[0]; r.Path != "/id" || r.Query().Get("id") != id {
		t.Errorf("requested %s, want /id?id=%s", r, id)
	}
	_, err = c.ByID(context.Background(), "2026-nope")
	var se *datagrepper.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound || !errors.Is(err, datagrepper.ErrStatus) {
		t.Fatalf("missing id: err %v, want a 404 StatusError", err)
	}
	if !strings.Contains(err.Error(), srv.URL+"/id?id=2026-nope") || !strings.Contains(err.Error(), "404") {
		t.Errorf("error %q does not name the URL and the status", err)
	}
}

func TestClientErrors(t *testing.T) {
	srv := datagreppertest.NewServer(recorded(t))
	defer srv.Close()
	c := client(t, srv.URL)
	ctx := context.Background()

	srv.FailNext(1)
	_, err := c.Raw(ctx, datagrepper.Query{End: 2e9})
	if !errors.Is(err, datagrepper.ErrStatus) || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), srv.URL+"/raw?") {
		t.Errorf("503: err %v", err)
	}

	for name, body := range map[string]string{
		"not json":          "<html>",
		"no pages":          `{"raw_messages": []}`,
		"no raw_messages":   `{"pages": 1}`,
		"message not a map": `{"pages": 1, "raw_messages": [1]}`,
		"negative pages":    `{"pages": -1, "raw_messages": []}`,
	} {
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(body)) }))
		_, err := client(t, bad.URL).Raw(ctx, datagrepper.Query{})
		bad.Close()
		if !errors.Is(err, datagrepper.ErrBadReply) {
			t.Errorf("%s: err %v, want ErrBadReply", name, err)
		}
	}

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	sc, _ := datagrepper.New(slow.URL, datagrepper.Options{Timeout: 100 * time.Millisecond})
	start := time.Now()
	if _, err := sc.ByID(ctx, "x"); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("slow server: err %v after %v, want a timeout after 100ms", err, time.Since(start))
	}

	for _, u := range []string{"", "apps.fedoraproject.org/datagrepper", "ftp://x/y", "http://", "http://x/raw?rows_per_page=1"} {
		if _, err := datagrepper.New(u, datagrepper.Options{}); !errors.Is(err, datagrepper.ErrBadURL) {
			t.Errorf("New(%q): err %v, want ErrBadURL", u, err)
		}
	}
}

// The test datagrepper honours order and pagination like datagrepper.
func TestServerOrderAndPages(t *testing.T) {
	srv := datagreppertest.NewServer(synthetic(5, 100))
	defer srv.Close()
	get := func(q string) map[string]any {
		resp, err := http.Get(srv.URL + "/raw?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		m, err := message.DecodeObject(buf.Bytes())
		if err != nil {
			t.Fatalf("%s: %v: %s", q, err, buf.String())
		}
		return m
	}
	ids := func(m map[string]any) string {
		var out []string
		for _, x := range m["raw_messages"].([]any) {
			out = append(out, strings.TrimPrefix(x.(map[string]any)["msg_id"].(string), "2026-0000000"))
		}
		return strings.Join(out, ",")
	}
	if got := ids(get("order=desc&rows_per_page=2&page=1")); got != "4,3" {
		t.Errorf("desc page 1: %s, want 4,3", got)
	}
	m := get("order=asc&rows_per_page=2&page=3&start=100&end=104")
	if got := ids(m); got != "4" || m["pages"] != message.Number("3") {
		t.Errorf("asc page 3: %s of %v pages, want 4 of 3", got, m["pages"])
	}
	if got := ids(get("order=asc&start=101&end=102")); got != "1,2" {
		t.Errorf("start/end: %s, want 1,2", got)
	}
}
