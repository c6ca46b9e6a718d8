package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/datagrepper"
	"github.com/gofedmsg/fedmsg/datagrepper/datagreppertest"
	"github.com/gofedmsg/fedmsg/message"
)

// TestHubCatchesUpFromDatagrepperAfterRestart: a validating hub with a
// file consumer and status_directory handles v01..v03 (real signed
// envelopes) live through the relay and is stopped. datagrepper holds
// v01..v07 as it stores them (source_*, headers, float timestamps); v02
// to v07 were published in the same second. Restarted, the hub writes
// exactly v04..v07, in order, byte for byte as published; restarted
// again, it writes nothing.
func TestHubCatchesUpFromDatagrepperAfterRestart(t *testing.T) {
	stored, err := datagreppertest.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	var published []string // what the publishers sent: the fixed copies
	for _, m := range stored {
		b, err := message.Canonical(datagrepper.FixMessage(m))
		if err != nil {
			t.Fatal(err)
		}
		published = append(published, string(b))
	}
	srv := datagreppertest.NewServer(stored)
	defer srv.Close()

	b := newBus(t)
	b.env = append(b.env, "FEDMSG_CONFIG="+b.x509Config(t, "validate_signatures: true\n"))
	b.startRelay()
	pub, _ := rawSockets(t, b)

	statusDir := filepath.Join(b.dir, "status")
	probeFile := filepath.Join(b.dir, "probe.jsonl")
	outFile := filepath.Join(b.dir, "out.jsonl")
	cfg := filepath.Join(b.dir, "hub.yaml")
	yaml := `status_directory: ` + statusDir + `
datagrepper_url: ` + srv.URL + `/raw
consumers:
  - name: probe
    kind: file
    topics: [org.fedoraproject.dev.e2e.probe]
    validate_signatures: false
    path: ` + probeFile + `
  - name: archive
    kind: file
    topics: [org.fedoraproject.dev.logger., org.fedoraproject.dev.bodhi., org.fedoraproject.dev.buildsys.]
    path: ` + outFile + `
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	readOut := func() string {
		data, _ := os.ReadFile(outFile)
		return string(data)
	}
	waitOut := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(readOut()) < len(want) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // room for a message that should not come
		if got := readOut(); got != want {
			t.Fatalf("the file consumer wrote\n%s\nwant\n%s", got, want)
		}
	}
	// Each of the two consumers has a status file after the first run, so
	// each fetches (and logs) its own backlog.
	waitBacklogs := func(hub *proc) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(hub.stderr.String(), "backlog queued") < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("the hub did not queue both backlogs within 20s; stderr:\n%s", hub.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stopHub := func(hub *proc) {
		t.Helper()
		if code := hub.stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("hub exited %d on SIGTERM; stderr:\n%s", code, hub.stderr.String())
		}
	}

	// 1. Live: v01..v03 through the relay. No status file yet, so no backlog.
	hub := b.start("hub", "--config", cfg)
	hub.waitStderr(t, "hub started")
	deadline := time.Now().Add(20 * time.Second)
	for { // the hub's SUB settles asynchronously (ZeroMQ's slow joiner)
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
			t.Fatalf("probe logger exited %d: %s", code, errOut)
		}
		if st, err := os.Stat(probeFile); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub saw no probe within 20s; stderr:\n%s", hub.stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, body := range published[:3] {
		env, _ := message.DecodeObject([]byte(body))
		if _, err := pub.SendMessage(env["topic"].(string), body); err != nil {
			t.Fatal(err)
		}
	}
	waitOut(strings.Join(published[:3], "\n") + "\n")
	stopHub(hub)
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("the first start had no status file but asked datagrepper %d times", n)
	}
	status, err := os.ReadFile(filepath.Join(statusDir, "fedmsg-hub", "archive"))
	if err != nil {
		t.Fatalf("no status file for the archive consumer: %v", err)
	}
	if !strings.Contains(string(status), `"status":"post"`) || !strings.Contains(string(status), `"msg_id":"`+message.MsgID([]byte(published[2]))+`"`) {
		t.Errorf("status file does not say v03 was handled:\n%s", status)
	}

	// 2. Restart: the missed v04..v07 come from datagrepper, once each.
	hub = b.start("hub", "--config", cfg)
	waitBacklogs(hub)
	waitOut(strings.Join(published, "\n") + "\n")
	stopHub(hub)
	if !strings.Contains(hub.stderr.String(), "fetching the backlog from datagrepper") {
		t.Errorf("the hub did not log the backlog:\n%s", hub.stderr.String())
	}
	var starts []string
	for _, r := range srv.Requests() {
		if r.Path != "/raw" || r.Query().Get("order") != "asc" || r.Query().Get("rows_per_page") != "100" {
			t.Errorf("unexpected request %s", r)
		}
		starts = append(starts, r.Query().Get("start"))
	}
	// One /raw page per consumer; each starts at its last message's second.
	if len(starts) != 2 || !strings.Contains(strings.Join(starts, ","), "1795604908") {
		t.Errorf("backlog requests started at %v, want the archive consumer's at 1795604908 (v03's second)", starts)
	}

	// 3. Restart again: nothing new.
	hub = b.start("hub", "--config", cfg)
	waitBacklogs(hub)
	time.Sleep(500 * time.Millisecond)
	stopHub(hub)
	if got, want := readOut(), strings.Join(published, "\n")+"\n"; got != want {
		t.Errorf("the second restart wrote again:\n%s", strings.TrimPrefix(got, want))
	}
}
