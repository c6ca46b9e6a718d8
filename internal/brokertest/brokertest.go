// Package brokertest gives tests the real brokers that test/brokers.sh
// starts on loopback: their addresses, the test PKI, and a way to stop and
// restart them for fault tests without disturbing the tests of other
// packages that `go test ./...` runs at the same time.
//
// A test that needs a broker calls Use; it fails, loudly, when the broker
// is not listening (never skips): run test/brokers.sh, or `make test`.
//
// Coordination across test processes: every Use holds a shared flock on
// one lock file for the rest of the test; Stop takes it exclusively (after
// every other process's running broker test has ended) until the matching
// Start, so no other package sees a broker go away under it.
package brokertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Broker names one listener of the test brokers.
type Broker struct {
	Name string // for messages: "RabbitMQ STOMP"
	Addr string // host:port on loopback
	kind string // "rabbitmq" or "activemq": what Stop and Start act on
}

// The listeners test/brokers.sh starts.
var (
	RabbitAMQP       = Broker{"RabbitMQ AMQP", "127.0.0.1:5672", "rabbitmq"}
	RabbitAMQPS      = Broker{"RabbitMQ AMQPS", "127.0.0.1:5671", "rabbitmq"}
	RabbitSTOMP      = Broker{"RabbitMQ STOMP", "127.0.0.1:61613", "rabbitmq"}
	RabbitSTOMPTLS   = Broker{"RabbitMQ STOMP+TLS", "127.0.0.1:61614", "rabbitmq"}
	ActiveMQSTOMP    = Broker{"ActiveMQ STOMP", "127.0.0.1:61623", "activemq"}
	ActiveMQOpenWire = Broker{"ActiveMQ OpenWire", "127.0.0.1:61616", "activemq"}
)

// TLSDir is where test/brokers.sh keeps the test PKI.
func TLSDir() string {
	if d := os.Getenv("GOFEDMSG_BROKER_TLS"); d != "" {
		return d
	}
	return "/etc/gofedmsg-test-tls"
}

// TLSFiles are the test PKI's paths: the CA that signed the brokers'
// certificate, and a client certificate and key with CN=bridgeclient (a
// user the script creates in RabbitMQ, so certificate login works).
type TLSFiles struct{ CA, ClientCert, ClientKey string }

// TLS returns the test PKI's files, failing the test when they are missing.
func TLS(t testing.TB) TLSFiles {
	t.Helper()
	d := TLSDir()
	f := TLSFiles{
		CA:         filepath.Join(d, "ca.pem"),
		ClientCert: filepath.Join(d, "client.pem"),
		ClientKey:  filepath.Join(d, "client.key"),
	}
	for _, p := range []string{f.CA, f.ClientCert, f.ClientKey} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("brokertest: the test PKI is missing (%v): run test/brokers.sh (or make test)", err)
		}
	}
	return f
}

// Use fails the test unless b is listening, and holds the shared broker
// lock until the test ends so that no other package stops the broker
// meanwhile.
func Use(t testing.TB, b Broker) {
	t.Helper()
	acquireShared(t)
	if err := dial(b.Addr, 5*time.Second); err != nil {
		t.Fatalf("brokertest: %s is not listening on %s (%v): start the test brokers with test/brokers.sh (or make test)",
			b.Name, b.Addr, err)
	}
}

func dial(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops b's broker process (all of its listeners) and returns once
// b no longer accepts connections. It waits until no other test process
// is using a broker. The broker is started again by Start, or at the end
// of the test if Start was not called, so a failing test never leaves it
// down.
func Stop(t testing.TB, b Broker) {
	t.Helper()
	acquireExclusive(t)
	state.mu.Lock()
	state.down[b.kind] = true
	state.mu.Unlock()
	t.Cleanup(func() {
		state.mu.Lock()
		down := state.down[b.kind]
		state.mu.Unlock()
		if down {
			Start(t, b)
		}
	})
	var err error
	switch b.kind {
	case "rabbitmq":
		err = run("rabbitmqctl", "-q", "stop_app")
	case "activemq":
		// A crash, as a fault test wants; the init script's wrapper
		// refuses to start while its pid file remains.
		err = signal(activeMQPID, syscall.SIGKILL)
		if err == nil {
			err = os.Remove(activeMQPIDFile)
			if os.IsNotExist(err) {
				err = nil
			}
		}
	}
	if err != nil {
		t.Fatalf("brokertest: stopping %s: %v", b.Name, err)
	}
	for i := 0; i < 300 && dial(b.Addr, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if dial(b.Addr, 0) == nil {
		t.Fatalf("brokertest: %s still accepts connections on %s after being stopped", b.Name, b.Addr)
	}
}

// Start starts b's broker again after Stop and returns once b accepts
// connections; then other test processes may use brokers again.
func Start(t testing.TB, b Broker) {
	t.Helper()
	var err error
	switch b.kind {
	case "rabbitmq":
		err = run("rabbitmqctl", "-q", "start_app")
	case "activemq":
		err = run("/etc/init.d/activemq", "start")
	}
	if err == nil {
		err = dial(b.Addr, 90*time.Second)
	}
	state.mu.Lock()
	state.down[b.kind] = false
	state.mu.Unlock()
	releaseExclusive(t)
	if err != nil {
		t.Fatalf("brokertest: starting %s again: %v", b.Name, err)
	}
}

// Freeze stops b's broker process with SIGSTOP, so its connections stay
// open but nothing answers (a hung broker); Thaw resumes it, and so does
// the end of the test.
func Freeze(t testing.TB, b Broker) {
	t.Helper()
	acquireExclusive(t)
	pid := rabbitPID
	if b.kind == "activemq" {
		pid = activeMQPID
	}
	p, err := pid()
	if err != nil {
		releaseExclusive(t)
		t.Fatalf("brokertest: freezing %s: %v", b.Name, err)
	}
	if err := syscall.Kill(p, syscall.SIGSTOP); err != nil {
		releaseExclusive(t)
		t.Fatalf("brokertest: freezing %s: %v", b.Name, err)
	}
	var once sync.Once
	thaw := func() {
		once.Do(func() {
			_ = syscall.Kill(p, syscall.SIGCONT)
			releaseExclusive(t)
		})
	}
	state.mu.Lock()
	state.thaw[b.kind] = thaw
	state.mu.Unlock()
	t.Cleanup(thaw)
}

// Thaw resumes a broker frozen by Freeze.
func Thaw(t testing.TB, b Broker) {
	t.Helper()
	state.mu.Lock()
	thaw := state.thaw[b.kind]
	delete(state.thaw, b.kind)
	state.mu.Unlock()
	if thaw != nil {
		thaw()
	}
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v: %s", name, args, err, out)
	}
	return nil
}

const activeMQPIDFile = "/var/run/activemq/main.pid"

func rabbitPID() (int, error) { return pidOf("beam.smp.*rabbit") }

func activeMQPID() (int, error) { return pidOf("java.*activemq") }

func pidOf(pattern string) (int, error) {
	out, err := exec.Command("pgrep", "-o", "-f", pattern).Output()
	if err != nil {
		return 0, fmt.Errorf("no process matches %q: %v", pattern, err)
	}
	var pid int
	if _, err := fmt.Sscanf(string(out), "%d", &pid); err != nil {
		return 0, fmt.Errorf("pgrep -f %q printed %q", pattern, out)
	}
	return pid, nil
}

func signal(pid func() (int, error), sig syscall.Signal) error {
	p, err := pid()
	if err != nil {
		return nil // not running: nothing to signal
	}
	return syscall.Kill(p, sig)
}

// The process-wide lock state: one open lock file, a count of tests
// holding it shared, and whether this process holds it exclusively.
var state = struct {
	mu        sync.Mutex
	file      *os.File
	shared    int
	exclusive int
	down      map[string]bool
	thaw      map[string]func()
}{down: map[string]bool{}, thaw: map[string]func(){}}

func lockFile(t testing.TB) *os.File {
	if state.file == nil {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "gofedmsg-brokertest.lock"), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatalf("brokertest: lock file: %v", err)
		}
		state.file = f
	}
	return state.file
}

func flock(t testing.TB, how int) {
	if err := syscall.Flock(int(lockFile(t).Fd()), how); err != nil {
		t.Fatalf("brokertest: flock: %v", err)
	}
}

func acquireShared(t testing.TB) {
	state.mu.Lock()
	if state.shared == 0 && state.exclusive == 0 {
		flock(t, syscall.LOCK_SH)
	}
	state.shared++
	state.mu.Unlock()
	t.Cleanup(func() {
		state.mu.Lock()
		defer state.mu.Unlock()
		state.shared--
		if state.shared == 0 && state.exclusive == 0 {
			flock(t, syscall.LOCK_UN)
		}
	})
}

// Claim makes the brokers this test's alone until it ends: other test
// processes wait. A test that stops or freezes a broker calls it before
// it connects. Stop and Freeze take the same lock, but only when called,
// and flock gives up the shared lock while it waits for the exclusive
// one, so another process's fault test could otherwise cut this test's
// connections in between.
func Claim(t testing.TB) {
	t.Helper()
	acquireExclusive(t)
	t.Cleanup(func() { releaseExclusive(t) })
}

// acquireExclusive converts this process's lock to exclusive. flock drops
// the shared lock before it waits, so two processes converting at once do
// not deadlock: one waits for the other's Start.
func acquireExclusive(t testing.TB) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.exclusive == 0 {
		flock(t, syscall.LOCK_EX)
	}
	state.exclusive++
}

func releaseExclusive(t testing.TB) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.exclusive == 0 {
		return
	}
	state.exclusive--
	if state.exclusive > 0 {
		return
	}
	if state.shared > 0 {
		flock(t, syscall.LOCK_SH)
	} else {
		flock(t, syscall.LOCK_UN)
	}
}
