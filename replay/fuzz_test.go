package replay

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParseRequest: any bytes give a Request or a *QueryError, never a
// panic; an accepted Request survives Encode and a second parse unchanged,
// and its ranges are in order (what the store relies on).
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"seq_id":1}`, `{"seq_ids":[1,2,3]}`, `{"seq_id_range":[1,5]}`,
		`{"msg_id":"2024-abc"}`, `{"msg_ids":["a","b"]}`, `{"time":[1700000000,1700000060.5]}`,
		`{"seq_id":1,"msg_id":"x","time":[0,1]}`, `{}`, `[]`, `{"key":1}`,
		`{"seq_id_range":[5,1]}`, `{"time":[NaN,1]}`, `{"seq_ids":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := ParseRequest(data)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) || qe.Text == "" || !errors.Is(err, ErrBadQuery) {
				t.Fatalf("error %v (%T) is not a *QueryError with a text", err, err)
			}
			return
		}
		if q.IsZero() {
			t.Fatalf("accepted an empty request from %q", data)
		}
		if r := q.SeqIDRange; r != nil && r.From > r.To {
			t.Fatalf("reversed seq_id_range accepted: %+v", *r)
		}
		if r := q.Time; r != nil && !(r.From <= r.To) {
			t.Fatalf("reversed time accepted: %+v", *r)
		}
		enc, err := q.Encode()
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", data, err)
		}
		again, err := ParseRequest(enc)
		if err != nil {
			t.Fatalf("our own encoding %s is refused: %v", enc, err)
		}
		if !reflect.DeepEqual(q, again) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v\nvia %s", q, again, enc)
		}
	})
}
