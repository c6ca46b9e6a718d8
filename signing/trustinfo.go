package signing

import (
	"fmt"
	"time"
)

// TrustInfo describes the CA and CRL a Validator holds, for monitoring:
// when they expire and when they were last (re)loaded. Zero times mean
// "not known" (nothing loaded, or no CRL configured).
type TrustInfo struct {
	// X509 is false when the validator does not accept x509 at all; the
	// other fields are then zero.
	X509 bool
	// Loaded: a CA certificate has been loaded (maybe with a CRL).
	Loaded bool
	// CANotAfter is the end of the CA certificate's validity.
	CANotAfter time.Time
	// CAFetched is when the CA copy in use was read or downloaded.
	CAFetched time.Time
	// HasCRL: a CRL is configured (crl_location).
	HasCRL bool
	// CRLNextUpdate is the CRL's nextUpdate (zero: none, or no usable CRL).
	CRLNextUpdate time.Time
	// CRLFetched is when the CRL copy in use was read or downloaded.
	CRLFetched time.Time
	// CRLError is why the configured CRL cannot be used (wraps
	// ErrCRLInvalid), nil when it can.
	CRLError error
	// LoadError is LoadError(): why the last reload failed, nil after a
	// good one.
	LoadError error
}

// TrustInfo returns what v currently holds. It takes no lock that
// validation waits on, so a metrics scrape never slows messages down.
func (v *Validator) TrustInfo() TrustInfo {
	info := TrustInfo{X509: v.allowX509, LoadError: v.LoadError()}
	if !v.allowX509 {
		return info
	}
	st := v.state.Load()
	info.HasCRL = v.crlSrc.location != ""
	if st == nil {
		return info
	}
	info.Loaded = true
	info.CANotAfter, info.CAFetched = st.ca.NotAfter, st.caFetched
	if st.hasCRL {
		info.CRLFetched, info.CRLError = st.crlFetched, st.crlErr
		if st.crl != nil {
			info.CRLNextUpdate = st.crl.NextUpdate
		}
	}
	return info
}

// TrustProblem reports why x509 validation cannot succeed for any message
// right now, judged by the validator's own clock: no CA loaded, a
// configured CRL that is unusable, or a CRL past its nextUpdate. It
// returns nil when the validator does not do x509 or the trust material
// is usable. The error wraps ErrTrustUnavailable, ErrCRLInvalid or
// ErrCRLExpired.
func (v *Validator) TrustProblem() error {
	info := v.TrustInfo()
	switch {
	case !info.X509:
		return nil
	case !info.Loaded:
		if info.LoadError != nil {
			return info.LoadError
		}
		return fmt.Errorf("%w: the CA certificate is not loaded", ErrTrustUnavailable)
	case info.CRLError != nil:
		return info.CRLError
	case !info.CRLNextUpdate.IsZero() && info.CRLNextUpdate.Unix() <= v.now().Unix(): // whole seconds, as crlTimeError
		return fmt.Errorf("%w: nextUpdate was %s", ErrCRLExpired, info.CRLNextUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}
