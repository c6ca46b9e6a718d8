package fedmsg_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/internal/freeport"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
)

// benchEnvelope is an unsigned 609-byte envelope, the size of the raw
// baselines in shared/notes/brokers.md.
var benchEnvelope = func() []byte {
	head := `{"i":1,"msg":{"log":"`
	tail := `"},"msg_id":"2026-e0c108a7-5dbc-42de-a0bf-6dca3c1b7b60","timestamp":1795604977,"topic":"org.fedoraproject.dev.logger.log","username":"fedmsg"}`
	return []byte(head + strings.Repeat("x", 609-len(head)-len(tail)) + tail)
}()

// BenchmarkSigningRelay: messages through the real `fedmsg signing-relay`
// process (relay in, ordered signing on every core, relay out), end to end
// on loopback, from a publisher and to a subscriber in this process. Run
// as its own process, as in production, so that this harness's sockets do
// not take the relay's cores.
func BenchmarkSigningRelay(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "fedmsg")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/fedmsg").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	in, out := freeTCP(b), freeTCP(b)
	cfg := filepath.Join(dir, "relay.yaml")
	pki := sharedtest.Dir(b, "fedmsg-x509")
	yaml := fmt.Sprintf("ssldir: %s\ncertnames: {signing_relay: bodhi-app01.example.com}\nrelay_inbound: [%s]\nendpoints: {relay_outbound: [%s]}\nhigh_water_mark: 0\n", pki, in, out)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	relay := exec.Command(bin, "signing-relay", "--config", cfg)
	relay.Dir, relay.Env = dir, []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	// RELAY_GOGC and RELAY_GOMAXPROCS tune the relay process, to compare.
	for _, v := range []string{"GOGC", "GOMAXPROCS"} {
		if x := os.Getenv("RELAY_" + v); x != "" {
			relay.Env = append(relay.Env, v+"="+x)
		}
	}
	var stderr bytes.Buffer
	relay.Stderr = &stderr
	if err := relay.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		relay.Process.Signal(syscall.SIGTERM)
		if err := relay.Wait(); err != nil {
			b.Errorf("signing-relay: %v\n%s", err, stderr.String())
		}
	}()

	zctx, _ := zmq4.NewContext()
	defer zctx.Term()
	pub, _ := zctx.NewSocket(zmq4.PUB)
	sub, _ := zctx.NewSocket(zmq4.SUB)
	defer pub.Close()
	defer sub.Close()
	for _, s := range []*zmq4.Socket{pub, sub} {
		s.SetLinger(0)
		s.SetSndhwm(0)
		s.SetRcvhwm(0)
	}
	sub.SetSubscribe("")
	pub.Connect(in)
	sub.Connect(out)
	topic := []byte("org.fedoraproject.dev.logger.log")
	sub.SetRcvtimeo(50 * time.Millisecond)
	deadline := time.Now().Add(20 * time.Second)
	for { // slow joiner and start-up: until one message has made the trip
		pub.SendMessage(topic, benchEnvelope)
		if _, err := sub.RecvMessageBytes(0); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no message came through the signing relay in 20s\n%s", stderr.String())
		}
	}
	for {
		if _, err := sub.RecvMessageBytes(0); err != nil {
			break
		}
	}
	sub.SetRcvtimeo(10 * time.Second)

	b.ResetTimer()
	start := time.Now()
	cpuBefore := processCPU(b, relay.Process.Pid)
	go func() {
		for range b.N {
			pub.SendBytes(topic, zmq4.SNDMORE)
			pub.SendBytes(benchEnvelope, 0)
		}
	}()
	for i := range b.N {
		frames, err := sub.RecvMessageBytes(0)
		if err != nil {
			b.Fatalf("received %d of %d: %v", i, b.N, err)
		}
		if !bytes.Contains(frames[1], []byte(`"signature":"`)) {
			b.Fatalf("message %d came out unsigned: %.200s", i, frames[1])
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	// How many cores the relay process kept busy: below the machine's
	// count means its workers waited.
	b.ReportMetric((processCPU(b, relay.Process.Pid)-cpuBefore).Seconds()/elapsed.Seconds(), "relay-cores")
}

// processCPU is the user+system CPU time pid has used (Linux /proc).
func processCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which is in parentheses): utime and
	// stime are the 12th and 13th, in clock ticks (100 per second here).
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func freeTCP(b *testing.B) string { return freeport.Endpoint(b) }

// BenchmarkRawRSASignAllCores is the baseline: RSA-2048 PKCS#1 v1.5 SHA-1
// signatures of the same envelope on every core, nothing else.
func BenchmarkRawRSASignAllCores(b *testing.B) {
	dir := sharedtest.Dir(b, "fedmsg-x509")
	block, _ := pem.Decode(sharedtest.Read(b, "fedmsg-x509", "bodhi-app01.example.com.key"))
	if block == nil {
		b.Fatal("no PEM key in " + dir)
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		key = k.(*rsa.PrivateKey)
	} else {
		b.Fatal(err)
	}
	sum := sha1.Sum(benchEnvelope)
	b.SetParallelism(1) // GOMAXPROCS goroutines: one per core
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA1, sum[:]); err != nil {
				b.Error(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "cores")
}
