package sdnotify

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/sdnotify/sdnotifytest"
)

// manager is the receiving end of NOTIFY_SOCKET, as systemd has it.
type manager struct{ *sdnotifytest.Manager }

func listen(t *testing.T) manager { return manager{sdnotifytest.Listen(t)} }

func (m manager) pingCount() int { return int(m.Pings()) }

func (m manager) next(t *testing.T) string {
	t.Helper()
	select {
	case msg := <-m.Msgs:
		return msg
	case <-time.After(5 * time.Second):
		t.Fatal("no notification within 5s")
	}
	return ""
}

// none checks that no notification other than a ping arrives for a while.
func (m manager) none(t *testing.T, after string) {
	t.Helper()
	select {
	case msg := <-m.Msgs:
		t.Fatalf("after %s: unexpected notification %q", after, msg)
	case <-time.After(100 * time.Millisecond):
	}
}

// fields splits a notification into its assignments.
func fields(msg string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(msg, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

func capture() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// Without NOTIFY_SOCKET nothing is sent and nothing logged, whatever the
// daemon does: a socket listening where systemd would hears nothing.
func TestNotifierWithoutNotifySocketIsSilent(t *testing.T) {
	m := listen(t)
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "20000")
	log, buf := capture()
	n := New(log)
	if Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("Enabled()=%v, watchdog %v without NOTIFY_SOCKET: want false, 0", Enabled(), n.WatchdogInterval())
	}
	n.Ready("serving")
	n.Reloading()
	n.Reloaded()
	n.Stopping()
	n.Stopped()
	select {
	case msg := <-m.Msgs:
		t.Errorf("sent %q without NOTIFY_SOCKET", msg)
	case <-time.After(100 * time.Millisecond):
	}
	if m.pingCount() != 0 || buf.Len() != 0 {
		t.Errorf("pings %d, log %q without NOTIFY_SOCKET: want none", m.pingCount(), buf.String())
	}
}

// The life of a daemon as systemd sees it: READY=1 with its status, a
// reload framed by RELOADING=1 (with MONOTONIC_USEC, which
// Type=notify-reload requires) and READY=1, STOPPING=1 once. A reload
// before READY=1 or after STOPPING=1 sends nothing: a SIGHUP during
// start-up must not make systemd think the daemon is up.
func TestNotifierLifecycle(t *testing.T) {
	m := listen(t)
	t.Setenv("NOTIFY_SOCKET", m.Path)
	t.Setenv("WATCHDOG_USEC", "")
	log, buf := capture()
	n := New(log)

	n.Reloading()
	n.Reloaded()
	m.none(t, "a reload before READY")

	n.Ready("relaying tcp://a to tcp://b")
	if got := fields(m.next(t)); got["READY"] != "1" || got["STATUS"] != "relaying tcp://a to tcp://b" {
		t.Errorf("Ready sent %q, want READY=1 and the status", got)
	}
	n.Ready("again")
	m.none(t, "a second Ready")

	var last int64
	for i := range 2 {
		n.Reloading()
		got := fields(m.next(t))
		usec, err := strconv.ParseInt(got["MONOTONIC_USEC"], 10, 64)
		if got["RELOADING"] != "1" || err != nil || usec <= last {
			t.Errorf("reload %d: Reloading sent %q, want RELOADING=1 and a MONOTONIC_USEC above %d", i, got, last)
		}
		last = usec
		n.Reloaded()
		if got := fields(m.next(t)); got["READY"] != "1" || got["STATUS"] != "relaying tcp://a to tcp://b" {
			t.Errorf("reload %d: Reloaded sent %q, want READY=1 and the daemon's status again", i, got)
		}
	}
	n.Reloaded()
	m.none(t, "Reloaded without Reloading")

	n.Stopping()
	if got := fields(m.next(t)); got["STOPPING"] != "1" {
		t.Errorf("Stopping sent %q, want STOPPING=1", got)
	}
	n.Stopping()
	n.Reloading()
	n.Reloaded()
	n.Stopped()
	m.none(t, "STOPPING=1")
	if buf.Len() != 0 {
		t.Errorf("logged %q while systemd listened", buf.String())
	}
}

// A status over several lines stays one STATUS= assignment: a newline
// would make the rest of it a line systemd parses as another one.
func TestNotifierStatusIsOneLine(t *testing.T) {
	m := listen(t)
	t.Setenv("NOTIFY_SOCKET", m.Path)
	n := New(nil)
	n.Ready("first\nREADY=0")
	if msg := m.next(t); msg != "READY=1\nSTATUS=first READY=0" {
		t.Errorf("sent %q", msg)
	}
}

// With WatchdogSec= (WATCHDOG_USEC) the notifier pings at half the
// interval from READY=1 until Stopped, and never after: a daemon whose
// loop ended must let systemd's watchdog fire.
func TestNotifierWatchdogPingsWhileServing(t *testing.T) {
	m := listen(t)
	t.Setenv("NOTIFY_SOCKET", m.Path)
	t.Setenv("WATCHDOG_USEC", "100000") // 100ms: a ping every 50ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := New(nil)
	if got := n.WatchdogInterval(); got != 100*time.Millisecond {
		t.Fatalf("WatchdogInterval() = %v, want 100ms", got)
	}
	time.Sleep(150 * time.Millisecond)
	if p := m.pingCount(); p != 0 {
		t.Fatalf("%d pings before READY=1: the watchdog must only be fed once the daemon serves", p)
	}
	n.Ready("serving")
	m.next(t)
	deadline := time.Now().Add(5 * time.Second)
	for m.pingCount() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pings within 5s of READY=1 with a 100ms watchdog, want at least 4", m.pingCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.Stopped()
	if got := fields(m.next(t)); got["STOPPING"] != "1" {
		t.Errorf("Stopped sent %q, want STOPPING=1 (not sent before)", got)
	}
	p := m.pingCount()
	time.Sleep(200 * time.Millisecond)
	if q := m.pingCount(); q != p {
		t.Errorf("%d pings after Stopped, want none", q-p)
	}
}

// WATCHDOG_PID names another process (this one inherited the variables
// from its parent): its watchdog is not this process's to feed.
func TestNotifierWatchdogOfAnotherProcess(t *testing.T) {
	m := listen(t)
	t.Setenv("NOTIFY_SOCKET", m.Path)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	n := New(nil)
	n.Ready("serving")
	m.next(t)
	time.Sleep(200 * time.Millisecond)
	n.Stopped()
	if p := m.pingCount(); p != 0 {
		t.Errorf("%d pings for another process's watchdog, want none", p)
	}
}

// systemd gone (NOTIFY_SOCKET names nothing): the daemon goes on; the
// first failure is a warning naming the notification, the next ones
// (every watchdog ping) only debug lines.
func TestNotifierFailureIsLoggedOnce(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	t.Setenv("WATCHDOG_USEC", "")
	log, buf := capture()
	n := New(log)
	n.Ready("serving")
	n.Reloading()
	n.Reloaded()
	n.Stopped()
	out := buf.String()
	if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, `notification="READY=1"`) {
		t.Errorf("want one warning, about READY=1; log:\n%s", out)
	}
	if strings.Count(out, "systemd notification failed") != 4 {
		t.Errorf("want each of the 4 failures logged (3 at debug); log:\n%s", out)
	}
}
