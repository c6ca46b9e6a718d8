package datagrepper

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/gofedmsg/fedmsg/message"
)

// replyWith is an http.RoundTripper answering every request with body:
// the fuzzer plays datagrepper without a socket.
type replyWith []byte

func (b replyWith) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(b)),
		Request:    req,
	}, nil
}

// FuzzRawPage decodes arbitrary replies as a /raw page and as an /id
// reply, as `fedmsg hub` and `fedmsg-dg-replay` do with what datagrepper
// (a remote server) sends. Nothing may panic; refusals wrap ErrBadReply;
// an accepted page has a sane page count and exactly the messages the
// reply listed; FixMessage drops the datanommer keys and never touches
// anything else; Timestamp agrees with Python's int() of the number.
func FuzzRawPage(f *testing.F) {
	if data, err := os.ReadFile("testdata/raw.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"pages":1,"raw_messages":[{"topic":"t","msg":{},"timestamp":1.9,"source_name":"datanommer","source_version":"1","headers":null}]}`))
	f.Add([]byte(`{"pages":0,"raw_messages":[]}`))
	f.Add([]byte(`{"pages":-1,"raw_messages":[]}`))
	f.Add([]byte(`{"pages":1e99,"raw_messages":[1]}`))
	f.Add([]byte(`{"pages":2.5,"raw_messages":[{"timestamp":NaN,"source_name":"x","source_version":"y"}]}`))
	f.Add([]byte(`{"pages":1,"raw_messages":[{"timestamp":-1e300,"source_name":null,"source_version":null,"headers":{}}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := New("http://datagrepper.invalid/raw", Options{HTTPClient: &http.Client{Transport: replyWith(data)}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := c.ByID(ctx, "2019-x"); err != nil && !errors.Is(err, ErrBadReply) {
			t.Fatalf("ByID error %v does not wrap ErrBadReply", err)
		}
		p, err := c.Raw(ctx, Query{Start: 1, End: 2})
		if err != nil {
			if !errors.Is(err, ErrBadReply) {
				t.Fatalf("Raw error %v does not wrap ErrBadReply", err)
			}
			return
		}
		if p.Pages < 0 || p.Pages > math.MaxInt32 {
			t.Fatalf("pages %d", p.Pages)
		}
		obj, err := message.DecodeObject(data)
		if err != nil {
			t.Fatalf("Raw accepted a reply the decoder refuses: %v", err)
		}
		if list := obj["raw_messages"].([]any); len(list) != len(p.Messages) {
			t.Fatalf("%d raw_messages gave %d messages", len(list), len(p.Messages))
		}
		for _, env := range p.Messages {
			checkFix(t, env)
		}
	})
}

func checkFix(t *testing.T, env map[string]any) {
	t.Helper()
	fixed := FixMessage(env)
	_, n := env["source_name"]
	_, v := env["source_version"]
	for k, val := range env {
		got, kept := fixed[k]
		switch {
		case n && v && (k == "source_name" || k == "source_version"):
			if kept {
				t.Fatalf("FixMessage kept %s", k)
			}
		case n && v && k == "headers" && message.IsFalsy(val):
			if kept {
				t.Fatalf("FixMessage kept empty headers %v", val)
			}
		case n && v && k == "timestamp":
		default:
			if !kept || !sameJSON(got, val) {
				t.Fatalf("FixMessage changed %s: %v -> %v", k, val, got)
			}
		}
	}
	if len(fixed) > len(env) {
		t.Fatalf("FixMessage added keys")
	}
	// Timestamp is int() of a finite number, else not usable.
	ts, ok := Timestamp(env)
	num, isNum := env["timestamp"].(message.Number)
	if !isNum {
		if ok {
			t.Fatalf("Timestamp of %v (%T) is usable", env["timestamp"], env["timestamp"])
		}
		return
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1<<53 {
		return // beyond where a float64 comparison says anything
	}
	if !ok || ts != int64(math.Trunc(f)) {
		t.Fatalf("Timestamp(%s) = %d, %v; want %d", num, ts, ok, int64(math.Trunc(f)))
	}
}

func sameJSON(a, b any) bool {
	x, err1 := message.Canonical(a)
	y, err2 := message.Canonical(b)
	if err1 != nil || err2 != nil {
		return (err1 == nil) == (err2 == nil)
	}
	return bytes.Equal(x, y)
}
