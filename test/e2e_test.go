// End-to-end tests: bin/fedmsg run as separate processes (relay, logger,
// tail), checked against the frames the real Python fedmsg produced.
package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/freeport"
	"github.com/gofedmsg/fedmsg/message"
)

var fedmsgBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gofedmsg-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fedmsgBin = filepath.Join(dir, "fedmsg")
	build := exec.Command("go", "build", "-o", fedmsgBin, "../cmd/fedmsg")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building bin/fedmsg:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t testing.TB) int { return freeport.Port(t) }

// bus is one isolated fedmsg set-up: its own ports, HOME and working
// directory (so no /etc, ~ or ./fedmsg.d of the machine leaks in).
type bus struct {
	t        testing.TB
	dir      string
	inbound  string
	outbound string
	env      []string
}

func newBus(t testing.TB) *bus {
	t.Helper()
	b := &bus{
		t:        t,
		dir:      t.TempDir(),
		inbound:  fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)),
		outbound: fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)),
	}
	b.env = []string{
		"HOME=" + b.dir,
		"PATH=" + os.Getenv("PATH"),
		"USER=fedmsg",
		"FEDMSG_RELAY_INBOUND=" + b.inbound,
		"FEDMSG_ENDPOINTS={relay_outbound: [" + b.outbound + "]}",
		"FEDMSG_POST_INIT_SLEEP=5",
	}
	return b
}

// proc is a running fedmsg process whose stdout is read line by line.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (b *bus) command(args ...string) *exec.Cmd {
	c := exec.Command(fedmsgBin, args...)
	c.Dir = b.dir
	c.Env = b.env
	return c
}

func (b *bus) start(args ...string) *proc {
	b.t.Helper()
	c := b.command(args...)
	out, err := c.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	p := &proc{cmd: c, lines: make(chan string, 1024), stderr: &syncBuffer{}}
	c.Stderr = p.stderr
	if err := c.Start(); err != nil {
		b.t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 16<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	b.t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
		if b.t.Failed() {
			b.t.Logf("%s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// stop sends sig and returns the exit code.
func (p *proc) stop(t testing.TB, sig os.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("%v did not exit within 10s of %v", p.cmd.Args, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitStderr waits until the process has logged want.
func (p *proc) waitStderr(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%v never logged %q; stderr:\n%s", p.cmd.Args, want, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proc) nextLine(t testing.TB) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("%v closed its output; stderr:\n%s", p.cmd.Args, p.stderr.String())
		}
		return l
	case <-time.After(15 * time.Second):
		t.Fatalf("%v printed nothing within 15s; stderr:\n%s", p.cmd.Args, p.stderr.String())
	}
	return ""
}

// run runs a command to completion with stdin and returns stdout, stderr
// and the exit code.
func (b *bus) run(stdin string, args ...string) (string, string, int) {
	b.t.Helper()
	c := b.command(args...)
	c.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		<-ctx.Done()
		if ctx.Err() == context.DeadlineExceeded && c.Process != nil {
			c.Process.Kill()
		}
	}()
	err := c.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			b.t.Fatalf("%v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

func (b *bus) startRelay() *proc {
	b.t.Helper()
	relay := b.start("relay")
	relay.waitStderr(b.t, "relay started")
	return relay
}

// startTail starts `fedmsg tail ARGS` and returns once a probe published
// through the relay has come out of it: ZeroMQ subscriptions settle
// asynchronously (the slow joiner) and nothing else tells when they have.
func (b *bus) startTail(args ...string) *proc {
	b.t.Helper()
	tail := b.start(append([]string{"tail"}, args...)...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
			b.t.Fatalf("probe logger exited %d: %s", code, errOut)
		}
		select {
		case l := <-tail.lines:
			if strings.Contains(l, `"org.fedoraproject.dev.e2e.probe"`) {
				b.drainProbes(tail)
				return tail
			}
			b.t.Fatalf("unexpected line before the probe: %s", l)
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("tail saw no probe within 20s; tail stderr:\n%s", tail.stderr.String())
		}
	}
}

func (b *bus) drainProbes(tail *proc) {
	for {
		select {
		case l := <-tail.lines:
			if !strings.Contains(l, `"org.fedoraproject.dev.e2e.probe"`) {
				b.t.Fatalf("unexpected line while draining probes: %s", l)
			}
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}

// sameFieldsAs compares an envelope we produced with one real fedmsg
// produced: same bytes once msg_id, timestamp and username are set equal.
func sameFieldsAs(t testing.TB, got, want []byte) {
	t.Helper()
	g, err := message.DecodeObject(got)
	if err != nil {
		t.Fatalf("our frame does not decode: %v: %s", err, got)
	}
	w, err := message.DecodeObject(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"msg_id", "timestamp", "username"} {
		if _, ok := g[k]; !ok {
			t.Errorf("our frame has no %q: %s", k, got)
		}
		g[k] = w[k]
	}
	gb, _ := message.Canonical(g)
	if !bytes.Equal(gb, want) {
		t.Errorf("frame differs from real fedmsg's beyond msg_id/timestamp/username:\n got %s\nwant %s", gb, want)
	}
	// Our frame is itself canonical JSON, as fedmsg's is.
	cb, _ := message.Canonical(mustDecode(t, got))
	if !bytes.Equal(cb, got) {
		t.Errorf("our frame is not canonical JSON:\n got %s\nwant %s", got, cb)
	}
}

func mustDecode(t testing.TB, b []byte) any {
	t.Helper()
	v, err := message.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
