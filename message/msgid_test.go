package message

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
)

func TestMsgID(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"msg_id":"2026-abc","topic":"t"}`, "2026-abc"},
		{` { "topic" : "t" , "msg_id" : "x-1" } `, "x-1"},
		{`{"msg":{"msg_id":"nested"},"topic":"t"}`, ""},                   // only the top level counts
		{`{"msg":["msg_id","a\"b",{"x":"}"}],"msg_id":"after"}`, "after"}, // brackets and quotes inside strings
		{`{"msg_id":"first","msg_id":"last"}`, "last"},                    // json.loads: the last key wins
		{`{"msg_id":"first","msg_id":7}`, ""},
		{`{"msg_id":null}`, ""},
		{`{"msg\u005fid":"escaped-key"}`, "escaped-key"},
		{`{"msg_id":"a\u0062c"}`, "abc"},
		{`{"msg_id":"caf\u00e9"}`, "café"},
		{`{"s":"\\","msg_id":"after-backslash"}`, "after-backslash"},
		{`{}`, ""},
		{`[]`, ""},
		{`{"msg_id":"unterminated}`, ""},
		{`{"msg_id":"x"} trailing`, ""},
		{``, ""},
	} {
		if got := MsgID([]byte(tc.body)); got != tc.want {
			t.Errorf("MsgID(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

// Every envelope Python fedmsg put on the wire in shared/testdata: the
// scanner finds the msg_id the full decoder finds.
func TestMsgIDOfFedmsgVectors(t *testing.T) {
	n := 0
	for _, set := range []string{"fedmsg-x509", "fedmsg-gpg", "fedmsg-wire"} {
		dir := sharedtest.Dir(t, set)
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || (filepath.Ext(path) != ".json" && filepath.Ext(path) != ".frame1") {
				return err
			}
			body, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			env, err := DecodeObject(body)
			if err != nil {
				return nil // manifests, malformed vectors: not envelopes
			}
			want, _ := env[FieldMsgID].(string)
			if got := MsgID(body); got != want {
				t.Errorf("%s: MsgID = %q, decoder says %q", path, got, want)
			}
			if want != "" {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 {
		t.Fatal("no envelope with a msg_id found in shared/testdata")
	}
}

// FuzzMsgID: on every body the full decoder accepts as an object, the
// scanner agrees with it. Seeds live in testdata/fuzz/FuzzMsgID.
func FuzzMsgID(f *testing.F) {
	f.Add([]byte(`{"i":1,"msg":{"a":[1,"]"]},"msg_id":"2026-e0c1","topic":"t"}`))
	f.Add([]byte(`{"msg_id":"a","msg_id":{"msg_id":"b"}}`))
	f.Add([]byte(`{"m\u0073g_id":"x\"y"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got := MsgID(body)
		env, err := DecodeObject(body)
		if err != nil {
			return
		}
		want, _ := env[FieldMsgID].(string)
		if got != want {
			t.Fatalf("MsgID(%q) = %q, DecodeObject says %q", body, got, want)
		}
	})
}

func BenchmarkMsgID(b *testing.B) {
	body := sharedtest.Read(b, "fedmsg-x509", "signed", "v02-unicode.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if MsgID(body) == "" {
			b.Fatal("no msg_id")
		}
	}
}
