package cmd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/message"
)

// FuzzCheckReport reads an arbitrary monitoring report (it comes off a
// socket) the way `fedmsg check` does: decoded as a JSON object, names
// looked up in its consumers and producers, then pretty-printed. Nothing
// may panic, and the verdict must match the report: a name is missing
// exactly when no entry carries it, uninitialized exactly when its entry's
// "initialized" is not true, and each problem gets its line on stderr.
func FuzzCheckReport(f *testing.F) {
	f.Add([]byte(`{"consumers":[{"name":"A","initialized":true},{"name":"B","initialized":false}],"producers":[]}`), "A,B,C")
	f.Add([]byte(`{"consumers":[{"name":"A","initialized":"True"},3,{"name":1}],"producers":{"name":"A"}}`), "A")
	f.Add([]byte(`{"consumers":null,"producers":[{"name":"p","initialized":true,"exceptions":NaN}]}`), "p,")
	f.Add([]byte(`[]`), "x")
	f.Fuzz(func(t *testing.T, data []byte, names string) {
		report, err := message.DecodeObject(data)
		if err != nil {
			return
		}
		_, _ = message.Pretty(report)
		want := strings.Split(names, ",")
		var stderr bytes.Buffer
		missing, uninit := checkNames(&stderr, report, "consumers", want)
		entries := map[string]map[string]any{}
		list, _ := report["consumers"].([]any)
		for _, item := range list {
			if e, ok := item.(map[string]any); ok {
				if n, ok := e["name"].(string); ok {
					entries[n] = e
				}
			}
		}
		wantMissing, wantUninit, lines := false, false, 0
		for _, n := range want {
			e, ok := entries[n]
			switch {
			case !ok:
				wantMissing = true
				lines++
			case e["initialized"] != true:
				wantUninit = true
				lines++
			}
		}
		if missing != wantMissing || uninit != wantUninit {
			t.Fatalf("checkNames(%q) = missing %v, uninitialized %v; want %v, %v", names, missing, uninit, wantMissing, wantUninit)
		}
		if got := strings.Count(stderr.String(), "\n"); got < lines {
			t.Fatalf("%d problems but %d lines: %q", lines, got, stderr.String())
		}
	})
}
