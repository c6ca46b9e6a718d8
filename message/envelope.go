package message

import (
	"crypto/rand"
	"encoding/json"
	"math"
	"os"
	"os/user"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"
)

// Envelope field names (spec §2.1).
const (
	FieldTopic       = "topic"
	FieldMsg         = "msg"
	FieldTimestamp   = "timestamp"
	FieldMsgID       = "msg_id"
	FieldI           = "i"
	FieldUsername    = "username"
	FieldCrypto      = "crypto"
	FieldSignature   = "signature"
	FieldCertificate = "certificate"
	FieldSeqID       = "seq_id"
)

// Topic builds the fully-qualified topic the way FedMsgContext.publish
// does: t = modname + "." + topic (an empty topic is "unspecified"); unless
// t already starts with prefix, it becomes prefix + "." + environment + "."
// + t. The test is a plain string prefix test with no dot check, so a
// modname that already carries prefix and environment is used as it is.
func Topic(prefix, environment, modname, topic string) string {
	if topic == "" {
		topic = "unspecified"
	}
	t := modname + "." + topic
	if len(t) >= len(prefix) && t[:len(prefix)] == prefix {
		return t
	}
	return prefix + "." + environment + "." + t
}

// NewMsgID returns a fresh msg_id, "<YYYY>-<uuid4>": the calendar year of
// now in now's own location (fedmsg uses the publisher's local time, so
// pass time.Now()), a hyphen and a random version-4 UUID in lowercase
// 8-4-4-4-12 form.
func NewMsgID(now time.Time) string {
	var u [16]byte
	// crypto/rand.Read never fails (the runtime aborts rather than return
	// weak randomness), so there is no error to handle.
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0F | 0x40 // version 4
	u[8] = u[8]&0x3F | 0x80 // RFC 4122 variant
	b := make([]byte, 0, 41)
	b = strconv.AppendInt(b, int64(now.Year()), 10)
	b = append(b, '-')
	for i, c := range u {
		switch i {
		case 4, 6, 8, 10:
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xF])
	}
	return string(b)
}

// Username returns the user a publisher reports in the envelope: the first
// non-empty of the environment variables LOGNAME, USER, LNAME and USERNAME
// (Python's getpass.getuser order), else the account name of the current
// user, else "".
func Username() string {
	for _, k := range [...]string{"LOGNAME", "USER", "LNAME", "USERNAME"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// IsFalsy reports whether Python would consider the value false: None, "",
// a numeric zero (Number "0", "-0", "0.0", "0e0", ...; NaN is true), false,
// an empty list or dict. publish replaces a falsy msg with {}.
func IsFalsy(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case string:
		return x == ""
	case Number:
		return numberIsZero(string(x))
	case json.Number:
		return numberIsZero(string(x))
	case int:
		return x == 0
	case int64:
		return x == 0
	case uint64:
		return x == 0
	case float64:
		return x == 0 // false for NaN, true for -0.0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	// Other Go values: mirror Python's rule for the closest Python type
	// (sequences and mappings by length, numbers by value, nil pointers as
	// None); anything else is an object, and objects are true.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.Array, reflect.String:
		return rv.Len() == 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return rv.Float() == 0
	case reflect.Bool:
		return !rv.Bool()
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// numberIsZero reports whether number text denotes zero. An empty Number is
// the zero value and counts as zero; text that is not a number does not.
func numberIsZero(s string) bool {
	if s == "" {
		return true
	}
	if !validNumber(s) {
		return false // NaN, Infinity and junk are all "true"
	}
	if !Number(s).IsFloat() {
		return s == "0" || s == "-0"
	}
	f := parseFloat(s) // "1e-400" is 0.0 in Python too
	return f == 0 && !math.IsNaN(f)
}

// NewEnvelope builds the six fields publish puts in every message (spec
// §2.1): topic, msg (a falsy msg becomes {}), timestamp (now.Unix() as an
// int64, Python's int(time.time())), msg_id (NewMsgID(now)), i and username.
// Signing adds crypto, signature and certificate afterwards.
func NewEnvelope(topic string, msg any, i int64, username string, now time.Time) map[string]any {
	if IsFalsy(msg) {
		msg = map[string]any{}
	}
	return map[string]any{
		FieldTopic:     topic,
		FieldMsg:       msg,
		FieldTimestamp: now.Unix(),
		FieldMsgID:     NewMsgID(now),
		FieldI:         i,
		FieldUsername:  username,
	}
}

// Counter is a publisher's "i" counter. Python keeps one per context and
// bumps it at the start of publish, before anything can fail, so a failed
// publish still consumes a number. The zero value is ready to use.
type Counter struct {
	n atomic.Int64
}

// Next returns 1, 2, 3, ... ; it is safe for concurrent use.
func (c *Counter) Next() int64 { return c.n.Add(1) }

// WithoutCredentials returns a shallow copy of env without "signature" and
// "certificate": the dict whose canonical JSON an x509 signature covers.
// Everything else, crypto included, stays.
func WithoutCredentials(env map[string]any) map[string]any {
	out := make(map[string]any, len(env))
	for k, v := range env {
		if k == FieldSignature || k == FieldCertificate {
			continue
		}
		out[k] = v
	}
	return out
}
