package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runHubCmd runs args in-process with an isolated HOME and working
// directory, returning the exit code and stderr.
func runHubCmd(ctx context.Context, t *testing.T, stderr *lockedBuffer, args ...string) int {
	t.Helper()
	dir := t.TempDir()
	e := &env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: stderr,
		environ: []string{"HOME=" + dir, "FEDMSG_ENDPOINTS={relay_outbound: [tcp://127.0.0.1:1]}"}}
	return run(ctx, e, args)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHubConfigErrorsExit2(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.jsonl")
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "consumers:\n  - {name: arch, kind: file, path: " + out + ", colour: red}\n", []string{`consumer "arch"`, "colour"}},
		{"unknown kind", "consumers:\n  - {name: bot, kind: ircbot}\n", []string{`consumer "bot"`, `"ircbot"`}},
		{"no consumers", "topic_prefix: org.example\n", []string{"no consumers"}},
		{"fedmsg key typo", "topic_prefx: x\nconsumers:\n  - {name: a, kind: file, path: " + out + "}\n", []string{"topic_prefx"}},
		{"validation without a CA", "validate_signatures: true\nca_cert_location: ''\nconsumers:\n  - {name: a, kind: file, path: " + out + "}\n", []string{"validate_signatures"}},
		{"no broker", "zmq_enabled: false\nconsumers:\n  - {name: a, kind: file, path: " + out + "}\n", []string{"no broker"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := writeFile(t, "hub.yaml", c.yaml)
			var stderr lockedBuffer
			if code := runHubCmd(context.Background(), t, &stderr, "fedmsg", "hub", "--config", f); code != exitUsage {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			for _, w := range c.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not mention %q:\n%s", w, stderr.String())
				}
			}
		})
	}
	var stderr lockedBuffer
	if code := runHubCmd(context.Background(), t, &stderr, "fedmsg", "hub"); code != exitUsage || !strings.Contains(stderr.String(), "--config") {
		t.Errorf("without --config: exit %d, stderr %s", code, stderr.String())
	}
}

// TestHubAliasStartsAndStopsCleanly: fedmsg-hub runs the hub; ending its
// context (SIGINT/SIGTERM in Main) exits 0.
func TestHubAliasStartsAndStopsCleanly(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.jsonl")
	f := writeFile(t, "hub.yaml", "consumers:\n  - {name: arch, kind: file, topics: [org.], path: "+out+"}\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() { done <- runHubCmd(ctx, t, &stderr, "/usr/bin/fedmsg-hub", "--config", f) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "hub started") {
		select {
		case code := <-done:
			t.Fatalf("hub exited %d before starting:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub never started:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after the signal, want 0:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("hub did not stop")
	}
	if !strings.Contains(stderr.String(), `consumer=arch`) || !strings.Contains(stderr.String(), "transport=zmq") {
		t.Errorf("start-up log does not name the consumer and transport:\n%s", stderr.String())
	}
}
