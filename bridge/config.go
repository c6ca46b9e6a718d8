package bridge

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gofedmsg/fedmsg/internal/tree"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/spool"
)

// SignaturePolicy is what a route does with the signatures of the messages
// it carries.
type SignaturePolicy string

const (
	// Passthrough forwards the body untouched, signed or not (the default).
	Passthrough SignaturePolicy = "passthrough"
	// RequireValid forwards only messages whose signature validates; the
	// others are dropped and counted by reason.
	RequireValid SignaturePolicy = "require-valid"
	// Resign replaces the message's credentials with the bridge's own.
	Resign SignaturePolicy = "resign"
)

// Delivery is the guarantee a route is asked to give.
type Delivery string

const (
	// AtMostOnce acks the source whatever happens to the message; a sink
	// failure loses it (counted). The default, and all ZeroMQ can offer.
	AtMostOnce Delivery = "at-most-once"
	// AtLeastOnce acks the source only after the sink confirmed; a sink
	// failure makes the source redeliver. Needs a source with Redelivery
	// and a sink with Confirms.
	AtLeastOnce Delivery = "at-least-once"
)

// Transport kinds cmd knows how to build. The bridge itself never builds a
// transport; it only checks the name so that a typo fails at load time, not
// when cmd looks the kind up.
var Kinds = []string{"zmq", "amqp", "stomp"}

// TransportConfig is one entry of the transports map: its kind and every
// other key as written, for cmd to turn into a transport.Transport.
type TransportConfig struct {
	Kind    string
	Options map[string]any
}

// RouteConfig is one entry of routes. Empty Signatures and Delivery take
// their defaults (Passthrough, AtMostOnce); no Topics means every topic.
type RouteConfig struct {
	Name       string          `yaml:"name"`
	From       string          `yaml:"from"`
	To         string          `yaml:"to"`
	Topics     []string        `yaml:"topics"`
	Signatures SignaturePolicy `yaml:"signatures"`
	Delivery   Delivery        `yaml:"delivery"`
	// Spool switches the route's durable spool on or off; nil means on
	// for an at-least-once route whose source cannot redeliver (see
	// spooled.go).
	Spool *bool `yaml:"spool"`
}

// withDefaults fills the keys that have a default.
func (r RouteConfig) withDefaults() RouteConfig {
	if r.Signatures == "" {
		r.Signatures = Passthrough
	}
	if r.Delivery == "" {
		r.Delivery = AtMostOnce
	}
	return r
}

// Config is the bridge part of a configuration file.
type Config struct {
	Transports map[string]TransportConfig
	Routes     []RouteConfig
	// Settings is the optional "bridge" section: the Options an operator
	// may tune. Zero fields keep Options' defaults.
	Settings Settings
}

// Settings are the keys of the "bridge" section.
type Settings struct {
	ID          string // id: Options.BridgeID
	MaxHops     int    // max_hops: Options.MaxHops
	EchoWindow  int    // echo_window: Options.EchoWindow
	DedupWindow int    // dedup_window: Options.DedupWindow
	MaxBatch    int    // max_batch: Options.MaxBatch
	// spool_dir, spool_max_bytes, spool_full: Options.Spool.
	SpoolDir      string
	SpoolMaxBytes int64
	SpoolFull     string
}

// Apply sets the options the settings name, leaving the rest.
func (s Settings) Apply(o *Options) {
	if s.ID != "" {
		o.BridgeID = s.ID
	}
	if s.MaxHops != 0 {
		o.MaxHops = s.MaxHops
	}
	if s.EchoWindow != 0 {
		o.EchoWindow = s.EchoWindow
	}
	if s.DedupWindow != 0 {
		o.DedupWindow = s.DedupWindow
	}
	if s.MaxBatch != 0 {
		o.MaxBatch = s.MaxBatch
	}
	if s.SpoolDir != "" {
		o.Spool.Dir = s.SpoolDir
	}
	if s.SpoolMaxBytes != 0 {
		o.Spool.MaxBytes = s.SpoolMaxBytes
	}
	if s.SpoolFull != "" {
		o.Spool.Full = spool.Policy(s.SpoolFull)
	}
}

var settingsKeys = []string{"id", "max_hops", "echo_window", "dedup_window", "max_batch", "spool_dir", "spool_max_bytes", "spool_full"}

// decodeSettings reads the "bridge" section. Integers may be negative
// where Options gives that a meaning (no hop limit, a window disabled);
// max_batch must be positive.
func decodeSettings(v any) (Settings, error) {
	var s Settings
	m, ok := v.(map[string]any)
	if !ok {
		return s, configErr("", "bridge", "must be a map of settings, got %s", tree.TypeName(v))
	}
	var errs []error
	integer := func(key string, dst *int) {
		raw, present := m[key]
		if !present {
			return
		}
		n, whole, number := tree.Int(raw)
		switch {
		case !number:
			errs = append(errs, configErr("", "bridge."+key, "must be a number, got %s", tree.TypeName(raw)))
		case !whole:
			errs = append(errs, configErr("", "bridge."+key, "must be a whole number, got %v", raw))
		default:
			*dst = n
		}
	}
	if raw, present := m["id"]; present {
		id, ok := raw.(string)
		if !ok {
			errs = append(errs, configErr("", "bridge.id", "must be a string, got %s", tree.TypeName(raw)))
		} else if err := checkBridgeID(id); err != nil {
			errs = append(errs, err)
		}
		s.ID = id
	}
	integer("max_hops", &s.MaxHops)
	integer("echo_window", &s.EchoWindow)
	integer("dedup_window", &s.DedupWindow)
	integer("max_batch", &s.MaxBatch)
	if s.MaxBatch < 0 {
		errs = append(errs, configErr("", "bridge.max_batch", "must be at least 1, got %d", s.MaxBatch))
	}
	for _, key := range []string{"spool_dir", "spool_full"} {
		raw, present := m[key]
		if !present {
			continue
		}
		v, ok := raw.(string)
		if !ok {
			errs = append(errs, configErr("", "bridge."+key, "must be a string, got %s", tree.TypeName(raw)))
			continue
		}
		if key == "spool_dir" {
			s.SpoolDir = v
		} else if spool.CheckPolicy("bridge.spool_full", v) != nil {
			errs = append(errs, configErr("", "bridge.spool_full", "unknown value %q (want %s or %s)", v, spool.Block, spool.DropOldest))
		} else {
			s.SpoolFull = v
		}
	}
	var maxBytes int
	integer("spool_max_bytes", &maxBytes)
	if _, present := m["spool_max_bytes"]; present && maxBytes < 1024 {
		errs = append(errs, configErr("", "bridge.spool_max_bytes", "must be at least 1024 bytes, got %d", maxBytes))
	}
	s.SpoolMaxBytes = int64(maxBytes)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(settingsKeys, k) {
			errs = append(errs, configErr("", "bridge."+k, "unknown key (want one of %s)", strings.Join(settingsKeys, ", ")))
		}
	}
	return s, errors.Join(errs...)
}

var routeKeys = []string{"name", "from", "to", "topics", "signatures", "delivery", "spool"}

// DecodeConfig turns the generic tree a YAML/JSON/TOML parser produced (cmd
// uses koanf's parsers; the bridge stays free of them) into a Config and
// validates it. Unknown keys are errors rather than ignored: a misspelt
// "delivery" silently meaning at-most-once is the kind of loss the bridge
// exists to prevent.
func DecodeConfig(raw map[string]any) (*Config, error) {
	var errs []error
	cfg := &Config{Transports: map[string]TransportConfig{}}
	for k := range raw {
		if k != "transports" && k != "routes" && k != "bridge" {
			errs = append(errs, configErr("", k, "unknown key (want transports, routes and bridge)"))
		}
	}
	if v, ok := raw["bridge"]; ok {
		var err error
		cfg.Settings, err = decodeSettings(v)
		errs = append(errs, err)
	}
	if t, ok := raw["transports"]; ok {
		tm, ok := t.(map[string]any)
		if !ok {
			errs = append(errs, configErr("", "transports", "must be a map of name to transport, got %s", tree.TypeName(t)))
		}
		for _, name := range slices.Sorted(maps.Keys(tm)) {
			entry, ok := tm[name].(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("%w: transport %q: must be a map with a kind, got %s", ErrInvalidConfig, name, tree.TypeName(tm[name])))
				continue
			}
			tc := TransportConfig{Options: map[string]any{}}
			for k, v := range entry {
				if k == "kind" {
					s, ok := v.(string)
					if !ok {
						errs = append(errs, fmt.Errorf("%w: transport %q: key \"kind\": must be a string, got %s", ErrInvalidConfig, name, tree.TypeName(v)))
					}
					tc.Kind = s
					continue
				}
				tc.Options[k] = v
			}
			cfg.Transports[name] = tc
		}
	}
	if r, ok := raw["routes"]; ok {
		list, ok := r.([]any)
		if !ok {
			errs = append(errs, configErr("", "routes", "must be a list of routes, got %s", tree.TypeName(r)))
		}
		for i, item := range list {
			rc, err := decodeRoute(i, item)
			errs = append(errs, err)
			cfg.Routes = append(cfg.Routes, rc)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func decodeRoute(i int, item any) (RouteConfig, error) {
	var rc RouteConfig
	m, ok := item.(map[string]any)
	if !ok {
		return rc, fmt.Errorf("%w: route #%d: must be a map, got %s", ErrInvalidConfig, i+1, tree.TypeName(item))
	}
	// The name first, so that every other error can name the route.
	label := fmt.Sprintf("#%d", i+1)
	if n, ok := m["name"].(string); ok && n != "" {
		rc.Name, label = n, n
	}
	var errs []error
	str := func(key string) string {
		v, present := m[key]
		if !present {
			return ""
		}
		s, ok := v.(string)
		if !ok {
			errs = append(errs, configErr(label, key, "must be a string, got %s", tree.TypeName(v)))
		}
		return s
	}
	rc.Name = str("name")
	rc.From = str("from")
	rc.To = str("to")
	rc.Signatures = SignaturePolicy(str("signatures"))
	rc.Delivery = Delivery(str("delivery"))
	if v, present := m["spool"]; present {
		on, ok := v.(bool)
		if !ok {
			errs = append(errs, configErr(label, "spool", "must be true or false, got %s", tree.TypeName(v)))
		}
		rc.Spool = &on
	}
	switch t := m["topics"].(type) {
	case nil:
	case string: // one pattern written without brackets
		rc.Topics = []string{t}
	case []any:
		for j, p := range t {
			s, ok := p.(string)
			if !ok {
				errs = append(errs, configErr(label, "topics", "entry %d must be a string, got %s", j+1, tree.TypeName(p)))
				continue
			}
			rc.Topics = append(rc.Topics, s)
		}
	default:
		errs = append(errs, configErr(label, "topics", "must be a list of patterns, got %s", tree.TypeName(t)))
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(routeKeys, k) {
			errs = append(errs, configErr(label, k, "unknown key (want one of %s)", strings.Join(routeKeys, ", ")))
		}
	}
	return rc, errors.Join(errs...)
}

// Validate checks the transports' kinds and every route against the
// transports configured.
func (c *Config) Validate() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c.Transports)) {
		kind := c.Transports[name].Kind
		switch {
		case kind == "":
			errs = append(errs, fmt.Errorf("%w: transport %q: key \"kind\": required (one of %s)", ErrInvalidConfig, name, strings.Join(Kinds, ", ")))
		case !slices.Contains(Kinds, kind):
			errs = append(errs, fmt.Errorf("%w: transport %q: key \"kind\": unknown kind %q (want one of %s)", ErrInvalidConfig, name, kind, strings.Join(Kinds, ", ")))
		}
	}
	errs = append(errs, ValidateRoutes(c.Routes, func(name string) bool {
		_, ok := c.Transports[name]
		return ok
	}))
	return errors.Join(errs...)
}

// ValidateRoutes checks routes on their own and against the transports
// known (has reports whether a transport name exists). Every error wraps
// ErrInvalidConfig and names the route and the key at fault; all of them
// are reported at once.
func ValidateRoutes(routes []RouteConfig, has func(name string) bool) error {
	var errs []error
	seen := map[string]bool{}
	if len(routes) == 0 {
		errs = append(errs, configErr("", "routes", "no route configured"))
	}
	for i, r := range routes {
		label := r.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
			errs = append(errs, configErr(label, "name", "required"))
		} else if seen[r.Name] {
			errs = append(errs, configErr(label, "name", "duplicate route name"))
		}
		seen[r.Name] = true
		for _, k := range []struct{ key, val string }{{"from", r.From}, {"to", r.To}} {
			switch {
			case k.val == "":
				errs = append(errs, configErr(label, k.key, "required"))
			case has != nil && !has(k.val):
				errs = append(errs, configErr(label, k.key, "unknown transport %q", k.val))
			}
		}
		if r.From != "" && r.From == r.To {
			errs = append(errs, configErr(label, "to", "same transport as from (%q): the route would feed its own source", r.To))
		}
		for _, p := range r.Topics {
			if _, err := message.CompilePattern(p); err != nil {
				errs = append(errs, configErr(label, "topics", "%v", err))
			}
		}
		switch r.Signatures {
		case "", Passthrough, RequireValid, Resign:
		default:
			errs = append(errs, configErr(label, "signatures", "unknown value %q (want %s, %s or %s)", r.Signatures, Passthrough, RequireValid, Resign))
		}
		switch r.Delivery {
		case "", AtMostOnce, AtLeastOnce:
		default:
			errs = append(errs, configErr(label, "delivery", "unknown value %q (want %s or %s)", r.Delivery, AtMostOnce, AtLeastOnce))
		}
		if r.Spool != nil && *r.Spool && r.Delivery != AtLeastOnce {
			errs = append(errs, configErr(label, "spool", "a spool serves delivery: %s only", AtLeastOnce))
		}
	}
	return errors.Join(errs...)
}

// configErr formats one configuration problem; route "" is a top-level key.
func configErr(route, key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if route == "" {
		return fmt.Errorf("%w: key %q: %s", ErrInvalidConfig, key, msg)
	}
	return fmt.Errorf("%w: route %q: key %q: %s", ErrInvalidConfig, route, key, msg)
}
