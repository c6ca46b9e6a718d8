package retry

import (
	"context"
	"testing"
	"time"
)

func TestExponentialDoublesUpToTheCeiling(t *testing.T) {
	base, ceiling := 100*time.Millisecond, 2*time.Second
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for n, w := range want {
		if got := Exponential(n, base, ceiling); got != w*time.Millisecond {
			t.Errorf("Exponential(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
	if got := Exponential(1000, base, ceiling); got != ceiling {
		t.Errorf("Exponential(1000) = %v, want the ceiling (no overflow)", got)
	}
}

func TestJitterStaysInTheUpperHalf(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, 3, time.Millisecond, time.Minute} {
		for range 1000 {
			if got := Jitter(d); got < d/2 || got > d {
				t.Fatalf("Jitter(%v) = %v, want within [%v, %v]", d, got, d/2, d)
			}
		}
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep(1ms) reported an interruption")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep on a cancelled context reported the whole delay")
	}
	if time.Since(start) > time.Second {
		t.Error("Sleep did not return when its context was cancelled")
	}
}
