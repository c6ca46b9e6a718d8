package bridge

import (
	"errors"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"

	"github.com/gofedmsg/fedmsg/transport"
)

// parse reads YAML the way cmd will: koanf's parser, then DecodeConfig.
func parse(t *testing.T, src string) (*Config, error) {
	t.Helper()
	raw, err := yaml.Parser().Unmarshal([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return DecodeConfig(raw)
}

func TestDecodeConfig(t *testing.T) {
	cfg, err := parse(t, `
transports:
  bus:    {kind: zmq}
  rabbit: {kind: amqp, amqp_url: ["amqp://guest:guest@127.0.0.1:5672/"]}
routes:
  - {name: bus-to-rabbit, from: bus, to: rabbit, topics: ["org.fedoraproject.*"], delivery: at-most-once}
  - {name: rabbit-to-bus, from: rabbit, to: bus, signatures: require-valid}
`)
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Transports["rabbit"]; k.Kind != "amqp" || k.Options["amqp_url"] == nil || k.Options["kind"] != nil {
		t.Errorf("transport rabbit: %+v", k)
	}
	r := cfg.Routes[0]
	if r.Name != "bus-to-rabbit" || r.From != "bus" || r.To != "rabbit" || len(r.Topics) != 1 || r.Delivery != AtMostOnce {
		t.Errorf("route 0: %+v", r)
	}
	if d := cfg.Routes[1].withDefaults(); d.Signatures != RequireValid || d.Delivery != AtMostOnce {
		t.Errorf("route 1 defaults: %+v", d)
	}
}

// Every problem is reported, each naming the route and the key, so an
// operator fixes the file in one pass.
func TestConfigErrorsNameRouteAndKey(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown signatures", `{name: r, from: a, to: b, signatures: sometimes}`, `route "r": key "signatures": unknown value "sometimes"`},
		{"unknown delivery", `{name: r, from: a, to: b, delivery: exactly-once}`, `route "r": key "delivery": unknown value "exactly-once"`},
		{"unknown from", `{name: r, from: nope, to: b}`, `route "r": key "from": unknown transport "nope"`},
		{"unknown to", `{name: r, from: a, to: nope}`, `route "r": key "to": unknown transport "nope"`},
		{"from == to", `{name: r, from: a, to: a}`, `route "r": key "to": same transport as from`},
		{"missing to", `{name: r, from: a}`, `route "r": key "to": required`},
		{"missing name", `{from: a, to: b}`, `route "#1": key "name": required`},
		{"misspelt key", `{name: r, from: a, to: b, delivry: at-least-once}`, `route "r": key "delivry": unknown key`},
		{"topics not strings", `{name: r, from: a, to: b, topics: [1]}`, `route "r": key "topics": entry 1 must be a string`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, "transports: {a: {kind: zmq}, b: {kind: stomp}}\nroutes:\n  - "+c.yaml+"\n")
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "bridge: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestConfigDuplicatesAndKinds(t *testing.T) {
	_, err := parse(t, `
transports: {a: {kind: zmq}, b: {kind: carrier-pigeon}, c: {}}
routes:
  - {name: r, from: a, to: b}
  - {name: r, from: b, to: a}
`)
	for _, want := range []string{
		`route "r": key "name": duplicate route name`,
		`transport "b": key "kind": unknown kind "carrier-pigeon"`,
		`transport "c": key "kind": required`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

// YAML cannot carry a pattern that is not UTF-8, but a config built in Go can.
func TestValidateRoutesBadPattern(t *testing.T) {
	err := ValidateRoutes([]RouteConfig{{Name: "r", From: "a", To: "b", Topics: []string{"org.\xff"}}}, nil)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `route "r": key "topics"`) {
		t.Errorf("err %v", err)
	}
}

// The bridge section sets the options an operator may tune; the ones it
// leaves out keep their defaults, and New applies them.
func TestBridgeSettings(t *testing.T) {
	cfg, err := parse(t, `
transports: {a: {kind: zmq}, b: {kind: stomp}}
routes: [{name: r, from: a, to: b}]
bridge: {id: gw1, max_hops: -1, echo_window: 500, max_batch: 1}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{ID: "gw1", MaxHops: -1, EchoWindow: 500, MaxBatch: 1}
	if cfg.Settings != want {
		t.Errorf("settings %+v, want %+v", cfg.Settings, want)
	}
	opts := Options{DedupWindow: 7}
	cfg.Settings.Apply(&opts)
	if opts.BridgeID != "gw1" || opts.MaxHops != -1 || opts.EchoWindow != 500 || opts.MaxBatch != 1 || opts.DedupWindow != 7 {
		t.Errorf("options after Apply: %+v", opts)
	}
	src, dst := newMemory(t), newMemory(t)
	b, err := New(cfg.Routes, map[string]transport.Transport{"a": src, "b": dst}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if b.ID() != "gw1" || b.opts.MaxBatch != 1 || b.echoes == nil || len(b.echoes.ring) != 500 {
		t.Errorf("bridge id %q, max batch %d: the settings did not reach the bridge", b.ID(), b.opts.MaxBatch)
	}
}

func TestBridgeSettingsErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{`{max_batch: 0.5}`, `key "bridge.max_batch": must be a whole number`},
		{`{max_batch: -2}`, `key "bridge.max_batch": must be at least 1`},
		{`{echo_window: lots}`, `key "bridge.echo_window": must be a number`},
		{`{id: "a,b"}`, `bridge id "a,b": must not contain commas`},
		{`{id: 7}`, `key "bridge.id": must be a string`},
		{`{max_hop: 2}`, `key "bridge.max_hop": unknown key`},
		{`[1]`, `key "bridge": must be a map`},
	} {
		_, err := parse(t, "transports: {a: {kind: zmq}, b: {kind: stomp}}\nroutes: [{name: r, from: a, to: b}]\nbridge: "+c.yaml+"\n")
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bridge: %s: error %v, want one containing %q", c.yaml, err, c.want)
		}
	}
}
