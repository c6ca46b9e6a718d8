package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A small PKI generated in the tests, for what the vectors cannot show
// (their CA key is not shipped): CRLs that change, non-RSA certificates,
// certificates outside their validity period.

var (
	keyOnce sync.Once
	rsaKeys [4]*rsa.PrivateKey
	ecKey   *ecdsa.PrivateKey
)

func testKeys(tb testing.TB) ([4]*rsa.PrivateKey, *ecdsa.PrivateKey) {
	tb.Helper()
	keyOnce.Do(func() {
		for i := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[i] = k
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		ecKey = k
	})
	return rsaKeys, ecKey
}

type testPKI struct {
	key   crypto.Signer
	ca    *x509.Certificate
	caPEM []byte
}

// newTestPKI makes a CA named name with key index keyIdx.
func newTestPKI(tb testing.TB, name string, keyIdx int) *testPKI {
	tb.Helper()
	keys, _ := testKeys(tb)
	key := keys[keyIdx]
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(0x1000),
		Subject:               pkix.Name{Organization: []string{"gofedmsg tests"}, CommonName: name},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testPKI{key: key, ca: ca, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf certificate for pub, returning it and its PEM.
func (p *testPKI) issue(tb testing.TB, cn string, serial int64, pub crypto.PublicKey, notBefore, notAfter time.Time) (*x509.Certificate, []byte) {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{Organization: []string{"gofedmsg tests"}, CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, pub, p.key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// crl makes a PEM CRL of p revoking serials.
func (p *testPKI) crl(tb testing.TB, number int64, thisUpdate, nextUpdate time.Time, serials ...int64) []byte {
	tb.Helper()
	var entries []x509.RevocationListEntry
	for _, s := range serials {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                thisUpdate,
		NextUpdate:                nextUpdate,
		RevokedCertificateEntries: entries,
	}, p.ca, p.key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// leafSigner writes a certificate for RSA key keyIdx issued by p to dir and
// returns a signer for it.
func (p *testPKI) leafSigner(tb testing.TB, dir, cn string, serial int64, keyIdx int, notBefore, notAfter time.Time) *X509Signer {
	tb.Helper()
	keys, _ := testKeys(tb)
	key := keys[keyIdx]
	_, certPEM := p.issue(tb, cn, serial, &key.PublicKey, notBefore, notAfter)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	base := filepath.Join(dir, cn)
	writeFile(tb, base+".crt", certPEM)
	writeFile(tb, base+".key", keyPEM)
	s, err := NewX509Signer(base+".crt", base+".key")
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func writeFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
