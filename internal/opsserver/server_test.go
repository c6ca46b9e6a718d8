package opsserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/signing"
)

// /healthz follows the daemon's loop; /readyz also needs every check to
// pass and names the failing ones with their reasons.
func TestHealthAndReadiness(t *testing.T) {
	s := New(nil)
	base := startServer(t, s)

	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz before the loop runs: %d %q, want 503", code, body)
	}
	s.SetAlive(true)
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz while running: %d %q, want 200 ok", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with no checks: %d %q, want 200", code, body)
	}

	brokerUp := false
	s.AddReadiness("transport rabbit", func(context.Context) error {
		if brokerUp {
			return nil
		}
		return errors.New("connection refused")
	})
	s.AddReadiness("trust", func(context.Context) error { return nil })
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "transport rabbit: connection refused") {
		t.Errorf("/readyz with a failing check: %d %q, want 503 naming the check and its reason", code, body)
	}
	if strings.Contains(body, "trust") {
		t.Errorf("/readyz names a passing check: %q", body)
	}
	brokerUp = true
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once the check passes: %d %q, want 200", code, body)
	}
	s.SetAlive(false)
	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after the loop ended: %d, want 503", code)
	}
	if code, body := get(t, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") ||
		!strings.Contains(body, "process_") {
		t.Errorf("/metrics lacks the Go or process collectors: %d\n%s", code, body)
	}
}

// A busy address is an error naming the key; Shutdown is bounded even
// with a client that holds a connection open.
func TestStartErrorAndBoundedShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := New(nil).Start(ln.Addr().String()); !errors.Is(err, ErrListen) || !strings.Contains(err.Error(), "metrics_addr") {
		t.Errorf("Start on a busy address: %v, want ErrListen naming metrics_addr", err)
	}

	s := New(nil)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	// A client that sends half a request and waits.
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the server read what was sent
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_ = s.Shutdown(ctx)
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Shutdown took %v with a stuck client, want it bounded by its ctx", d)
	}
	if _, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		t.Error("the server still answers after Shutdown")
	}
}

func validator(t *testing.T, crlFile string) *signing.Validator {
	t.Helper()
	dir := sharedtest.Dir(t, "fedmsg-x509")
	crl := filepath.Join(dir, crlFile)
	v, err := signing.NewValidator(signing.Options{CACertLocation: filepath.Join(dir, "ca.crt"), CRLLocation: &crl})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The CA/CRL metrics give the dates of the test PKI (README of
// fedmsg-x509: the CRL is valid until 2049-12-31, the expired one until
// 2020-02-01), and readiness fails on the expired CRL only.
func TestTrustMetricsAndReadiness(t *testing.T) {
	for _, tc := range []struct {
		crl       string
		nextYear  int
		wantReady bool
	}{
		{"crl.pem", 2049, true},
		{"expired-crl.pem", 2020, false},
	} {
		t.Run(tc.crl, func(t *testing.T) {
			s := New(nil)
			s.AddTrust(validator(t, tc.crl))
			s.SetAlive(true)
			base := startServer(t, s)
			fams := scrape(t, base)
			next, ok := value(fams, "fedmsg_trust_crl_next_update_timestamp_seconds")
			if !ok {
				t.Fatal("no fedmsg_trust_crl_next_update_timestamp_seconds")
			}
			if y := time.Unix(int64(next), 0).UTC().Year(); y != tc.nextYear {
				t.Errorf("CRL nextUpdate year %d, want %d", y, tc.nextYear)
			}
			for _, name := range []string{"fedmsg_trust_ca_expiry_timestamp_seconds",
				"fedmsg_trust_ca_last_refresh_timestamp_seconds", "fedmsg_trust_crl_last_refresh_timestamp_seconds"} {
				v, ok := value(fams, name)
				if !ok || v <= 0 {
					t.Errorf("%s = %v (present %v), want a time", name, v, ok)
				}
			}
			if refreshed, _ := value(fams, "fedmsg_trust_crl_last_refresh_timestamp_seconds"); time.Since(time.Unix(int64(refreshed), 0)) > time.Minute {
				t.Errorf("CRL last refresh %v, want the load a moment ago", time.Unix(int64(refreshed), 0))
			}
			code, body := get(t, base+"/readyz")
			if tc.wantReady && code != http.StatusOK {
				t.Errorf("/readyz with a valid CRL: %d %q", code, body)
			}
			if !tc.wantReady && (code != http.StatusServiceUnavailable || !strings.Contains(body, "trust:") ||
				!strings.Contains(body, "CRL")) {
				t.Errorf("/readyz with an expired CRL: %d %q, want 503 naming trust and the CRL", code, body)
			}
		})
	}
}
