package test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/datagrepper/datagreppertest"
	"github.com/gofedmsg/fedmsg/message"
)

// fedmsg dg-replay fetches a message from a (test) datagrepper and
// publishes its msg again, signed, through the relay: a validating tail
// sees the same msg under this bus's prefix, with a new msg_id. A
// missing id exits 2 with fedmsg-dg-replay's message.
func TestDgReplayRepublishesFromDatagrepper(t *testing.T) {
	stored, err := datagreppertest.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	srv := datagreppertest.NewServer(stored)
	defer srv.Close()

	b := newBus(t)
	b.env = append(b.env, "FEDMSG_CONFIG="+b.x509Config(t, "sign_messages: true\n"))
	b.startRelay()
	tail := b.startTail("--validate", "--json")

	for i, c := range []struct {
		pick int
		args []string
		env  string
	}{
		{pick: 2, args: []string{"dg-replay", "--datagrepper-url", srv.URL}},
		// datagrepper_url as a hub has it, pointing at /raw.
		{pick: 5, args: []string{"dg-replay"}, env: "FEDMSG_DATAGREPPER_URL=" + srv.URL + "/raw"},
	} {
		orig := stored[c.pick]
		id := orig["msg_id"].(string)
		saved := b.env
		if c.env != "" {
			b.env = append(b.env, c.env)
		}
		out, errOut, code := b.run("", append(c.args, "--msg-id", id)...)
		b.env = saved
		if code != 0 {
			t.Fatalf("case %d: dg-replay exited %d: %s%s", i, code, out, errOut)
		}
		if want := "Retrieving '" + id + "'\nBroadcasting '" + id + "'\nOK.\n"; out != want {
			t.Errorf("case %d: dg-replay printed\n%s\nwant\n%s", i, out, want)
		}
		reqs := srv.Requests()
		if r := reqs[len(reqs)-1]; r.Path != "/id" || r.Query().Get("id") != id {
			t.Errorf("case %d: datagrepper was asked %s, want /id?id=%s", i, r, id)
		}
		got, err := message.DecodeObject([]byte(tail.nextLine(t)))
		if err != nil {
			t.Fatal(err)
		}
		if got["topic"] != orig["topic"] { // the vectors were published under org.fedoraproject.dev, as this bus
			t.Errorf("case %d: republished under %v, want %v", i, got["topic"], orig["topic"])
		}
		gm, _ := message.Canonical(got["msg"])
		wm, _ := message.Canonical(orig["msg"])
		if !bytes.Equal(gm, wm) {
			t.Errorf("case %d: republished msg %s, want %s", i, gm, wm)
		}
		if got["msg_id"] == id || got["crypto"] != "x509" {
			t.Errorf("case %d: msg_id %v crypto %v: want a new msg_id and this host's x509 signature", i, got["msg_id"], got["crypto"])
		}
	}

	// fedmsg-dg-replay by argv[0], a missing id: 404, exit 2.
	link := filepath.Join(b.dir, "fedmsg-dg-replay")
	if err := os.Symlink(fedmsgBin, link); err != nil {
		t.Fatal(err)
	}
	c := b.command("--msg-id", "2026-missing", "--datagrepper-url", srv.URL)
	c.Path, c.Args[0] = link, link
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	c.Run()
	if code := c.ProcessState.ExitCode(); code != 2 {
		t.Errorf("missing id: exit %d, want 2; stderr %s", code, errOut.String())
	}
	if want := "datagrepper request of '2026-missing' failed. Status: 404"; !strings.Contains(out.String(), want) {
		t.Errorf("missing id: stdout %q lacks %q", out.String(), want)
	}
	if !strings.Contains(errOut.String(), srv.URL+"/id?id=2026-missing") {
		t.Errorf("missing id: stderr does not name the URL: %s", errOut.String())
	}

	if _, errOut, code := b.run("", "dg-replay", "--datagrepper-url", srv.URL); code != 1 || !strings.Contains(errOut, "--msg-id is required") {
		t.Errorf("no --msg-id: exit %d, stderr %q; want 1 and \"--msg-id is required\"", code, errOut)
	}
	// Nothing else went out: the failed runs published nothing.
	select {
	case l := <-tail.lines:
		t.Errorf("tail saw an unexpected message: %s", l)
	case <-time.After(500 * time.Millisecond):
	}
}
