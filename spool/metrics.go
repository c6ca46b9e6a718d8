package spool

import "github.com/prometheus/client_golang/prometheus"

// The metric families of a set of spools, labelled by what each spool
// serves (a bridge route, a publisher).
var (
	descAppended = prometheus.NewDesc("fedmsg_spool_appended_total",
		"Messages committed to a durable spool (a bridge route's messages received, a publisher's messages published) since the process started.",
		[]string{"route"}, nil)
	descAcked = prometheus.NewDesc("fedmsg_spool_acked_total",
		"Messages removed from a spool once the sink confirmed them, since the process started.",
		[]string{"route"}, nil)
	descDropped = prometheus.NewDesc("fedmsg_spool_dropped_total",
		"Messages a full spool dropped (spool_full: drop-oldest) or found unreadable, since the process started.",
		[]string{"route"}, nil)
	descDepth = prometheus.NewDesc("fedmsg_spool_messages",
		"Messages in a spool now: received, not yet confirmed by the sink.", []string{"route"}, nil)
	descBytes = prometheus.NewDesc("fedmsg_spool_bytes",
		"Bytes of the messages in a spool now (bounded by spool_max_bytes).", []string{"route"}, nil)
)

// Collector exposes the Stats of the spools stats returns, by label, as
// Prometheus metrics computed at scrape time.
type Collector struct {
	stats func() map[string]Stats
}

// NewCollector returns a collector of the spools stats reports (for a
// bridge: (*bridge.Bridge).SpoolStats).
func NewCollector(stats func() map[string]Stats) *Collector { return &Collector{stats: stats} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAppended, descAcked, descDropped, descDepth, descBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for route, st := range c.stats() {
		ch <- prometheus.MustNewConstMetric(descAppended, prometheus.CounterValue, float64(st.Appended), route)
		ch <- prometheus.MustNewConstMetric(descAcked, prometheus.CounterValue, float64(st.Acked), route)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped+st.Corrupt), route)
		ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(st.Depth), route)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(st.Bytes), route)
	}
}
