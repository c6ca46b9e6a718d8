package message

import (
	"encoding/json"
	"math"
	"regexp"
	"sync"
	"testing"
	"time"
)

func TestTopic(t *testing.T) {
	tests := []struct {
		prefix, env, modname, topic, want string
	}{
		// Spec §2.2.
		{"org.fedoraproject", "dev", "logger", "log", "org.fedoraproject.dev.logger.log"},
		{"org.fedoraproject", "prod", "bodhi", "update.comment", "org.fedoraproject.prod.bodhi.update.comment"},
		{"org.fedoraproject", "dev", "org.fedoraproject.prod.custom", "x", "org.fedoraproject.prod.custom.x"},
		{"org.fedoraproject", "dev", "logger", "", "org.fedoraproject.dev.logger.unspecified"},
		// Plain prefix test, no dot check.
		{"org.fedoraproject", "dev", "org.fedoraprojectX", "y", "org.fedoraprojectX.y"},
		{"org.fedoraproject", "stg", "git", "repo.update", "org.fedoraproject.stg.git.repo.update"},
		// frame0 of the wire capture logger-unicode-topic.
		{"org.fedoraproject", "dev", "wiki", "café.ümläut", "org.fedoraproject.dev.wiki.café.ümläut"},
	}
	for _, tt := range tests {
		if got := Topic(tt.prefix, tt.env, tt.modname, tt.topic); got != tt.want {
			t.Errorf("Topic(%q, %q, %q, %q) = %q, want %q", tt.prefix, tt.env, tt.modname, tt.topic, got, tt.want)
		}
	}
}

var msgIDRE = regexp.MustCompile(`^(\d{4})-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewMsgID(t *testing.T) {
	instant := time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC)
	kiribati := time.FixedZone("UTC+14", 14*60*60)
	for _, tt := range []struct {
		now  time.Time
		year string
	}{
		{instant, "2025"},
		{instant.In(kiribati), "2026"}, // already next year locally
		{instant.In(time.FixedZone("UTC-10", -10*60*60)), "2025"},
	} {
		id := NewMsgID(tt.now)
		if len(id) != 41 {
			t.Errorf("len(%q) = %d, want 41", id, len(id))
		}
		m := msgIDRE.FindStringSubmatch(id)
		if m == nil {
			t.Fatalf("%q is not <YYYY>-<lowercase uuid4>", id)
		}
		if m[1] != tt.year {
			t.Errorf("NewMsgID(%v) year = %s, want %s", tt.now, m[1], tt.year)
		}
	}
	seen := map[string]bool{}
	for range 1000 {
		id := NewMsgID(instant)
		if seen[id] {
			t.Fatalf("duplicate msg_id %s", id)
		}
		seen[id] = true
	}
}

// TestMsgIDShapeMatchesVectors checks our msg_id against those fedmsg wrote.
func TestMsgIDShapeMatchesVectors(t *testing.T) {
	for _, id := range []string{
		"2026-e0c108a7-5dbc-42de-a0bf-6dca3c1b7b60", // logger-unsigned.frame1
		"2026-81559e8c-2f27-4dc2-b107-020387b56416", // v01-ascii
	} {
		if !msgIDRE.MatchString(id) {
			t.Errorf("pattern rejects fedmsg's own %s", id)
		}
	}
}

func TestIsFalsy(t *testing.T) {
	falsy := []any{
		nil, "", false, Number("0"), Number("-0"), Number("0.0"), Number("-0.0"), Number("0e0"),
		Number("0E+10"), Number("1e-400"), Number(""), json.Number("0"), 0, int64(0), uint64(0), 0.0,
		math.Copysign(0, -1), []any{}, []any(nil), map[string]any{}, map[string]any(nil),
		[]string{}, map[string]int{}, int32(0), (*int)(nil),
	}
	truthy := []any{
		"x", " ", "0", true, Number("1"), Number("-1"), Number("0.1"), Number("1e-300"), Number("NaN"),
		Number("Infinity"), Number("-Infinity"), json.Number("2"), 1, int64(-1), uint64(1), 0.5, math.NaN(),
		[]any{nil}, map[string]any{"": nil}, []string{""}, struct{}{}, new(int),
	}
	for _, v := range falsy {
		if !IsFalsy(v) {
			t.Errorf("IsFalsy(%#v) = false", v)
		}
	}
	for _, v := range truthy {
		if IsFalsy(v) {
			t.Errorf("IsFalsy(%#v) = true", v)
		}
	}
}

func TestNewEnvelope(t *testing.T) {
	now := time.Unix(1795604977, 999_000_000)
	for _, msg := range []any{nil, "", false, 0, Number("0"), Number("0.0"), []any{}, map[string]any{}} {
		env := NewEnvelope("t", msg, 3, "u", now)
		if m, ok := env["msg"].(map[string]any); !ok || len(m) != 0 {
			t.Errorf("falsy msg %#v became %#v, want {}", msg, env["msg"])
		}
	}
	env := NewEnvelope("org.fedoraproject.dev.logger.log", "hello", 7, "fedmsg", now)
	if len(env) != 6 {
		t.Errorf("envelope has %d fields: %v", len(env), env)
	}
	if env["msg"] != "hello" || env["topic"] != "org.fedoraproject.dev.logger.log" || env["username"] != "fedmsg" {
		t.Errorf("envelope = %v", env)
	}
	if env["i"] != int64(7) || env["timestamp"] != int64(1795604977) {
		t.Errorf("i = %#v, timestamp = %#v; want int64 7 and the truncated seconds", env["i"], env["timestamp"])
	}
	if id, _ := env["msg_id"].(string); !msgIDRE.MatchString(id) {
		t.Errorf("msg_id = %#v", env["msg_id"])
	}
	list := []any{1, "two"}
	if got := NewEnvelope("t", list, 1, "u", now)["msg"]; got == nil {
		t.Error("non-empty list dropped")
	}
	out, err := Canonical(env)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeObject(out)
	if err != nil || back["timestamp"] != Number("1795604977") || back["i"] != Number("7") {
		t.Errorf("round trip %s: %v", out, err)
	}
}

func TestCounter(t *testing.T) {
	var c Counter
	if c.Next() != 1 || c.Next() != 2 || c.Next() != 3 {
		t.Fatal("Counter does not count 1, 2, 3")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				n := c.Next()
				mu.Lock()
				if seen[n] {
					t.Errorf("duplicate %d", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if c.Next() != 8004 {
		t.Error("counter lost increments")
	}
}

func TestWithoutCredentials(t *testing.T) {
	env := map[string]any{"signature": "s", "certificate": "c", "crypto": "x509", "msg": map[string]any{}, "seq_id": 1}
	out := WithoutCredentials(env)
	if len(out) != 3 || out["crypto"] != "x509" || out["seq_id"] != 1 {
		t.Errorf("WithoutCredentials = %v", out)
	}
	if len(env) != 5 {
		t.Error("WithoutCredentials modified its argument")
	}
}

func TestUsername(t *testing.T) {
	for _, k := range []string{"LOGNAME", "USER", "LNAME", "USERNAME"} {
		t.Setenv(k, "")
	}
	t.Setenv("USERNAME", "d")
	t.Setenv("LNAME", "c")
	if got := Username(); got != "c" {
		t.Errorf("Username() = %q, want LNAME before USERNAME", got)
	}
	t.Setenv("USER", "b")
	if got := Username(); got != "b" {
		t.Errorf("Username() = %q, want USER", got)
	}
	t.Setenv("LOGNAME", "a")
	if got := Username(); got != "a" {
		t.Errorf("Username() = %q, want LOGNAME first", got)
	}
	for _, k := range []string{"LOGNAME", "USER", "LNAME", "USERNAME"} {
		t.Setenv(k, "")
	}
	_ = Username() // falls back to the passwd entry; must not fail
}
