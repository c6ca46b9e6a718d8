package datagrepper_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/gofedmsg/fedmsg/datagrepper/datagreppertest"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

// update rewrites testdata/raw.json from the shared x509 vectors:
//
//	go test ./datagrepper -run TestRecordedArchive -update
var update = flag.Bool("update", false, "rewrite testdata/raw.json from shared/testdata/fedmsg-x509")

// sourceVersion is the datanommer version the recorded copies claim; any
// value does, fix_datagrepper_message only checks the key is there.
const sourceVersion = "1.0.3"

type manifest struct {
	Files []struct {
		ID         string `json:"id"`
		File       string `json:"file"`
		ProducedBy string `json:"produced_by"`
	} `json:"files"`
	Cases []manifestCase `json:"cases"`
}

type manifestCase struct {
	ID       string `json:"id"`
	File     string `json:"file"`
	Expected bool   `json:"expected"`
}

// validVectors returns the file names (relative to fedmsg-x509) of the
// envelopes real fedmsg published and validated with the default policy,
// in manifest order.
func validVectors(t *testing.T) []string {
	t.Helper()
	var m manifest
	if err := json.Unmarshal(sharedtest.Read(t, "fedmsg-x509", "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range m.Files {
		if f.ProducedBy == "" {
			continue // derived or tampered: not something a publisher sent
		}
		if slices.ContainsFunc(m.Cases, func(c manifestCase) bool {
			return c.ID == f.ID+"/default" && c.Expected
		}) {
			out = append(out, f.File)
		}
	}
	if len(out) == 0 {
		t.Fatal("no valid published vector in the manifest")
	}
	return out
}

// datanommerCopy stores env the way datagrepper hands it back: with
// source_name and source_version, a headers key ({} or null, both seen in
// practice) and the timestamp as a float.
func datanommerCopy(t *testing.T, env map[string]any, i int) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range env {
		out[k] = v
	}
	out["source_name"] = "datanommer"
	out["source_version"] = sourceVersion
	if i%2 == 0 {
		out["headers"] = map[string]any{}
	} else {
		out["headers"] = nil
	}
	ts, ok := env["timestamp"].(message.Number)
	if !ok || ts.IsFloat() {
		t.Fatalf("vector %d: timestamp %v is not an integer", i, env["timestamp"])
	}
	out["timestamp"] = message.Number(string(ts) + ".0")
	return out
}

// recordedArchive builds testdata/raw.json: one /raw reply holding every
// valid published vector as datagrepper stores it, oldest first.
func recordedArchive(t *testing.T) []byte {
	t.Helper()
	var list []any
	for i, f := range validVectors(t) {
		env, err := message.DecodeObject(sharedtest.Read(t, "fedmsg-x509", f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		list = append(list, datanommerCopy(t, env, i))
	}
	n := message.Number(strconv.Itoa(len(list)))
	reply := map[string]any{
		"arguments":    map[string]any{"rows_per_page": "100", "page": "1", "order": "asc"},
		"count":        n,
		"pages":        message.Number("1"),
		"total":        n,
		"raw_messages": list,
	}
	data, err := message.Pretty(reply)
	if err != nil {
		t.Fatal(err)
	}
	return append(data, '\n')
}

// TestRecordedArchive keeps testdata/raw.json what the generator makes of
// the shared vectors (run with -update to rewrite it).
func TestRecordedArchive(t *testing.T) {
	want := recordedArchive(t)
	dir, err := datagreppertest.TestdataDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, datagreppertest.RecordedFile)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./datagrepper -run TestRecordedArchive -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go test ./datagrepper -run TestRecordedArchive -update", path)
	}
}
