// Package configs holds example configurations, one per topology. The test
// loads every one of them, so an example that stops loading fails CI.
package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/config"
)

func TestEveryExampleLoads(t *testing.T) {
	files, err := filepath.Glob("*")
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, f := range files {
		switch filepath.Ext(f) {
		case ".yaml", ".yml", ".toml", ".json":
		default:
			continue
		}
		abs, _ := filepath.Abs(f)
		cfg, err := config.Load(config.Sources{Dirs: []string{}, Files: []string{abs}, Environ: []string{}})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		loaded++
		// Every example says what it is for.
		data, _ := os.ReadFile(f)
		if !strings.HasPrefix(string(data), "#") {
			t.Errorf("%s does not start with a comment saying what it is for", f)
		}
	}
	if loaded < 3 {
		t.Fatalf("loaded %d examples, want at least 3", loaded)
	}
}

func TestExamplesSayWhatTheyMean(t *testing.T) {
	load := func(name string) *config.Config { return loadExample(t, name) }
	svc := load("service-publisher.yaml")
	if got := svc.Endpoints["bodhi.app01"]; len(got) != 3 {
		t.Errorf("bodhi.app01 endpoints = %v, want 3", got)
	}
	if got := svc.Endpoints["relay_outbound"]; len(got) != 1 || got[0] != "tcp://127.0.0.1:4001" {
		t.Errorf("a string endpoint must become a one-item list, got %v", got)
	}
	sub := load("subscriber-many-endpoints.toml")
	if got := sub.Endpoints["koji.koji01"]; len(got) != 1 {
		t.Errorf("koji.koji01 = %v, want one endpoint", got)
	}
	if sub.Environment != "stg" || sub.HighWaterMark != 10000 {
		t.Errorf("environment/high_water_mark = %q/%d", sub.Environment, sub.HighWaterMark)
	}
}

func TestBrokerExamplesTranslate(t *testing.T) {
	load := func(name string) *config.Config { return loadExample(t, name) }
	st := load("stomp-publisher.yaml")
	if st.ZMQEnabled || st.StompHeartbeat != 10000 || !strings.Contains(st.StompURI, ",") {
		t.Errorf("stomp example: zmq_enabled=%v heartbeat=%d uri=%q", st.ZMQEnabled, st.StompHeartbeat, st.StompURI)
	}
	am := load("amqp-consumer.yaml")
	if am.ZMQEnabled || len(am.AMQPURL) != 2 || am.AMQPQueue != "bodhi-consumer" || am.AMQPPrefetch != 100 {
		t.Errorf("amqp example: zmq_enabled=%v urls=%v queue=%q prefetch=%d", am.ZMQEnabled, am.AMQPURL, am.AMQPQueue, am.AMQPPrefetch)
	}
}

// loadExample loads one example alone: no default directories, no
// environment.
func loadExample(t *testing.T, name string) *config.Config {
	t.Helper()
	abs, _ := filepath.Abs(name)
	cfg, err := config.Load(config.Sources{Dirs: []string{}, Files: []string{abs}, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
