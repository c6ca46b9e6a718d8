// Package retry paces reconnects and redeliveries the same way wherever
// gofedmsg waits after a failure: a delay that doubles while failures
// repeat, spread over its upper half so that the many clients of a broker
// that just restarted do not all come back at the same instant.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Exponential returns base doubled n times (n failures in a row), capped
// at ceiling.
func Exponential(n int, base, ceiling time.Duration) time.Duration {
	d := base
	for i := 0; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// Jitter returns a random delay in [d/2, d].
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d, or less if ctx ends first; it reports whether the whole
// delay passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
