package signing

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

// manifest mirrors shared/testdata/fedmsg-x509/manifest.json.
type manifest struct {
	Files []struct {
		ID               string `json:"id"`
		File             string `json:"file"`
		SigningCertname  string `json:"signing_certname"`
		ProducedBy       string `json:"produced_by"`
		DerivedFrom      string `json:"derived_from"`
		SigningInputFile string `json:"signing_input_file"`
		SigningInputSHA1 string `json:"signing_input_sha1"`
		OpensslVerify    string `json:"openssl_dgst_sha1_verify"`
	} `json:"files"`
	Cases []struct {
		ID        string `json:"id"`
		File      string `json:"file"`
		Validator string `json:"validator"`
		Signer    string `json:"signer"`
		Config    struct {
			CACertLocation  string              `json:"ca_cert_location"`
			CRLLocation     *string             `json:"crl_location"`
			RoutingPolicy   map[string][]string `json:"routing_policy"`
			RoutingNitpicky bool                `json:"routing_nitpicky"`
		} `json:"config"`
		Expected bool     `json:"expected"`
		Log      []string `json:"fedmsg_log"`
	} `json:"cases"`
}

func x509Dir(tb testing.TB) string {
	tb.Helper()
	return sharedtest.Dir(tb, "fedmsg-x509")
}

func loadManifest(tb testing.TB) manifest {
	tb.Helper()
	var m manifest
	if err := json.Unmarshal(sharedtest.Read(tb, "fedmsg-x509", "manifest.json"), &m); err != nil {
		tb.Fatalf("manifest.json: %v", err)
	}
	if len(m.Cases) == 0 || len(m.Files) == 0 {
		tb.Fatalf("manifest.json has no cases or files")
	}
	return m
}

// vectorBytes reads a file of the fedmsg-x509 directory (path relative to it).
func vectorBytes(tb testing.TB, rel string) []byte {
	tb.Helper()
	return sharedtest.Read(tb, "fedmsg-x509", filepath.FromSlash(rel))
}

func vectorEnv(tb testing.TB, rel string) map[string]any {
	tb.Helper()
	env, err := message.DecodeObject(vectorBytes(tb, rel))
	if err != nil {
		tb.Fatalf("%s: %v", rel, err)
	}
	return env
}

func strPtr(s string) *string { return &s }

// defaultValidator validates with the vectors' CA and CRL.
func defaultValidator(tb testing.TB, mod func(*Options)) *Validator {
	tb.Helper()
	dir := x509Dir(tb)
	o := Options{
		CACertLocation: filepath.Join(dir, "ca.crt"),
		CRLLocation:    strPtr(filepath.Join(dir, "crl.pem")),
	}
	if mod != nil {
		mod(&o)
	}
	v, err := NewValidator(o)
	if err != nil {
		tb.Fatalf("NewValidator: %v", err)
	}
	return v
}

func signerFor(tb testing.TB, certname string) *X509Signer {
	tb.Helper()
	dir := x509Dir(tb)
	s, err := NewX509Signer(filepath.Join(dir, certname+".crt"), filepath.Join(dir, certname+".key"))
	if err != nil {
		tb.Fatalf("NewX509Signer(%s): %v", certname, err)
	}
	return s
}

var bg = context.Background()
