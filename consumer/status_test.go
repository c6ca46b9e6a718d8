package consumer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/message"
)

// stamped is an unsigned envelope with a msg_id and a timestamp.
func stamped(topic, id string, ts int64) []byte {
	b, err := message.Canonical(map[string]any{"topic": topic, "msg": map[string]any{"id": id}, "msg_id": id,
		"timestamp": message.Number(strconv.FormatInt(ts, 10))})
	if err != nil {
		panic(err)
	}
	return b
}

func statusPath(dir, consumer string) string {
	return filepath.Join(dir, DefaultProcessName, consumer)
}

// readStatus decodes a status file and checks it is canonical JSON.
func readStatus(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := message.DecodeObject(data)
	if err != nil {
		t.Fatalf("%s: %v: %s", path, err, data)
	}
	if c, _ := message.Canonical(doc); !bytes.Equal(c, data) {
		t.Errorf("%s is not canonical JSON:\n got %s\nwant %s", path, data, c)
	}
	return doc
}

// checkStatus asserts the fedmsg part of a status file: the wrapper
// {"topic", "body"} the handler was given, and the status.
func checkStatus(t *testing.T, doc map[string]any, topic string, body []byte, status string) {
	t.Helper()
	if doc["status"] != status {
		t.Errorf("status %v, want %q", doc["status"], status)
	}
	w, _ := doc["message"].(map[string]any)
	if w["topic"] != topic {
		t.Errorf("message.topic %v, want %q", w["topic"], topic)
	}
	got, _ := message.Canonical(w["body"])
	want, _ := message.CanonicalizeBytes(body)
	if !bytes.Equal(got, want) {
		t.Errorf("message.body %s, want %s", got, want)
	}
}

// The status file says "pre" with the message while the handler runs and
// "post" once it returned, for each consumer in its own file.
func TestStatusFileAroundTheHandler(t *testing.T) {
	dir := t.TempDir()
	path := statusPath(dir, "archive")
	var during []map[string]any
	col := newCollector()
	h, err := New([]Consumer{{Name: "archive", Handler: func(ctx context.Context, m *Message) error {
		during = append(during, readStatus(t, path))
		return col.handle(ctx, m)
	}}, {Name: "other", Topics: []string{"org.other."}, Handler: newCollector().handle}}, Options{StatusDirectory: dir})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	runHub(t, h, f)
	bodies := [][]byte{stamped("org.x.a", "2026-a", 100), stamped("org.x.b", "2026-b", 101)}
	for i, b := range bodies {
		f.push(t, strconv.Itoa(i), topicOf(t, b), b)
		f.next(t)
		checkStatus(t, during[i], topicOf(t, b), b, StatusPre)
		checkStatus(t, readStatus(t, path), topicOf(t, b), b, StatusPost)
	}
	// A failing handler still ends in "post" with that message.
	failing := errors.New("boom")
	h2dir := t.TempDir()
	h2, _ := New([]Consumer{{Name: "f", Handler: func(context.Context, *Message) error { return failing }}}, Options{StatusDirectory: h2dir})
	f2 := newFake()
	runHub(t, h2, f2)
	f2.push(t, "x", "org.x.a", bodies[0])
	f2.next(t)
	checkStatus(t, readStatus(t, statusPath(h2dir, "f")), "org.x.a", bodies[0], StatusPost)

	if _, err := os.Stat(statusPath(dir, "other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a consumer that got no message has a status file: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, DefaultProcessName))
	for _, e := range ents {
		if e.Name() != "archive" {
			t.Errorf("stray file %s left in the status folder", e.Name())
		}
	}
}

func TestStatusFileRefusesUnsafeNamesAndUnusableFolders(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a/b", "..", "."} {
		_, err := New([]Consumer{{Name: name, Handler: newCollector().handle}}, Options{StatusDirectory: dir})
		if !errors.Is(err, ErrStatusFile) {
			t.Errorf("consumer %q: err %v, want ErrStatusFile", name, err)
		}
	}
	file := filepath.Join(dir, "plain-file")
	os.WriteFile(file, nil, 0o644)
	_, err := New([]Consumer{{Name: "c", Handler: newCollector().handle}}, Options{StatusDirectory: file})
	if !errors.Is(err, ErrStatusFile) || !strings.Contains(err.Error(), file) {
		t.Errorf("status_directory is a file: err %v, want ErrStatusFile naming it", err)
	}
	// Without status_directory nothing is written anywhere.
	h, err := New([]Consumer{{Name: "a/b", Handler: newCollector().handle}}, Options{})
	if err != nil || h.runners[0].status != nil {
		t.Errorf("no status_directory: err %v, status %v", err, h.runners[0].status)
	}
}

// A status file that cannot be read costs the backlog, never the hub.
func TestDamagedStatusFileIsNotFatal(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, DefaultProcessName), 0o755)
	for _, text := range []string{"{torn", `{"message": {"body": 3}}`, `{"message": {"body": {"msg_id": "x"}}}`} {
		os.WriteFile(statusPath(dir, "c"), []byte(text), 0o644)
		h, err := New([]Consumer{{Name: "c", Handler: newCollector().handle}}, Options{StatusDirectory: dir})
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if h.runners[0].status.found {
			t.Errorf("%s: taken as a resume point", text)
		}
	}
	// A body kept as a string (a consumer that did not jsonify) is decoded again.
	os.WriteFile(statusPath(dir, "c"), []byte(`{"message": {"body": "{\"msg_id\": \"2026-s\", \"timestamp\": 42.5}"}, "status": "post"}`), 0o644)
	h, _ := New([]Consumer{{Name: "c", Handler: newCollector().handle}}, Options{StatusDirectory: dir})
	if s := h.runners[0].status; !s.found || s.startTS != 42 || !s.startIDs["2026-s"] {
		t.Errorf("string body: found %v start %d ids %v", s.found, s.startTS, s.startIDs)
	}
}
