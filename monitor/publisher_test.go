package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

// subscribe connects a SUB to endpoint, as fedmsg check does.
func subscribe(t *testing.T, endpoint string) *zmq4.Socket {
	t.Helper()
	s, err := zmq4.NewSocket(zmq4.SUB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.SetSubscribe(""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRcvtimeo(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(endpoint); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPublisherSendsOneFrameReportsOnIPCWithMode: the socket file gets
// moksha.monitoring.socket.mode, each report is one frame of JSON with
// the consumers asked for once per report and the publisher itself as
// a producer, and Close removes the socket file promptly.
func TestPublisherSendsOneFrameReportsOnIPCWithMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "monitoring.socket")
	var calls atomic.Uint64
	p, err := Start(Options{
		Endpoint: "ipc://" + path, Mode: "0640", Interval: 50 * time.Millisecond,
		Consumers: func() []Consumer {
			n := calls.Add(1)
			return []Consumer{{Name: "c", Topic: []string{"t"}, Initialized: true, HeadcountIn: n}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no socket file: %v", err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("socket file mode = %o, want 640", st.Mode().Perm())
	}
	sub := subscribe(t, "ipc://"+path)
	var last uint64
	for i := range 2 {
		frames, err := sub.RecvMessageBytes(0)
		if err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		if len(frames) != 1 {
			t.Fatalf("report has %d frames, want 1", len(frames))
		}
		var r struct {
			Consumers []struct {
				Name        string `json:"name"`
				HeadcountIn uint64 `json:"headcount_in"`
			} `json:"consumers"`
			Producers []map[string]any `json:"producers"`
		}
		if err := json.Unmarshal(frames[0], &r); err != nil {
			t.Fatalf("report is not JSON: %v: %s", err, frames[0])
		}
		if len(r.Consumers) != 1 || r.Consumers[0].Name != "c" {
			t.Fatalf("consumers = %+v, want c", r.Consumers)
		}
		// One Consumers call per report: consecutive reports see
		// consecutive calls (the counters a call resets are not lost).
		if i > 0 && r.Consumers[0].HeadcountIn != last+1 {
			t.Errorf("consecutive reports have headcount_in %d then %d: Consumers was not called once per report", last, r.Consumers[0].HeadcountIn)
		}
		last = r.Consumers[0].HeadcountIn
		if len(r.Producers) != 1 || r.Producers[0]["name"] != ProducerName || r.Producers[0]["frequency"] != 0.05 ||
			r.Producers[0]["initialized"] != true || r.Producers[0]["last_ran"] == nil {
			t.Errorf("producers = %v, want the publisher itself, initialized, frequency 0.05, last_ran set", r.Producers)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file still there after Close: %v", err)
	}
}

func TestStartRefusesABadModeNamingTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.socket")
	_, err := Start(Options{Endpoint: "ipc://" + path, Mode: "rw-rw----"})
	if !errors.Is(err, ErrBadMode) || !strings.Contains(err.Error(), KeyMode) || !strings.Contains(err.Error(), "rw-rw----") {
		t.Fatalf("Start with a bad mode = %v, want ErrBadMode naming %s and the value", err, KeyMode)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a socket was bound despite the bad mode")
	}
	if _, err := Start(Options{}); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("Start without an endpoint = %v, want ErrNoEndpoint", err)
	}
	_, err = Start(Options{Endpoint: "ipc://" + filepath.Join(t.TempDir(), "no", "such", "dir", "s")})
	if !errors.Is(err, ErrBind) || !strings.Contains(err.Error(), KeySocket) {
		t.Errorf("Start on an unbindable endpoint = %v, want ErrBind naming %s", err, KeySocket)
	}
}
