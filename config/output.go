package config

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// Map returns every key (fedmsg names) with its value, plus the Extra keys,
// for printing (`fedmsg config`). Values are copies: string, int, float64,
// bool, []string, map[string]string, map[string][]string, map[string]any,
// nil (crl_location null), or the parsed value of an any key.
func (c *Config) Map() map[string]any {
	rv := reflect.ValueOf(c).Elem()
	out := make(map[string]any, len(fields)+len(c.Extra))
	for _, f := range fields {
		fv := rv.Field(f.index)
		var v any
		switch f.kind {
		case kNullString:
			if !fv.IsNil() {
				v = fv.Elem().String()
			}
		case kStringList, kCommaList:
			if !fv.IsNil() {
				v = append([]string{}, fv.Interface().([]string)...)
			} else {
				v = []string(nil)
			}
		case kStringMap:
			m := fv.Interface().(map[string]string)
			if m != nil {
				cp := make(map[string]string, len(m))
				for k, e := range m {
					cp[k] = e
				}
				v = cp
			} else {
				v = map[string]string(nil)
			}
		case kStringListMap:
			m := fv.Interface().(map[string][]string)
			if m != nil {
				cp := make(map[string][]string, len(m))
				for k, e := range m {
					cp[k] = append([]string{}, e...)
				}
				v = cp
			} else {
				v = map[string][]string(nil)
			}
		case kAnyMap:
			if m := fv.Interface().(map[string]any); m != nil {
				v = clean(m, 0)
			} else {
				v = map[string]any(nil)
			}
		case kAny:
			v = clean(fv.Interface(), 0)
		default:
			v = fv.Interface()
		}
		out[f.key] = v
	}
	for k, e := range c.Extra {
		if _, known := out[k]; !known {
			out[k] = clean(e, 0)
		}
	}
	return out
}

// redactedText replaces secrets in Redacted.
const redactedText = "<redacted>"

// Redacted is Map with secrets replaced by "<redacted>": the value of
// every key (at any depth) named pass, password, passwd or secret or
// ending in _pass, _password, _passwd or _secret (stomp_pass, ...), when
// it is not empty, and the password of every URL in any string
// (amqp://user:pass@host -> amqp://user:<redacted>@host).
func (c *Config) Redacted() map[string]any {
	m := c.Map()
	for k, v := range m {
		m[k] = redact(k, v)
	}
	return m
}

func isSecretKey(key string) bool {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		key = key[i+1:]
	}
	key = strings.ToLower(key)
	switch key {
	case "pass", "password", "passwd", "secret":
		return true
	}
	for _, suf := range []string{"_pass", "_password", "_passwd", "_secret"} {
		if strings.HasSuffix(key, suf) {
			return true
		}
	}
	return false
}

func isEmptyValue(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map:
		return rv.Len() == 0
	}
	return false
}

func redact(key string, v any) any {
	if isSecretKey(key) && !isEmptyValue(v) {
		return redactedText
	}
	switch t := v.(type) {
	case string:
		return redactURL(t)
	case []string:
		if t == nil {
			return t
		}
		out := make([]string, len(t))
		for i, s := range t {
			out[i] = redactURL(s)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = redact("", e)
		}
		return out
	case map[string]string:
		if t == nil {
			return t
		}
		out := make(map[string]string, len(t))
		for k, s := range t {
			if isSecretKey(k) && s != "" {
				out[k] = redactedText
			} else {
				out[k] = redactURL(s)
			}
		}
		return out
	case map[string][]string:
		if t == nil {
			return t
		}
		out := make(map[string][]string, len(t))
		for k, l := range t {
			out[k] = redact("", l).([]string)
		}
		return out
	case map[string]any:
		if t == nil {
			return t
		}
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = redact(k, e)
		}
		return out
	}
	return v
}

// urlPassword finds the password of a URL's user information: the scheme,
// "//", the user (no ':', '@' or '/'), then ':' and everything up to the
// last '@' before the path.
var urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):[^/\s]*@`)

// redactURL replaces the password of every URL in s.
func redactURL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return urlPassword.ReplaceAllString(s, "${1}:"+redactedText+"@")
}

// Lookup returns one value by fedmsg key name (as Map gives it), for
// `fedmsg config --query KEY`. A dotted key that is not a key itself may
// index into a map value ("endpoints.relay_outbound",
// "endpoints.bodhi.app01") or a list by position ("relay_inbound.0").
func (c *Config) Lookup(key string) (any, bool) {
	return index(c.Map(), key, 0)
}

// LookupRedacted is Lookup on Redacted: what `fedmsg config --query`
// prints, so a query reaching into a value (amqp_url.0, a map's
// password) shows no more than the whole configuration would.
func (c *Config) LookupRedacted(key string) (any, bool) {
	return index(c.Redacted(), key, 0)
}

// index resolves path inside v. For a map it tries path as a whole key
// first, then ever shorter dotted prefixes of it, so keys containing dots
// are found.
func index(v any, path string, depth int) (any, bool) {
	if depth > 64 {
		return nil, false
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, false
		}
		get := func(k string) (any, bool) {
			e := rv.MapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()))
			if !e.IsValid() {
				return nil, false
			}
			return e.Interface(), true
		}
		if e, ok := get(path); ok {
			return e, true
		}
		for i := len(path) - 1; i > 0; i-- {
			if path[i] != '.' {
				continue
			}
			if e, ok := get(path[:i]); ok {
				if r, ok := index(e, path[i+1:], depth+1); ok {
					return r, true
				}
			}
		}
	case reflect.Slice:
		first, rest, more := strings.Cut(path, ".")
		n, err := strconv.Atoi(first)
		if err != nil || n < 0 || n >= rv.Len() {
			return nil, false
		}
		e := rv.Index(n).Interface()
		if !more {
			return e, true
		}
		return index(e, rest, depth+1)
	}
	return nil, false
}
