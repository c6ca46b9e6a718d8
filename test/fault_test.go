package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
)

// The fault campaign (issue 8): real brokers, a real `fedmsg bridge`
// process, and a fault in the middle of a stream; each scenario counts
// what was sent, what reached the sink (lost, duplicated) and the bridge's
// peak memory, and prints one line of the table the README quotes.
//
//	go test -count=1 -v -run TestFaultCampaign ./test/              # 5,000 messages a scenario
//	FAULT_LONG=1 go test -count=1 -v -timeout 30m -run TestFaultCampaign ./test/  # 50,000
//
// FAULT_REPORT=FILE also writes the table to FILE.
//
// Guarantees asserted: on every at-least-once route 0 lost, and at most
// faultInFlight duplicates per crash (the messages the source had handed
// out unacked, bounded by amqp_prefetch = max_batch); the bridge's peak
// RSS below faultRSSBound in every scenario.

// faultInFlight is the in-flight window of the at-least-once routes: the
// AMQP source's prefetch and the bridge's max_batch. A crash can only
// duplicate messages the source delivered and had not seen acked.
const faultInFlight = 100

func TestFaultCampaign(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	brokertest.Use(t, brokertest.RabbitSTOMP)
	brokertest.Use(t, brokertest.ActiveMQSTOMP)
	for _, s := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"rabbitmq-sigkill/amqp-queue-to-activemq", faultRabbitKillQueue},
		{"rabbitmq-sigkill/zmq-to-amqp", faultRabbitKillZMQ},
		{"activemq-sigkill/amqp-queue-to-activemq", faultActiveMQKill},
		{"bridge-sigkill/amqp-queue-to-amqp", faultBridgeKill},
		{"stomp-failover/zmq-to-stomp-list", faultSTOMPFailover},
		{"proxy-stall-then-cut/amqp-queue-to-activemq", faultProxyStallCut},
		{"slow-sink/zmq-to-activemq", faultSlowSink},
	} {
		t.Run(s.name, s.run)
	}
	faultTable.mu.Lock()
	defer faultTable.mu.Unlock()
	var out strings.Builder
	fmt.Fprintf(&out, "fault campaign, %d messages a scenario (FAULT_LONG=%q):\n%s\n", faultN(), os.Getenv("FAULT_LONG"), formatFaultHeader())
	for _, r := range faultTable.rows {
		fmt.Fprintln(&out, formatFaultRow(r))
	}
	t.Log("\n" + out.String())
	if path := os.Getenv("FAULT_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Errorf("FAULT_REPORT: %v", err)
		}
	}
}

// queueSource makes the source of the broker-source scenarios: a durable
// queue on a private exchange of RabbitMQ holding n persistent messages,
// all confirmed before the bridge starts (so every one of them must come
// out: nothing is lost before the bridge).
type queueSource struct {
	prefix, exchange, queue, topic string
	ta                             *tally
}

func newQueueSource(t *testing.T, n int) *queueSource {
	t.Helper()
	q := &queueSource{prefix: fmt.Sprintf("org.fault%d", time.Now().UnixNano())}
	q.exchange = faultExchange(t)
	q.queue = "gofedmsg.fault." + strings.TrimPrefix(q.prefix, "org.")
	q.topic = q.prefix + ".dev.fault.m"
	q.ta = newTally(q.prefix, n)
	faultQueue(t, q.queue, q.exchange, q.prefix+".#")
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = q.ta.body(q.topic, i)
	}
	publishConfirmed(t, q.exchange, q.topic, bodies)
	return q
}

// transportYAML is the bridge's source transport for q.
func (q *queueSource) transportYAML() string {
	return fmt.Sprintf("{kind: amqp, amqp_url: [%s], amqp_exchange: %s, amqp_queue: %s, amqp_prefetch: %d}",
		rabbitURL(), q.exchange, q.queue, faultInFlight)
}

// faultExchange declares a durable topic exchange of the test's own and
// deletes it at the end on a fresh connection (RabbitMQ may have been
// killed under the first).
func faultExchange(t *testing.T) string {
	t.Helper()
	ch := plainAMQPChannel(t, rabbitURL())
	name := fmt.Sprintf("gofedmsg.fault.%d", time.Now().UnixNano())
	if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(rabbitURL())
		if err != nil {
			t.Logf("deleting exchange %s: %v", name, err)
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.ExchangeDelete(name, false, false)
		}
	})
	return name
}

// bridgeConfig is a one-route bridge configuration file: src -> dst.
func bridgeConfig(t *testing.T, b *bus, src, dst, topic, delivery, extra string) string {
	t.Helper()
	return writeConfig(t, b, "bridge.yaml", fmt.Sprintf(`transports:
  src: %s
  dst: %s
routes:
  - {name: fault, from: src, to: dst, topics: ["%s."], delivery: %s}
bridge: {max_batch: %d%s}
`, src, dst, topic, delivery, faultInFlight, extra))
}

// awaitFirst waits until the stream reaches the sink (at least want
// distinct messages), failing with the bridge's log otherwise.
func awaitFirst(t *testing.T, ta *tally, want int, br *watchedBridge) int {
	t.Helper()
	if !ta.waitDistinct(want, 30*time.Second) {
		t.Fatalf("only %d messages reached the sink; bridge stderr:\n%s", ta.distinct(), br.stderr.String())
	}
	return ta.distinct()
}

// checkAtLeastOnce asserts the campaign's promise for an at-least-once
// route that went through `crashes` faults.
func checkAtLeastOnce(t *testing.T, ta *tally, crashes int, br *watchedBridge) {
	t.Helper()
	_, lost, dups := ta.counts()
	if lost > 0 {
		t.Errorf("%d messages lost on an at-least-once route (first missing: %v); bridge stderr:\n%s", lost, ta.missing(), br.stderr.String())
	}
	if dups > crashes*faultInFlight {
		t.Errorf("%d duplicates after %d fault(s): more than the in-flight window of %d each", dups, crashes, faultInFlight)
	}
	if o := ta.others(); o > 0 {
		t.Errorf("the sink got %d messages that were never sent", o)
	}
}

// finishAtLeastOnce ends an at-least-once scenario: it waits up to
// within for all of the queue source's messages at the sink, stops br
// (whose peak memory so far is peak) cleanly, checks that nothing was
// lost, duplicates stayed within crashes rounds and memory within the
// bound, and records the row.
func finishAtLeastOnce(t *testing.T, q *queueSource, br *watchedBridge, peak int64, within time.Duration, crashes int, scenario string, start time.Time, note string) {
	t.Helper()
	q.ta.waitDistinct(q.ta.n, within)
	q.ta.settle(2 * time.Second)
	peak = max(peak, br.stopClean(t))
	checkAtLeastOnce(t, q.ta, crashes, br)
	checkRSS(t, peak)
	recv, lost, dups := q.ta.counts()
	recordFault(t, faultResult{scenario, "at-least-once", q.ta.n, recv, lost, dups, peak, time.Since(start), note})
}

func checkRSS(t *testing.T, peak int64) {
	t.Helper()
	if peak > faultRSSBound {
		t.Errorf("the bridge's peak RSS was %.1f MiB, above the %d MiB bound", float64(peak)/(1<<20), faultRSSBound>>20)
	}
}

// brokerToActiveMQ is the set-up of the scenarios whose at-least-once
// route takes a durable RabbitMQ queue to ActiveMQ over STOMP (stompURI:
// ActiveMQ, or a proxy in front of it), read by a test subscriber
// (durable: see readSTOMP). It returns the source and the started bridge.
func brokerToActiveMQ(t *testing.T, b *bus, n int, stompURI, extraSTOMP string, durable bool) (*queueSource, *watchedBridge) {
	t.Helper()
	q := newQueueSource(t, n)
	readSTOMP(t, brokertest.ActiveMQSTOMP, nil, q.prefix, durable, q.ta)
	cfg := bridgeConfig(t, b, q.transportYAML(),
		fmt.Sprintf("{kind: stomp, stomp_uri: %q%s}", stompURI, extraSTOMP), q.prefix, "at-least-once", "")
	return q, startWatchedBridge(b, "--config", cfg)
}

// 1a. RabbitMQ, the source, crashes (SIGKILL of its Erlang VM) while the
// bridge forwards its durable queue to ActiveMQ, and is started again:
// every message arrives; the only duplicates are those RabbitMQ
// redelivers because their acks died with it.
func faultRabbitKillQueue(t *testing.T) {
	brokertest.Claim(t)
	n := faultN()
	b := newBus(t)
	q, br := brokerToActiveMQ(t, b, n, brokertest.ActiveMQSTOMP.Addr, "", false)
	start := time.Now()
	at := awaitFirst(t, q.ta, n/10, br)
	killRabbitMQ(t)
	if at >= n {
		t.Fatalf("all %d messages crossed before RabbitMQ was killed: nothing tested", n)
	}
	restartRabbitMQ(t)
	t.Logf("RabbitMQ killed with %d of %d at the sink, back after %v", at, n, time.Since(start).Round(time.Millisecond))
	finishAtLeastOnce(t, q, br, 0, 60*time.Second, 1, "RabbitMQ SIGKILL + restart (source: durable queue → ActiveMQ STOMP)", start,
		fmt.Sprintf("killed at %d received", at))
}

// 1b. RabbitMQ, the sink, crashes while the bridge carries the ZeroMQ bus
// into it (logger -> relay -> bridge -> RabbitMQ durable queue). Without a
// spool this route is at-most-once: what the bridge held when the broker
// died is reported as lost. With the spool (spool_dir) it is at-least-once
// and must lose nothing.
func faultRabbitKillZMQ(t *testing.T) {
	brokertest.Claim(t)
	n := faultN()
	spool := spoolAvailable(t)
	b := newBus(t)
	prefix := fmt.Sprintf("org.fault%d", time.Now().UnixNano())
	b.env = append(b.env, "FEDMSG_TOPIC_PREFIX="+prefix)
	ta := newTally(prefix, n)
	x := faultExchange(t)
	queue := "gofedmsg.fault." + strings.TrimPrefix(prefix, "org.")
	faultQueue(t, queue, x, prefix+".dev.logger.#")
	probes := plainAMQPConsumerOn(t, rabbitURL(), x, prefix+".dev.e2e.probe")
	delivery, extra := "at-most-once", ""
	if spool {
		delivery = "at-least-once"
		extra = fmt.Sprintf(", spool_dir: %q", t.TempDir())
	}
	cfg := bridgeConfig(t, b, "{kind: zmq}",
		fmt.Sprintf("{kind: amqp, amqp_url: [%s], amqp_exchange: %s}", rabbitURL(), x), prefix, delivery, extra)
	b.startRelay()
	br := startWatchedBridge(b, "--config", cfg)
	awaitProbe(t, b, br, func() bool {
		select {
		case <-probes:
			return true
		case <-time.After(300 * time.Millisecond):
			return false
		}
	})

	start := time.Now()
	sent, wait := pacedStream(t, b, n, 1000, 5)
	at := sent()
	killRabbitMQ(t)
	restartRabbitMQ(t)
	wait()
	// The bridge reconnects with backoff; its queue fills until then.
	drainQueueUntil(t, queue, ta, n, 20*time.Second)
	peak := br.stopClean(t)
	recv, lost, dups := ta.counts()
	if spool {
		checkAtLeastOnce(t, ta, 1, br)
	}
	checkRSS(t, peak)
	note := fmt.Sprintf("killed at %d sent; no spool in this build", at)
	if spool {
		note = fmt.Sprintf("killed at %d sent; spool_dir set", at)
	}
	recordFault(t, faultResult{"RabbitMQ SIGKILL + restart (ZeroMQ bus → RabbitMQ AMQP)", delivery,
		n, recv, lost, dups, peak, time.Since(start), note})
}

// awaitProbe publishes logger probes until got reports one crossed the
// bridge (the ZeroMQ subscriptions settle asynchronously).
func awaitProbe(t *testing.T, b *bus, br *watchedBridge, got func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
			t.Fatalf("probe logger exited %d: %s", code, errOut)
		}
		if got() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe crossed the bridge within 30s; bridge stderr:\n%s", br.stderr.String())
		}
	}
}

// drainQueueUntil reads a durable queue until want distinct messages or
// idle without any, reconnecting while RabbitMQ comes back.
func drainQueueUntil(t *testing.T, queue string, ta *tally, want int, idle time.Duration) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for ta.distinct() < want && time.Now().Before(deadline) {
		before := ta.distinct()
		drainQueue(t, queue, ta, want, idle)
		if ta.distinct() == before {
			return // idle for a whole round: nothing more is coming
		}
	}
}

// 2. ActiveMQ, the sink, crashes (SIGKILL, as brokertest.Stop does) while
// the bridge forwards a durable RabbitMQ queue into it, and is started
// again: the bridge's unconfirmed publishes are redelivered by RabbitMQ
// and nothing is lost; the durable subscriber gets what ActiveMQ stored.
func faultActiveMQKill(t *testing.T) {
	brokertest.Claim(t)
	// ActiveMQ writes each message for the durable subscriber to its
	// journal (a few hundred a second here): half the messages keep the
	// campaign's time in bounds.
	n := faultN() / 2
	b := newBus(t)
	q, br := brokerToActiveMQ(t, b, n, brokertest.ActiveMQSTOMP.Addr, "", true)
	start := time.Now()
	at := awaitFirst(t, q.ta, n/10, br)
	brokertest.Stop(t, brokertest.ActiveMQSTOMP)
	if at >= n {
		t.Fatalf("all %d messages crossed before ActiveMQ was killed: nothing tested", n)
	}
	brokertest.Start(t, brokertest.ActiveMQSTOMP)
	t.Logf("ActiveMQ killed with %d of %d at the sink, back after %v", at, n, time.Since(start).Round(time.Millisecond))
	finishAtLeastOnce(t, q, br, 0, 60*time.Second, 1, "ActiveMQ SIGKILL + restart (durable queue → ActiveMQ STOMP)", start,
		fmt.Sprintf("killed at %d received", at))
}

// 3. The bridge itself crashes (SIGKILL) mid-stream and is started
// again: a durable RabbitMQ queue to another exchange, nothing lost, and
// the duplicates no more than the messages it had in flight.
func faultBridgeKill(t *testing.T) {
	n := faultN()
	b := newBus(t)
	q := newQueueSource(t, n)
	dst := faultExchange(t)
	sink := plainAMQPConsumerOn(t, rabbitURL(), dst, "#")
	go func() {
		for d := range sink {
			q.ta.add(d.Body)
		}
	}()
	cfg := bridgeConfig(t, b, q.transportYAML(),
		fmt.Sprintf("{kind: amqp, amqp_url: [%s], amqp_exchange: %s}", rabbitURL(), dst), q.prefix, "at-least-once", "")
	start := time.Now()
	first := startWatchedBridge(b, "--config", cfg)
	at := awaitFirst(t, q.ta, n/5, first)
	peak := first.kill(t)
	if at >= n {
		t.Fatalf("all %d messages crossed before the bridge was killed: nothing tested", n)
	}
	second := startWatchedBridge(b, "--config", cfg)
	finishAtLeastOnce(t, q, second, peak, 30*time.Second, 1, "bridge SIGKILL + restart (durable queue → RabbitMQ AMQP)", start,
		fmt.Sprintf("killed at %d received", at))
}

// 4. STOMP failover: one stomp_uri lists RabbitMQ then ActiveMQ; RabbitMQ
// is stopped mid-stream and the stream goes on through ActiveMQ. The
// source is the ZeroMQ bus (at-most-once without the spool: what was in
// hand when RabbitMQ left may be lost, and is reported). RabbitMQ's part
// is read from a durable queue bound to amq.topic once it is back.
func faultSTOMPFailover(t *testing.T) {
	brokertest.Claim(t)
	n := faultN()
	spool := spoolAvailable(t)
	b := newBus(t)
	prefix := fmt.Sprintf("org.fault%d", time.Now().UnixNano())
	b.env = append(b.env, "FEDMSG_TOPIC_PREFIX="+prefix)
	all := newTally(prefix, n)
	viaActiveMQ := newTally(prefix, n)
	queue := "gofedmsg.fault." + strings.TrimPrefix(prefix, "org.")
	faultQueue(t, queue, "amq.topic", prefix+".dev.logger.#")
	probes := plainAMQPConsumer(t, rabbitURL(), prefix+".dev.e2e.probe")
	readSTOMP(t, brokertest.ActiveMQSTOMP, nil, prefix, false, viaActiveMQ)
	delivery, extra := "at-most-once", ""
	if spool {
		delivery = "at-least-once"
		extra = fmt.Sprintf(", spool_dir: %q", t.TempDir())
	}
	cfg := bridgeConfig(t, b, "{kind: zmq}",
		fmt.Sprintf("{kind: stomp, stomp_uri: \"%s,%s\"}", brokertest.RabbitSTOMP.Addr, brokertest.ActiveMQSTOMP.Addr),
		prefix, delivery, extra)
	b.startRelay()
	br := startWatchedBridge(b, "--config", cfg)
	br.waitStderr(t, "stomp: connected")
	if !strings.Contains(br.stderr.String(), brokertest.RabbitSTOMP.Addr) {
		t.Fatalf("the bridge did not connect to RabbitMQ, first in stomp_uri; stderr:\n%s", br.stderr.String())
	}
	awaitProbe(t, b, br, func() bool {
		select {
		case <-probes:
			return true
		case <-time.After(300 * time.Millisecond):
			return false
		}
	})

	start := time.Now()
	sent, wait := pacedStream(t, b, n, 1000, 5)
	at := sent()
	brokertest.Stop(t, brokertest.RabbitSTOMP)
	wait()
	viaActiveMQ.waitDistinct(n, 5*time.Second) // until it is quiet
	brokertest.Start(t, brokertest.RabbitSTOMP)
	viaRabbit := newTally(prefix, n)
	drainQueueUntil(t, queue, viaRabbit, n, 3*time.Second)
	peak := br.stopClean(t)
	for _, ta := range []*tally{viaRabbit, viaActiveMQ} {
		ta.mu.Lock()
		for id, c := range ta.seen {
			all.seen[id] += c
		}
		ta.mu.Unlock()
	}
	r, _, _ := viaRabbit.counts()
	a, _, _ := viaActiveMQ.counts()
	if a == 0 {
		t.Errorf("nothing reached ActiveMQ after RabbitMQ stopped: no failover; bridge stderr:\n%s", br.stderr.String())
	}
	if spool {
		checkAtLeastOnce(t, all, 1, br)
	}
	checkRSS(t, peak)
	recv, lost, dups := all.counts()
	recordFault(t, faultResult{"STOMP failover RabbitMQ → ActiveMQ (ZeroMQ bus → stomp_uri list)", delivery,
		n, recv, lost, dups, peak, time.Since(start), fmt.Sprintf("RabbitMQ stopped at %d sent; %d via RabbitMQ, %d via ActiveMQ", at, r, a)})
}

// 5. A TCP proxy between the bridge and ActiveMQ stalls (the connection
// stays open, nothing moves, the broker's heart-beats stop) for longer
// than twice stomp_heartbeat, then every connection through it is cut.
// The bridge leaves the silent connection by itself, reconnects, and again
// after the cut; on this at-least-once route nothing is lost.
func faultProxyStallCut(t *testing.T) {
	const heartbeat = 500 * time.Millisecond
	n := faultN()
	b := newBus(t)
	// 500 kB/s keeps the stream going for seconds, so the faults land in
	// its middle.
	proxy := startProxy(t, brokertest.ActiveMQSTOMP.Addr, 500<<10)
	q, br := brokerToActiveMQ(t, b, n, proxy.addr(), fmt.Sprintf(", stomp_heartbeat: %d", heartbeat.Milliseconds()), false)
	start := time.Now()
	at := awaitFirst(t, q.ta, n/10, br)
	before := proxy.connections()
	proxy.stall()
	stalledAt := time.Now()
	for proxy.connections() == before {
		if time.Since(stalledAt) > 10*time.Second {
			t.Fatalf("the bridge did not leave a connection silent for 10s (stomp_heartbeat %v); stderr:\n%s", heartbeat, br.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	detected := time.Since(stalledAt)
	time.Sleep(max(0, 4*heartbeat-detected)) // the stall lasts well beyond the heart-beat
	atCut := q.ta.distinct()
	before = proxy.connections()
	proxy.cut()
	cutAt := time.Now()
	for proxy.connections() == before {
		if time.Since(cutAt) > 15*time.Second {
			t.Fatalf("the bridge did not reconnect within 15s of the cut; stderr:\n%s", br.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if atCut >= n {
		t.Errorf("every message had crossed before the cut: the cut hit an idle connection")
	}
	finishAtLeastOnce(t, q, br, 0, 30*time.Second, 2, "TCP proxy stalls then cuts bridge ↔ ActiveMQ (durable queue → STOMP)", start,
		fmt.Sprintf("stalled at %d received, left after %v (heart-beat %v); cut at %d", at, detected.Round(10*time.Millisecond), heartbeat, atCut))
}

// 6. A sink slower than the publisher: the ZeroMQ bus into ActiveMQ
// through a proxy that passes 1 MB/s, the logger publishing as fast as
// it can. The bridge's memory stays under the bound (high_water_mark
// bounds what ZeroMQ queues; the route holds max_batch), the route is
// at-most-once, and the bridge's counters account for every message it
// took: in = out + dropped, out = what reached the sink. What ZeroMQ
// dropped at its high-water mark before the bridge saw it no process can
// count (libzmq drops silently), but it is the relay's out minus the
// bridge's in, both on /metrics: asserted equal to the loss at the sink.
func faultSlowSink(t *testing.T) {
	n := 4 * faultN()
	b := newBus(t)
	prefix := fmt.Sprintf("org.fault%d", time.Now().UnixNano())
	b.env = append(b.env, "FEDMSG_TOPIC_PREFIX="+prefix, "FEDMSG_HIGH_WATER_MARK=1000")
	ta := newTally(prefix, n)
	proxy := startProxy(t, brokertest.ActiveMQSTOMP.Addr, 1<<20)
	readSTOMP(t, brokertest.ActiveMQSTOMP, nil, prefix, false, ta)
	cfg := bridgeConfig(t, b, "{kind: zmq}", fmt.Sprintf("{kind: stomp, stomp_uri: %q}", proxy.addr()), prefix, "at-most-once", "")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	relayAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b.start("relay", "--metrics-addr", relayAddr).waitStderr(t, "relay started")
	br := startWatchedBridge(b, "--config", cfg, "--metrics-addr", addr)
	// The logger's probes reach the sink as bodies that are not test
	// messages: counted apart, and taken out of the bridge's counts below.
	awaitProbe(t, b, br, func() bool {
		select {
		case <-ta.changed:
		case <-time.After(300 * time.Millisecond):
		}
		return ta.others() > 0
	})
	ta.settle(time.Second)
	_, body := httpGet("http://" + addr + "/metrics")
	in0 := bridgeMetric(body, "fedmsg_messages_in_total", "fault")
	out0 := bridgeMetric(body, "fedmsg_messages_out_total", "fault")
	_, body = httpGet("http://" + relayAddr + "/metrics")
	relay0 := bridgeMetric(body, "fedmsg_messages_out_total", "relay")

	start := time.Now()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	logger := b.command("logger")
	logger.Stdin = strings.NewReader(in.String())
	if out, err := logger.CombinedOutput(); err != nil {
		t.Fatalf("logger: %v\n%s", err, out)
	}
	published := time.Since(start)
	ta.waitDistinct(n, 5*time.Second) // until the sink is quiet
	ta.mu.Lock()
	drained := ta.last.Sub(start)
	ta.mu.Unlock()
	// The bridge's own account, once it is idle.
	var inN, outN, dropped float64
	waitHTTP(t, "http://"+addr+"/metrics", "an idle bridge", 30*time.Second, func(code int, body string) bool {
		inN = bridgeMetric(body, "fedmsg_messages_in_total", "fault") - in0
		outN = bridgeMetric(body, "fedmsg_messages_out_total", "fault") - out0
		dropped = bridgeMetric(body, "fedmsg_messages_dropped_total", "fault")
		return code == 200 && inN == outN+dropped
	})
	_, body = httpGet("http://" + relayAddr + "/metrics")
	relayOut := bridgeMetric(body, "fedmsg_messages_out_total", "relay") - relay0
	peak := br.stopClean(t)
	recv, lost, dups := ta.counts()
	checkRSS(t, peak)
	// The loss is visible to an operator as the difference of two
	// counters: what the relay sent on, what the bridge took. (On a
	// loaded machine the relay's own inbound high-water mark may drop
	// some of the burst too; those never reach its out counter.)
	if int(relayOut) > n {
		t.Errorf("the relay counted %v messages sent on, more than the %d published", relayOut, n)
	}
	if beforeRelay := n - int(relayOut); int(relayOut-inN)+int(dropped)+beforeRelay != lost {
		t.Errorf("published %d - relay out %v (%d dropped before it) + relay out - bridge in %v + bridge dropped %v != %d lost at the sink",
			n, relayOut, beforeRelay, inN, dropped, lost)
	}
	if drained < 2*published {
		t.Errorf("the sink kept up (published in %v, drained in %v): the scenario did not make a slow subscriber", published, drained)
	}
	if int(outN) != recv+dups {
		t.Errorf("the bridge counted %v messages out, the sink got %d (+%d duplicates)", outN, recv, dups)
	}
	recordFault(t, faultResult{"slow sink: ZeroMQ bus → ActiveMQ through a 1 MB/s proxy", "at-most-once",
		n, recv, lost, dups, peak, time.Since(start),
		fmt.Sprintf("published in %v, drained in %v; relay out %v, bridge in %v, out %v, dropped %v: %v dropped at the ZeroMQ high-water mark (1000) between them",
			published.Round(10*time.Millisecond), drained.Round(10*time.Millisecond), relayOut, inN, outN, dropped, relayOut-inN)})
}
