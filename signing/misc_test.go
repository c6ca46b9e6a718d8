package signing

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
)

func timeNow() time.Time { return time.Now() }

// countingLogger counts "CA/CRL loaded" records.
func countingLogger(n *atomic.Int64) *slog.Logger {
	return slog.New(countHandler{n})
}

type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "CA/CRL loaded") {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }
