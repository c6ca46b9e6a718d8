package test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
)

// httpGet returns the status and body of url; status 0 when nothing
// answers.
func httpGet(url string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue finds the sample of the text-format line that starts with
// series (name{labels} exactly as the endpoint prints them).
func metricValue(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// waitHTTP polls url until cond holds for its status and body, and
// returns the last body.
func waitHTTP(t *testing.T, url, what string, within time.Duration, cond func(code int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := httpGet(url)
		if cond(code, body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never came; last answer %d:\n%s", url, what, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A bridge to RabbitMQ with --metrics-addr is ready while it is connected,
// turns not ready (naming the transport) when the broker stops, ready
// again when it returns, counts the reconnect, and stops serving after
// SIGTERM with exit 0.
func TestMetricsReadinessFollowsBroker(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	brokertest.Claim(t) // the broker goes down: no other test may use it meanwhile
	b := newBus(t)
	cfgPath := filepath.Join(b.dir, "bridge.yaml")
	cfg := fmt.Sprintf("transports:\n  bus: {kind: zmq}\n  rabbit: {kind: amqp, amqp_url: [amqp://guest:guest@%s/]}\n"+
		"routes:\n  - {name: bus-to-rabbit, from: bus, to: rabbit}\n", brokertest.RabbitAMQP.Addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + addr
	bridge := b.start("bridge", "--config", cfgPath, "--metrics-addr", addr)
	bridge.waitStderr(t, "metrics endpoint listening")

	waitHTTP(t, base+"/readyz", "readiness", 30*time.Second, func(code int, _ string) bool { return code == http.StatusOK })
	if code, body := httpGet(base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while running: %d %q", code, body)
	}
	connected := `fedmsg_broker_connected{kind="amqp",transport="rabbit"}`
	reconnects := `fedmsg_broker_reconnects_total{kind="amqp",transport="rabbit"}`
	_, body := httpGet(base + "/metrics")
	if v, ok := metricValue(body, connected); !ok || v != 1 {
		t.Errorf("%s = %v (present %v) while connected, want 1", connected, v, ok)
	}
	if v, ok := metricValue(body, reconnects); !ok || v != 0 {
		t.Errorf("%s = %v (present %v) before any loss, want 0", reconnects, v, ok)
	}

	brokertest.Stop(t, brokertest.RabbitAMQP)
	body = waitHTTP(t, base+"/readyz", "not ready after the broker stopped", 30*time.Second,
		func(code int, _ string) bool { return code == http.StatusServiceUnavailable })
	if !strings.Contains(body, "transport rabbit") {
		t.Errorf("/readyz does not name the transport:\n%s", body)
	}
	if code, _ := httpGet(base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while the broker is down: %d, want 200 (the bridge still runs)", code)
	}
	_, body = httpGet(base + "/metrics")
	if v, ok := metricValue(body, connected); !ok || v != 0 {
		t.Errorf("%s = %v (present %v) while the broker is down, want 0", connected, v, ok)
	}

	brokertest.Start(t, brokertest.RabbitAMQP)
	waitHTTP(t, base+"/readyz", "ready after the broker returned", 90*time.Second,
		func(code int, _ string) bool { return code == http.StatusOK })
	_, body = httpGet(base + "/metrics")
	if v, ok := metricValue(body, connected); !ok || v != 1 {
		t.Errorf("%s = %v (present %v) after the broker returned, want 1", connected, v, ok)
	}
	if v, ok := metricValue(body, reconnects); !ok || v != 1 {
		t.Errorf("%s = %v (present %v) after one loss, want 1", reconnects, v, ok)
	}

	if code := bridge.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("bridge exited %d after SIGTERM, want 0", code)
	}
	if code, _ := httpGet(base + "/healthz"); code != 0 {
		t.Errorf("the metrics endpoint still answers after the bridge exited (status %d)", code)
	}
}

// fedmsg relay --metrics-addr, fed by a plain ZeroMQ publisher: /metrics
// counts exactly the good messages as in and out and the malformed ones
// as dropped by reason.
func TestRelayMetricsAcrossProcesses(t *testing.T) {
	b := newBus(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b.env = append(b.env, "FEDMSG_ZMQ_MAX_MSG_SIZE=100")
	relay := b.start("relay", "--metrics-addr", addr)
	relay.waitStderr(t, "relay started")

	// An XPUB is a PUB on the wire that also hears subscriptions: once the
	// relay's has arrived nothing sent is lost to the slow joiner.
	pub, err := zmq4.NewSocket(zmq4.XPUB)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Connect(b.inbound); err != nil {
		t.Fatal(err)
	}
	if err := pub.SetRcvtimeo(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if sub, err := pub.RecvBytes(0); err != nil || len(sub) == 0 || sub[0] != 1 {
		t.Fatalf("no subscription from the relay: %q %v", sub, err)
	}
	const good = 12
	for i := range good {
		if _, err := pub.SendMessage("org.fedoraproject.dev.e2e.metrics", fmt.Sprintf(`{"i": %d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	bad := [][]any{
		{"org.fedoraproject.dev.e2e.metrics"},                                                // one frame
		{"org.fedoraproject.dev.e2e.metrics", `{"pad": "` + strings.Repeat("x", 100) + `"}`}, // over 100 bytes
		{"org.fedoraproject.dev.e2e.metrics", `"a string"`},                                  // not an object
	}
	for _, m := range bad {
		if _, err := pub.SendMessage(m...); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + addr
	in := `fedmsg_messages_in_total{route="relay",transport="zmq"}`
	body := waitHTTP(t, base+"/metrics", "every message counted", 10*time.Second, func(_ int, body string) bool {
		v, _ := metricValue(body, in)
		return v >= good+3
	})
	for series, want := range map[string]float64{
		in: good + 3,
		`fedmsg_messages_out_total{route="relay",transport="zmq"}`:                                   good,
		`fedmsg_messages_dropped_total{reason="bad_frame_count",route="relay",transport="zmq"}`:      1,
		`fedmsg_messages_dropped_total{reason="oversize",route="relay",transport="zmq"}`:             1,
		`fedmsg_messages_dropped_total{reason="body_not_json_object",route="relay",transport="zmq"}`: 1,
	} {
		if v, ok := metricValue(body, series); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	if code, _ := httpGet(base + "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz of a running relay: %d, want 200", code)
	}
	if code := relay.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("relay exited %d after SIGTERM, want 0", code)
	}
	if code, _ := httpGet(base + "/healthz"); code != 0 {
		t.Errorf("the metrics endpoint still answers after the relay exited (status %d)", code)
	}
}

// Each of the other daemons serves the endpoints with --metrics-addr
// while it runs, and stops serving when it exits.
func TestDaemonsServeMetrics(t *testing.T) {
	for _, tc := range []struct {
		name    string
		started string
		args    func(t *testing.T, b *bus) []string
		series  string // a series the daemon's own counters produce
	}{
		{"signing-relay", "signing relay started", func(t *testing.T, b *bus) []string {
			b.env = append(b.env, "FEDMSG_CONFIG="+b.x509Config(t, ""))
			return []string{"signing-relay"}
		}, `fedmsg_messages_in_total{route="signing-relay",transport="zmq"} 0`},
		{"gateway", "gateway started", func(t *testing.T, b *bus) []string {
			b.env = append(b.env, fmt.Sprintf("FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT=%d", freePort(t)))
			return []string{"gateway"}
		}, `fedmsg_messages_out_total{route="gateway",transport="zmq"} 0`},
		{"hub", "hub started", func(t *testing.T, b *bus) []string {
			cfg := filepath.Join(b.dir, "hub.yaml")
			yaml := "consumers:\n  - {name: archive, kind: file, path: " + filepath.Join(b.dir, "out.jsonl") + "}\n"
			if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"hub", "--config", cfg}
		}, `fedmsg_messages_in_total{route="archive",transport="zmq"} 0`},
		{"hub validating", "hub started", func(t *testing.T, b *bus) []string {
			b.env = append(b.env, "FEDMSG_CONFIG="+b.x509Config(t, "validate_signatures: true\n"))
			cfg := filepath.Join(b.dir, "hub.yaml")
			yaml := "consumers:\n  - {name: archive, kind: file, path: " + filepath.Join(b.dir, "out.jsonl") + "}\n"
			if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"hub", "--config", cfg}
		}, "fedmsg_trust_crl_next_update_timestamp_seconds "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBus(t)
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			p := b.start(append(tc.args(t, b), "--metrics-addr", addr)...)
			p.waitStderr(t, tc.started)
			base := "http://" + addr
			if code, body := httpGet(base + "/healthz"); code != http.StatusOK {
				t.Errorf("/healthz: %d %q, want 200", code, body)
			}
			if code, body := httpGet(base + "/readyz"); code != http.StatusOK {
				t.Errorf("/readyz: %d %q, want 200", code, body)
			}
			if _, body := httpGet(base + "/metrics"); !strings.Contains(body, tc.series) {
				t.Errorf("/metrics lacks %s:\n%s", tc.series, body)
			}
			if code := p.stop(t, syscall.SIGTERM); code != 0 {
				t.Errorf("exited %d after SIGTERM, want 0", code)
			}
			if code, _ := httpGet(base + "/healthz"); code != 0 {
				t.Errorf("the metrics endpoint still answers after exit (status %d)", code)
			}
		})
	}
}
