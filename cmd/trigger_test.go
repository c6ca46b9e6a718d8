package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/message"
)

// safeBuffer is a bytes.Buffer for writers used from several goroutines.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func received(topic string) *fedmsg.Received {
	return &fedmsg.Received{Topic: topic, Envelope: map[string]any{"topic": topic, "msg_id": "id-" + topic}}
}

type arrival struct {
	topic string
	at    time.Time
}

// collect reads out until it closes, noting when each message came out.
func collect(out <-chan *fedmsg.Received) <-chan []arrival {
	res := make(chan []arrival, 1)
	go func() {
		var got []arrival
		for m := range out {
			got = append(got, arrival{m.Topic, time.Now()})
		}
		res <- got
	}()
	return res
}

func topicsOf(a []arrival) string {
	var s []string
	for _, x := range a {
		s = append(s, x.topic)
	}
	return strings.Join(s, " ")
}

// Messages arriving closer together than --wait-for come out only once
// the bus has been quiet that long after the last one, in order.
func TestBatcherWaitsForQuietAfterTheLastMessage(t *testing.T) {
	const wait = 400 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	in, out := make(chan *fedmsg.Received), make(chan *fedmsg.Received)
	go batcher{waitFor: wait}.run(ctx, in, out)
	res := collect(out)
	var last time.Time
	for _, topic := range []string{"a", "b", "c"} {
		last = time.Now()
		in <- received(topic)
		time.Sleep(wait / 4)
	}
	// Leave time for the batch to come out, then stop.
	time.Sleep(3 * wait)
	close(in)
	got := <-res
	cancel()
	if topicsOf(got) != "a b c" {
		t.Fatalf("got %q, want a b c in order", topicsOf(got))
	}
	if early := got[0].at.Sub(last); early < wait {
		t.Errorf("first message ran %v after the last arrival, before the %v quiet period", early, wait)
	}
}

// More than --max-queue-size waiting runs them at once, long before
// --wait-for; up to the limit they wait.
func TestBatcherMaxQueueSizeFlushesEarly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in, out := make(chan *fedmsg.Received), make(chan *fedmsg.Received)
	go batcher{waitFor: time.Hour, maxQueue: 2}.run(ctx, in, out)
	in <- received("a")
	in <- received("b")
	select {
	case m := <-out:
		t.Fatalf("%s came out with only 2 queued (limit 2)", m.Topic)
	case <-time.After(300 * time.Millisecond):
	}
	in <- received("c")
	var got []string
	for len(got) < 3 {
		select {
		case m := <-out:
			got = append(got, m.Topic)
		case <-time.After(10 * time.Second):
			t.Fatalf("queue over the limit not run; got %v", got)
		}
	}
	if strings.Join(got, " ") != "a b c" {
		t.Errorf("got %v, want a b c", got)
	}
}

// With --wait-for 0 each message is due as it arrives.
func TestBatcherWithoutWaitPassesEachAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in, out := make(chan *fedmsg.Received), make(chan *fedmsg.Received)
	go batcher{}.run(ctx, in, out)
	for _, topic := range []string{"a", "b"} {
		in <- received(topic)
		select {
		case m := <-out:
			if m.Topic != topic {
				t.Fatalf("got %s, want %s", m.Topic, topic)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not passed on", topic)
		}
	}
}

// Stopping (a signal) hands over what is queued, then closes out.
func TestBatcherStopHandsOverTheQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	in, out := make(chan *fedmsg.Received), make(chan *fedmsg.Received)
	go batcher{waitFor: time.Hour}.run(ctx, in, out)
	res := collect(out)
	in <- received("a")
	in <- received("b")
	cancel()
	select {
	case got := <-res:
		if topicsOf(got) != "a b" {
			t.Errorf("got %q after stop, want a b", topicsOf(got))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("out not closed after stop")
	}
}

func newTestRunner(t *testing.T, command string) (*runner, *safeBuffer) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	logs := &safeBuffer{}
	return &runner{bash: bash, command: command, environ: os.Environ(), stdout: &safeBuffer{}, stderr: &safeBuffer{},
		log: slog.New(slog.NewTextHandler(logs, nil))}, logs
}

// The command gets the canonical JSON and a newline on stdin; quotes,
// $(...) and backticks in a message are never run (fedmsg's trigger put
// the JSON in single quotes on a bash command line: spec §11).
func TestRunnerFeedsCanonicalJSONOnStdinNeverTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	out := filepath.Join(dir, "out")
	text := fmt.Sprintf(`'; touch %s; ' $(touch %s) `+"`touch %s`", pwned, pwned, pwned)
	env := map[string]any{"topic": "org.x.dev.logger.log", "msg_id": "2026-x", "msg": map[string]any{"log": text}, "i": 1}
	r, _ := newTestRunner(t, `cat > "`+out+`"; printf '%s %s' "$FEDMSG_TOPIC" "$FEDMSG_MSG_ID" > "`+out+`.env"`)
	if err := r.run(context.Background(), &fedmsg.Received{Topic: "org.x.dev.logger.log", Envelope: env}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the message's text ran as shell code (%s exists)", pwned)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := message.Canonical(env)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want)+"\n" {
		t.Errorf("stdin = %q, want the canonical JSON and a newline %q", got, string(want)+"\n")
	}
	if e, _ := os.ReadFile(out + ".env"); string(e) != "org.x.dev.logger.log 2026-x" {
		t.Errorf("FEDMSG_TOPIC FEDMSG_MSG_ID = %q", e)
	}
}

// A failing command reports its exit status and the end of its stderr,
// and the runner goes on with the next message.
func TestRunnerLogsFailureWithStderrTailAndGoesOn(t *testing.T) {
	dir := t.TempDir()
	r, logs := newTestRunner(t, `if grep -q fail-me; then head -c 5000 /dev/zero | tr '\0' x >&2; echo the-reason >&2; exit 3; fi; touch "`+dir+`/ran"`)
	due := make(chan *fedmsg.Received, 2)
	due <- received("fail-me")
	due <- received("fine")
	close(due)
	r.runAll(context.Background(), due)
	if r.failed != 1 || r.ran != 1 {
		t.Errorf("failed %d ran %d, want 1 and 1", r.failed, r.ran)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err != nil {
		t.Errorf("the message after the failure did not run: %v", err)
	}
	l := logs.String()
	for _, want := range []string{"command failed", "msg_id=id-fail-me", "exit status 3", `the-reason\n`} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if strings.Count(l, "x") > stderrTail || !strings.Contains(l, "xxxx") {
		t.Errorf("log does not keep just the tail of stderr (%d x):\n%.300s", strings.Count(l, "x"), l)
	}
	// The command's stderr also reached ours as it was written.
	if !strings.Contains(r.stderr.(*safeBuffer).String(), "the-reason") {
		t.Errorf("command stderr not passed through")
	}
}

// Past the drain deadline the running command (and what it started) is
// killed and the rest is dropped, counted.
func TestRunnerDeadlineKillsAndDrops(t *testing.T) {
	r, logs := newTestRunner(t, `sleep 60 & sleep 60`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	due := make(chan *fedmsg.Received, 2)
	due <- received("a")
	due <- received("b")
	close(due)
	start := time.Now()
	r.runAll(ctx, due)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("runAll took %v past a 300ms deadline", d)
	}
	if r.failed != 1 || r.dropped != 1 {
		t.Errorf("failed %d dropped %d, want 1 and 1", r.failed, r.dropped)
	}
	if !strings.Contains(logs.String(), "count=1") {
		t.Errorf("drop not logged:\n%s", logs.String())
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	b := &tailBuffer{max: 5}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	b.Write([]byte("h"))
	if b.String() != "defgh" {
		t.Errorf("got %q, want defgh", b.String())
	}
}

// Every flag of announce and trigger says what it does.
func TestAnnounceAndTriggerFlagsHaveHelp(t *testing.T) {
	e := &env{stdin: strings.NewReader(""), stdout: &safeBuffer{}, stderr: &safeBuffer{}}
	for _, c := range []*cobra.Command{newAnnounceCmd(e), newTriggerCmd(e)} {
		if c.Short == "" || c.Long == "" {
			t.Errorf("%s has no description", c.Name())
		}
		n := 0
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			n++
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("%s --%s has no help text", c.Name(), f.Name)
			}
		})
		if n == 0 {
			t.Errorf("%s has no flags", c.Name())
		}
	}
}
