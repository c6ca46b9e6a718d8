package signing

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// maxTrustFileSize bounds what a CA or CRL download may weigh.
const maxTrustFileSize = 32 << 20

// trustState is one loaded CA (and CRL) pair. It is immutable once
// published; a reload publishes a new one. gen changes only when the bytes
// of the CA or CRL change, and every cached certificate verdict is tied to
// the gen it was computed for.
type trustState struct {
	gen uint64

	caRaw     []byte
	ca        *x509.Certificate
	caFetched time.Time
	caFrom    string // where the copy came from, for messages

	hasCRL     bool // a CRL is configured
	crlRaw     []byte
	crl        *x509.RevocationList // nil when !hasCRL or crlErr != nil
	crlErr     error                // configured CRL unusable (wraps ErrCRLInvalid)
	revoked    map[string]struct{}  // serial numbers listed in the CRL
	crlFetched time.Time
	crlFrom    string
}

func serialKey(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}

// source is one configured location (CA or CRL).
type source struct {
	what     string // "CA certificate" or "CRL"
	location string
	cache    string
	expiry   time.Duration
}

func (s source) isHTTP() bool {
	l := strings.ToLower(s.location)
	return strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")
}

// fetched is what fetch returns: the bytes, when they were obtained, where
// from, and whether they came off the network (and so belong in the cache).
type fetched struct {
	data    []byte
	at      time.Time
	from    string
	network bool
	cached  bool // read from the cache file
}

// fetch obtains a copy of src. A path or file:// URL is read from disk. An
// http(s) URL is downloaded, except that on the first load (no copy in
// memory yet) a cache file that is still fresh (younger than the expiry, or
// any age when the expiry is 0, "fetch once") is used as it is, and a
// failed download falls back to the cache file whatever its age.
func (v *Validator) fetch(ctx context.Context, src source, initial bool) (fetched, error) {
	now := v.now()
	if !src.isHTTP() {
		path := src.location
		if strings.HasPrefix(strings.ToLower(path), "file://") {
			u, err := url.Parse(path)
			if err != nil {
				return fetched{}, fmt.Errorf("%s location %q: %w", src.what, src.location, err)
			}
			path = u.Path
		}
		data, err := readLimited(path)
		if err != nil {
			return fetched{}, fmt.Errorf("reading %s: %w", src.what, err)
		}
		return fetched{data: data, at: now, from: path}, nil
	}

	if initial && src.cache != "" {
		if fi, err := os.Stat(src.cache); err == nil && (src.expiry <= 0 || now.Before(fi.ModTime().Add(src.expiry))) {
			if data, err := readLimited(src.cache); err == nil {
				v.log.Info("fedmsg trust: using cached copy", "what", src.what, "cache", src.cache, "location", src.location)
				return fetched{data: data, at: fi.ModTime(), from: src.cache, cached: true}, nil
			}
		}
	}

	data, err := v.download(ctx, src.location)
	if err == nil {
		return fetched{data: data, at: now, from: src.location, network: true}, nil
	}
	err = fmt.Errorf("downloading %s from %s: %w", src.what, src.location, err)
	if initial && src.cache != "" {
		if fi, serr := os.Stat(src.cache); serr == nil {
			if data, rerr := readLimited(src.cache); rerr == nil {
				v.log.Warn("fedmsg trust: download failed, using the cached copy",
					"what", src.what, "cache", src.cache, "cached_at", fi.ModTime(), "error", err)
				return fetched{data: data, at: fi.ModTime(), from: src.cache, cached: true}, nil
			}
		}
	}
	return fetched{}, err
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTrustFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTrustFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxTrustFileSize)
	}
	return data, nil
}

func (v *Validator) download(ctx context.Context, location string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, v.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTrustFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTrustFileSize {
		return nil, fmt.Errorf("response larger than %d bytes", maxTrustFileSize)
	}
	return data, nil
}

// writeCache stores data in path atomically (temporary file + rename), so
// that a reader never sees half a file and the copy survives restarts.
func writeCache(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// parseCA returns the trust anchor: the first PEM certificate of data (as
// pyOpenSSL's load_certificate reads it; further certificates, i.e.
// intermediates, are ignored as fedmsg ignores them).
func parseCA(data []byte) (*x509.Certificate, error) {
	der, err := firstPEM(data, "CERTIFICATE", "X509 CERTIFICATE")
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// parseCRL parses a PEM CRL and checks it against ca: issued by the CA (same
// name), signed by its key, and the CA allowed to sign CRLs. Errors wrap
// ErrCRLInvalid.
func parseCRL(data []byte, ca *x509.Certificate) (*x509.RevocationList, map[string]struct{}, error) {
	der, err := firstPEM(data, "X509 CRL")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrCRLInvalid, err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrCRLInvalid, err)
	}
	if !bytes.Equal(crl.RawIssuer, ca.RawSubject) {
		return nil, nil, fmt.Errorf("%w: CRL issuer %q is not the CA %q (unable to get certificate CRL)",
			ErrCRLInvalid, crl.Issuer.String(), ca.Subject.String())
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		return nil, nil, fmt.Errorf("%w: CRL signature failure: %w", ErrCRLInvalid, err)
	}
	revoked := make(map[string]struct{}, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		revoked[serialKey(e.SerialNumber)] = struct{}{}
	}
	return crl, revoked, nil
}

// crlTimeError reports whether the CRL is outside its validity window at
// now, as OpenSSL's check_crl_time does (lastUpdate in the future: not yet
// valid; nextUpdate at or before now: expired; no nextUpdate: never expires).
func crlTimeError(crl *x509.RevocationList, now time.Time) error {
	t := now.Unix()
	if crl.ThisUpdate.Unix() > t {
		return fmt.Errorf("%w: CRL is not yet valid (lastUpdate %s)", ErrCRLInvalid, crl.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if !crl.NextUpdate.IsZero() && crl.NextUpdate.Unix() <= t {
		return fmt.Errorf("%w: nextUpdate was %s", ErrCRLExpired, crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}

// reloadLocked fetches the CA and/or the CRL again and publishes a new
// trust state. The caller holds v.mu. On any failure the current state is
// kept (a CRL that does not parse or verify never replaces a good one),
// the error is logged and remembered, and the next automatic attempt is
// pushed back exponentially. It returns the failure, or an error wrapping
// ErrCRLExpired when the CRL it now holds is already expired.
func (v *Validator) reloadLocked(ctx context.Context, wantCA, wantCRL bool) error {
	now := v.now()
	old := v.state.Load()
	initial := old == nil
	if initial {
		wantCA, wantCRL = true, true
	}
	next := &trustState{hasCRL: v.crlSrc.location != ""}

	var caNet, crlNet bool
	if wantCA {
		f, err := v.fetch(ctx, v.caSrc, initial)
		if err != nil {
			return v.reloadFailed(now, fmt.Errorf("%w: %w", ErrTrustUnavailable, err))
		}
		ca, err := parseCA(f.data)
		if err != nil && f.cached {
			// A broken cache file must not stick: download instead.
			f2, ferr := v.fetch(ctx, v.caSrc, false)
			if ferr != nil {
				return v.reloadFailed(now, fmt.Errorf("%w: cached CA certificate %s: %w; %w", ErrTrustUnavailable, f.from, err, ferr))
			}
			f = f2
			ca, err = parseCA(f.data)
		}
		if err != nil {
			return v.reloadFailed(now, fmt.Errorf("%w: CA certificate from %s: %w", ErrTrustUnavailable, f.from, err))
		}
		next.caRaw, next.ca, next.caFetched, next.caFrom, caNet = f.data, ca, f.at, f.from, f.network
	} else {
		next.caRaw, next.ca, next.caFetched, next.caFrom = old.caRaw, old.ca, old.caFetched, old.caFrom
	}

	if next.hasCRL {
		if wantCRL {
			f, err := v.fetch(ctx, v.crlSrc, initial)
			if err != nil {
				return v.reloadFailed(now, fmt.Errorf("%w: %w", ErrTrustUnavailable, err))
			}
			if f.cached {
				if _, _, perr := parseCRL(f.data, next.ca); perr != nil {
					// A broken cache file must not stick: download instead.
					if f2, err := v.fetch(ctx, v.crlSrc, false); err == nil {
						f = f2
					}
				}
			}
			next.crlRaw, next.crlFetched, next.crlFrom, crlNet = f.data, f.at, f.from, f.network
		} else {
			next.crlRaw, next.crlFetched, next.crlFrom = old.crlRaw, old.crlFetched, old.crlFrom
		}
		next.crl, next.revoked, next.crlErr = parseCRL(next.crlRaw, next.ca)
		if next.crlErr != nil {
			next.crlErr = fmt.Errorf("%w (from %s)", next.crlErr, next.crlFrom)
			if old != nil && old.crlErr == nil {
				// Keep the whole old pair: it verified, the new one does not.
				return v.reloadFailed(now, next.crlErr)
			}
		}
	}

	if next.crl != nil && old != nil && old.crl != nil && bytes.Equal(old.caRaw, next.caRaw) &&
		crlTimeError(old.crl, now) == nil {
		if err := crlTimeError(next.crl, now); err != nil {
			// The server hands out an older CRL than ours: keep ours.
			return v.reloadFailed(now, fmt.Errorf("%w (CRL from %s; keeping the previous, still valid CRL)", err, next.crlFrom))
		}
	}

	if old != nil && bytes.Equal(old.caRaw, next.caRaw) && bytes.Equal(old.crlRaw, next.crlRaw) {
		next.gen = old.gen
	} else {
		next.gen = v.gen.Add(1)
	}
	v.state.Store(next)

	// Only copies that came off the network and parsed go to the cache.
	if caNet && v.caSrc.cache != "" {
		if err := writeCache(v.caSrc.cache, next.caRaw); err != nil {
			v.log.Warn("fedmsg trust: cannot write cache file", "what", v.caSrc.what, "cache", v.caSrc.cache, "error", err)
		}
	}
	if crlNet && next.crlErr == nil && v.crlSrc.cache != "" {
		if err := writeCache(v.crlSrc.cache, next.crlRaw); err != nil {
			v.log.Warn("fedmsg trust: cannot write cache file", "what", v.crlSrc.what, "cache", v.crlSrc.cache, "error", err)
		}
	}

	// What we now hold may still be unusable: an invalid CRL with nothing
	// better to fall back on, or an expired one. Keep it (it is the best
	// information there is; messages get a clear error) but retry with
	// backoff.
	var problem error
	switch {
	case next.crlErr != nil:
		problem = next.crlErr
	case next.crl != nil:
		if err := crlTimeError(next.crl, now); err != nil {
			problem = fmt.Errorf("%w (CRL from %s)", err, next.crlFrom)
		}
	}
	if problem != nil {
		return v.reloadFailed(now, problem)
	}

	v.failures = 0
	v.lastErr.Store(nil)
	v.nextAllowed.Store(now.Add(v.opts.MinRefreshInterval).UnixNano())
	attrs := []any{"ca", next.caFrom, "generation", next.gen}
	if next.crl != nil {
		attrs = append(attrs, "crl", next.crlFrom, "crl_next_update", next.crl.NextUpdate)
	}
	if old == nil || old.gen != next.gen {
		v.log.Info("fedmsg trust: CA/CRL loaded", attrs...)
	} else {
		v.log.Debug("fedmsg trust: CA/CRL unchanged", attrs...)
	}
	return nil
}

// reloadFailed records a failed (or unusable) reload and schedules the next
// automatic attempt: MinRefreshInterval after the first failure, doubling
// each time, at most MaxRefreshBackoff.
func (v *Validator) reloadFailed(now time.Time, err error) error {
	v.failures++
	backoff := v.opts.MinRefreshInterval
	for i := 1; i < v.failures && backoff < v.opts.MaxRefreshBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, v.opts.MaxRefreshBackoff)
	next := now.Add(backoff)
	v.nextAllowed.Store(next.UnixNano())
	v.lastErr.Store(&err)
	level := slog.LevelError
	if v.state.Load() != nil {
		level = slog.LevelWarn // an older copy is still in use
	}
	v.log.Log(context.Background(), level, "fedmsg trust: CA/CRL reload failed",
		"error", err, "failures", v.failures, "next_attempt", next, "keeping_previous_copy", v.state.Load() != nil)
	return err
}

// isTrustFailure reports whether err is one of the failures after which
// fedmsg reloads the CA and CRL and tries once more (spec §4.4 step 6).
func isTrustFailure(err error) bool {
	return errors.Is(err, ErrTrustUnavailable) || errors.Is(err, ErrUntrusted) ||
		errors.Is(err, ErrCertNotValid) || errors.Is(err, ErrRevoked) ||
		errors.Is(err, ErrCRLExpired) || errors.Is(err, ErrCRLInvalid)
}

// refreshDue reports whether a copy has outlived its configured expiry.
func (v *Validator) refreshDue(st *trustState, now time.Time) (ca, crl bool) {
	if e := v.caSrc.expiry; e > 0 && !now.Before(st.caFetched.Add(e)) {
		ca = true
	}
	if e := v.crlSrc.expiry; st.hasCRL && e > 0 && !now.Before(st.crlFetched.Add(e)) {
		crl = true
	}
	return ca, crl
}

// currentState returns the trust state to validate with, first refreshing
// an expired copy when that is allowed. Only one goroutine refreshes; the
// others carry on with the copy they have instead of waiting.
func (v *Validator) currentState(ctx context.Context) *trustState {
	st := v.state.Load()
	if st == nil {
		return nil
	}
	now := v.now()
	wantCA, wantCRL := v.refreshDue(st, now)
	if !wantCA && !wantCRL || now.UnixNano() < v.nextAllowed.Load() {
		return st
	}
	if ctx.Err() != nil || !v.mu.TryLock() {
		return st
	}
	defer v.mu.Unlock()
	if cur := v.state.Load(); cur != st {
		return cur
	}
	_ = v.reloadLocked(ctx, wantCA, wantCRL) // failures are logged and keep st
	return v.state.Load()
}

// retryState implements fedmsg's "drop the cached CA/CRL, load them again
// and retry once" after a trust failure, bounded: if another goroutine has
// published a newer state since st, that one is used; otherwise a reload
// happens only when the rate limit and backoff allow it. It returns the
// state to retry with, which is st itself when nothing new was loaded.
func (v *Validator) retryState(ctx context.Context, st *trustState) *trustState {
	if ctx.Err() != nil || v.now().UnixNano() < v.nextAllowed.Load() {
		if cur := v.state.Load(); cur != st {
			return cur
		}
		return st
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if cur := v.state.Load(); cur != st {
		return cur
	}
	if v.now().UnixNano() < v.nextAllowed.Load() {
		return st
	}
	_ = v.reloadLocked(ctx, true, true)
	return v.state.Load()
}
