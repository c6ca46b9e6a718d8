package zmq

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

// TestRelayLosesNothingWhenSignalled: signals interrupt libzmq's blocking
// calls with EINTR, and Go sends them (SIGURG for preemption) to every
// thread, including the relay's while it is inside libzmq. A signal
// between the two parts of a message once made the relay drop the message
// and forward its body as a bogus one-part message. Here every thread of
// the process gets SIGURG (which Go ignores but for preemption) without
// pause while messages flow: every one must come out, in order.
func TestRelayLosesNothingWhenSignalled(t *testing.T) {
	o := testOptions(t)
	relay := startRelay(t, o)

	zctx, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := zctx.NewSocket(zmq4.PUB)
	sub, _ := zctx.NewSocket(zmq4.SUB)
	defer func() { pub.Close(); sub.Close(); zctx.Term() }()
	for _, s := range []*zmq4.Socket{pub, sub} {
		s.SetLinger(0)
		s.SetSndhwm(0)
		s.SetRcvhwm(0)
	}
	sub.SetSubscribe("")
	if err := pub.Connect(relay.InboundAddrs()[0]); err != nil {
		t.Fatal(err)
	}
	if err := sub.Connect(relay.OutboundAddr()); err != nil {
		t.Fatal(err)
	}
	sub.SetRcvtimeo(20 * time.Millisecond)
	for { // slow joiner: until a probe makes the trip
		pub.SendMessage("probe", `{}`)
		if _, err := sub.RecvMessageBytes(0); err == nil {
			break
		}
	}
	for {
		if _, err := sub.RecvMessageBytes(0); err != nil {
			break
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pid := os.Getpid()
		// Signal for a bounded time: the test's own receive retries on
		// EINTR and restarts its timeout, so endless signals would turn a
		// dead relay into a hang instead of a failure.
		until := time.Now().Add(3 * time.Second)
		for time.Now().Before(until) {
			select {
			case <-stop:
				return
			default:
			}
			tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
			for _, task := range tasks {
				var tid int
				fmt.Sscan(task.Name(), &tid)
				syscall.Tgkill(pid, tid, syscall.SIGURG)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	const n = 200000
	go func() {
		for i := range n {
			pub.SendMessage("org.fedoraproject.dev.signal", fmt.Sprintf(`{"i":%d}`, i))
		}
	}()
	sub.SetRcvtimeo(5 * time.Second)
	for i := range n {
		frames, err := sub.RecvMessageBytes(0)
		if err != nil {
			t.Fatalf("received %d of %d messages: %v; relay stats: %v", i, n, err, relay.Stats().DroppedByReason())
		}
		if want := fmt.Sprintf(`{"i":%d}`, i); len(frames) != 2 || string(frames[1]) != want {
			t.Fatalf("message %d: %q, want [topic %s]; relay stats: %v", i, frames, want, relay.Stats().DroppedByReason())
		}
	}
}
