package signing

import (
	"bytes"
	"errors"
	"maps"
	"testing"

	"github.com/gofedmsg/fedmsg/message"
)

// FuzzValidate feeds arbitrary envelope bytes, and arbitrary signature and
// certificate contents grafted onto a valid vector, to a validator loaded
// with the vectors' CA and CRL. It must never panic, every rejection must
// wrap exactly one sentinel, and a grafted envelope may only validate with
// the vector's own signature bytes and certificate. Seeds: the vectors
// (f.Add below) and testdata/fuzz/FuzzValidate.
func FuzzValidate(f *testing.F) {
	v := defaultValidator(f, func(o *Options) { o.CertCacheSize = 64 })
	base := vectorEnv(f, "signed/v02-unicode.json")
	baseSig, err := decodeBase64(nil, base["signature"].(string))
	if err != nil {
		f.Fatal(err)
	}
	baseCert := v.certs.get(base["certificate"].(string))
	if baseCert.cert == nil {
		f.Fatal("base certificate does not parse")
	}
	for _, name := range []string{"v01-ascii", "v02-unicode", "v04-scalars", "n01-rogue", "t06-unwrapped-base64", "t07-reserialized", "t08-unsigned"} {
		body := vectorBytes(f, "signed/"+name+".json")
		env, _ := message.DecodeObject(body)
		sig, _ := env["signature"].(string)
		cert, _ := env["certificate"].(string)
		f.Add(body, sig, cert)
	}

	f.Fuzz(func(t *testing.T, body []byte, sig, cert string) {
		check := func(what string, err error) {
			if err == nil {
				return
			}
			if n := len(sentinelsOf(err)); n != 1 {
				t.Fatalf("%s: error wraps %d sentinels: %v", what, n, err)
			}
		}
		check("ValidateBytes", v.ValidateBytes(bg, body))

		env := maps.Clone(base)
		env["signature"] = sig
		env["certificate"] = cert
		err := v.Validate(bg, env)
		check("grafted strings", err)
		if err == nil {
			got, derr := decodeBase64(nil, sig)
			if derr != nil || !bytes.Equal(got, baseSig) {
				t.Fatalf("validated with a different signature %q", sig)
			}
			e := v.certs.get(cert)
			if e.cert == nil || !bytes.Equal(e.cert.Raw, baseCert.cert.Raw) {
				t.Fatalf("validated with a different certificate %q", cert)
			}
		}

		// The body as a JSON value grafted in place of the credentials, and
		// as the crypto field: type confusion must be an error.
		if val, derr := message.Decode(body); derr == nil {
			for _, field := range []string{"signature", "certificate", "crypto"} {
				env := maps.Clone(base)
				env[field] = val
				err := v.Validate(bg, env)
				check("grafted "+field, err)
				if _, isString := val.(string); !isString && err == nil {
					t.Fatalf("a %T %s validated", val, field)
				}
				if _, isString := val.(string); !isString && field != "crypto" && !errors.Is(err, ErrMalformed) {
					t.Fatalf("non-string %s: %v, want ErrMalformed", field, err)
				}
			}
		}
	})
}
