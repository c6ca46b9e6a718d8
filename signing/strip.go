package signing

import (
	"fmt"

	"github.com/gofedmsg/fedmsg/message"
)

// StripCredentials returns a copy of env without signature and certificate
// (crypto stays), like fedmsg.crypto.strip_credentials. Objects and arrays
// are copied at every level, so the result can be modified without touching
// env; scalar values are immutable and shared.
func StripCredentials(env map[string]any) map[string]any {
	if env == nil {
		return nil
	}
	out := make(map[string]any, len(env))
	for k, v := range env {
		if k == message.FieldSignature || k == message.FieldCertificate {
			continue
		}
		out[k] = deepCopy(v, 0)
	}
	return out
}

// deepCopy copies maps and slices. Beyond message.MaxDepth levels (only a
// cyclic value built in Go gets there) the value is shared instead.
func deepCopy(v any, depth int) any {
	if depth > message.MaxDepth {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return x
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e, depth+1)
		}
		return m
	case []any:
		if x == nil {
			return x
		}
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e, depth+1)
		}
		return a
	default:
		return v
	}
}

// Resign replaces whatever credentials body carries with signer's and
// returns the canonical JSON of the result: the signing relay's and the
// bridge's resign job. Python's signing relay signed over the old
// credentials, which could never validate; this drops them first.
// Undecodable input wraps ErrMalformed.
func Resign(signer Signer, body []byte) ([]byte, error) {
	env, err := message.DecodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	// env was decoded here and belongs to nobody else, so the old
	// credentials are deleted in place: StripCredentials' deep copy, made
	// for callers' maps, would be paid per message for nothing.
	delete(env, message.FieldSignature)
	delete(env, message.FieldCertificate)
	signed, err := signer.Sign(env)
	if err != nil {
		return nil, err
	}
	out, err := message.Canonical(signed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return out, nil
}
