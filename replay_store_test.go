package fedmsg_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/replay"
)

// A signing publisher with persistent_store: each envelope on the wire has
// seq_id 1, 2, 3 inside the signed bytes, so it validates (fedmsg's own
// stored envelopes never do, vector t10-seq-id-added), and replay hands back
// exactly the bytes that were sent.
func TestPublishWithStoreSignsSeqID(t *testing.T) {
	dir := sharedtest.Dir(t, "fedmsg-x509")
	ep, replayEP := freeEndpoint(t), freeEndpoint(t)
	cfg := config.Default()
	cfg.Name = "bodhi.app01"
	cfg.Endpoints = map[string][]string{"bodhi.app01": {ep}}
	cfg.ReplayEndpoints = map[string]string{"bodhi.app01": replayEP}
	cfg.PersistentStore = map[string]any{"limit": 2}
	// The publisher waits (up to this) for the first subscription, so
	// seq_id 1 is not lost to ZeroMQ's slow joiner.
	cfg.PostInitSleep = 5
	cfg.SignMessages = true
	cfg.SSLDir = dir
	cfg.Certnames = map[string]string{"bodhi.app01": "bodhi-app01.example.com"}
	cfg.CACertLocation = dir + "/ca.crt"
	crl := dir + "/crl.pem"
	cfg.CRLLocation = &crl
	fc, err := fedmsg.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close(context.Background())
	if fc.ReplayAddr() != replayEP {
		t.Fatalf("replay server on %q, want %q", fc.ReplayAddr(), replayEP)
	}

	zctx, _ := zmq4.NewContext()
	sub, _ := zctx.NewSocket(zmq4.SUB)
	defer func() { sub.Close(); zctx.Term() }()
	sub.SetLinger(0)
	sub.SetSubscribe("")
	sub.SetRcvtimeo(10 * time.Second)
	if err := sub.Connect(ep); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if err := fc.Publish(ctx, "update.comment", "bodhi", map[string]any{"karma": 1}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := fedmsg.NewValidator(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sent [][]byte
	for want := int64(1); want <= 3; want++ {
		frames, err := sub.RecvMessageBytes(0)
		if err != nil {
			t.Fatalf("seq_id %d not received: %v", want, err)
		}
		env, err := message.DecodeObject(frames[1])
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := env["seq_id"].(message.Number).Int64(); n != want {
			t.Fatalf("seq_id = %v, want %d", env["seq_id"], want)
		}
		if err := v.Validate(ctx, env); err != nil {
			t.Fatalf("envelope with seq_id %d does not validate: %v", want, err)
		}
		sent = append(sent, frames[1])
	}

	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	frames, err := replay.Exchange(qctx, replayEP, [][]byte{[]byte(`{"seq_id_range":[1,3]}`)}, replay.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The store keeps 2: seq_id 1 is gone.
	if len(frames) != 2 || !bytes.Equal(frames[0], sent[1]) || !bytes.Equal(frames[1], sent[2]) {
		t.Fatalf("replayed %q\nwant the sent bytes of seq_ids 2 and 3", frames)
	}
	// The replayed envelopes validate too.
	envs, err := replay.Query(qctx, replayEP, replay.Request{SeqIDs: []int64{3}})
	if err != nil || len(envs) != 1 {
		t.Fatalf("query: %v, %v", envs, err)
	}
	if err := v.Validate(ctx, envs[0]); err != nil {
		t.Fatalf("replayed envelope does not validate: %v", err)
	}
}

func TestStoreFromConfig(t *testing.T) {
	for _, c := range []struct {
		in    any
		limit int // 0: no store
		bad   bool
	}{
		{nil, 0, false}, {false, 0, false}, {true, replay.DefaultLimit, false},
		{map[string]any{}, replay.DefaultLimit, false}, {map[string]any{"limit": 7}, 7, false},
		{map[string]any{"limit": float64(3)}, 3, false},
		{map[string]any{"limit": 0}, 0, true}, {map[string]any{"limit": 2.5}, 0, true},
		{map[string]any{"size": 3}, 0, true}, {"sqlite:///x.db", 0, true},
	} {
		s, err := fedmsg.StoreFromConfig(c.in)
		if c.bad {
			if !errors.Is(err, fedmsg.ErrPersistentStore) {
				t.Errorf("%v: err = %v, want ErrPersistentStore", c.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.in, err)
			continue
		}
		if (s == nil) != (c.limit == 0) {
			t.Errorf("%v: store %v, want limit %d", c.in, s, c.limit)
			continue
		}
		if s == nil {
			continue
		}
		for range c.limit + 1 {
			s.Add(map[string]any{}, nil)
		}
		if s.Len() != c.limit {
			t.Errorf("%v: holds %d, want %d", c.in, s.Len(), c.limit)
		}
	}
}
