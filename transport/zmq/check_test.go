package zmq

import (
	"errors"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/message"
)

func TestCheckFrames(t *testing.T) {
	ok := []byte(`{"a":1}`)
	for _, tc := range []struct {
		name   string
		frames [][]byte
		want   DropReason
	}{
		{"two frames", [][]byte{[]byte("t"), ok}, DropNone},
		{"empty topic is fine", [][]byte{{}, ok}, DropNone},
		{"NaN is Python JSON", [][]byte{[]byte("t"), []byte(`{"a":NaN}`)}, DropNone},
		{"one frame", [][]byte{[]byte("t")}, DropFrames},
		{"three frames", [][]byte{[]byte("t"), ok, ok}, DropFrames},
		{"zero frames", nil, DropFrames},
		{"latin-1 topic", [][]byte{[]byte("caf\xe9"), ok}, DropTopicUTF8},
		{"array body", [][]byte{[]byte("t"), []byte(`[]`)}, DropNotObject},
		{"empty body", [][]byte{[]byte("t"), {}}, DropNotObject},
		{"truncated", [][]byte{[]byte("t"), []byte(`{"a":`)}, DropNotObject},
		{"trailing data", [][]byte{[]byte("t"), []byte(`{"a":1}x`)}, DropNotObject},
		{"oversize", [][]byte{[]byte("t"), []byte(`{"a":"` + string(make([]byte, 100)) + `"}`)}, DropOversize},
	} {
		if got := checkFrames(tc.frames, 64); got != tc.want {
			t.Errorf("%s: checkFrames = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzCheckFrames feeds arbitrary frames to the relay's checks: they must
// never panic, and what they let through must decode as a JSON object.
func FuzzCheckFrames(f *testing.F) {
	f.Add([]byte("org.fedoraproject.dev.logger.log"), []byte(`{"i":1,"msg":{"log":"x"}}`), uint8(2))
	f.Add([]byte("t"), []byte(`{"a":[1,2.5e-3,"\ud83d\ude80",null,true]}`), uint8(2))
	f.Add([]byte("\xff"), []byte(`{}`), uint8(1))
	f.Add([]byte("t"), []byte(`{"a":"\u0000"}`), uint8(3))
	f.Fuzz(func(t *testing.T, topic, body []byte, n uint8) {
		frames := [][]byte{topic, body}
		switch n % 4 {
		case 0:
			frames = nil
		case 1:
			frames = frames[:1]
		case 3:
			frames = append(frames, body)
		}
		if checkFrames(frames, DefaultMaxMsgSize) != DropNone {
			return
		}
		if _, err := message.DecodeObject(body); err != nil {
			t.Fatalf("the relay forwarded a body receivers cannot decode: %v: %q", err, body)
		}
	})
}

// What ValidateObject accepts must be exactly what DecodeObject accepts,
// or the relay would drop good messages or pass ones nobody can read.
func FuzzValidateAgreesWithDecode(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `[]`, `{"a":-0.5e+10}`, `{"a":"\ud800"}`, `{"a":Infinity}`, `{"a":01}`, ` {"a" : [ ] } `, `{"a":"x"`, "{\"a\":\"\x01\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		verr := message.ValidateObject(data)
		_, derr := message.DecodeObject(data)
		if (verr == nil) != (derr == nil) {
			t.Fatalf("ValidateObject: %v, DecodeObject: %v, for %q", verr, derr, data)
		}
		if verr != nil && !errors.Is(verr, message.ErrInvalidJSON) && !errors.Is(verr, message.ErrNotObject) {
			t.Fatalf("ValidateObject error %v is not a message sentinel", verr)
		}
	})
}

func TestSocketOptionsAreApplied(t *testing.T) {
	o := DefaultOptions()
	o.HighWaterMark = 0
	o.ReconnectIvl = 250 * time.Millisecond
	o.ReconnectIvlMax = 3 * time.Second
	o.TCPKeepalive, o.TCPKeepaliveCnt, o.TCPKeepaliveIdle, o.TCPKeepaliveIntvl = 1, 4, 61, 7
	o.Linger = 1500 * time.Millisecond
	zctx, err := newContext(o)
	if err != nil {
		t.Fatal(err)
	}
	defer zctx.Term()
	s, err := newSocket(zctx, zmq4.SUB, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(name string, got, want any, err error) {
		t.Helper()
		if err != nil || got != want {
			t.Errorf("%s = %v (%v), want %v", name, got, err, want)
		}
	}
	v, err := s.GetSndhwm()
	check("SNDHWM (0 = no limit)", v, 0, err)
	v, err = s.GetRcvhwm()
	check("RCVHWM (0 = no limit)", v, 0, err)
	d, err := s.GetReconnectIvl()
	check("RECONNECT_IVL", d, 250*time.Millisecond, err)
	d, err = s.GetReconnectIvlMax()
	check("RECONNECT_IVL_MAX", d, 3*time.Second, err)
	d, err = s.GetLinger()
	check("LINGER", d, 1500*time.Millisecond, err)
	v, err = s.GetTcpKeepalive()
	check("TCP_KEEPALIVE", v, 1, err)
	v, err = s.GetTcpKeepaliveCnt()
	check("TCP_KEEPALIVE_CNT", v, 4, err)
	v, err = s.GetTcpKeepaliveIdle()
	check("TCP_KEEPALIVE_IDLE", v, 61, err)
	v, err = s.GetTcpKeepaliveIntvl()
	check("TCP_KEEPALIVE_INTVL", v, 7, err)

	o.HighWaterMark = 10000
	p, err := newSocket(zctx, zmq4.PUB, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	v, err = p.GetSndhwm()
	check("SNDHWM", v, 10000, err)
}
