package test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
)

// Helpers of the fault campaign (fault_test.go): the tally of what a sink
// received, the peak memory of a process, crashing and restarting the
// brokers, a TCP proxy that can stall and cut, and broker consumers that
// survive the faults they watch.

// faultN is the number of messages a scenario sends: modest for `make
// test`, the issue's 50,000 with FAULT_LONG=1.
func faultN() int {
	if os.Getenv("FAULT_LONG") != "" {
		return 50000
	}
	return 5000
}

// faultRSSBound is the peak resident memory (VmHWM) every scenario allows
// the bridge process. The bridge holds at most max_batch messages per
// route in flight plus its transports' buffers; 150 MiB leaves room for
// the Go runtime, libzmq and the TLS-less broker clients, and is far below
// what an unbounded backlog of the long variant's 50,000 messages would
// reach with the slow sink.
const faultRSSBound = 150 << 20

// faultResult is one line of the campaign's table.
type faultResult struct {
	Scenario  string
	Guarantee string
	Sent      int
	Received  int // distinct messages that reached the sink
	Lost      int
	Dups      int // copies beyond the first
	PeakRSS   int64
	Duration  time.Duration
	Note      string
}

var faultTable struct {
	mu   sync.Mutex
	rows []faultResult
}

func recordFault(t *testing.T, r faultResult) {
	t.Helper()
	faultTable.mu.Lock()
	faultTable.rows = append(faultTable.rows, r)
	faultTable.mu.Unlock()
	t.Log(formatFaultRow(r))
}

func formatFaultHeader() string {
	return "| scenario | route guarantee | sent | received | lost | duplicated | peak RSS (bridge) | duration | note |\n|---|---|---:|---:|---:|---:|---:|---:|---|"
}

func formatFaultRow(r faultResult) string {
	return fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %.1f MiB | %.1f s | %s |",
		r.Scenario, r.Guarantee, r.Sent, r.Received, r.Lost, r.Dups,
		float64(r.PeakRSS)/(1<<20), r.Duration.Seconds(), r.Note)
}

// tally counts, by msg_id, the messages a sink received out of those a
// scenario sent (ids prefix-00000 ...). Safe for concurrent use: a
// scenario may read two sinks at once.
type tally struct {
	mu      sync.Mutex
	prefix  string
	n       int
	seen    map[string]int
	strange int       // bodies that are not one of ours
	last    time.Time // when the last body arrived
	changed chan struct{}
}

func newTally(prefix string, n int) *tally {
	return &tally{prefix: prefix, n: n, seen: make(map[string]int, n), changed: make(chan struct{}, 1)}
}

func (ta *tally) id(i int) string { return fmt.Sprintf("%s-%06d", ta.prefix, i) }

// body is message i as the test publishes it on a broker.
func (ta *tally) body(topic string, i int) []byte {
	return fmt.Appendf(nil, `{"msg":{"n":%d},"msg_id":"%s","topic":"%s"}`, i, ta.id(i), topic)
}

// add records one received body: by its msg_id, or for a `fedmsg logger`
// envelope by the line it carried ("line <i>").
func (ta *tally) add(body []byte) {
	var env struct {
		MsgID string `json:"msg_id"`
		Msg   struct {
			Log string `json:"log"`
		} `json:"msg"`
	}
	id := ""
	if json.Unmarshal(body, &env) == nil {
		if strings.HasPrefix(env.MsgID, ta.prefix+"-") {
			id = env.MsgID
		} else if i, ok := strings.CutPrefix(env.Msg.Log, "line "); ok {
			if n, err := strconv.Atoi(i); err == nil {
				id = ta.id(n)
			}
		}
	}
	ta.mu.Lock()
	ta.last = time.Now()
	if id == "" {
		ta.strange++
	} else {
		ta.seen[id]++
	}
	ta.mu.Unlock()
	select {
	case ta.changed <- struct{}{}:
	default:
	}
}

// counts returns distinct messages received, lost and duplicated.
func (ta *tally) counts() (received, lost, dups int) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	for i := range ta.n {
		c := ta.seen[ta.id(i)]
		if c > 0 {
			received++
		} else {
			lost++
		}
		dups += max(c-1, 0)
	}
	return received, lost, dups
}

// others is how many bodies were not messages of this scenario.
func (ta *tally) others() int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return ta.strange
}

func (ta *tally) distinct() int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return len(ta.seen)
}

// missing names up to 10 of the ids never received, for failure messages.
func (ta *tally) missing() []string {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	var out []string
	for i := 0; i < ta.n && len(out) < 10; i++ {
		if ta.seen[ta.id(i)] == 0 {
			out = append(out, ta.id(i))
		}
	}
	return out
}

// waitDistinct waits until at least want distinct messages arrived, or
// within passed without progress; it reports whether want was reached.
func (ta *tally) waitDistinct(want int, idle time.Duration) bool {
	last, lastAt := -1, time.Now()
	for {
		d := ta.distinct()
		if d >= want {
			return true
		}
		if d != last {
			last, lastAt = d, time.Now()
		} else if time.Since(lastAt) > idle {
			return false
		}
		select {
		case <-ta.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// settle waits until nothing new has arrived for quiet: copies still on
// their way are counted.
func (ta *tally) settle(quiet time.Duration) {
	for {
		select {
		case <-ta.changed:
		case <-time.After(quiet):
			return
		}
	}
}

// rssWatch samples a process's VmHWM (its peak resident set) until the
// process is gone; the kernel keeps the peak, so sampling only has to
// happen once more just before the process is killed or stopped.
type rssWatch struct {
	mu   sync.Mutex
	peak int64
	stop chan struct{}
	done chan struct{}
}

func watchRSS(pid int) *rssWatch {
	w := &rssWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			w.sample(pid)
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *rssWatch) sample(pid int) {
	v, err := vmHWM(pid)
	if err != nil {
		return // gone
	}
	w.mu.Lock()
	w.peak = max(w.peak, v)
	w.mu.Unlock()
}

// finish samples pid once more, stops the sampler and returns the peak.
func (w *rssWatch) finish(pid int) int64 {
	w.sample(pid)
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// vmHWM reads a process's peak resident set size from /proc, in bytes.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmHWM %q: %v", pid, rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM line", pid)
}

// watchedBridge is a `fedmsg bridge` process with its memory sampled.
type watchedBridge struct {
	*proc
	rss *rssWatch
}

func startWatchedBridge(b *bus, args ...string) *watchedBridge {
	b.t.Helper()
	p := b.start(append([]string{"bridge"}, args...)...)
	return &watchedBridge{proc: p, rss: watchRSS(p.cmd.Process.Pid)}
}

// kill sends SIGKILL (a crash: nothing is drained) and returns the
// process's peak memory, sampled just before.
func (w *watchedBridge) kill(t testing.TB) int64 {
	t.Helper()
	peak := w.rss.finish(w.cmd.Process.Pid)
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w.cmd.Wait()
	return peak
}

// stopClean sends SIGTERM, requires exit 0, and returns the peak memory.
func (w *watchedBridge) stopClean(t testing.TB) int64 {
	t.Helper()
	peak := w.rss.finish(w.cmd.Process.Pid)
	if code := w.stopWithin(t, syscall.SIGTERM, shutdownBound+5*time.Second); code != 0 {
		t.Errorf("the bridge exited %d on SIGTERM, want 0; stderr:\n%s", code, w.stderr.String())
	}
	return peak
}

// brokersScript is test/brokers.sh, from the test package's directory.
const brokersScript = "./brokers.sh"

// killRabbitMQ crashes RabbitMQ: SIGKILL to its Erlang VM (beam.smp), no
// chance to flush or close connections cleanly. The caller must hold
// brokertest.Claim. RabbitMQ is started again by restartRabbitMQ, or at the
// end of the test whatever happened, so no failure leaves it down.
func killRabbitMQ(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { ensureBrokers(t) })
	out, err := exec.Command("pgrep", "-f", "beam.smp.*rabbit").Output()
	if err != nil {
		t.Fatalf("no RabbitMQ Erlang VM (pgrep -f beam.smp.*rabbit): %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("SIGKILL to RabbitMQ (pid %d): %v", pid, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for portOpen(brokertest.RabbitAMQP.Addr) {
		if time.Now().After(deadline) {
			t.Fatalf("RabbitMQ still accepts connections on %s 20s after SIGKILL", brokertest.RabbitAMQP.Addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restartRabbitMQ starts the brokers again with test/brokers.sh (which
// starts only what is down) and waits until RabbitMQ's listeners accept.
func restartRabbitMQ(t *testing.T) {
	t.Helper()
	if err := runBrokersScript(); err != nil {
		t.Fatalf("restarting RabbitMQ: %v", err)
	}
}

func runBrokersScript() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, brokersScript, "start").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s start: %v\n%s", brokersScript, err, out)
	}
	return nil
}

// ensureBrokers leaves every broker running at the end of a fault test.
func ensureBrokers(t *testing.T) {
	for _, b := range []brokertest.Broker{brokertest.RabbitAMQP, brokertest.RabbitSTOMP, brokertest.ActiveMQSTOMP} {
		if !portOpen(b.Addr) {
			if err := runBrokersScript(); err != nil {
				t.Errorf("could not start the brokers again after a fault test: %v", err)
			}
			return
		}
	}
}

func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// faultQueue declares a durable queue bound to exchange by key on a
// connection of its own, and deletes it at the end on a fresh connection
// (the first may have died with the broker).
func faultQueue(t *testing.T, name, exchange, key string) {
	t.Helper()
	ch := plainAMQPChannel(t, rabbitURL())
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(name, key, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(rabbitURL())
		if err != nil {
			t.Logf("deleting queue %s: %v", name, err)
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(name, false, false, false)
		}
	})
}

// drainQueue consumes a durable queue into ta until want distinct
// messages arrived and then nothing for a second (late copies), or nothing
// at all for quiet.
func drainQueue(t *testing.T, name string, ta *tally, want int, quiet time.Duration) {
	t.Helper()
	conn, err := amqp.Dial(rabbitURL())
	if err != nil {
		t.Fatalf("draining %s: %v", name, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("draining %s: %v", name, err)
	}
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatalf("draining %s: the channel closed", name)
			}
			ta.add(d.Body)
			if ta.distinct() >= want {
				quiet = min(quiet, time.Second)
			}
		case <-time.After(quiet):
			return
		}
	}
}

// readSTOMP reads a STOMP topic pattern into a tally, reconnecting after
// the broker goes away. With durable (ActiveMQ only) the subscription is
// durable (client-id + activemq.subscriptionName), so persistent messages
// sent while the reader is cut off wait for it, across a broker crash
// (KahaDB), and each message is acked individually after it was counted;
// ActiveMQ then writes every message to its journal, a few hundred a
// second, so only the scenario that crashes ActiveMQ asks for it. It
// returns once the first subscription is proven live by a probe.
func readSTOMP(t *testing.T, broker brokertest.Broker, login []func(*stomp.Conn) error, prefix string, durable bool, ta *tally) {
	t.Helper()
	ack := stomp.AckAuto
	if durable {
		ack = stomp.AckClientIndividual
	}
	name := fmt.Sprintf("gofedmsg-fault-%d", time.Now().UnixNano())
	dest := "/topic/" + prefix + ".#"
	if broker == brokertest.ActiveMQSTOMP {
		dest = "/topic/" + prefix + ".>"
	}
	durableName := stomp.SubscribeOpt.Header("activemq.subscriptionName", name)
	dial := func() (*stomp.Conn, *stomp.Subscription, error) {
		opts := append([]func(*stomp.Conn) error{}, login...)
		if durable {
			opts = append(opts, stomp.ConnOpt.Header("client-id", name))
		}
		conn, err := stomp.Dial("tcp", broker.Addr, opts...)
		if err != nil {
			return nil, nil, err
		}
		var sub *stomp.Subscription
		if durable {
			sub, err = conn.Subscribe(dest, ack, durableName)
		} else {
			sub, err = conn.Subscribe(dest, ack)
		}
		if err != nil {
			conn.MustDisconnect()
			return nil, nil, err
		}
		return conn, sub, nil
	}
	conn, sub, err := dial()
	if err != nil {
		t.Fatalf("subscribing to %s on %s: %v", dest, broker.Name, err)
	}
	awaitSubscription(t, conn, sub, "/topic/"+prefix+".probe")
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
		read:
			for {
				select {
				case m, ok := <-sub.C:
					if !ok || m.Err != nil {
						break read
					}
					if string(m.Body) != stompProbe {
						ta.add(m.Body)
					}
					if durable {
						conn.Ack(m)
					}
				case <-stop:
					conn.MustDisconnect()
					return
				}
			}
			conn.MustDisconnect()
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if conn, sub, err = dial(); err == nil {
					break
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		if durable {
			if err := brokertest.RemoveActiveMQDurable(broker.Addr, name, name); err != nil {
				t.Logf("removing the durable subscription %s from %s: %v", name, broker.Name, err)
			}
		}
	})
}

// faultProxy is a TCP proxy between a client (the bridge) and a broker
// that the test can stall (the connections open now stop copying, both
// ways, while their sockets stay open: a hung peer or a black-holed
// route) and cut (every connection closed at once: a network failure).
// Connections made later copy normally. rate, when set, limits the bytes
// per second from client to broker (a slow sink).
type faultProxy struct {
	ln     net.Listener
	target string
	rate   int

	mu      sync.Mutex
	conns   map[*proxied]bool
	accepts int
}

// proxied is one client connection and its broker connection.
type proxied struct {
	client, broker net.Conn
	mu             sync.Mutex
	gate           chan struct{} // closed: copying may go on
}

func (c *proxied) wait() {
	c.mu.Lock()
	g := c.gate
	c.mu.Unlock()
	<-g
}

func (c *proxied) close() {
	c.client.Close()
	c.broker.Close()
	c.open()
}

func (c *proxied) open() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.gate:
	default:
		close(c.gate)
	}
}

func startProxy(t *testing.T, target string, rate int) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, rate: rate, conns: map[*proxied]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		broker, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		c := &proxied{client: client, broker: broker, gate: make(chan struct{})}
		close(c.gate)
		p.mu.Lock()
		p.conns[c] = true
		p.accepts++
		p.mu.Unlock()
		go p.pipe(c, broker, client, p.rate)
		go p.pipe(c, client, broker, 0)
	}
}

// pipe copies src to dst until either fails, waiting while c is stalled;
// the end of either direction closes the pair.
func (p *faultProxy) pipe(c *proxied, dst, src net.Conn, rate int) {
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	buf := make([]byte, 16<<10)
	if rate > 0 {
		buf = buf[:min(len(buf), max(rate/50, 512))]
	}
	// Paced on the bytes since the start, not per read: sleeping after
	// each small read would overshoot and halve the rate.
	start, total := time.Now(), 0
	for {
		n, err := src.Read(buf)
		if n > 0 {
			c.wait()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if rate > 0 {
				total += n
				if ahead := time.Duration(total)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// stall stops copying on every connection open now.
func (p *faultProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.mu.Lock()
		c.gate = make(chan struct{})
		c.mu.Unlock()
	}
}

// cut closes every connection through the proxy.
func (p *faultProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[*proxied]bool{}
	p.mu.Unlock()
	for c := range conns {
		c.close()
	}
}

// connections is how many client connections the proxy accepted.
func (p *faultProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

// pacedLogger feeds `fedmsg logger` n lines ("line <i>") at about
// perSecond, so that a fault lands in the middle of the stream, calling
// progress with the count written so far, and returns once the logger
// exited. It runs on a goroutine of its own, so it returns its error
// rather than failing the test.
func pacedLogger(b *bus, n, perSecond int, progress func(i int)) error {
	logger := b.command("logger")
	in, err := logger.StdinPipe()
	if err != nil {
		return err
	}
	var errb syncBuffer
	logger.Stderr = &errb
	if err := logger.Start(); err != nil {
		return err
	}
	w := bufio.NewWriter(in)
	const chunk = 50
	start := time.Now()
	for i := range n {
		fmt.Fprintf(w, "line %d\n", i)
		if (i+1)%chunk == 0 {
			if err := w.Flush(); err != nil {
				logger.Process.Kill()
				logger.Wait()
				return fmt.Errorf("logger's input: %v; stderr:\n%s", err, errb.String())
			}
			progress(i + 1)
			if ahead := time.Duration(i+1)*time.Second/time.Duration(perSecond) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	w.Flush()
	in.Close()
	done := make(chan error, 1)
	go func() { done <- logger.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("logger: %v; stderr:\n%s", err, errb.String())
		}
		return nil
	case <-time.After(60 * time.Second):
		logger.Process.Kill()
		return errors.New("logger did not exit within 60s of its input's end")
	}
}

// pacedStream runs pacedLogger in the background and returns once a
// fraction 1/part of the n lines were written; wait returns the logger's
// result.
func pacedStream(t *testing.T, b *bus, n, perSecond, part int) (sent func() int, wait func()) {
	t.Helper()
	var count atomic.Int64
	done := make(chan error, 1)
	go func() { done <- pacedLogger(b, n, perSecond, func(i int) { count.Store(int64(i)) }) }()
	var result error
	finished := false
	for count.Load() < int64(n/part) && !finished {
		select {
		case result = <-done:
			finished = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	if finished && result != nil {
		t.Fatal(result)
	}
	return func() int { return int(count.Load()) }, func() {
		t.Helper()
		if !finished {
			result = <-done
		}
		if result != nil {
			t.Fatal(result)
		}
	}
}

// bridgeMetric sums the samples of a counter whose labels include
// route="route" (0 when absent: Prometheus shows a counter once it moved).
func bridgeMetric(body, name, route string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, `route="`+route+`"`) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// spoolAvailable reports whether this bin/fedmsg has the bridge's durable
// spool (issue 8 item 1): then ZeroMQ-source routes can be at-least-once.
func spoolAvailable(t *testing.T) bool {
	out, _ := exec.Command(fedmsgBin, "bridge", "--help").CombinedOutput()
	return strings.Contains(string(out), "spool_dir")
}
