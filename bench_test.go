package fedmsg_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// benchEnvelope is an unsigned 609-byte envelope, the size of the raw
// baselines in shared/notes/brokers.md.
var benchEnvelope = func() []byte {
	head := `{"i":1,"msg":{"log":"`
	tail := `"},"msg_id":"2026-e0c108a7-5dbc-42de-a0bf-6dca3c1b7b60","timestamp":1795604977,"topic":"org.fedoraproject.dev.logger.log","username":"fedmsg"}`
	return []byte(head + strings.Repeat("x", 609-len(head)-len(tail)) + tail)
}()

func benchSigner(b *testing.B) *signing.X509Signer {
	dir := sharedtest.Dir(b, "fedmsg-x509")
	s, err := signing.NewX509Signer(filepath.Join(dir, "bodhi-app01.example.com.crt"), filepath.Join(dir, "bodhi-app01.example.com.key"))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkSigningRelay: messages through `fedmsg signing-relay`'s path
// (relay, ordered signing on every core, relay out), end to end on
// loopback.
func BenchmarkSigningRelay(b *testing.B) {
	signer := benchSigner(b)
	o := zmq.DefaultOptions()
	o.Linger = 0
	r, err := zmq.NewRelay(o, []string{"tcp://127.0.0.1:*"}, []string{"tcp://127.0.0.1:*"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.RunTransform(ctx, func(_ string, body []byte) ([]byte, error) { return fedmsg.Resign(signer, body) }, 0)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
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
	pub.Connect(r.InboundAddrs()[0])
	sub.Connect(r.OutboundAddr())
	topic := []byte("org.fedoraproject.dev.logger.log")
	sub.SetRcvtimeo(50 * time.Millisecond)
	for { // slow joiner: until one message has made the trip
		pub.SendMessage(topic, benchEnvelope)
		if _, err := sub.RecvMessageBytes(0); err == nil {
			break
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
	go func() {
		for range b.N {
			pub.SendBytes(topic, zmq4.SNDMORE)
			pub.SendBytes(benchEnvelope, 0)
		}
	}()
	for i := range b.N {
		if _, err := sub.RecvMessageBytes(0); err != nil {
			b.Fatalf("received %d of %d: %v", i, b.N, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

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
