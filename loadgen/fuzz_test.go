package loadgen

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/message"
)

// FuzzEnvelopeParse checks the body reader of `fedmsg bench`/loadgen,
// which reads every message arriving on the bus (anyone's): any bytes
// are read without panic; a body the run built reads back as its
// sequence number and send time; the same body re-encoded on the way (a
// relay that re-serialises JSON: the slow path) reads back the same; and
// a body built by another run is never taken for this run's.
func FuzzEnvelopeParse(f *testing.F) {
	f.Add("org.fedoraproject.dev.bench", "bench", uint16(0), uint64(1), int64(1500), []byte(`{"msg_id":"x","msg":{"bench":"r","sent":"1"}}`))
	f.Add("t\u00e9\"\\", "", uint16(300), uint64(1)<<44, int64(0), []byte(`{"i":1,"msg":{"bench":"`))
	f.Add("a", "u", uint16(7), uint64(0xffffffffffff), int64(1)<<62, []byte(`[]`))
	f.Fuzz(func(t *testing.T, topic, user string, extra uint16, seq uint64, dt int64, junk []byte) {
		now := time.Unix(1700000000, 0)
		min, err := MinSize(topic, user)
		if err != nil {
			return
		}
		e, err := newEnvelope(topic, user, min+int(extra), now)
		if err != nil {
			t.Fatalf("newEnvelope at MinSize+%d: %v", extra, err)
		}
		e.parse(junk) // must not panic
		seq &= 1<<(4*seqDigits) - 1
		if dt < 0 {
			dt = -dt
		}
		if dt < 0 {
			dt = 0
		}
		body := e.body(seq, now.Add(time.Duration(dt)))
		if len(body) != min+int(extra) {
			t.Fatalf("body is %d bytes, want %d", len(body), min+int(extra))
		}
		obj, err := message.DecodeObject(body)
		if err != nil {
			t.Fatalf("the body is not a JSON object: %v: %s", err, body)
		}
		s, d, ok := e.parse(body)
		if !ok || s != seq || d != time.Duration(dt) {
			t.Fatalf("parse = %d, %v, %v; want %d, %v", s, d, ok, seq, time.Duration(dt))
		}
		if obj["msg_id"] != e.msgID(seq) {
			t.Fatalf("msg_id %v, want %s", obj["msg_id"], e.msgID(seq))
		}
		var indented bytes.Buffer
		if err := json.Indent(&indented, body, "", " "); err != nil {
			t.Fatalf("json.Indent: %v", err)
		}
		if s2, d2, ok2 := e.parse(indented.Bytes()); !ok2 || s2 != seq || d2 != d {
			t.Fatalf("the re-encoded body parses as %d, %v, %v; want %d, %v", s2, d2, ok2, seq, d)
		}
		other, err := newEnvelope(topic, user, min+int(extra), now)
		if err != nil {
			t.Fatal(err)
		}
		if other.run != e.run {
			if _, _, ok := e.parse(other.body(seq, now)); ok {
				t.Fatalf("run %s took run %s's message as its own", e.run, other.run)
			}
		}
	})
}
