package test

// The bridge's durable spool end to end, across processes: a ZeroMQ ->
// RabbitMQ AMQP route with delivery: at-least-once (possible from ZeroMQ
// only with a spool) loses nothing when RabbitMQ is stopped and started
// in the middle of a stream, nor when the bridge itself is killed with
// SIGKILL and restarted.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/bridge"
	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/spool"
)

// spoolMaxBatch is the routes' max_batch: the most messages in flight,
// and so the most a fault may make the sink receive twice.
const spoolMaxBatch = 64

// spoolCollector reads a durable queue bound to amq.topic, reconnecting
// across broker restarts, and counts the "line N" messages of the stream
// by N. A delivery is acked only once counted, so a broker restart while
// the test reads loses nothing from its view.
type spoolCollector struct {
	mu     sync.Mutex
	counts map[int]int
	probes int
}

func newSpoolCollector(t *testing.T, prefix string) *spoolCollector {
	t.Helper()
	url := "amqp://guest:guest@" + brokertest.RabbitAMQP.Addr + "/"
	queue := "gofedmsg.spooltest." + strings.TrimPrefix(prefix, "org.")
	declare := func() (*amqp.Connection, *amqp.Channel, error) {
		conn, err := amqp.Dial(url)
		if err != nil {
			return nil, nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			_, err = ch.QueueDeclare(queue, true, false, false, false, nil)
		}
		if err == nil {
			err = ch.QueueBind(queue, prefix+".#", "amq.topic", false, nil)
		}
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		return conn, ch, nil
	}
	// Declared before the bridge starts, so nothing it sends is missed.
	conn, _, err := declare()
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	c := &spoolCollector{counts: map[int]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
		if conn, _, err := declare(); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(queue, false, false, false)
			}
			conn.Close()
		}
	})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			conn, ch, err := declare()
			if err != nil {
				time.Sleep(200 * time.Millisecond) // the broker is down
				continue
			}
			ds, err := ch.Consume(queue, "", false, false, false, false, nil)
			if err != nil {
				conn.Close()
				continue
			}
		read:
			for {
				select {
				case <-ctx.Done():
					break read
				case d, ok := <-ds:
					if !ok {
						break read
					}
					c.count(d.RoutingKey, d.Body)
					_ = d.Ack(false)
				}
			}
			conn.Close()
		}
	}()
	return c
}

func (c *spoolCollector) count(topic string, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if strings.HasSuffix(topic, ".probe") {
		c.probes++
		return
	}
	if i, ok := lineOf(body); ok {
		c.counts[i]++
	}
}

// lineOf is N in a logger message {"log": "line N"}.
func lineOf(body []byte) (int, bool) {
	env, err := message.DecodeObject(body)
	if err != nil {
		return 0, false
	}
	msg, _ := env["msg"].(map[string]any)
	s, _ := msg["log"].(string)
	n, err := strconv.Atoi(strings.TrimPrefix(s, "line "))
	return n, err == nil && strings.HasPrefix(s, "line ")
}

// stats returns how many distinct lines arrived and how many copies
// beyond the first.
func (c *spoolCollector) stats() (distinct, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.counts {
		distinct++
		dups += n - 1
	}
	return distinct, dups
}

// missing lists the lines of want that never arrived.
func (c *spoolCollector) missing(want []int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, i := range want {
		if c.counts[i] == 0 {
			out = append(out, i)
		}
	}
	return out
}

func (c *spoolCollector) waitFor(t *testing.T, what string, within time.Duration, br *proc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			d, dups := c.stats()
			t.Fatalf("%s: not within %v (%d distinct lines, %d duplicates); bridge stderr:\n%s", what, within, d, dups, br.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settle publishes probes until one crosses the bridge: the bridge's
// ZeroMQ subscription settles asynchronously.
func (c *spoolCollector) settle(t *testing.T, b *bus, br *proc) {
	t.Helper()
	c.mu.Lock()
	before := c.probes
	c.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
			t.Fatalf("probe logger exited %d: %s", code, errOut)
		}
		c.mu.Lock()
		got := c.probes > before
		c.mu.Unlock()
		if got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe crossed the bridge within 60s; bridge stderr:\n%s", br.stderr.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// streamLines publishes "line from" .. "line to-1" through the relay with
// one logger process, feeding its stdin in chunks with a pause between
// them so that the stream lasts about pace * (to-from)/100, and returns
// when the logger exited.
func streamLines(t *testing.T, b *bus, from, to int, pace time.Duration) {
	t.Helper()
	logger := b.command("logger")
	stdin, err := logger.StdinPipe()
	if err != nil {
		t.Error(err)
		return
	}
	var errb strings.Builder
	logger.Stderr = &errb
	if err := logger.Start(); err != nil {
		t.Error(err)
		return
	}
	for i := from; i < to; i++ {
		fmt.Fprintf(stdin, "line %d\n", i)
		if pace > 0 && (i-from)%100 == 99 {
			time.Sleep(pace)
		}
	}
	stdin.Close()
	if err := logger.Wait(); err != nil {
		t.Errorf("logger: %v\n%s", err, errb.String())
	}
}

func spoolBridgeConfig(t *testing.T, b *bus, prefix, dir string) string {
	return writeConfig(t, b, "bridge.yaml", fmt.Sprintf(`transports:
  bus: {kind: zmq}
  rabbit: {kind: amqp, amqp_url: [amqp://guest:guest@%s/]}
routes:
  - {name: bus-to-rabbit, from: bus, to: rabbit, topics: ["%s."], delivery: at-least-once}
bridge: {max_batch: %d, spool_dir: %s}
`, brokertest.RabbitAMQP.Addr, prefix, spoolMaxBatch, dir))
}

func lines(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// RabbitMQ stopped in the middle of a stream and started again: the
// bridge keeps taking the bus's messages into its spool and sends them
// all once RabbitMQ is back.
func TestSpoolBridgeSurvivesRabbitMQRestart(t *testing.T) {
	brokertest.Claim(t)
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	prefix := fmt.Sprintf("org.spool%d", time.Now().UnixNano())
	b.env = append(b.env, "FEDMSG_TOPIC_PREFIX="+prefix)
	c := newSpoolCollector(t, prefix)
	cfg := spoolBridgeConfig(t, b, prefix, t.TempDir())
	b.startRelay()
	br := b.start("bridge", "--config", cfg)
	br.waitStderr(t, "spool=")
	if !strings.Contains(br.stderr.String(), "on disk in the spool") {
		t.Errorf("the route's guarantee is not logged as spooled; stderr:\n%s", br.stderr.String())
	}
	c.settle(t, b, br)

	const n = 4000
	streamLines(t, b, 0, n/2, 0)
	c.waitFor(t, "the first lines reach RabbitMQ", 60*time.Second, br, func() bool { d, _ := c.stats(); return d >= 200 })
	// The third quarter is published while RabbitMQ goes down, the last
	// one while it is down: the bridge is up, so it receives them all.
	streamed := make(chan struct{})
	go func() {
		defer close(streamed)
		streamLines(t, b, n/2, 3*n/4, 50*time.Millisecond)
	}()
	brokertest.Stop(t, brokertest.RabbitAMQP)
	<-streamed
	streamLines(t, b, 3*n/4, n, 0)
	if d, _ := c.stats(); d >= n {
		t.Fatalf("all %d lines arrived while RabbitMQ was down: the test did not cut the stream", d)
	}
	brokertest.Start(t, brokertest.RabbitAMQP)
	c.waitFor(t, "every line reaches RabbitMQ after its restart", 120*time.Second, br, func() bool { d, _ := c.stats(); return d >= n })
	if miss := c.missing(lines(0, n)); len(miss) > 0 {
		t.Fatalf("%d lines lost (first %v)", len(miss), miss[:min(10, len(miss))])
	}
	_, dups := c.stats()
	t.Logf("RabbitMQ restart: %d sent, 0 lost, %d duplicates", n, dups)
	if dups > 2*spoolMaxBatch {
		t.Errorf("%d duplicates, more than twice the in-flight window of %d", dups, spoolMaxBatch)
	}
	if code := br.stop(t, os.Interrupt); code != 0 {
		t.Errorf("bridge exited %d on SIGINT; stderr:\n%s", code, br.stderr.String())
	}
	if !strings.Contains(br.stderr.String(), "left=0") {
		t.Errorf("the bridge's spool was not empty at the end; stderr:\n%s", br.stderr.String())
	}
}

// The bridge killed with SIGKILL mid-stream and restarted: every message
// it had received (left in its spool, or already in RabbitMQ) arrives,
// and the new bridge carries what comes next. What the bus published
// while no bridge was subscribed is lost by ZeroMQ itself (PUB/SUB keeps
// nothing for an absent subscriber); it is counted, not asserted.
func TestSpoolBridgeSurvivesSIGKILL(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	prefix := fmt.Sprintf("org.spoolkill%d", time.Now().UnixNano())
	b.env = append(b.env, "FEDMSG_TOPIC_PREFIX="+prefix)
	c := newSpoolCollector(t, prefix)
	dir := t.TempDir()
	cfg := spoolBridgeConfig(t, b, prefix, dir)
	b.startRelay()
	br := b.start("bridge", "--config", cfg)
	br.waitStderr(t, "spool=")
	c.settle(t, b, br)

	const n1, n2 = 5000, 1000
	streamed := make(chan struct{})
	go func() {
		defer close(streamed)
		streamLines(t, b, 0, n1, 0)
	}()
	c.waitFor(t, "the stream reaches RabbitMQ", 60*time.Second, br, func() bool { d, _ := c.stats(); return d >= 300 })
	if err := br.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = br.cmd.Wait()
	<-streamed

	// What the dead bridge's spool holds: received, not yet confirmed.
	sp, err := spool.Open(spool.Options{Path: bridge.SpoolFile(dir, "bus-to-rabbit")})
	if err != nil {
		t.Fatal(err)
	}
	var left []int
	held := 0
	for after := uint64(0); ; {
		es, err := sp.TryRead(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		held += len(es)
		for _, e := range es {
			if i, ok := lineOf(e.Msg.Body); ok {
				left = append(left, i)
			}
		}
		after = es[len(es)-1].Seq
	}
	if err := sp.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(left) == 0 {
		t.Fatalf("the spool was empty when the bridge was killed: the test did not catch it mid-stream; stderr:\n%s", br.stderr.String())
	}
	before, _ := c.stats()

	br2 := b.start("bridge", "--config", cfg)
	br2.waitStderr(t, fmt.Sprintf("spool_recovered=%d", held))
	c.waitFor(t, "every message left in the spool arrives after the restart", 60*time.Second, br2,
		func() bool { return len(c.missing(left)) == 0 })
	c.settle(t, b, br2)
	streamLines(t, b, n1, n1+n2, 0)
	c.waitFor(t, "the stream after the restart arrives", 60*time.Second, br2,
		func() bool { return len(c.missing(lines(n1, n1+n2))) == 0 })

	distinct, dups := c.stats()
	zmqLost := n1 - (distinct - n2)
	t.Logf("bridge SIGKILL: %d sent before the kill, %d left in the spool, %d already in RabbitMQ, all %d of them delivered; "+
		"%d published while no bridge was subscribed, lost by ZeroMQ; %d sent after the restart, all delivered; %d duplicates",
		n1, len(left), before, distinct-n2, zmqLost, n2, dups)
	if dups > spoolMaxBatch {
		t.Errorf("%d duplicates, more than the in-flight window of %d", dups, spoolMaxBatch)
	}
	if code := br2.stop(t, os.Interrupt); code != 0 {
		t.Errorf("bridge exited %d on SIGINT; stderr:\n%s", code, br2.stderr.String())
	}
}

// `fedmsg logger` through RabbitMQ AMQP with spool_dir, while RabbitMQ is
// stopped: it exits 0 with the messages on disk, and the next logger run
// sends them, in order, before its own once RabbitMQ is back.
func TestSpoolLoggerThroughRabbitMQOutage(t *testing.T) {
	brokertest.Claim(t)
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	prefix := fmt.Sprintf("org.spoollog%d", time.Now().UnixNano())
	b.env = append(b.env, "FEDMSG_TOPIC_PREFIX="+prefix, "FEDMSG_ZMQ_ENABLED=false",
		"FEDMSG_AMQP_URL=amqp://guest:guest@"+brokertest.RabbitAMQP.Addr+"/", "FEDMSG_SPOOL_DIR="+t.TempDir())
	c := newSpoolCollector(t, prefix)

	brokertest.Stop(t, brokertest.RabbitAMQP)
	var in strings.Builder
	for i := range 100 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	_, errOut, code := b.run(in.String(), "logger")
	if code != 0 {
		t.Fatalf("logger with RabbitMQ down exited %d, want 0 (spooled): %s", code, errOut)
	}
	if !strings.Contains(errOut, "stay in the spool") {
		t.Errorf("logger did not say that messages stay in the spool; stderr:\n%s", errOut)
	}
	brokertest.Start(t, brokertest.RabbitAMQP)
	if _, errOut, code := b.run("", "logger", "--message", "line 100"); code != 0 {
		t.Fatalf("second logger exited %d: %s", code, errOut)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(c.missing(lines(0, 101))) > 0 {
		if time.Now().After(deadline) {
			miss := c.missing(lines(0, 101))
			t.Fatalf("%d of 101 lines never arrived (first %v)", len(miss), miss[:min(10, len(miss))])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, dups := c.stats(); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
}
