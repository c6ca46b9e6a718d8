package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/message"
)

// The topic the trigger tests publish on, and the logger arguments for it.
const triggerTopic = "org.fedoraproject.dev.e2e.trig"

var triggerLogger = []string{"logger", "--modname", "e2e", "--topic", "trig"}

// startTrigger starts `fedmsg trigger ARGS` (probes excluded, debug logs
// on) and returns once it has seen a probe: its ZeroMQ subscription
// settles asynchronously (the slow joiner) and only a message tells.
func (b *bus) startTrigger(args ...string) *proc {
	b.t.Helper()
	tr := b.start(append([]string{"trigger", "--log-level", "debug", "--exclude", `e2e\.probe|_heartbeat`}, args...)...)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(tr.stderr.String(), "topic=org.fedoraproject.dev.e2e.probe") {
		if tr.cmd.ProcessState != nil || time.Now().After(deadline) {
			b.t.Fatalf("trigger saw no probe within 20s; stderr:\n%s", tr.stderr.String())
		}
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
			b.t.Fatalf("probe logger exited %d: %s", code, errOut)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return tr
}

// stampCommand appends "<epoch seconds> <stdin>" to out per run: when the
// command ran and what it was given.
func stampCommand(out string) string {
	return `printf '%s ' "$(date +%s.%N)" >> '` + out + `'; cat >> '` + out + `'`
}

type ran struct {
	at  time.Time
	log string // the message's msg.log
}

// readRuns parses the runs stampCommand has finished writing to path (a
// last line without its newline is a run still writing).
func readRuns(t *testing.T, path string) []ran {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []ran
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		stamp, body, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("bad line in %s: %q", path, line)
		}
		secs, err := strconv.ParseFloat(stamp, 64)
		if err != nil {
			t.Fatalf("bad time in %s: %q", path, line)
		}
		env, err := message.DecodeObject([]byte(body))
		if err != nil {
			t.Fatalf("the command's stdin is not a JSON envelope: %v: %q", err, body)
		}
		if env["topic"] != triggerTopic {
			t.Fatalf("the command ran for %v", env["topic"])
		}
		msg, _ := env["msg"].(map[string]any)
		log, _ := msg["log"].(string)
		out = append(out, ran{at: time.Unix(0, int64(secs*1e9)), log: log})
	}
	return out
}

// waitRuns waits until path holds n runs.
func waitRuns(t *testing.T, tr *proc, path string, n int, within time.Duration) []ran {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		runs := readRuns(t, path)
		if len(runs) >= n {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d runs within %v; trigger stderr:\n%s", len(runs), n, within, tr.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func logsOf(runs []ran) string {
	var s []string
	for _, r := range runs {
		s = append(s, r.log)
	}
	return strings.Join(s, "|")
}

// waitReceived waits until the trigger has logged n messages on triggerTopic.
func waitReceived(t *testing.T, tr *proc, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(tr.stderr.String(), "topic="+triggerTopic+" ") < n {
		if time.Now().After(deadline) {
			t.Fatalf("trigger did not receive %d messages; stderr:\n%s", n, tr.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func publishTrig(t *testing.T, b *bus, stdin string) {
	t.Helper()
	if _, errOut, code := b.run(stdin, triggerLogger...); code != 0 {
		t.Fatalf("logger exited %d: %s", code, errOut)
	}
}

// spec §11: fedmsg-trigger pasted the JSON between single quotes on a
// bash command line, so a quote in a message ran shell code. Here the
// message reaches the command intact, on stdin, and nothing in it runs.
func TestTriggerMessageTextIsNeverShellCode(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	out := filepath.Join(b.dir, "out")
	pwned := filepath.Join(b.dir, "pwned")
	tr := b.startTrigger("--command", stampCommand(out))

	text := `'; touch ` + pwned + `; '` // run by Python's echo '<json>' | CMD
	if _, errOut, code := b.run("", append(triggerLogger, "--message", text)...); code != 0 {
		t.Fatalf("logger exited %d: %s", code, errOut)
	}
	deadline := time.Now().Add(30 * time.Second)
	for st, err := os.Stat(out); err != nil || st.Size() == 0; st, err = os.Stat(out) {
		if time.Now().After(deadline) {
			t.Fatalf("the command did not run within 30s; trigger stderr:\n%s", tr.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatalf("the message ran shell code: %s exists", pwned)
	}
	runs := waitRuns(t, tr, out, 1, 30*time.Second)
	if runs[0].log != text {
		t.Errorf("the command got msg.log %q, want %q", runs[0].log, text)
	}
	if code := tr.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0", code)
	}
}

// Messages closer together than --wait-for run only once the bus has
// been quiet that long after the last of them, all in arrival order.
func TestTriggerWaitForRunsAfterTheQuietPeriod(t *testing.T) {
	const wait = 5 * time.Second // generous: the later publish must land inside it
	b := newBus(t)
	b.startRelay()
	out := filepath.Join(b.dir, "out")
	tr := b.startTrigger("--wait-for", "5", "--command", stampCommand(out))

	publishTrig(t, b, "one\ntwo\n")
	time.Sleep(500 * time.Millisecond)
	last := time.Now() // the third message arrives after this
	publishTrig(t, b, "three\n")
	runs := waitRuns(t, tr, out, 3, 60*time.Second)
	if got := logsOf(runs); got != "one|two|three" {
		t.Fatalf("ran %q, want one|two|three", got)
	}
	for _, r := range runs {
		if early := r.at.Sub(last); early < wait {
			t.Errorf("%q ran %v after the last message was sent, inside the %v quiet period", r.log, early, wait)
		}
	}
}

// More than --max-queue-size queued runs them at once, long before
// --wait-for; on SIGTERM what is queued still runs, then exit 0.
func TestTriggerMaxQueueSizeAndSignalRunTheQueue(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	out := filepath.Join(b.dir, "out")
	tr := b.startTrigger("--wait-for", "600", "--max-queue-size", "2", "--command", stampCommand(out))

	publishTrig(t, b, "one\ntwo\n")
	waitReceived(t, tr, 2)
	time.Sleep(500 * time.Millisecond)
	if runs := readRuns(t, out); len(runs) != 0 {
		t.Fatalf("ran %q with 2 queued and --max-queue-size 2", logsOf(runs))
	}
	publishTrig(t, b, "three\n")
	runs := waitRuns(t, tr, out, 3, 30*time.Second)
	if got := logsOf(runs); got != "one|two|three" {
		t.Fatalf("ran %q, want one|two|three", got)
	}

	publishTrig(t, b, "four\nfive\n")
	waitReceived(t, tr, 5)
	if code := tr.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, tr.stderr.String())
	}
	if got := logsOf(readRuns(t, out)); got != "one|two|three|four|five" {
		t.Errorf("after SIGTERM ran %q, want the queue run too: one|two|three|four|five", got)
	}
}

// A command that fails is logged with the message's msg_id and the end of
// its stderr; the next message still runs.
func TestTriggerFailingCommandIsLoggedAndTriggerGoesOn(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	out := filepath.Join(b.dir, "out")
	command := `json=$(cat); case "$json" in *fail-me*) echo "boom: refused $FEDMSG_TOPIC" >&2; exit 3;; esac; printf '0 %s\n' "$json" >> '` + out + `'`
	tr := b.startTrigger("--command", command)
	tail := b.startTail("--json")

	publishTrig(t, b, "fail-me\nafter\n")
	runs := waitRuns(t, tr, out, 1, 30*time.Second)
	if got := logsOf(runs); got != "after" {
		t.Errorf("ran %q, want after", got)
	}
	// The failed message's msg_id, from the bus.
	env, err := message.DecodeObject([]byte(tail.nextLine(t)))
	if err != nil {
		t.Fatal(err)
	}
	if msg, _ := env["msg"].(map[string]any); msg["log"] != "fail-me" {
		t.Fatalf("tail's first message is %v, want fail-me", msg)
	}
	id, _ := env["msg_id"].(string)
	tr.waitStderr(t, "command failed")
	var line string
	for _, l := range strings.Split(tr.stderr.String(), "\n") {
		if strings.Contains(l, "command failed") {
			line = l
		}
	}
	for _, want := range []string{"msg_id=" + id, "exit status 3", "boom: refused " + triggerTopic} {
		if !strings.Contains(line, want) {
			t.Errorf("failure log lacks %q: %s", want, line)
		}
	}
	if code := tr.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

// No --command: fedmsg's message and exit 1, also as fedmsg-trigger;
// a bad flag value is misuse, exit 2, naming the flag.
func TestTriggerArgumentErrors(t *testing.T) {
	b := newBus(t)
	for _, args := range [][]string{
		{"--include", "("}, {"--exclude", "["}, {"--wait-for", "-1"}, {"--max-queue-size", "-2"}, {"--wait-for", "soon"},
	} {
		_, errOut, code := b.run("", append([]string{"trigger", "--command", "true"}, args...)...)
		if code != 2 || !strings.Contains(errOut, args[0]) {
			t.Errorf("fedmsg trigger %v: exit %d, stderr %q; want 2 naming %s", args, code, errOut, args[0])
		}
	}
	const want = "You must provide a --command to run."
	if _, errOut, code := b.run("", "trigger"); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("fedmsg trigger: exit %d, stderr %q; want 1 and %q", code, errOut, want)
	}
	link := filepath.Join(b.dir, "fedmsg-trigger")
	if err := os.Symlink(fedmsgBin, link); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(link, "--topic", "x")
	c.Dir, c.Env = b.dir, b.env
	out, err := c.CombinedOutput()
	if code := c.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), want) {
		t.Errorf("fedmsg-trigger: exit %d (%v), output %q; want 1 and %q", code, err, out, want)
	}
}
