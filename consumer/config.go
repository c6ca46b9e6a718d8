package consumer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gofedmsg/fedmsg/internal/tree"
)

// ErrConfig wraps every problem in a consumers section.
var ErrConfig = errors.New("consumer: bad configuration")

// Built-in consumer kinds.
const (
	KindFile    = "file"
	KindExec    = "exec"
	KindWebhook = "webhook"
)

// Kinds lists the built-in kinds.
var Kinds = []string{KindExec, KindFile, KindWebhook}

// commonKeys are the keys every consumer entry may have.
var commonKeys = []string{"name", "kind", "topics", "validate_signatures"}

// kindKeys are the keys each kind adds.
var kindKeys = map[string][]string{
	KindFile:    {"path"},
	KindExec:    {"command", "timeout"},
	KindWebhook: {"url", "timeout", "max_attempts", "backoff", "max_backoff", "headers"},
}

// Spec is one entry of the consumers section, decoded and checked.
type Spec struct {
	Name               string
	Kind               string
	Topics             []string
	ValidateSignatures *bool
	File               FileOptions
	Exec               ExecOptions
	Webhook            WebhookOptions
}

// DecodeConfig reads the consumers section: a list of maps, each with
// name, kind, topics, validate_signatures and the kind's own keys. Every
// problem is reported, each naming the consumer and the key.
func DecodeConfig(raw any) ([]Spec, error) {
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: consumers must be a list, got %s", ErrConfig, tree.TypeName(raw))
	}
	var errs []error
	var out []Spec
	names := map[string]bool{}
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: consumers[%d] must be a map, got %s", ErrConfig, i, tree.TypeName(item)))
			continue
		}
		d := &decoder{m: m, where: fmt.Sprintf("consumers[%d]", i)}
		s := Spec{Name: d.str("name", true)}
		if s.Name != "" {
			d.where = fmt.Sprintf("consumer %q", s.Name)
			if names[s.Name] {
				d.fail("name", "used by two consumers")
			}
			names[s.Name] = true
		}
		s.Kind = d.str("kind", true)
		allowed, known := kindKeys[s.Kind]
		if s.Kind != "" && !known {
			d.fail("kind", fmt.Sprintf("unknown kind %q (want %s)", s.Kind, strings.Join(Kinds, ", ")))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !slices.Contains(commonKeys, k) && (known && !slices.Contains(allowed, k)) {
				d.fail(k, fmt.Sprintf("unknown key for a %s consumer", s.Kind))
			}
		}
		s.Topics = d.strings("topics")
		if _, has := m["validate_signatures"]; has {
			if b, ok := m["validate_signatures"].(bool); ok {
				s.ValidateSignatures = &b
			} else {
				d.fail("validate_signatures", "must be true or false (leave it out to follow the configuration)")
			}
		}
		switch s.Kind {
		case KindFile:
			s.File.Path = d.str("path", true)
		case KindExec:
			s.Exec.Command = d.command("command")
			s.Exec.Timeout = d.duration("timeout")
		case KindWebhook:
			s.Webhook.URL = d.str("url", true)
			if u := s.Webhook.URL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				d.fail("url", "must be an http:// or https:// URL")
			}
			s.Webhook.Timeout = d.duration("timeout")
			s.Webhook.Backoff = d.duration("backoff")
			s.Webhook.MaxBackoff = d.duration("max_backoff")
			s.Webhook.MaxAttempts = d.int("max_attempts")
			s.Webhook.Headers = d.stringMap("headers")
		}
		errs = append(errs, d.errs...)
		out = append(out, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: consumers is empty", ErrConfig)
	}
	return out, nil
}

// Build makes the consumer a Spec describes. Close releases what it
// opened (the file consumer's file).
func Build(s Spec, log *slog.Logger) (Consumer, io.Closer, error) {
	c := Consumer{Name: s.Name, Topics: s.Topics, ValidateSignatures: s.ValidateSignatures}
	var closer io.Closer = nopCloser{}
	switch s.Kind {
	case KindFile:
		f, err := NewFile(s.File)
		if err != nil {
			return Consumer{}, nil, fmt.Errorf("consumer %q: %w", s.Name, err)
		}
		c.Handler, closer = f.Handle, f
	case KindExec:
		c.Handler = NewExec(s.Exec, log).Handle
	case KindWebhook:
		c.Handler = NewWebhook(s.Webhook, log).Handle
	default:
		return Consumer{}, nil, fmt.Errorf("%w: consumer %q: unknown kind %q", ErrConfig, s.Name, s.Kind)
	}
	return c, closer, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// decoder reads the keys of one entry, collecting errors.
type decoder struct {
	m     map[string]any
	where string
	errs  []error
}

func (d *decoder) fail(key, why string) {
	d.errs = append(d.errs, fmt.Errorf("%w: %s: %s: %s", ErrConfig, d.where, key, why))
}

func (d *decoder) str(key string, required bool) string {
	v, ok := d.m[key]
	if !ok {
		if required {
			d.fail(key, "required")
		}
		return ""
	}
	s, ok := v.(string)
	if !ok || (required && s == "") {
		d.fail(key, "must be a non-empty string")
		return ""
	}
	return s
}

func (d *decoder) strings(key string) []string {
	v, ok := d.m[key]
	if !ok {
		return nil
	}
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				d.fail(key, "must be a list of strings")
				return nil
			}
			out = append(out, s)
		}
		return out
	}
	d.fail(key, "must be a string or a list of strings")
	return nil
}

// command is an argv list, or a string run by /bin/sh -c.
func (d *decoder) command(key string) []string {
	v, ok := d.m[key]
	if !ok {
		d.fail(key, "required")
		return nil
	}
	switch x := v.(type) {
	case string:
		if strings.TrimSpace(x) == "" {
			d.fail(key, "must not be empty")
			return nil
		}
		return []string{"/bin/sh", "-c", x}
	case []any:
		argv := d.strings(key)
		if len(x) == 0 || (len(argv) > 0 && argv[0] == "") {
			d.fail(key, "must name a program")
		}
		return argv
	}
	d.fail(key, "must be a string (run by /bin/sh -c) or a list (the argv)")
	return nil
}

// duration is seconds (a number, as fedmsg's timeouts) or a Go duration
// string ("1.5s", "200ms").
func (d *decoder) duration(key string) time.Duration {
	v, ok := d.m[key]
	if !ok {
		return 0
	}
	// Seconds beyond what a Duration holds (about 292 years) would wrap
	// around to a small or negative value: refuse them instead.
	const maxSeconds = float64(math.MaxInt64 / int64(time.Second))
	var secs float64
	var dur time.Duration
	switch x := v.(type) {
	case int:
		secs, dur = float64(x), time.Duration(x)*time.Second
	case int64:
		secs, dur = float64(x), time.Duration(x)*time.Second
	case float64:
		secs, dur = x, time.Duration(x*float64(time.Second))
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			d.fail(key, fmt.Sprintf("must be seconds or a duration like \"10s\": %v", err))
			return 0
		}
		dur = p
	default:
		d.fail(key, "must be seconds or a duration like \"10s\"")
		return 0
	}
	if secs > maxSeconds || math.IsNaN(secs) {
		d.fail(key, fmt.Sprintf("%v seconds is too long (at most %.0f)", v, maxSeconds))
		return 0
	}
	if dur <= 0 {
		d.fail(key, "must be positive")
		return 0
	}
	return dur
}

func (d *decoder) int(key string) int {
	v, ok := d.m[key]
	if !ok {
		return 0
	}
	n, whole, number := tree.Int(v)
	switch {
	case !number:
		d.fail(key, "must be a number")
		return 0
	case !whole:
		d.fail(key, "must be a whole number")
		return 0
	}
	if n <= 0 {
		d.fail(key, "must be at least 1")
		return 0
	}
	return n
}

func (d *decoder) stringMap(key string) map[string]string {
	v, ok := d.m[key]
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(key, "must be a map of strings")
		return nil
	}
	out := map[string]string{}
	for k, e := range m {
		s, ok := e.(string)
		if !ok {
			d.fail(key, fmt.Sprintf("%q must be a string", k))
			continue
		}
		out[k] = s
	}
	return out
}
