package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/gofedmsg/fedmsg/message"
)

// Loop prevention and deduplication.
//
// Three checks run on every delivery that passed the route's topic filter,
// before the signature policy, cheapest first. A message they stop is acked
// (it was handled: not forwarding it is the right outcome, redelivering it
// would not change that) and counted under its DropReason label.
//
//  1. Headers (STOMP, AMQP; ZeroMQ carries none). Every message the bridge
//     publishes carries HeaderBridge, the comma-separated ids of the
//     bridges it crossed with this bridge's id appended, and HeaderHops,
//     the number of bridges crossed. A message whose HeaderBridge already
//     names this bridge is dropped as "loop"; one that has crossed
//     MaxHops bridges or more is dropped as "max_hops".
//  2. Echo window (for ZeroMQ, which loses the headers). The bridge
//     remembers, per sink transport, the msg_ids it published there. A
//     message arriving from a transport with a msg_id this bridge
//     published to that same transport is its own output coming back
//     ("echo"): bus -> rabbit by one route, rabbit -> bus by another. The
//     check is against the transport a message arrives from, so one
//     source message fanned out to two sinks by two routes is forwarded
//     by both.
//  3. Duplicate window, per route: a msg_id the route already forwarded
//     recently is dropped as "duplicate" (a redelivery after a lost ack,
//     the same message reaching the source twice).
//
// The msg_id is Message.ID, or when empty (ZeroMQ) the envelope's
// "msg_id" decoded from the body. Messages without one are never
// suppressed by the windows. Both windows hold a bounded number of
// entries and forget the oldest first (FIFO by insertion), so memory is
// bounded whatever the traffic; a message is recognised as long as fewer
// than the window's size of newer ones went by.
const (
	// HeaderBridge lists the ids of the bridges a message crossed, in
	// order, comma-separated.
	HeaderBridge = "x-gofedmsg-bridge"
	// HeaderHops is the number of bridges a message crossed (decimal).
	HeaderHops = "x-gofedmsg-hops"
)

// Defaults for the loop-prevention Options.
//
// The echo window must outlast the trip back: a message this bridge
// published comes back only after whatever was queued ahead of it on the
// source, and meanwhile every route's publishes go into the window. Two
// opposite routes each carrying a 10,000-message burst put 20,000 entries
// in before the first echo is read, so the default is ten times the
// duplicate window (about 10 MB when full).
const (
	DefaultMaxHops     = 4
	DefaultEchoWindow  = 100000
	DefaultDedupWindow = 10000
)

// newBridgeID returns hostname-pid-random, unique enough that two bridges
// never share one by accident.
func newBridgeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "bridge"
	}
	host = strings.Map(func(r rune) rune {
		if badIDRune(r) {
			return '_'
		}
		return r
	}, host)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails (Go 1.24+)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(rnd[:]))
}

// checkBridgeID refuses an id that cannot round-trip through HeaderBridge.
func checkBridgeID(id string) error {
	if id == "" {
		return nil
	}
	for _, r := range id {
		if badIDRune(r) {
			return fmt.Errorf("%w: bridge id %q: must not contain commas, spaces or control characters", ErrInvalidConfig, id)
		}
	}
	return nil
}

// badIDRune reports a rune a bridge id cannot hold: the list separator,
// or one crossed would trim off the id's ends (strings.TrimSpace takes
// Unicode spaces such as U+00A0 and U+2028 too), which would make a
// bridge miss its own id in HeaderBridge and forward its own messages.
func badIDRune(r rune) bool {
	return r == ',' || r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r)
}

// crossed parses the loop headers: the bridge ids listed and the hop
// count. A missing or unreadable hop count is taken as the number of
// bridges listed, so a mangled header cannot reset the count below what
// the list shows.
func crossed(h map[string]string) (ids []string, hops int) {
	if v := strings.TrimSpace(h[HeaderBridge]); v != "" {
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	}
	hops = len(ids)
	if n, err := strconv.Atoi(strings.TrimSpace(h[HeaderHops])); err == nil {
		hops = max(n, hops)
	}
	return ids, hops
}

// stampHeaders sets the loop headers on h (a copy the bridge owns) for a
// message leaving through this bridge.
func stampHeaders(h map[string]string, id string, ids []string, hops int) map[string]string {
	if h == nil {
		h = make(map[string]string, 2)
	}
	h[HeaderBridge] = strings.Join(append(ids, id), ",")
	h[HeaderHops] = strconv.Itoa(hops + 1)
	return h
}

// msgID is m's msg_id: Message.ID, else the envelope's top-level
// "msg_id" (a string) read from body; "" when there is none.
func msgID(id string, body []byte) string {
	if id != "" {
		return id
	}
	return message.MsgID(body)
}

// idWindow is a bounded set of keys forgetting the oldest insertion first.
// An entry is added as pending before a publish (so an echo arriving while
// the publish is in flight is recognised), confirmed once the publish
// succeeded, and removed if it failed and nobody else confirmed it.
type idWindow struct {
	mu      sync.Mutex
	entries map[string]windowEntry
	ring    []ringSlot // insertion order; len == capacity
	next    int
	gen     uint64
}

type windowEntry struct {
	gen       uint64 // the ring slot that holds it: older slots are stale
	confirmed bool
}

type ringSlot struct {
	key string
	gen uint64
}

// newIDWindow returns a window of size entries, or nil (disabled) when
// size <= 0 (New has already turned 0 into the default). A nil window contains nothing and ignores additions.
func newIDWindow(size int) *idWindow {
	if size <= 0 {
		return nil
	}
	return &idWindow{entries: make(map[string]windowEntry, min(size, 1024)), ring: make([]ringSlot, size)}
}

func (w *idWindow) contains(key string) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.entries[key]
	return ok
}

// add inserts key (or moves it to the newest position) and returns a
// token for remove. A confirmed entry stays confirmed.
func (w *idWindow) add(key string, confirmed bool) uint64 {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen++
	old := w.ring[w.next]
	if e, ok := w.entries[old.key]; ok && e.gen == old.gen {
		delete(w.entries, old.key)
	}
	w.ring[w.next] = ringSlot{key: key, gen: w.gen}
	w.next = (w.next + 1) % len(w.ring)
	e := w.entries[key]
	w.entries[key] = windowEntry{gen: w.gen, confirmed: e.confirmed || confirmed}
	return w.gen
}

// confirm marks key as really published, adding it again if it was
// forgotten meanwhile.
func (w *idWindow) confirm(key string) {
	if w == nil || key == "" {
		return
	}
	w.mu.Lock()
	e, ok := w.entries[key]
	if ok {
		e.confirmed = true
		w.entries[key] = e
	}
	w.mu.Unlock()
	if !ok {
		w.add(key, true)
	}
}

// remove forgets key if the entry is still the one token added and no
// publish confirmed it.
func (w *idWindow) remove(key string, token uint64) {
	if w == nil || key == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.entries[key]; ok && e.gen == token && !e.confirmed {
		delete(w.entries, key)
	}
}

func (w *idWindow) len() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries)
}

// echoKey keys the echo window by the transport a message was published
// to and its msg_id.
func echoKey(transportName, id string) string { return transportName + "\x00" + id }
