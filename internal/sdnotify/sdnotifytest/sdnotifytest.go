// Package sdnotifytest is the service manager's end of NOTIFY_SOCKET for
// tests: a unix datagram socket that collects what a daemon tells systemd.
package sdnotifytest

import (
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// Manager receives notifications as systemd would. WATCHDOG=1 pings are
// counted (their timing is the watchdog's business); every other
// notification arrives whole on Msgs, in order.
type Manager struct {
	// Path is the socket: NOTIFY_SOCKET's value.
	Path string
	// Msgs carries each notification but WATCHDOG=1.
	Msgs  chan string
	pings atomic.Int64
}

// Listen starts a Manager, closed when t ends.
func Listen(t testing.TB) *Manager {
	t.Helper()
	// A short directory of its own: a unix socket path has at most 107
	// bytes, which t.TempDir() under a long test name may pass.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m := &Manager{Path: filepath.Join(dir, "notify"), Msgs: make(chan string, 64)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: m.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if msg := string(buf[:n]); msg == "WATCHDOG=1" {
				m.pings.Add(1)
			} else {
				m.Msgs <- msg
			}
		}
	}()
	return m
}

// Pings is how many WATCHDOG=1 arrived so far.
func (m *Manager) Pings() int64 { return m.pings.Load() }
