package loadgen

import (
	"slices"
	"time"
)

// Counter tallies the arrivals of numbered messages: each distinct
// sequence number once, the repeats, the arrivals that came after a
// higher number (reordered), and each first arrival's latency. It is not
// safe for concurrent use: one receiving goroutine owns it.
type Counter struct {
	seen       []uint64 // bit per sequence number
	received   int64
	duplicates int64
	reordered  int64
	highest    uint64
	any        bool
	latencies  []time.Duration // first arrivals, in arrival order
}

// Add records the arrival of message seq after latency, and reports
// whether it was the first arrival of seq.
func (c *Counter) Add(seq uint64, latency time.Duration) bool {
	w, bit := seq/64, uint64(1)<<(seq%64)
	if w >= uint64(len(c.seen)) {
		c.seen = slices.Grow(c.seen, int(w)+1-len(c.seen))[:int(w)+1]
	}
	if c.seen[w]&bit != 0 {
		c.duplicates++
		return false
	}
	c.seen[w] |= bit
	c.received++
	if c.any && seq < c.highest {
		c.reordered++
	}
	if !c.any || seq > c.highest {
		c.highest, c.any = seq, true
	}
	c.latencies = append(c.latencies, latency)
	return true
}

// Received is how many distinct messages arrived.
func (c *Counter) Received() int64 { return c.received }

// Duplicates is how many arrivals repeated a message already received.
func (c *Counter) Duplicates() int64 { return c.duplicates }

// Reordered is how many messages arrived after one numbered higher.
func (c *Counter) Reordered() int64 { return c.reordered }

// Missing is how many of the messages 0..sent-1 have not arrived.
func (c *Counter) Missing(sent int64) int64 {
	var got int64
	for seq := int64(0); seq < sent; seq++ {
		w := seq / 64
		if w < int64(len(c.seen)) && c.seen[w]&(1<<(seq%64)) != 0 {
			got++
		}
	}
	return sent - got
}

// Latencies summarises the latencies of the first arrivals.
func (c *Counter) Latencies() Latency {
	return summarise(c.latencies)
}

// Latency is a summary of latencies: nearest-rank percentiles (the
// smallest latency at or below which at least that fraction of the
// messages lies) and the largest. All zero when nothing arrived.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return Latency{
		P50: Percentile(s, 50),
		P90: Percentile(s, 90),
		P99: Percentile(s, 99),
		Max: s[len(s)-1],
	}
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of
// sorted: the element at rank ceil(p/100 * n), counting from 1.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Integer arithmetic on hundredths of a percent: p*n/100 in floating
	// point rounds 0.29*100 up to 29.000000000000004, which ceil turns
	// into the wrong rank.
	num := int64(p*100+0.5) * int64(n)
	rank := int((num + 9999) / 10000)
	return sorted[max(0, min(rank, n)-1)]
}
