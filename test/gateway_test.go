package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

// TestLoggerThroughRelayAndGatewayToAnOutsideSUB: fedmsg logger → relay →
// fedmsg gateway → a plain ZeroMQ SUB, which gets both frames byte for
// byte as fedmsg tail --json gets them from the relay, and each once
// although the gateway's own port is listed in its endpoints.
func TestLoggerThroughRelayAndGatewayToAnOutsideSUB(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	tail := b.startTail("--json", "--topic", "org.fedoraproject.dev.e2e.")

	gwPort := freePort(t)
	gwURL := fmt.Sprintf("tcp://127.0.0.1:%d", gwPort)
	busEnv := b.env
	b.env = append(append([]string{}, busEnv...),
		// The gateway's own port listed too, as a deployment lists it for
		// its subscribers: the gateway must not subscribe to itself.
		"FEDMSG_ENDPOINTS={relay_outbound: ["+b.outbound+"], gateway: [tcp://*:"+fmt.Sprint(gwPort)+"]}",
		"FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT="+fmt.Sprint(gwPort),
		"FEDMSG_FEDMSG_CONSUMERS_GATEWAY_HIGH_WATER_MARK=50",
	)
	gw := b.start("gateway")
	b.env = busEnv
	gw.waitStderr(t, "gateway started")
	for _, want := range []string{"skipped_own=[" + gwURL + "]", "high_water_mark=50", "subscribed=[" + b.outbound + "]"} {
		if !strings.Contains(gw.stderr.String(), want) {
			t.Errorf("gateway start-up log lacks %q:\n%s", want, gw.stderr.String())
		}
	}

	zctx, err := zmq4.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := zctx.NewSocket(zmq4.SUB)
	t.Cleanup(func() { sub.Close(); zctx.Term() })
	sub.SetLinger(0)
	sub.SetSubscribe("")
	if err := sub.Connect(gwURL); err != nil {
		t.Fatal(err)
	}
	// Probe through logger → relay → gateway until the subscriptions settle.
	sub.SetRcvtimeo(300 * time.Millisecond)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
			t.Fatalf("probe logger exited %d: %s", code, errOut)
		}
		if f, err := sub.RecvMessageBytes(0); err == nil && string(f[0]) == "org.fedoraproject.dev.e2e.probe" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe came through the gateway within 20s; gateway stderr:\n%s", gw.stderr.String())
		}
	}
	for { // drain later probes
		if _, err := sub.RecvMessageBytes(0); err != nil {
			break
		}
	}
	b.drainProbes(tail)

	if _, errOut, code := b.run("Grüße ☃\n", "logger", "--modname", "e2e", "--topic", "real.ümläut"); code != 0 {
		t.Fatalf("logger exited %d: %s", code, errOut)
	}
	sub.SetRcvtimeo(15 * time.Second)
	got, err := sub.RecvMessageBytes(0)
	if err != nil {
		t.Fatalf("the logger's message never came out of the gateway: %v; gateway stderr:\n%s", err, gw.stderr.String())
	}
	fromRelay := tail.nextLine(t)
	if len(got) != 2 {
		t.Fatalf("gateway sent %d frames, want 2: %q", len(got), got)
	}
	if want := "org.fedoraproject.dev.e2e.real.ümläut"; string(got[0]) != want {
		t.Errorf("frame 0 %q, want %q", got[0], want)
	}
	if !bytes.Equal(got[1], []byte(fromRelay)) {
		t.Errorf("gateway's frame 1 differs from the relay's:\ngateway %s\n  relay %s", got[1], fromRelay)
	}
	sub.SetRcvtimeo(time.Second)
	if extra, err := sub.RecvMessageBytes(0); err == nil {
		t.Errorf("a second message came out of the gateway (an echo of its own output?): %q", extra)
	}

	if code := gw.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("gateway exited %d on SIGTERM, want 0", code)
	}
	if !strings.Contains(gw.stderr.String(), "gateway stopped") || !strings.Contains(gw.stderr.String(), "dropped=0") {
		t.Errorf("gateway did not log its counts on exit:\n%s", gw.stderr.String())
	}
}

func TestGatewayStopsOnSIGINT(t *testing.T) {
	b := newBus(t)
	b.env = append(b.env, fmt.Sprintf("FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT=%d", freePort(t)))
	gw := b.start("gateway")
	gw.waitStderr(t, "gateway started")
	if code := gw.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("gateway exited %d on SIGINT, want 0", code)
	}
}

func TestGatewayAliasByArgv0(t *testing.T) {
	b := newBus(t)
	link := filepath.Join(b.dir, "fedmsg-gateway")
	if err := os.Symlink(fedmsgBin, link); err != nil {
		t.Fatal(err)
	}
	c := b.command("--help")
	c.Path, c.Args[0] = link, link
	out, err := c.Output()
	if err != nil {
		t.Fatalf("fedmsg-gateway --help: %v", err)
	}
	if !strings.Contains(string(out), "Run fedmsg-gateway.") || !strings.Contains(string(out), "fedmsg gateway [flags]") {
		t.Errorf("fedmsg-gateway --help is not the gateway's help:\n%s", out)
	}

	// And it runs the gateway.
	port := freePort(t)
	c = b.command()
	c.Path, c.Args[0] = link, link
	c.Env = append(append([]string{}, b.env...), fmt.Sprintf("FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT=%d", port))
	var stderr syncBuffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: c, stderr: &stderr}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	})
	p.waitStderr(t, "gateway started")
	p.waitStderr(t, fmt.Sprintf("publish=tcp://0.0.0.0:%d", port))
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("fedmsg-gateway exited %d on SIGTERM, want 0", code)
	}
}

func TestGatewayBadPortExitsTwo(t *testing.T) {
	b := newBus(t)
	for _, v := range []string{"0", "70000", "nine"} {
		b.env = append(b.env[:len(b.env):len(b.env)], "FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT="+v)
		_, errOut, code := b.run("", "gateway")
		b.env = b.env[:len(b.env)-1]
		if code != 2 {
			t.Errorf("port %s: exit %d, want 2; stderr:\n%s", v, code, errOut)
		}
		if !strings.Contains(errOut, "fedmsg.consumers.gateway.port") {
			t.Errorf("port %s: stderr does not name the key:\n%s", v, errOut)
		}
	}
}
