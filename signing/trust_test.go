package signing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/message"
)

// trustServer serves /ca.crt and /crl.pem with contents that tests change,
// can be made to fail, and counts requests.
type trustServer struct {
	*httptest.Server
	mu      sync.Mutex
	files   map[string][]byte
	failing bool
	hits    atomic.Int64
}

func newTrustServer(t *testing.T, ca, crl []byte) *trustServer {
	s := &trustServer{files: map[string][]byte{"/ca.crt": ca, "/crl.pem": crl}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		data, ok := s.files[r.URL.Path]
		failing := s.failing
		s.mu.Unlock()
		switch {
		case failing:
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		case !ok:
			http.NotFound(w, r)
		default:
			_, _ = w.Write(data)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *trustServer) set(path string, data []byte) {
	s.mu.Lock()
	s.files[path] = data
	s.mu.Unlock()
}

func (s *trustServer) fail(on bool) {
	s.mu.Lock()
	s.failing = on
	s.mu.Unlock()
}

func (s *trustServer) opts(c *clock) Options {
	crl := s.URL + "/crl.pem"
	return Options{
		CACertLocation:     s.URL + "/ca.crt",
		CRLLocation:        &crl,
		CRLCacheExpiry:     time.Hour,
		Now:                c.Now,
		MinRefreshInterval: 10 * time.Second,
		MaxRefreshBackoff:  80 * time.Second,
	}
}

// TestHTTPKeepsOldCopy: the first fetch works; later the server fails, and
// Refresh reports it but the old copy stays in use.
func TestHTTPKeepsOldCopy(t *testing.T) {
	srv := newTrustServer(t, vectorBytes(t, "ca.crt"), vectorBytes(t, "crl.pem"))
	c := newClock()
	v, err := NewValidator(srv.opts(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.LoadError(); err != nil {
		t.Fatalf("first load: %v", err)
	}
	env := vectorEnv(t, "signed/v01-ascii.json")
	if err := v.Validate(bg, env); err != nil {
		t.Fatal(err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("%d requests for the first load, want 2", got)
	}
	srv.fail(true)
	err = v.Refresh(bg)
	if !errors.Is(err, ErrTrustUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Refresh with the server failing: %v", err)
	}
	if v.LoadError() == nil {
		t.Error("LoadError nil after a failed refresh")
	}
	if err := v.Validate(bg, env); err != nil {
		t.Fatalf("old copy not kept: %v", err)
	}
	// Past the CRL expiry the validator tries again, fails, keeps the copy.
	c.Advance(2 * time.Hour)
	before := srv.hits.Load()
	for range 50 {
		if err := v.Validate(bg, env); err != nil {
			t.Fatalf("old copy not kept after expiry: %v", err)
		}
	}
	if got := srv.hits.Load() - before; got != 1 {
		t.Errorf("%d requests for 50 messages past expiry with the server down, want 1 (then backoff)", got)
	}
	srv.fail(false)
	c.Advance(time.Minute)
	if err := v.Validate(bg, env); err != nil {
		t.Fatal(err)
	}
	if v.LoadError() != nil {
		t.Errorf("LoadError after recovery: %v", v.LoadError())
	}
}

// TestHTTPExpiredCRL: an expired CRL rejects everything with ErrCRLExpired,
// is re-fetched with backoff (never per message), and a fresh one served
// later is picked up.
func TestHTTPExpiredCRL(t *testing.T) {
	srv := newTrustServer(t, vectorBytes(t, "ca.crt"), vectorBytes(t, "expired-crl.pem"))
	c := newClock()
	v, err := NewValidator(srv.opts(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.LoadError(); !errors.Is(err, ErrCRLExpired) {
		t.Fatalf("LoadError: %v, want ErrCRLExpired", err)
	}
	env := vectorEnv(t, "signed/v03-nested.json")
	before := srv.hits.Load()
	for range 100 {
		err := v.Validate(bg, env)
		if !errors.Is(err, ErrCRLExpired) || !strings.Contains(err.Error(), "2020-02-01") {
			t.Fatalf("Validate: %v", err)
		}
	}
	if got := srv.hits.Load() - before; got != 0 {
		t.Fatalf("%d downloads for 100 messages inside the backoff window, want 0", got)
	}
	// Backoff grows: 10s, 20s, 40s, 80s (cap).
	var gaps []time.Duration
	last := c.Now()
	for range 6 {
		for {
			n := srv.hits.Load()
			c.Advance(time.Second)
			_ = v.Validate(bg, env)
			if srv.hits.Load() > n {
				gaps = append(gaps, c.Now().Sub(last))
				last = c.Now()
				break
			}
		}
	}
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i := range want {
		want[i] *= time.Second
	}
	if len(gaps) != len(want) {
		t.Fatalf("gaps %v", gaps)
	}
	for i := range gaps {
		// each reload downloads CA and CRL (2 hits); a gap is measured from
		// the previous reload, within the 1 s step
		if gaps[i] < want[i] || gaps[i] > want[i]+time.Second {
			t.Errorf("reload gaps %v, want %v", gaps, want)
			break
		}
	}
	srv.set("/crl.pem", vectorBytes(t, "crl.pem"))
	c.Advance(81 * time.Second)
	if err := v.Validate(bg, env); err != nil {
		t.Fatalf("fresh CRL not picked up: %v", err)
	}
	if v.LoadError() != nil {
		t.Errorf("LoadError: %v", v.LoadError())
	}
}

// TestHTTPRotatedCRL: a new CRL on the server revoking the signer is
// picked up after the CRL expiry (and by Refresh).
func TestHTTPRotatedCRL(t *testing.T) {
	dir := t.TempDir()
	p := newTestPKI(t, "rotation CA", 0)
	now := time.Now()
	s := p.leafSigner(t, dir, "app.example.com", 0x5001, 1, now.Add(-time.Hour), now.Add(48*time.Hour))
	srv := newTrustServer(t, p.caPEM, p.crl(t, 1, now.Add(-time.Hour), now.Add(24*time.Hour)))
	c := newClock()
	v, err := NewValidator(srv.opts(c))
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := s.Sign(message.NewEnvelope("org.fedoraproject.dev.a.b", map[string]any{}, 1, "u", now))
	if err := v.Validate(bg, signed); err != nil {
		t.Fatal(err)
	}
	srv.set("/crl.pem", p.crl(t, 2, now.Add(-time.Minute), now.Add(24*time.Hour), 0x5001))
	c.Advance(30 * time.Minute) // before the 1 h expiry: the cached verdict stands
	if err := v.Validate(bg, signed); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	c.Advance(31 * time.Minute)
	if err := v.Validate(bg, signed); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after expiry: %v, want ErrRevoked", err)
	}

	// A server that goes back to an expired CRL does not replace ours.
	stale := p.crl(t, 9, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	srv.set("/crl.pem", stale)
	if err := v.Refresh(bg); !errors.Is(err, ErrCRLExpired) {
		t.Fatalf("Refresh with an expired CRL on the server: %v", err)
	}
	if err := v.Validate(bg, signed); !errors.Is(err, ErrRevoked) {
		t.Fatalf("expired CRL replaced a valid one: %v", err)
	}

	// Refresh picks up an un-revocation at once.
	srv.set("/crl.pem", p.crl(t, 3, now.Add(-time.Minute), now.Add(24*time.Hour)))
	if err := v.Refresh(bg); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(bg, signed); err != nil {
		t.Fatalf("after Refresh: %v", err)
	}
	// A CRL that suddenly does not verify does not replace the good one.
	other := newTestPKI(t, "rotation CA", 2)
	srv.set("/crl.pem", other.crl(t, 4, now.Add(-time.Minute), now.Add(24*time.Hour), 0x5001))
	if err := v.Refresh(bg); !errors.Is(err, ErrCRLInvalid) {
		t.Fatalf("Refresh with a forged CRL: %v", err)
	}
	if err := v.Validate(bg, signed); err != nil {
		t.Fatalf("forged CRL replaced the good one: %v", err)
	}
}

// TestRetryOnTrustFailure: fedmsg reloads CA and CRL after a verification
// failure; a revocation written to a local CRL file is seen at the next
// failure-triggered reload only, and a rotated CA is picked up when a
// message from the new CA fails against the old one. Rogue messages do not
// cause a reload per message.
func TestRetryOnTrustFailure(t *testing.T) {
	dir := t.TempDir()
	oldCA := newTestPKI(t, "old CA", 0)
	newCA := newTestPKI(t, "new CA", 2)
	now := time.Now()
	caPath := writeTemp(t, dir, "ca.crt", oldCA.caPEM)
	c := newClock()
	var loads atomic.Int64
	v, err := NewValidator(Options{CACertLocation: caPath, Now: c.Now, Logger: countingLogger(&loads)})
	if err != nil {
		t.Fatal(err)
	}
	sOld := oldCA.leafSigner(t, dir, "old.example.com", 0x6001, 1, now.Add(-time.Hour), now.Add(time.Hour))
	sNew := newCA.leafSigner(t, dir, "new.example.com", 0x6002, 3, now.Add(-time.Hour), now.Add(time.Hour))
	env := message.NewEnvelope("t", "m", 1, "u", now)
	fromOld, _ := sOld.Sign(env)
	fromNew, _ := sNew.Sign(env)
	if err := v.Validate(bg, fromOld); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(bg, fromNew); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("new CA before rotation: %v", err)
	}
	// The CA file is rotated; inside the rate limit nothing is reloaded.
	writeFile(t, caPath, newCA.caPEM)
	for range 100 {
		if err := v.Validate(bg, fromNew); !errors.Is(err, ErrUntrusted) {
			t.Fatalf("within the rate limit: %v", err)
		}
	}
	c.Advance(11 * time.Second)
	if err := v.Validate(bg, fromNew); err != nil {
		t.Fatalf("rotated CA not picked up by the retry: %v", err)
	}
	if err := v.Validate(bg, fromOld); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("old CA still trusted: %v", err)
	}
	if got := loads.Load(); got != 2 {
		t.Errorf("%d CA loads logged, want 2 (start, rotation)", got)
	}
}

// TestCacheFiles: downloaded copies are written to the cache files, used at
// start when the server is down (even stale), and used without a download
// while fresh.
func TestCacheFiles(t *testing.T) {
	dir := t.TempDir()
	caData, crlData := vectorBytes(t, "ca.crt"), vectorBytes(t, "crl.pem")
	srv := newTrustServer(t, caData, crlData)
	c := newClock()
	o := srv.opts(c)
	o.CACertCache = filepath.Join(dir, "sub", "ca.crt") // directory created on demand
	o.CRLCache = filepath.Join(dir, "sub", "crl.pem")
	if _, err := NewValidator(o); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]byte{o.CACertCache: caData, o.CRLCache: crlData} {
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(want) {
			t.Fatalf("cache %s: %v (%d bytes, want %d)", path, err, len(got), len(want))
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "sub", ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	env := vectorEnv(t, "signed/v01-ascii.json")

	// Fresh cache (CA "fetch once", CRL younger than an hour): no download.
	before := srv.hits.Load()
	v, err := NewValidator(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(bg, env); err != nil {
		t.Fatal(err)
	}
	if got := srv.hits.Load() - before; got != 0 {
		t.Errorf("%d downloads with fresh cache files, want 0", got)
	}

	// A fresh but broken cache file is replaced by a download.
	writeFile(t, o.CACertCache, []byte("garbage"))
	writeFile(t, o.CRLCache, []byte("garbage"))
	v, err = NewValidator(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(bg, env); err != nil {
		t.Fatalf("broken cache files: %v", err)
	}
	if got, _ := os.ReadFile(o.CACertCache); string(got) != string(caData) {
		t.Error("broken CA cache file not rewritten")
	}
	if got, _ := os.ReadFile(o.CRLCache); string(got) != string(crlData) {
		t.Error("broken CRL cache file not rewritten")
	}

	// Server down at start, stale CRL cache: the cached copies are used.
	srv.fail(true)
	old := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(o.CRLCache, old, old); err != nil {
		t.Fatal(err)
	}
	v, err = NewValidator(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(bg, env); err != nil {
		t.Fatalf("server down, cache present: %v", err)
	}
	// Server gone entirely, no cache: ErrTrustUnavailable, then recovery
	// once it is back (after the backoff).
	srv.fail(false)
	srv.Close()
	o2 := o
	o2.CACertCache, o2.CRLCache = "", ""
	v, err = NewValidator(o2)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(bg, env); !errors.Is(err, ErrTrustUnavailable) {
		t.Fatalf("server down, no cache: %v", err)
	}
	srv2 := newTrustServer(t, caData, crlData)
	v.caSrc.location, v.crlSrc.location = srv2.URL+"/ca.crt", srv2.URL+"/crl.pem"
	if err := v.Validate(bg, env); !errors.Is(err, ErrTrustUnavailable) {
		t.Fatalf("inside the backoff: %v", err)
	}
	c.Advance(11 * time.Second)
	if err := v.Validate(bg, env); err != nil {
		t.Fatalf("after the backoff: %v", err)
	}
}

// TestFetchTimeoutAndContext: a hanging server does not hang validation
// beyond the fetch timeout.
func TestFetchTimeoutAndContext(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	start := time.Now()
	v, err := NewValidator(Options{CACertLocation: srv.URL + "/ca.crt", FetchTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("NewValidator took %v", time.Since(start))
	}
	if !errors.Is(v.LoadError(), ErrTrustUnavailable) {
		t.Fatalf("LoadError: %v", v.LoadError())
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := v.Refresh(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Refresh with a cancelled context: %v", err)
	}
}

// TestConcurrentValidateAndRefresh is for the race detector.
func TestConcurrentValidateAndRefresh(t *testing.T) {
	srv := newTrustServer(t, vectorBytes(t, "ca.crt"), vectorBytes(t, "crl.pem"))
	c := newClock()
	o := srv.opts(c)
	o.CertCacheSize = 2
	v, err := NewValidator(o)
	if err != nil {
		t.Fatal(err)
	}
	envs := []map[string]any{}
	for _, f := range []string{"v01-ascii", "v02-unicode", "v03-nested", "n01-rogue", "n02-revoked", "t06-unwrapped-base64"} {
		envs = append(envs, vectorEnv(t, "signed/"+f+".json"))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				env := envs[(g+i)%len(envs)]
				err := v.Validate(bg, env)
				id := env["topic"].(string)
				_ = id
				if i%50 == 0 {
					c.Advance(40 * time.Minute)
				}
				if err != nil && !errors.Is(err, ErrUntrusted) && !errors.Is(err, ErrRevoked) {
					t.Errorf("unexpected: %v", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			if i%2 == 0 {
				srv.set("/crl.pem", vectorBytes(t, "crl.pem"))
			}
			_ = v.Refresh(bg)
		}
	}()
	wg.Wait()
	if n := v.certs.len(); n > 2 {
		t.Errorf("certificate cache holds %d entries, bound is 2", n)
	}
}
