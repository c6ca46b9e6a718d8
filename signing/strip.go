package signing

import "github.com/gofedmsg/fedmsg/message"

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
