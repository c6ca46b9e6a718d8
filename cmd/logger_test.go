package cmd

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
)

// A one-shot publishing command whose broker cannot be reached gives up
// after --timeout, exits 1 and says why: the endpoint and its last
// failure, not only "deadline exceeded". Daemons retry for ever; a
// command run from cron must end.
func TestOneShotPublishGivesUpAfterTimeout(t *testing.T) {
	refused := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)) // nothing listens there
	untrusted := untrustedTLSListener(t)
	x509Dir := sharedtest.Dir(t, "fedmsg-x509")
	for _, tc := range []struct {
		name, config string
		args         []string
		want         []string // in the error, besides the timeout
	}{
		{"logger, STOMP, connection refused",
			"zmq_enabled: false\nstomp_uri: " + refused + "\n",
			[]string{"logger", "--message", "hi"},
			[]string{refused, "connection refused"}},
		{"announce, STOMP, broker certificate refused",
			"zmq_enabled: false\nstomp_uri: " + untrusted + "\nstomp_ssl_ca: " + filepath.Join(x509Dir, "rogue-ca.crt") + "\n",
			[]string{"announce"},
			[]string{untrusted, "failed to verify certificate"}},
		{"logger, AMQP, broker certificate refused",
			"zmq_enabled: false\namqp_url: amqps://" + untrusted + "/\namqp_ssl_ca: " + filepath.Join(x509Dir, "rogue-ca.crt") + "\n",
			[]string{"logger", "--message", "hi"},
			[]string{untrusted, "failed to verify certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeSecretFile(t, "c.yaml", tc.config)
			start := time.Now()
			_, errOut, code := runSecure(t, nil, append(tc.args, "--config", cfg, "--timeout", "1500ms")...)
			took := time.Since(start)
			if code != exitFailure {
				t.Fatalf("exit %d, want %d (failure); stderr:\n%s", code, exitFailure, errOut)
			}
			// The bound is the flag's: not at once, and not the 20 s
			// this test's context allows.
			if took < 1500*time.Millisecond || took > 10*time.Second {
				t.Errorf("gave up after %s, want about 1.5 s", took)
			}
			lastLine := errOut[strings.LastIndex(strings.TrimSuffix(errOut, "\n"), "\n")+1:]
			for _, w := range append(tc.want, "--timeout 1.5s") {
				if !strings.Contains(lastLine, w) {
					t.Errorf("the error does not say %q:\n%s", w, lastLine)
				}
			}
		})
	}
}

// untrustedTLSListener accepts TLS on loopback with a certificate of the
// fedmsg test CA, which a client trusting only the rogue CA refuses (it
// also names no IP, so the address check refuses it first).
func untrustedTLSListener(t *testing.T) string {
	t.Helper()
	dir := sharedtest.Dir(t, "fedmsg-x509")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "bodhi-app01.example.com.crt"), filepath.Join(dir, "bodhi-app01.example.com.key"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake() // fails: the client refuses us
			}(c)
		}
	}()
	return ln.Addr().String()
}
