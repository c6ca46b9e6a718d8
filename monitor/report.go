// Package monitor is moksha's monitoring socket (spec §1.3, §1.4): a
// ZeroMQ PUB bound on moksha.monitoring.socket that sends, every few
// seconds, one single-frame JSON report of the daemon's consumers and
// producers. fedmsg check reads it.
//
// The report is the text Python's json.dumps gives with its default
// separators (", " and ": "), keys in the order moksha writes them, and
// ensure_ascii, so that tools written for the Python daemons read ours.
package monitor

import (
	"strconv"
	"time"

	"github.com/gofedmsg/fedmsg/message"
)

// Consumer is one consumer's entry in a report (moksha's
// Consumer.__json__). Counters cover the interval since the previous
// report.
type Consumer struct {
	// Name is what fedmsg check -c looks for (moksha: the class name).
	Name string
	// Module says where the consumer comes from (moksha: the Python module).
	Module string
	// Topic is the consumer's topic: a string, or a list of them when it
	// has several (encoded as a JSON list).
	Topic []string
	// Initialized says the consumer is set up and running.
	Initialized bool
	// Exceptions counts the messages whose handling failed.
	Exceptions uint64
	// JSONify says bodies are decoded as JSON before the handler.
	JSONify bool
	// Backlog is how many messages wait for the consumer.
	Backlog int
	// HeadcountOut counts messages taken from the queue to be handled,
	// HeadcountIn messages received for the consumer.
	HeadcountOut, HeadcountIn uint64
	// Times are the handling durations (seconds in the report).
	Times []time.Duration
}

// Producer is one producer's entry (moksha's Producer.__json__). With
// Polling set it is a polling producer and also has frequency, now and
// last_ran.
type Producer struct {
	Name        string
	Module      string
	Initialized bool
	Exceptions  uint64

	Polling bool
	// Frequency is the polling period (seconds in the report).
	Frequency time.Duration
	// Now says the producer also polls once at start.
	Now bool
	// LastRan is when it last polled (a Unix time in seconds, a float);
	// the zero time is null (never ran).
	LastRan time.Time
}

// Report is one monitoring report.
type Report struct {
	Consumers []Consumer
	Producers []Producer
}

// Encode returns the report as Python's json.dumps writes moksha's dict:
//
//	{"consumers": [{"name": ..., "module": ..., "topic": ..., "initialized": ...,
//	"exceptions": ..., "jsonify": ..., "backlog": ..., "headcount_out": ...,
//	"headcount_in": ..., "times": [...]}], "producers": [{"name": ...,
//	"module": ..., "initialized": ..., "exceptions": ...}]}
//
// with floats as Python's repr and every non-ASCII character escaped.
func (r Report) Encode() []byte {
	w := &pyWriter{b: make([]byte, 0, 256+256*len(r.Consumers))}
	w.raw("{")
	w.key("consumers", true)
	writeList(w, r.Consumers, w.consumer)
	w.key("producers", false)
	writeList(w, r.Producers, w.producer)
	w.raw("}")
	return w.b
}

// writeList writes items as a JSON list, each written by one.
func writeList[T any](w *pyWriter, items []T, one func(T)) {
	w.raw("[")
	for i, it := range items {
		if i > 0 {
			w.raw(", ")
		}
		one(it)
	}
	w.raw("]")
}

// pyWriter appends json.dumps-style JSON: ", " between items, ": "
// after keys.
type pyWriter struct{ b []byte }

func (w *pyWriter) raw(s string) { w.b = append(w.b, s...) }

// key writes a key of an object; first says no ", " goes before it.
func (w *pyWriter) key(k string, first bool) {
	if !first {
		w.raw(", ")
	}
	w.str(k)
	w.raw(": ")
}

// str writes an ensure_ascii string. message.Canonical's string form is
// exactly that; a string that is not UTF-8 (never from a config file)
// has its bad bytes replaced rather than breaking the report.
func (w *pyWriter) str(s string) {
	b, err := message.Canonical(s)
	if err != nil {
		b, _ = message.Canonical(string([]rune(s)))
	}
	w.b = append(w.b, b...)
}

func (w *pyWriter) boolean(v bool) {
	if v {
		w.raw("true")
	} else {
		w.raw("false")
	}
}

func (w *pyWriter) uint(v uint64) { w.b = strconv.AppendUint(w.b, v, 10) }

// seconds writes a duration as Python's float of seconds; a whole number
// of seconds is written as an int when asInt, as moksha's "frequency = 5".
func (w *pyWriter) seconds(d time.Duration, asInt bool) {
	if asInt && d%time.Second == 0 {
		w.b = strconv.AppendInt(w.b, int64(d/time.Second), 10)
		return
	}
	w.raw(message.FormatFloat(d.Seconds()))
}

func (w *pyWriter) consumer(c Consumer) {
	w.raw("{")
	w.key("name", true)
	w.str(c.Name)
	w.key("module", false)
	w.str(c.Module)
	w.key("topic", false)
	if len(c.Topic) == 1 {
		w.str(c.Topic[0])
	} else {
		writeList(w, c.Topic, w.str)
	}
	w.key("initialized", false)
	w.boolean(c.Initialized)
	w.key("exceptions", false)
	w.uint(c.Exceptions)
	w.key("jsonify", false)
	w.boolean(c.JSONify)
	w.key("backlog", false)
	w.b = strconv.AppendInt(w.b, int64(max(c.Backlog, 0)), 10)
	w.key("headcount_out", false)
	w.uint(c.HeadcountOut)
	w.key("headcount_in", false)
	w.uint(c.HeadcountIn)
	w.key("times", false)
	writeList(w, c.Times, func(d time.Duration) { w.seconds(d, false) })
	w.raw("}")
}

func (w *pyWriter) producer(p Producer) {
	w.raw("{")
	w.key("name", true)
	w.str(p.Name)
	w.key("module", false)
	w.str(p.Module)
	w.key("initialized", false)
	w.boolean(p.Initialized)
	w.key("exceptions", false)
	w.uint(p.Exceptions)
	if p.Polling {
		w.key("frequency", false)
		w.seconds(p.Frequency, true)
		w.key("now", false)
		w.boolean(p.Now)
		w.key("last_ran", false)
		if p.LastRan.IsZero() {
			w.raw("null")
		} else {
			w.raw(message.FormatFloat(float64(p.LastRan.UnixMicro()) / 1e6))
		}
	}
	w.raw("}")
}
