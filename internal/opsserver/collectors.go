package opsserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gofedmsg/fedmsg/bridge"
	"github.com/gofedmsg/fedmsg/consumer"
	"github.com/gofedmsg/fedmsg/replay"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// The metric families. Every series is computed at scrape time from the
// snapshot a library package keeps, so these are "const" metrics.
var (
	descIn = prometheus.NewDesc("fedmsg_messages_in_total",
		"Messages a route took from its source transport, malformed ones included (relay, signing-relay and gateway: "+
			"route is the daemon; hub: route is the consumer, counting messages of its topics).",
		[]string{"route", "transport"}, nil)
	descOut = prometheus.NewDesc("fedmsg_messages_out_total",
		"Messages a route passed on: accepted by the sink transport (bridge), sent on (relay, signing-relay, gateway), "+
			"handled without error (hub consumer).",
		[]string{"route", "transport"}, nil)
	descDropped = prometheus.NewDesc("fedmsg_messages_dropped_total",
		"Messages a route dropped, by reason (malformed frames, oversize, signature failures by reason, routing policy, "+
			"loop prevention, sink rejections, consumer rejections). Duplicates are counted in fedmsg_duplicates_suppressed_total.",
		[]string{"route", "transport", "reason"}, nil)
	descDuplicates = prometheus.NewDesc("fedmsg_duplicates_suppressed_total",
		"Messages a bridge route did not forward because it forwarded the same msg_id within its dedup window.",
		[]string{"route"}, nil)
	descFiltered = prometheus.NewDesc("fedmsg_messages_filtered_total",
		"Messages a bridge route received whose topic its patterns refused.",
		[]string{"route"}, nil)
	descRetried = prometheus.NewDesc("fedmsg_messages_retried_total",
		"Deliveries a bridge route handed back to its source for redelivery (at-least-once routes).",
		[]string{"route"}, nil)
	descSettleErrors = prometheus.NewDesc("fedmsg_settle_errors_total",
		"Ack or Nack calls the source transport of a bridge route refused.",
		[]string{"route"}, nil)
	descFailures = prometheus.NewDesc("fedmsg_consumer_failures_total",
		"Messages a hub consumer failed to handle (Nacked for redelivery where the transport can).",
		[]string{"route"}, nil)

	descTransportIn = prometheus.NewDesc("fedmsg_transport_received_total",
		"Messages a ZeroMQ transport's subscriptions received, malformed ones included.",
		[]string{"transport", "kind"}, nil)
	descTransportDropped = prometheus.NewDesc("fedmsg_transport_dropped_total",
		"Messages a ZeroMQ transport's subscriptions dropped as malformed, by reason.",
		[]string{"transport", "kind", "reason"}, nil)
	descLastMessageAge = prometheus.NewDesc("fedmsg_zmq_last_message_age_seconds",
		"Seconds since a subscribed ZeroMQ endpoint last delivered a well-formed message; absent until the first one.",
		[]string{"transport", "endpoint"}, nil)

	descConnected = prometheus.NewDesc("fedmsg_broker_connected",
		"1 while a broker transport holds a live connection, else 0.",
		[]string{"transport", "kind"}, nil)
	descReconnects = prometheus.NewDesc("fedmsg_broker_reconnects_total",
		"Connections a broker transport established after its first one (failovers and recoveries).",
		[]string{"transport", "kind"}, nil)

	descCAExpiry = prometheus.NewDesc("fedmsg_trust_ca_expiry_timestamp_seconds",
		"When the CA certificate used to validate x509 signatures expires (notAfter), as a Unix time.", nil, nil)
	descCRLNextUpdate = prometheus.NewDesc("fedmsg_trust_crl_next_update_timestamp_seconds",
		"When the CRL in use expires (nextUpdate), as a Unix time.", nil, nil)
	descCARefresh = prometheus.NewDesc("fedmsg_trust_ca_last_refresh_timestamp_seconds",
		"When the CA certificate in use was last read or downloaded, as a Unix time.", nil, nil)
	descCRLRefresh = prometheus.NewDesc("fedmsg_trust_crl_last_refresh_timestamp_seconds",
		"When the CRL in use was last read or downloaded, as a Unix time.", nil, nil)

	descReplayRecovered = prometheus.NewDesc("fedmsg_replay_recovered_messages_total",
		"Messages of sequence gaps fetched from a replay endpoint and delivered.", []string{"source"}, nil)
	descReplayFailures = prometheus.NewDesc("fedmsg_replay_failures_total",
		"Replay queries that failed.", []string{"source"}, nil)
	descGapLost = prometheus.NewDesc("fedmsg_sequence_gap_lost_messages_total",
		"seq_ids of sequence gaps that could not be recovered.", []string{"source"}, nil)
	descGapDuplicates = prometheus.NewDesc("fedmsg_sequence_duplicates_total",
		"Messages dropped because their seq_id was already delivered (replayed or repeated).", []string{"source"}, nil)
	descRestarts = prometheus.NewDesc("fedmsg_sequence_restarts_total",
		"Publisher restarts seen (a seq_id that went back).", []string{"source"}, nil)

	allDescs = []*prometheus.Desc{
		descIn, descOut, descDropped, descDuplicates, descFiltered, descRetried, descSettleErrors, descFailures,
		descTransportIn, descTransportDropped, descLastMessageAge, descConnected, descReconnects,
		descCAExpiry, descCRLNextUpdate, descCARefresh, descCRLRefresh,
		descReplayRecovered, descReplayFailures, descGapLost, descGapDuplicates, descRestarts,
	}
)

// source writes the metrics of one component.
type source func(ch chan<- prometheus.Metric)

// sourceCollector is the one collector of every fedmsg family: several
// components may feed one family (two broker transports), which separate
// collectors describing the same family could not.
type sourceCollector struct {
	mu      sync.Mutex
	sources []source
}

func newSourceCollector() *sourceCollector { return &sourceCollector{} }

func (c *sourceCollector) add(s source) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources = append(c.sources, s)
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := slices.Clone(c.sources)
	c.mu.Unlock()
	for _, s := range sources {
		s(ch)
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// AddZMQForwarder publishes the counts of a ZeroMQ forwarder (relay,
// signing relay, gateway) as route route on transport "zmq". A message
// the signing relay could not sign was counted as received and then
// dropped (transform_failed); it is neither "in" twice nor "out".
func (s *Server) AddZMQForwarder(route string, st *zmq.Stats) {
	s.sources.add(func(ch chan<- prometheus.Metric) {
		transform := st.Dropped(zmq.DropTransform)
		received := st.Received()
		counter(ch, descIn, received+st.DroppedTotal()-transform, route, "zmq")
		counter(ch, descOut, received-min(transform, received), route, "zmq")
		for reason, n := range st.DroppedByReason() {
			counter(ch, descDropped, n, route, "zmq", reason)
		}
	})
}

// BridgeStats is what the bridge exposes: *bridge.Bridge.
type BridgeStats interface {
	Stats() []bridge.RouteStats
}

// RouteEnds names a route's source and sink transports.
type RouteEnds struct{ From, To string }

// AddBridge publishes the per-route counts of a bridge. ends maps each
// route to its transports' names.
func (s *Server) AddBridge(b BridgeStats, ends map[string]RouteEnds) {
	ends = maps.Clone(ends)
	s.sources.add(func(ch chan<- prometheus.Metric) {
		for _, st := range b.Stats() {
			e := ends[st.Route]
			counter(ch, descIn, st.Received, st.Route, e.From)
			counter(ch, descOut, st.Forwarded, st.Route, e.To)
			counter(ch, descDuplicates, st.Dropped[bridge.DropDuplicate.String()], st.Route)
			counter(ch, descFiltered, st.Filtered, st.Route)
			counter(ch, descRetried, st.Retried, st.Route)
			counter(ch, descSettleErrors, st.SettleErrors, st.Route)
			for reason, n := range st.Dropped {
				if reason != bridge.DropDuplicate.String() {
					counter(ch, descDropped, n, st.Route, e.From, reason)
				}
			}
		}
	})
}

// HubStats is what the hub exposes: *consumer.Hub.
type HubStats interface {
	Stats() []consumer.Stats
}

// AddHub publishes the per-consumer counts of a hub reading from the
// transport named transport.
func (s *Server) AddHub(h HubStats, transport string) {
	s.sources.add(func(ch chan<- prometheus.Metric) {
		for _, st := range h.Stats() {
			counter(ch, descIn, st.Received, st.Consumer, transport)
			counter(ch, descOut, st.Handled, st.Consumer, transport)
			counter(ch, descFailures, st.Failed, st.Consumer)
			for reason, n := range st.Rejected {
				counter(ch, descDropped, n, st.Consumer, transport, "rejected_"+reason)
			}
		}
	})
}

// ZMQSubscriber is what a ZeroMQ transport exposes: *zmq.Transport.
type ZMQSubscriber interface {
	Stats() *zmq.Stats
	LastMessage() map[string]time.Time
}

// AddZMQTransport publishes what the subscriptions of the ZeroMQ
// transport named name received and dropped, and the age of the last
// message of each endpoint.
func (s *Server) AddZMQTransport(name string, t ZMQSubscriber) {
	s.sources.add(func(ch chan<- prometheus.Metric) {
		st := t.Stats()
		counter(ch, descTransportIn, st.Received()+st.DroppedTotal(), name, "zmq")
		for reason, n := range st.DroppedByReason() {
			counter(ch, descTransportDropped, n, name, "zmq", reason)
		}
		now := time.Now()
		for ep, at := range t.LastMessage() {
			gauge(ch, descLastMessageAge, max(0, now.Sub(at).Seconds()), name, ep)
		}
	})
}

// Broker is what the STOMP and AMQP transports expose about their
// connection.
type Broker interface {
	Connected() bool
	Reconnects() uint64
	LastError() error
}

// ErrNotConnected is the readiness failure of a broker transport without a
// live connection.
var ErrNotConnected = errors.New("no live connection to the broker")

// AddBroker publishes the connection state of the broker transport named
// name (of kind kind: amqp or stomp) and makes readiness depend on it: a
// daemon whose broker is unreachable is not ready.
func (s *Server) AddBroker(name, kind string, b Broker) {
	s.sources.add(func(ch chan<- prometheus.Metric) {
		up := 0.0
		if b.Connected() {
			up = 1
		}
		gauge(ch, descConnected, up, name, kind)
		counter(ch, descReconnects, b.Reconnects(), name, kind)
	})
	s.AddReadiness("transport "+name, func(context.Context) error {
		if b.Connected() {
			return nil
		}
		if err := b.LastError(); err != nil {
			return fmt.Errorf("%s: %w: %w", kind, ErrNotConnected, err)
		}
		return fmt.Errorf("%s: %w", kind, ErrNotConnected)
	})
}

// Trust is what a signature validator exposes: *signing.Validator.
type Trust interface {
	TrustInfo() signing.TrustInfo
	TrustProblem() error
}

// AddTrust publishes the CA/CRL expiry and refresh times of v and makes
// readiness depend on them: not ready while no CA is loaded or the CRL is
// unusable or expired, since every x509 validation would fail.
func (s *Server) AddTrust(v Trust) {
	s.sources.add(func(ch chan<- prometheus.Metric) {
		info := v.TrustInfo()
		if !info.Loaded {
			return
		}
		gauge(ch, descCAExpiry, unixSeconds(info.CANotAfter))
		gauge(ch, descCARefresh, unixSeconds(info.CAFetched))
		if !info.CRLNextUpdate.IsZero() {
			gauge(ch, descCRLNextUpdate, unixSeconds(info.CRLNextUpdate))
		}
		if !info.CRLFetched.IsZero() {
			gauge(ch, descCRLRefresh, unixSeconds(info.CRLFetched))
		}
	})
	s.AddReadiness("trust", func(context.Context) error { return v.TrustProblem() })
}

// GapStats is what a replay gap tracker exposes: *replay.GapTracker.
type GapStats interface {
	Stats() replay.GapStats
}

// AddGapTracker publishes the sequence-gap and replay counts of a gap
// tracker fed by the subscription named source.
func (s *Server) AddGapTracker(source string, g GapStats) {
	s.sources.add(func(ch chan<- prometheus.Metric) {
		st := g.Stats()
		counter(ch, descReplayRecovered, uint64(max(0, st.Replayed)), source)
		counter(ch, descReplayFailures, uint64(max(0, st.Failures)), source)
		counter(ch, descGapLost, uint64(max(0, st.Lost)), source)
		counter(ch, descGapDuplicates, uint64(max(0, st.Duplicates)), source)
		counter(ch, descRestarts, uint64(max(0, st.Restarts)), source)
	})
}
