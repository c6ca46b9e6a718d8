package config

import (
	"strings"
	"testing"
)

func TestOverlayAppliesKeysOverACopy(t *testing.T) {
	base := Default()
	base.Environment = "prod"
	got, err := base.Overlay("bridge.yaml transports.rabbit", map[string]any{
		"zmq_enabled": false,
		"amqp_url":    "amqp://broker/",
		"endpoints":   map[string]any{"bus": "tcp://relay:4001"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.ZMQEnabled || len(got.AMQPURL) != 1 || got.AMQPURL[0] != "amqp://broker/" {
		t.Errorf("overlay not applied: zmq_enabled=%v amqp_url=%v", got.ZMQEnabled, got.AMQPURL)
	}
	if got.Environment != "prod" {
		t.Errorf("a key the overlay does not name must keep its value: environment=%q", got.Environment)
	}
	if len(got.Endpoints["bus"]) != 1 || len(got.Endpoints["relay_outbound"]) != 1 {
		t.Errorf("endpoints must merge key by key: %v", got.Endpoints)
	}
	if !base.ZMQEnabled || len(base.AMQPURL) != 0 || len(base.Endpoints["bus"]) != 0 {
		t.Error("Overlay changed the configuration it was called on")
	}
}

func TestOverlayErrorsNameKeyAndSource(t *testing.T) {
	for _, m := range []map[string]any{
		{"amqp_urll": "amqp://x/"},
		{"stomp_heartbeat": "often"},
	} {
		_, err := Default().Overlay("bridge.yaml transports.amq", m)
		if err == nil {
			t.Errorf("%v: no error", m)
			continue
		}
		for key := range m {
			if !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "transports.amq") {
				t.Errorf("%v: %q does not name the key and the source", m, err)
			}
		}
	}
}
