// Package sdnotify tells systemd what a fedmsg daemon is doing, over the
// sd_notify protocol (the datagram socket named by NOTIFY_SOCKET), so that
// its unit can be Type=notify: READY=1 once the daemon serves, RELOADING=1
// and READY=1 around a SIGHUP reload, STOPPING=1 when the drain starts,
// and WATCHDOG=1 pings when the unit sets WatchdogSec=.
//
// Outside systemd (no NOTIFY_SOCKET) every method does nothing and logs
// nothing: the daemons behave exactly as before. The messages are sent
// by github.com/coreos/go-systemd/v22/daemon, which reads NOTIFY_SOCKET
// and WATCHDOG_USEC from the process environment, as systemd sets them.
package sdnotify

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// state is where the daemon stands in systemd's view of it.
type state int

const (
	starting  state = iota // nothing sent yet
	ready                  // READY=1 sent
	reloading              // RELOADING=1 sent, READY=1 due
	stopping               // STOPPING=1 sent: nothing else is
)

// Notifier sends one daemon's state changes to systemd. Its methods are
// safe for concurrent use (the SIGHUP handler, the signal context and the
// daemon's own goroutine call them) and do nothing when NOTIFY_SOCKET is
// not set. Create it with New.
type Notifier struct {
	log      *slog.Logger
	enabled  bool          // NOTIFY_SOCKET is set
	watchdog time.Duration // WATCHDOG_USEC for this process; 0 when none

	mu     sync.Mutex
	state  state
	status string // the STATUS= of the running daemon, sent again after a reload
	failed bool   // a send failed: later failures are logged at debug only
	// stopWatchdog ends the pinging goroutine; nil when none runs.
	stopWatchdog func()
}

// New reads NOTIFY_SOCKET and WATCHDOG_USEC. log may be nil.
func New(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{log: log}
	if !Enabled() {
		return n
	}
	n.enabled = true
	// WATCHDOG_PID names the process the watchdog is meant for; the
	// library answers 0 for any other (a child that inherited it).
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog: ignoring WATCHDOG_USEC", "err", err)
	}
	n.watchdog = d
	return n
}

// Enabled reports whether the process runs under a service manager that
// listens for notifications (NOTIFY_SOCKET is set).
func Enabled() bool { return os.Getenv("NOTIFY_SOCKET") != "" }

// WatchdogInterval is the WATCHDOG_USEC systemd set for this process, 0
// when the unit has no WatchdogSec=.
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog }

// Ready says the daemon serves: READY=1 with status as STATUS=, and,
// when systemd watches the process (WatchdogSec=), WATCHDOG=1 every half
// interval until Stopped. Call it once, when the sockets are bound and
// the transports open.
func (n *Notifier) Ready(status string) {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != starting {
		return
	}
	n.state = ready
	n.status = status
	n.send(daemon.SdNotifyReady, status)
	if n.watchdog > 0 {
		n.stopWatchdog = n.ping(n.watchdog / 2)
	}
}

// Reloading says a SIGHUP reload begins: RELOADING=1, with MONOTONIC_USEC=
// as Type=notify-reload wants it. Nothing is sent before Ready or after
// Stopping: a SIGHUP during start-up must not tell systemd that the
// daemon is up when Reloaded follows.
func (n *Notifier) Reloading() {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != ready {
		return
	}
	n.state = reloading
	n.send(daemon.SdNotifyReloading+"\n"+strings.TrimSuffix(daemon.SdNotifyMonotonicUsec(), "\n"), "reloading the configuration")
}

// Reloaded says the reload Reloading announced is over (applied or
// refused: the daemon serves either way): READY=1 with the daemon's
// status again.
func (n *Notifier) Reloaded() {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != reloading {
		return
	}
	n.state = ready
	n.send(daemon.SdNotifyReady, n.status)
}

// Stopping says the shutdown began (SIGTERM or SIGINT started the drain,
// or the daemon's loop ended): STOPPING=1, once.
func (n *Notifier) Stopping() {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == stopping {
		return
	}
	n.state = stopping
	n.send(daemon.SdNotifyStopping, "stopping: draining in-flight messages")
}

// Stopped says the daemon no longer serves: the watchdog pings end (a
// daemon whose loop is over must not look alive) and STOPPING=1 goes out
// if it has not yet.
func (n *Notifier) Stopped() {
	if !n.enabled {
		return
	}
	n.Stopping()
	n.mu.Lock()
	stop := n.stopWatchdog
	n.stopWatchdog = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// ping sends WATCHDOG=1 every interval until the returned func is called.
func (n *Notifier) ping(every time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			n.mu.Lock()
			n.send(daemon.SdNotifyWatchdog, "")
			n.mu.Unlock()
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(quit); <-done }
}

// send writes one notification, state plus STATUS=status when status is
// set. n.mu is held: notifications leave in the order the state changed.
// A failure (systemd gone, the socket not writable) never stops the
// daemon: the first is a warning, the rest debug lines, since the
// watchdog would otherwise repeat it every few seconds.
func (n *Notifier) send(state, status string) {
	msg := state
	if status != "" {
		msg += "\nSTATUS=" + oneLine(status)
	}
	if _, err := daemon.SdNotify(false, msg); err != nil {
		level := slog.LevelWarn
		if n.failed {
			level = slog.LevelDebug
		}
		n.failed = true
		first, _, _ := strings.Cut(state, "\n")
		n.log.Log(context.Background(), level, "systemd notification failed", "notification", first, "err", err)
	}
}

// oneLine keeps a status to one line: a newline would start another
// assignment in the datagram.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
