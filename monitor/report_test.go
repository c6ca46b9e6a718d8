package monitor

import (
	"os"
	"testing"
	"time"
)

// TestEncodeIsPythonJSONDumps compares with text written by hand from
// spec §1.4 and §3.3: Python's json.dumps of moksha's dict, keys in
// moksha's order, ", " and ": " separators, floats as repr (1e-05, 2.0),
// ensure_ascii (\u00e9), a one-topic consumer's topic as a string.
func TestEncodeIsPythonJSONDumps(t *testing.T) {
	r := Report{
		Consumers: []Consumer{{
			Name: "archive", Module: "github.com/gofedmsg/fedmsg/consumer.file",
			Topic: []string{"org.fedoraproject.prod.bodhi."}, Initialized: true, Exceptions: 1, JSONify: true,
			Backlog: 2, HeadcountOut: 3, HeadcountIn: 5,
			Times: []time.Duration{1500 * time.Millisecond, 250 * time.Microsecond, 10 * time.Microsecond, 2 * time.Second},
		}, {
			Name: "caf\u00e9 \"q\"", Topic: []string{"a", "b"},
		}},
		Producers: []Producer{{
			Name: "MonitoringProducer", Module: "m", Initialized: true,
			Polling: true, Frequency: 5 * time.Second, LastRan: time.Unix(1700000000, 250000000),
		}, {
			Name: "plain", Module: "x",
		}, {
			Name: "fast", Module: "y", Polling: true, Frequency: 100 * time.Millisecond, Now: true,
		}},
	}
	want := `{"consumers": [` +
		`{"name": "archive", "module": "github.com/gofedmsg/fedmsg/consumer.file", "topic": "org.fedoraproject.prod.bodhi.", ` +
		`"initialized": true, "exceptions": 1, "jsonify": true, "backlog": 2, "headcount_out": 3, "headcount_in": 5, ` +
		`"times": [1.5, 0.00025, 1e-05, 2.0]}, ` +
		`{"name": "caf\u00e9 \"q\"", "module": "", "topic": ["a", "b"], "initialized": false, "exceptions": 0, ` +
		`"jsonify": false, "backlog": 0, "headcount_out": 0, "headcount_in": 0, "times": []}], ` +
		`"producers": [` +
		`{"name": "MonitoringProducer", "module": "m", "initialized": true, "exceptions": 0, "frequency": 5, "now": false, "last_ran": 1700000000.25}, ` +
		`{"name": "plain", "module": "x", "initialized": false, "exceptions": 0}, ` +
		`{"name": "fast", "module": "y", "initialized": false, "exceptions": 0, "frequency": 0.1, "now": true, "last_ran": null}]}`
	if got := string(r.Encode()); got != want {
		t.Errorf("Encode:\n got %s\nwant %s", got, want)
	}
	if got, want := string(Report{}.Encode()), `{"consumers": [], "producers": []}`; got != want {
		t.Errorf("empty report = %s, want %s", got, want)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]uint32{
		"770": 0o770, "0770": 0o770, "0o640": 0o640, " 600 ": 0o600, "7": 0o7,
	} {
		m, err := ParseMode(in)
		if err != nil {
			t.Errorf("ParseMode(%q): %v", in, err)
			continue
		}
		if uint32(m.Perm()) != want {
			t.Errorf("ParseMode(%q) = %o, want %o", in, m.Perm(), want)
		}
	}
	if m, err := ParseMode("2770"); err != nil || m.Perm() != 0o770 || m&os.ModeSetgid == 0 {
		t.Errorf("ParseMode(2770) = %v, %v: want 770 plus setgid", m, err)
	}
	for _, bad := range []string{"", "rwx", "778", "-1", "+7", "10000", "0x1ff", "7 7"} {
		if _, err := ParseMode(bad); err == nil {
			t.Errorf("ParseMode(%q) accepted", bad)
		}
	}
}
