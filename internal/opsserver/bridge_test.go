package opsserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/bridge"
	"github.com/gofedmsg/fedmsg/consumer"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/memory"
)

func newMemory(t *testing.T) *memory.Transport {
	t.Helper()
	m, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// The label each vector real fedmsg rejects is dropped under, by what
// fedmsg logged for it (manifest.json): the chain, the CRL, the
// signature, the backend, no signature at all.
var vectorReason = map[string]string{
	"n01-rogue":           "signature_untrusted",
	"n02-revoked":         "signature_revoked",
	"t01-tampered-body":   "signature_bad",
	"t02-tampered-topic":  "signature_bad",
	"t03-timestamp-float": "signature_bad",
	"t04-no-crypto-field": "signature_bad",
	"t05-crypto-gpg":      "signature_backend_disallowed",
	"t08-unsigned":        "signature_unsigned",
	"t09-swapped-cert":    "signature_bad",
	"t10-seq-id-added":    "signature_bad",
}

// A require-valid route fed fedmsg's x509 vectors: /metrics shows exactly
// the vectors fedmsg accepts as forwarded and the others as dropped by
// reason, and nothing as a duplicate.
func TestBridgeMetricsWithFedmsgVectors(t *testing.T) {
	var m struct {
		Files []struct{ ID, File, Topic string }
		Cases []struct {
			ID       string
			Expected bool
		}
	}
	if err := json.Unmarshal(sharedtest.Read(t, "fedmsg-x509", "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	valid := map[string]bool{}
	for _, c := range m.Cases {
		valid[c.ID] = c.Expected
	}

	src, dst := newMemory(t), newMemory(t)
	b, err := bridge.New([]bridge.RouteConfig{{Name: "amq-to-bus", From: "amq", To: "bus",
		Signatures: bridge.RequireValid, Delivery: bridge.AtLeastOnce}},
		map[string]transport.Transport{"amq": src, "bus": dst},
		// The vectors share msg_ids; dedup would stop valid copies.
		bridge.Options{Validator: validator(t, "crl.pem"), DedupWindow: -1})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	select {
	case <-b.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("bridge not ready")
	}

	s := New(nil)
	s.AddBridge(b, map[string]RouteEnds{"amq-to-bus": {From: "amq", To: "bus"}})
	base := startServer(t, s)

	var forwarded float64
	dropped := map[string]float64{}
	for _, f := range m.Files {
		ok, known := valid[f.ID+"/default"]
		if !known {
			t.Fatalf("vector %s has no default case", f.ID)
		}
		if ok {
			forwarded++
		} else {
			r, known := vectorReason[f.ID]
			if !known {
				t.Fatalf("rejected vector %s has no expected reason", f.ID)
			}
			dropped[r]++
		}
		if err := src.Publish(context.Background(), &transport.Message{Topic: f.Topic,
			Body: sharedtest.Read(t, "fedmsg-x509", f.File)}); err != nil {
			t.Fatal(err)
		}
	}
	total := float64(len(m.Files))
	if forwarded == 0 || len(dropped) < 3 {
		t.Fatalf("the manifest no longer has both kinds of vectors: %v forwarded, %v dropped", forwarded, dropped)
	}
	route := []string{"route", "amq-to-bus"}
	waitFor(t, "every vector to be settled", func() bool {
		fams := scrape(t, base)
		out, _ := value(fams, "fedmsg_messages_out_total", "route", "amq-to-bus", "transport", "bus")
		var drops float64
		if f := fams["fedmsg_messages_dropped_total"]; f != nil {
			for _, m := range f.GetMetric() {
				drops += m.GetCounter().GetValue()
			}
		}
		return out+drops >= total
	})
	exps := []expect{
		{"fedmsg_messages_in_total", []string{"route", "amq-to-bus", "transport", "amq"}, total},
		{"fedmsg_messages_out_total", []string{"route", "amq-to-bus", "transport", "bus"}, forwarded},
		{"fedmsg_duplicates_suppressed_total", route, 0},
		{"fedmsg_messages_retried_total", route, 0},
		{"fedmsg_messages_filtered_total", route, 0},
	}
	for r, n := range dropped {
		exps = append(exps, expect{"fedmsg_messages_dropped_total",
			[]string{"route", "amq-to-bus", "transport", "amq", "reason", r}, n})
	}
	fams := scrape(t, base)
	check(t, fams, exps)
	if n := series(fams, "fedmsg_messages_dropped_total"); n != len(dropped) {
		t.Errorf("%d drop reasons reported, want %d", n, len(dropped))
	}
}

// subscribed wraps a transport to tell when a subscription exists, so
// that the test publishes only once the hub listens.
type subscribed struct {
	transport.Transport
	once sync.Once
	ch   chan struct{}
}

func (s *subscribed) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	ch, err := s.Transport.Subscribe(ctx, patterns...)
	s.once.Do(func() { close(s.ch) })
	return ch, err
}

// vectorTopic is the topic of vector id in the manifest.
func vectorTopic(t *testing.T, id string) string {
	t.Helper()
	var m struct{ Files []struct{ ID, Topic string } }
	if err := json.Unmarshal(sharedtest.Read(t, "fedmsg-x509", "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if f.ID == id {
			return f.Topic
		}
	}
	t.Fatalf("no vector %s", id)
	return ""
}

// The hub's per-consumer counts: messages in (topic matched), out
// (handled), failures, and rejections by reason.
func TestHubMetricsExactCounts(t *testing.T) {
	var mu sync.Mutex
	handled := 0
	validate, dontValidate := true, false
	h, err := consumer.New([]consumer.Consumer{
		{Name: "archive", Topics: []string{"*"}, ValidateSignatures: &validate,
			Handler: func(context.Context, *consumer.Message) error {
				mu.Lock()
				handled++
				mu.Unlock()
				return nil
			}},
		{Name: "notify", Topics: []string{"org.example.dev.fail"}, ValidateSignatures: &dontValidate,
			Handler: func(context.Context, *consumer.Message) error {
				// Permanent: the memory transport would redeliver otherwise.
				return fmt.Errorf("cannot notify: %w", transport.ErrPermanent)
			}},
	}, consumer.Options{Validator: validator(t, "crl.pem")})
	if err != nil {
		t.Fatal(err)
	}
	tr := &subscribed{Transport: newMemory(t), ch: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, tr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("hub: %v", err)
		}
	})
	select {
	case <-tr.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub did not subscribe")
	}

	s := New(nil)
	s.AddHub(h, "memory")
	base := startServer(t, s)

	pub := func(topic string, body []byte) {
		t.Helper()
		if err := tr.Publish(context.Background(), &transport.Message{Topic: topic, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	vector := func(id string) []byte { return sharedtest.Read(t, "fedmsg-x509", "signed", id+".json") }
	// archive: two valid (handled), one unsigned (rejected), one valid
	// under another transport topic (rejected: topic mismatch).
	pub(vectorTopic(t, "v01-ascii"), vector("v01-ascii"))
	pub(vectorTopic(t, "v02-unicode"), vector("v02-unicode"))
	pub(vectorTopic(t, "t08-unsigned"), vector("t08-unsigned"))
	pub("org.fedoraproject.dev.other", vector("v01-ascii"))
	// notify fails both; archive rejects them as unsigned.
	for range 2 {
		pub("org.example.dev.fail", []byte(`{"topic": "org.example.dev.fail", "msg": {}, "msg_id": "x", "timestamp": 1}`))
	}

	archive := []string{"route", "archive", "transport", "memory"}
	notify := []string{"route", "notify", "transport", "memory"}
	waitFor(t, "every message to be settled", func() bool {
		fams := scrape(t, base)
		a, _ := value(fams, "fedmsg_messages_out_total", archive...)
		r1, _ := value(fams, "fedmsg_messages_dropped_total", append(archive, "reason", "rejected_topic-mismatch")...)
		r2, _ := value(fams, "fedmsg_messages_dropped_total", append(archive, "reason", "rejected_signature")...)
		f, _ := value(fams, "fedmsg_consumer_failures_total", "route", "notify")
		return a+r1+r2 >= 6 && f >= 2
	})
	check(t, scrape(t, base), []expect{
		{"fedmsg_messages_in_total", archive, 6},
		{"fedmsg_messages_out_total", archive, 2},
		{"fedmsg_messages_dropped_total", append(archive, "reason", "rejected_signature"), 3},
		{"fedmsg_messages_dropped_total", append(archive, "reason", "rejected_topic-mismatch"), 1},
		{"fedmsg_consumer_failures_total", []string{"route", "archive"}, 0},
		{"fedmsg_messages_in_total", notify, 2},
		{"fedmsg_messages_out_total", notify, 0},
		{"fedmsg_consumer_failures_total", []string{"route", "notify"}, 2},
	})
	mu.Lock()
	defer mu.Unlock()
	if handled != 2 {
		t.Errorf("the archive handler ran %d times, want 2", handled)
	}
}
