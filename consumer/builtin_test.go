package consumer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
)

func testMessage(topic, body string) *Message {
	env, out, wrapped, err := decodeEnvelope(topic, []byte(body))
	if err != nil {
		panic(err)
	}
	return &Message{Topic: topic, Body: out, Envelope: env, Wrapped: wrapped, Raw: []byte(body)}
}

func TestFileAppendsVerbatimLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	if err := os.WriteFile(path, []byte("existing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{
		`{"topic":"a.b","msg":{"x":1.0,"s":"\u00e9\n"},"msg_id":"1"}`,    // kept byte for byte, escapes and 1.0 included
		"{\n  \"topic\": \"a.c\",\n  \"msg\": {\"k\": \"two words\"}\n}", // raw line breaks: compacted to one line
	}
	for _, b := range bodies {
		if err := f.Handle(context.Background(), testMessage("a.b", b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "existing\n" + bodies[0] + "\n" + `{"topic":"a.c","msg":{"k":"two words"}}` + "\n"
	if string(got) != want {
		t.Errorf("file =\n%s\nwant\n%s", got, want)
	}
	if _, err := NewFile(FileOptions{Path: filepath.Join(t.TempDir(), "no", "such", "dir", "f")}); err == nil {
		t.Error("a file in a missing directory opened")
	}
}

func TestExec(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "stdin")
	body := `{"topic":"a.b","msg":{"x":1},"msg_id":"2026-abc"}`
	e := NewExec(ExecOptions{Command: []string{"/bin/sh", "-c", `cat > "$0"; printf '%s %s' "$FEDMSG_TOPIC" "$FEDMSG_MSG_ID" > "$0.env"`, out}}, nil)
	if err := e.Handle(context.Background(), testMessage("a.b", body)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); string(got) != body {
		t.Errorf("stdin = %q, want %q", got, body)
	}
	if got, _ := os.ReadFile(out + ".env"); string(got) != "a.b 2026-abc" {
		t.Errorf("env = %q", got)
	}

	// systemd's notification socket and watchdog are the hub's alone.
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", "1")
	t.Setenv("GOFEDMSG_KEPT", "yes")
	envOut := filepath.Join(dir, "environ")
	envCmd := NewExec(ExecOptions{Command: []string{"/bin/sh", "-c", `env > "$0"`, envOut}}, nil)
	if err := envCmd.Handle(context.Background(), testMessage("a.b", body)); err != nil {
		t.Fatal(err)
	}
	environ, _ := os.ReadFile(envOut)
	for _, k := range []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="} {
		if strings.Contains("\n"+string(environ), "\n"+k) {
			t.Errorf("the command's environment holds %s...: a command could notify systemd as the hub", k)
		}
	}
	if !strings.Contains(string(environ), "GOFEDMSG_KEPT=yes") {
		t.Errorf("the command lost the rest of the hub's environment:\n%s", environ)
	}

	fail := NewExec(ExecOptions{Command: []string{"/bin/sh", "-c", "echo nope >&2; exit 3"}}, nil)
	err := fail.Handle(context.Background(), testMessage("a.b", body))
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("non-zero exit: err = %v, want exit status 3 with the output", err)
	}

	slow := NewExec(ExecOptions{Command: []string{"sleep", "10"}, Timeout: 100 * time.Millisecond}, nil)
	start := time.Now()
	err = slow.Handle(context.Background(), testMessage("a.b", body))
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("timeout: err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}

	missing := NewExec(ExecOptions{Command: []string{filepath.Join(dir, "no-such-program")}}, nil)
	if err := missing.Handle(context.Background(), testMessage("a.b", body)); err == nil {
		t.Error("a missing program succeeded")
	}
}

func TestWebhook(t *testing.T) {
	body := `{"topic":"a.b","msg":{"x":1.0},"msg_id":"2026-xyz"}`
	type req struct {
		body, ctype, topic, id, auth string
	}
	var mu sync.Mutex
	var reqs []req
	var status atomic.Value // func(n int) int: status of the n-th request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, req{string(b), r.Header.Get("Content-Type"), r.Header.Get("X-Fedmsg-Topic"),
			r.Header.Get("X-Fedmsg-Msg-Id"), r.Header.Get("Authorization")})
		n := len(reqs)
		mu.Unlock()
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(status.Load().(func(int) int)(n))
		io.WriteString(w, "server says hi")
	}))
	defer srv.Close()
	reset := func(f func(int) int) {
		mu.Lock()
		reqs = nil
		mu.Unlock()
		status.Store(f)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(reqs)
	}
	w := NewWebhook(WebhookOptions{URL: srv.URL, MaxAttempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Headers: map[string]string{"Authorization": "Bearer t"}}, nil)

	t.Run("2xx", func(t *testing.T) {
		reset(func(int) int { return http.StatusAccepted })
		if err := w.Handle(context.Background(), testMessage("a.b", body)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		r := reqs[0]
		if r.body != body || r.ctype != "application/json" || r.topic != "a.b" || r.id != "2026-xyz" || r.auth != "Bearer t" {
			t.Errorf("request = %+v", r)
		}
	})
	t.Run("5xx then 2xx is retried", func(t *testing.T) {
		reset(func(n int) int {
			if n < 3 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		if err := w.Handle(context.Background(), testMessage("a.b", body)); err != nil {
			t.Fatal(err)
		}
		if count() != 3 {
			t.Errorf("%d requests, want 3", count())
		}
	})
	t.Run("attempts exhausted", func(t *testing.T) {
		reset(func(int) int { return http.StatusInternalServerError })
		err := w.Handle(context.Background(), testMessage("a.b", body))
		if err == nil || errors.Is(err, transport.ErrPermanent) || !strings.Contains(err.Error(), "500") {
			t.Errorf("err = %v, want a redeliverable error naming the 500", err)
		}
		if count() != 3 {
			t.Errorf("%d requests, want 3 (max_attempts)", count())
		}
	})
	t.Run("4xx is permanent, not retried", func(t *testing.T) {
		reset(func(int) int { return http.StatusBadRequest })
		err := w.Handle(context.Background(), testMessage("a.b", body))
		if !errors.Is(err, transport.ErrPermanent) || !strings.Contains(err.Error(), "server says hi") {
			t.Errorf("err = %v, want ErrPermanent with the response", err)
		}
		if count() != 1 {
			t.Errorf("%d requests, want 1", count())
		}
	})
	t.Run("429 is retried", func(t *testing.T) {
		reset(func(n int) int {
			if n == 1 {
				return http.StatusTooManyRequests
			}
			return http.StatusNoContent
		})
		if err := w.Handle(context.Background(), testMessage("a.b", body)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		w := NewWebhook(WebhookOptions{URL: url, MaxAttempts: 2, Backoff: time.Millisecond}, nil)
		if err := w.Handle(context.Background(), testMessage("a.b", body)); err == nil || errors.Is(err, transport.ErrPermanent) {
			t.Errorf("err = %v, want a redeliverable error", err)
		}
	})
	t.Run("through a hub: failure nacks", func(t *testing.T) {
		reset(func(int) int { return http.StatusBadGateway })
		h, err := New([]Consumer{{Name: "hook", Handler: w.Handle}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		f := newFake()
		runHub(t, h, f)
		f.push(t, "m", "a.b", []byte(body))
		if s := f.next(t); s.ack {
			t.Errorf("webhook failure was acked")
		}
	})
}
