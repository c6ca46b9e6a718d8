package opsserver

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// confirmBuckets span a loopback broker's confirm (~100µs) to a publish
// that waited out a reconnect (tens of seconds), in steps of four.
var confirmBuckets = prometheus.ExponentialBuckets(0.0001, 4, 10)

// PublishObserver records confirmed publishes of one broker transport in
// fedmsg_publish_confirm_seconds. It satisfies the PublishObserver
// interfaces of transport/amqp and transport/stomp.
type PublishObserver struct{ h prometheus.Observer }

// ObservePublish records one confirmed Publish (or Send) call of msgs
// messages that took d.
func (o PublishObserver) ObservePublish(d time.Duration, _ int) { o.h.Observe(d.Seconds()) }

// PublishObserver returns the observer of the broker transport named
// name, of kind kind.
func (s *Server) PublishObserver(name, kind string) PublishObserver {
	s.confirmOnce.Do(func() {
		s.confirm = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fedmsg_publish_confirm_seconds",
			Help: "Time from a publish call on a broker transport to the broker's last confirm (AMQP) or receipt (STOMP) " +
				"for its messages, one observation per call (a batch).",
			Buckets: confirmBuckets,
		}, []string{"transport", "kind"})
		s.reg.MustRegister(s.confirm)
	})
	return PublishObserver{h: s.confirm.WithLabelValues(name, kind)}
}

// confirmState is embedded in Server.
type confirmState struct {
	confirmOnce sync.Once
	confirm     *prometheus.HistogramVec
}
