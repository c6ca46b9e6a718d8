package test

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/sdnotify/sdnotifytest"
)

// systemd's notify protocol, end to end: bin/fedmsg daemons run with
// NOTIFY_SOCKET pointing at a datagram socket the test listens on, as
// systemd's does for a Type=notify unit, and tell it READY=1 only once
// they serve, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 when
// SIGTERM starts the drain.

// notifyListener is the service manager's end of NOTIFY_SOCKET.
type notifyListener struct{ *sdnotifytest.Manager }

func listenNotify(t *testing.T) notifyListener { return notifyListener{sdnotifytest.Listen(t)} }

func (n notifyListener) expect(t *testing.T, p *proc, key string) map[string]string {
	t.Helper()
	select {
	case msg := <-n.Msgs:
		got := map[string]string{}
		for _, line := range strings.Split(msg, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				got[k] = v
			}
		}
		if got[key] != "1" {
			t.Fatalf("%v: notification %q, want %s=1; stderr:\n%s", p.cmd.Args, msg, key, p.stderr.String())
		}
		return got
	case <-time.After(20 * time.Second):
		t.Fatalf("%v sent no %s=1 within 20s; stderr:\n%s", p.cmd.Args, key, p.stderr.String())
	}
	return nil
}

// nothingMore checks that no notification is left once the process exited.
func (n notifyListener) nothingMore(t *testing.T) {
	t.Helper()
	select {
	case msg := <-n.Msgs:
		t.Errorf("unexpected notification %q", msg)
	case <-time.After(100 * time.Millisecond):
	}
}

// accepts checks that something listens on the TCP address of endpoint
// (tcp://host:port or host:port).
func accepts(t *testing.T, what, endpoint string) {
	t.Helper()
	addr := strings.TrimPrefix(endpoint, "tcp://")
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Errorf("at READY=1 %s (%s) does not accept connections: %v", what, addr, err)
		return
	}
	c.Close()
}

// healthy checks that the daemon's /healthz answers 200 at metricsAddr.
func healthy(t *testing.T, metricsAddr string) {
	t.Helper()
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + metricsAddr + "/healthz")
	if err != nil {
		t.Errorf("at READY=1 /healthz on %s: %v", metricsAddr, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("at READY=1 /healthz answered %d, want 200", resp.StatusCode)
	}
}

// notifyLifecycle runs what every daemon must do after READY=1: SIGHUP
// gives RELOADING=1 (with MONOTONIC_USEC) then READY=1, SIGTERM gives
// STOPPING=1 and exit status 0, and nothing else is sent.
func notifyLifecycle(t *testing.T, n notifyListener, p *proc) {
	t.Helper()
	p.hup(t, "SIGHUP: reloading")
	got := n.expect(t, p, "RELOADING")
	if usec, err := strconv.ParseInt(got["MONOTONIC_USEC"], 10, 64); err != nil || usec <= 0 {
		t.Errorf("RELOADING=1 came with MONOTONIC_USEC=%q, want the monotonic clock in µs", got["MONOTONIC_USEC"])
	}
	n.expect(t, p, "READY")

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("%v exited %d on SIGTERM, want 0; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
	}
	n.expect(t, p, "STOPPING")
	n.nothingMore(t)
	if strings.Contains(p.stderr.String(), "systemd notification failed") {
		t.Errorf("a notification failed while systemd listened:\n%s", p.stderr.String())
	}
}

// The relay: READY=1 comes once both its sockets are bound (each accepts a
// connection at that moment) and /healthz is up; the watchdog is fed
// while it serves; then the reload and stop notifications.
func TestSDNotifyRelay(t *testing.T) {
	b := newBus(t)
	n := listenNotify(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b.env = append(b.env, "NOTIFY_SOCKET="+n.Path, "WATCHDOG_USEC=200000") // a ping every 100ms
	relay := b.start("relay", "--metrics-addr", metrics)

	got := n.expect(t, relay, "READY")
	accepts(t, "relay_inbound", b.inbound)
	accepts(t, "relay_outbound", b.outbound)
	healthy(t, metrics)
	if !strings.Contains(got["STATUS"], b.outbound) {
		t.Errorf("READY=1 came with STATUS=%q, want the endpoint the relay publishes on (%s)", got["STATUS"], b.outbound)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.Pings() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d WATCHDOG=1 within 10s of READY=1 with WATCHDOG_USEC=200000, want at least 3", n.Pings())
		}
		time.Sleep(20 * time.Millisecond)
	}
	notifyLifecycle(t, n, relay)
}

// The bridge: READY=1 once its transports are open (the zmq transport it
// publishes through has bound its endpoint) and its routes about to run.
func TestSDNotifyBridge(t *testing.T) {
	b := newBus(t)
	n := listenNotify(t)
	out := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeConfig(t, b, "bridge.yaml", fmt.Sprintf(`transports:
  bus: {kind: zmq}
  out: {kind: zmq, name: bridge_out, endpoints: {bridge_out: [%s]}}
routes:
  - {name: bus-to-out, from: bus, to: out, topics: ["org.fedoraproject.dev."]}
`, out))
	b.env = append(b.env, "NOTIFY_SOCKET="+n.Path)
	bridge := b.start("bridge", "--config", cfg, "--metrics-addr", metrics)

	n.expect(t, bridge, "READY")
	accepts(t, "the out transport's endpoint", out)
	healthy(t, metrics)
	notifyLifecycle(t, n, bridge)
}

// The hub: READY=1 once its transport is open and its consumers built.
func TestSDNotifyHub(t *testing.T) {
	b := newBus(t)
	n := listenNotify(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeConfig(t, b, "hub.yaml", `consumers:
  - name: probe
    kind: file
    topics: [org.fedoraproject.dev.e2e.probe]
    path: `+filepath.Join(b.dir, "probe.jsonl")+"\n")
	b.env = append(b.env, "NOTIFY_SOCKET="+n.Path)
	hub := b.start("hub", "--config", cfg, "--metrics-addr", metrics)

	n.expect(t, hub, "READY")
	healthy(t, metrics)
	notifyLifecycle(t, n, hub)
}
