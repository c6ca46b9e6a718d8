package fedmsg

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/signing/gpg"
)

// NewSigner builds the signer crypto_backend names. For x509, index is the
// certnames entry to sign with (see signing.CertIndex); for gpg the key is
// gpg_signing_key, else gpg_keys[hostname].
func NewSigner(cfg *config.Config, index, hostname string) (signing.Signer, error) {
	if cfg.CryptoBackend == "gpg" {
		key := cfg.GPGSigningKey
		if key == "" {
			key = cfg.GPGKeys[hostname]
		}
		files := cfg.GPGSecretKeyring
		if len(files) == 0 && cfg.GPGHome != "" {
			files = []string{cfg.GPGHome}
		}
		if len(files) == 0 {
			return nil, errors.New("fedmsg: gpg signing needs gpg_secret_keyring (or gpg_home) with the exported secret key")
		}
		return gpg.NewSigner(key, files...)
	}
	return signing.LoadX509Signer(cfg.SSLDir, cfg.Certnames, index)
}

// NewValidator builds the validator validate_signatures uses from the
// CA, CRL, routing and backend keys.
func NewValidator(cfg *config.Config, log *slog.Logger) (*signing.Validator, error) {
	o := signing.Options{
		CACertLocation:    cfg.CACertLocation,
		CRLLocation:       cfg.CRLLocation,
		CACertCache:       cfg.CACertCache,
		CRLCache:          cfg.CRLCache,
		CACertCacheExpiry: time.Duration(cfg.CACertCacheExpiry) * time.Second,
		CRLCacheExpiry:    time.Duration(cfg.CRLCacheExpiry) * time.Second,
		RoutingPolicy:     cfg.RoutingPolicy,
		RoutingNitpicky:   cfg.RoutingNitpicky,
		Backends:          cfg.CryptoValidateBackends,
		Logger:            log,
	}
	if slices.Contains(cfg.CryptoValidateBackends, "gpg") {
		files := cfg.GPGKeyring
		if len(files) == 0 && cfg.GPGHome != "" {
			files = []string{cfg.GPGHome}
		}
		if len(files) == 0 {
			return nil, errors.New("fedmsg: crypto_validate_backends has gpg but neither gpg_keyring nor gpg_home is set")
		}
		kr, err := gpg.LoadKeyring(files...)
		if err != nil {
			return nil, fmt.Errorf("fedmsg: gpg keyring: %w", err)
		}
		o.GPG = kr
	}
	return signing.NewValidator(o)
}

// Resign replaces whatever credentials body carries with signer's: the
// signing relay's job (see signing.Resign).
func Resign(signer signing.Signer, body []byte) ([]byte, error) {
	return signing.Resign(signer, body)
}

// Validator returns the context's validator, built on first use from the
// CA, CRL and routing keys (a CA or CRL URL is fetched then).
func (c *Context) Validator() (*signing.Validator, error) {
	c.validatorOnce.Do(func() {
		c.validator, c.validatorErr = NewValidator(c.cfg, c.log)
	})
	return c.validator, c.validatorErr
}
