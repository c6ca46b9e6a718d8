package bridge

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/config"
)

// FuzzCrossed feeds arbitrary loop headers (they come from the broker,
// so from anyone who can publish there) to crossed and stampHeaders. What
// loop prevention relies on:
//   - the ids read back are non-empty, trimmed, and free of commas;
//   - the hop count is never below the number of bridges listed;
//   - a bridge whose id passed checkBridgeID, stamping a message and
//     reading it back, finds its own id last in the list and the hop
//     count one higher, so it recognises its own message as a loop.
func FuzzCrossed(f *testing.F) {
	f.Add("", "", "b1")
	f.Add("a,b", "2", "c")
	f.Add(" a , ,b,", "x", "c")
	f.Add("a", "-7", "c")
	f.Add("a,b,c", "9223372036854775806", "d")
	f.Add("a", " 3 ", "\u00a0c")
	f.Add("a", "1", "c\u2028")
	f.Fuzz(func(t *testing.T, bridgeHdr, hopsHdr, id string) {
		h := map[string]string{HeaderBridge: bridgeHdr, HeaderHops: hopsHdr}
		ids, hops := crossed(h)
		for _, x := range ids {
			if x == "" || x != strings.TrimSpace(x) || strings.Contains(x, ",") {
				t.Fatalf("crossed(%q) gave id %q", bridgeHdr, x)
			}
		}
		if hops < len(ids) {
			t.Fatalf("crossed(%q, %q): %d hops for %d bridges", bridgeHdr, hopsHdr, hops, len(ids))
		}
		if id == "" || checkBridgeID(id) != nil {
			return
		}
		// The bridge drops a message at MaxHops before stamping it, so
		// math.MaxInt hops never get stamped with a limit set.
		if hops == math.MaxInt {
			return
		}
		out := stampHeaders(map[string]string{"other": "kept"}, id, slices.Clone(ids), hops)
		if out["other"] != "kept" {
			t.Fatalf("stampHeaders lost a header")
		}
		ids2, hops2 := crossed(out)
		if len(ids2) == 0 || ids2[len(ids2)-1] != id {
			t.Fatalf("bridge id %q stamped over %q reads back as %q: the bridge would not see its own message", id, bridgeHdr, ids2)
		}
		if !slices.Equal(ids2[:len(ids2)-1], ids) {
			t.Fatalf("the ids crossed before changed: %q -> %q", ids, ids2)
		}
		if hops2 != hops+1 {
			t.Fatalf("hops %d stamped reads back as %d (header %q)", hops, hops2, out[HeaderHops])
		}
		if _, err := strconv.Atoi(out[HeaderHops]); err != nil {
			t.Fatalf("stamped hop count %q is not a number", out[HeaderHops])
		}
	})
}

// FuzzBridgeConfig loads an arbitrary YAML bridge file the way `fedmsg
// bridge` does (config.ReadFile, then the transports, routes and bridge
// sections to DecodeConfig). Nothing may panic; a rejected file gives an
// ErrInvalidConfig error; an accepted one is consistent: it validates
// again, every route has a name, known transports at both ends that
// differ, and its policies are known values.
func FuzzBridgeConfig(f *testing.F) {
	f.Add([]byte(`transports:
  bus: {kind: zmq, endpoints: ["tcp://127.0.0.1:9940"]}
  rabbit: {kind: amqp, amqp_url: "amqp://guest:guest@localhost:5672/%2f"}
routes:
  - {name: out, from: bus, to: rabbit, topics: ["org.fedoraproject.#"], signatures: require-valid, delivery: at-least-once}
  - {name: in, from: rabbit, to: bus, topics: "*.bodhi.>"}
bridge: {id: b1, max_hops: 3, echo_window: -1, dedup_window: 0, max_batch: 64}
`))
	f.Add([]byte("transports: {a: {kind: stomp}, b: {kind: nope}}\nroutes: [{name: r, from: a, to: a}]\n"))
	f.Add([]byte("routes: {name: r}\nbridge: [1]\n"))
	f.Add([]byte("transports: {a: {kind: 1}}\nroutes: [7, {name: r, from: a, to: b, topics: [1, \"a.[\"], delivery: often, extra: x}]\n"))
	f.Add([]byte("bridge: {id: \"a,b\", max_hops: 1.5, max_batch: -1, colour: red}\n"))
	f.Add([]byte("bridge: {max_hops: 1e300, echo_window: 9223372036854775808}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "bridge.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := config.ReadFile(path)
		if err != nil {
			return
		}
		raw := map[string]any{}
		for _, k := range []string{"transports", "routes", "bridge"} {
			if v, ok := m[k]; ok {
				raw[k] = v
			}
		}
		cfg, err := DecodeConfig(raw)
		if err != nil {
			if cfg != nil {
				t.Fatalf("DecodeConfig returned a config with error %v", err)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		if len(cfg.Routes) == 0 {
			t.Fatalf("accepted a config without routes")
		}
		if err := checkBridgeID(cfg.Settings.ID); err != nil {
			t.Fatalf("accepted bridge id: %v", err)
		}
		for _, r := range cfg.Routes {
			from, okF := cfg.Transports[r.From]
			to, okT := cfg.Transports[r.To]
			if r.Name == "" || !okF || !okT || r.From == r.To {
				t.Fatalf("accepted route %+v", r)
			}
			if !slices.Contains(Kinds, from.Kind) || !slices.Contains(Kinds, to.Kind) {
				t.Fatalf("accepted transport kinds %q, %q", from.Kind, to.Kind)
			}
		}
		var o Options
		cfg.Settings.Apply(&o)
	})
}

// A bridge id with a Unicode space at an end passed the id check but lost
// that space in crossed, so the bridge would not recognise its own
// messages (found by FuzzCrossed).
func TestBridgeIDRefusesUnicodeSpace(t *testing.T) {
	for _, id := range []string{"\u00a0b1", "b1\u2028", "b\u0085"} {
		if _, err := DecodeConfig(map[string]any{"bridge": map[string]any{"id": id}}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "bridge id") {
			t.Errorf("bridge id %q: got %v, want an ErrInvalidConfig naming the bridge id", id, err)
		}
	}
	if err := checkBridgeID("host-1-ab\u00e9"); err != nil {
		t.Errorf("a non-ASCII id without spaces is refused: %v", err)
	}
}
