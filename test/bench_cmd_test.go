package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
)

// End-to-end tests of `fedmsg bench`, run as its own process against a
// `fedmsg relay` process and straight against the real brokers.

// benchResult is the part of `fedmsg bench --json` the tests check.
type benchResult struct {
	From        string  `json:"from"`
	To          string  `json:"to"`
	Size        int     `json:"size"`
	Sent        int64   `json:"sent"`
	Received    int64   `json:"received"`
	Lost        int64   `json:"lost"`
	Duplicates  int64   `json:"duplicates"`
	SentRate    float64 `json:"sent_per_second"`
	RecvRate    float64 `json:"received_per_second"`
	P50         float64 `json:"latency_p50_us"`
	P90         float64 `json:"latency_p90_us"`
	P99         float64 `json:"latency_p99_us"`
	Max         float64 `json:"latency_max_us"`
	Interrupted bool    `json:"interrupted"`
}

func decodeBench(t *testing.T, stdout, stderr string) benchResult {
	t.Helper()
	var r benchResult
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("bench --json printed no JSON object (%v):\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if dec.More() {
		t.Errorf("bench --json printed more than one JSON value:\n%s", stdout)
	}
	return r
}

// checkBench asserts a complete, sane run of want messages.
func checkBench(t *testing.T, r benchResult, want int64) {
	t.Helper()
	if r.Sent != want || r.Received != want || r.Lost != 0 || r.Duplicates != 0 {
		t.Errorf("sent %d received %d lost %d duplicates %d; want %d, %d, 0, 0", r.Sent, r.Received, r.Lost, r.Duplicates, want, want)
	}
	if r.SentRate <= 0 || r.RecvRate <= 0 {
		t.Errorf("throughput sent %v/s received %v/s, want > 0", r.SentRate, r.RecvRate)
	}
	if !(r.P50 > 0 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
		t.Errorf("latency p50 %v p90 %v p99 %v max %v (µs): want 0 < p50 <= p90 <= p99 <= max", r.P50, r.P90, r.P99, r.Max)
	}
}

func benchConfig(t *testing.T, b *bus, text string) string {
	t.Helper()
	path := filepath.Join(b.dir, "bench.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBenchThroughRelay: zmq in, through a `fedmsg relay` process, zmq out.
func TestBenchThroughRelay(t *testing.T) {
	b := newBus(t)
	relay := b.startRelay()
	out, errOut, code := b.run("", "bench", "--transport", "zmq", "--count", "2000", "--json")
	if code != 0 {
		t.Fatalf("bench exited %d; stderr:\n%s", code, errOut)
	}
	r := decodeBench(t, out, errOut)
	checkBench(t, r, 2000)
	if r.From != "zmq" || r.To != "zmq" || r.Size != 609 {
		t.Errorf("from %q to %q size %d, want zmq, zmq, 609 (the default)", r.From, r.To, r.Size)
	}
	// Every message went through the relay: it forwarded them (and the
	// probes) and dropped none.
	if code := relay.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("relay exited %d", code)
	}
	if s := relay.stderr.String(); !strings.Contains(s, "dropped=0") {
		t.Errorf("relay dropped messages:\n%s", s)
	}
}

// TestBenchZMQDirect: a PUB bound at endpoints[name] to a SUB, no relay.
func TestBenchZMQDirect(t *testing.T) {
	b := newBus(t)
	cfg := benchConfig(t, b, fmt.Sprintf("name: bench\nendpoints: {bench: [tcp://127.0.0.1:%d]}\n", freePort(t)))
	out, errOut, code := b.run("", "bench", "--config", cfg, "--count", "2000", "--size", "1024", "--json")
	if code != 0 {
		t.Fatalf("bench exited %d; stderr:\n%s", code, errOut)
	}
	r := decodeBench(t, out, errOut)
	checkBench(t, r, 2000)
	if r.Size != 1024 {
		t.Errorf("size %d, want 1024", r.Size)
	}
}

func TestBenchBrokers(t *testing.T) {
	for _, c := range []struct {
		name   string
		broker brokertest.Broker
		kind   string
		config string
	}{
		{"RabbitMQ-AMQP", brokertest.RabbitAMQP, "amqp", fmt.Sprintf("amqp_url: [amqp://guest:guest@%s/]\n", brokertest.RabbitAMQP.Addr)},
		{"RabbitMQ-STOMP", brokertest.RabbitSTOMP, "stomp", fmt.Sprintf("stomp_uri: %q\n", brokertest.RabbitSTOMP.Addr)},
		{"ActiveMQ-STOMP", brokertest.ActiveMQSTOMP, "stomp", fmt.Sprintf("stomp_uri: %q\n", brokertest.ActiveMQSTOMP.Addr)},
	} {
		t.Run(c.name, func(t *testing.T) {
			brokertest.Use(t, c.broker)
			b := newBus(t)
			cfg := benchConfig(t, b, c.config)
			out, errOut, code := b.run("", "bench", "--config", cfg, "--transport", c.kind, "--count", "2000", "--json")
			if code != 0 {
				t.Fatalf("bench exited %d; stderr:\n%s", code, errOut)
			}
			r := decodeBench(t, out, errOut)
			checkBench(t, r, 2000)
			if r.From != c.kind || r.To != c.kind {
				t.Errorf("from %q to %q, want %s", r.From, r.To, c.kind)
			}
		})
	}
}

// TestBenchThroughBridge: publish on ZeroMQ (through the relay), receive
// from RabbitMQ over AMQP, with a `fedmsg bridge` process routing the
// bench's topics from the bus into RabbitMQ.
func TestBenchThroughBridge(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	b.startRelay()
	amqpURL := fmt.Sprintf("amqp://guest:guest@%s/", brokertest.RabbitAMQP.Addr)
	bridgeCfg := filepath.Join(b.dir, "bridge.yaml")
	if err := os.WriteFile(bridgeCfg, []byte(fmt.Sprintf(`transports:
  bus: {kind: zmq}
  rabbit: {kind: amqp, amqp_url: [%q]}
routes:
  - {name: bench, from: bus, to: rabbit, topics: ["org.fedoraproject.dev.bench."]}
`, amqpURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	bridge := b.start("bridge", "--config", bridgeCfg)
	bridge.waitStderr(t, "route started")
	cfg := benchConfig(t, b, fmt.Sprintf("amqp_url: [%q]\n", amqpURL))
	out, errOut, code := b.run("", "bench", "--config", cfg, "--from", "zmq", "--to", "amqp", "--count", "2000", "--json")
	if code != 0 {
		t.Fatalf("bench exited %d; stderr:\n%s\nbridge stderr:\n%s", code, errOut, bridge.stderr.String())
	}
	r := decodeBench(t, out, errOut)
	checkBench(t, r, 2000)
	if r.From != "zmq" || r.To != "amqp" {
		t.Errorf("from %q to %q, want zmq to amqp", r.From, r.To)
	}
}

// TestBenchInterrupt: SIGINT stops sending; what was sent is waited for
// and reported, and nothing lost is exit 0.
func TestBenchInterrupt(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	p := b.start("bench", "--rate", "1000", "--duration", "10m", "--json")
	time.Sleep(2 * time.Second) // the probes come through within it, then a second or so of sending
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("bench exited %d after SIGINT; stderr:\n%s", code, p.stderr.String())
	}
	var lines []string
	for l := range p.lines {
		lines = append(lines, l)
	}
	r := decodeBench(t, strings.Join(lines, "\n"), p.stderr.String())
	if !r.Interrupted || r.Sent == 0 || r.Received != r.Sent || r.Lost != 0 {
		t.Errorf("interrupted %v sent %d received %d lost %d; want true, > 0, all, 0", r.Interrupted, r.Sent, r.Received, r.Lost)
	}
}

// TestBenchUsage: bad flags and configuration exit 2 naming the flag or
// key at fault.
func TestBenchUsage(t *testing.T) {
	b := newBus(t)
	// The same set-up with relay_inbound emptied.
	noRelay := *b
	noRelay.env = append(slices.Clone(b.env), "FEDMSG_RELAY_INBOUND=[]")
	for _, c := range []struct {
		bus  *bus
		args []string
		want string
	}{
		{b, []string{"--transport", "mqtt"}, "--transport"},
		{b, []string{"--from", "zmq", "--to", "kafka"}, "--to"},
		{b, []string{"--window", "0"}, "--window"},
		{b, []string{"--size", "20"}, "--size"},
		{b, []string{"--rate", "-1"}, "--rate"},
		{&noRelay, nil, "relay_inbound"},
		{b, []string{"--transport", "stomp"}, "stomp_uri"},
		{b, []string{"--transport", "amqp"}, "amqp_url"},
	} {
		_, errOut, code := c.bus.run("", append([]string{"bench"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("bench %v: exit %d, stderr %q; want 2 naming %s", c.args, code, errOut, c.want)
		}
	}
}
