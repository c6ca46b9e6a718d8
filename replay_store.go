package fedmsg

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/replay"
)

// ErrPersistentStore: persistent_store has a value we cannot use.
var ErrPersistentStore = errors.New("fedmsg: persistent_store")

// StoreFromConfig reads persistent_store. fedmsg puts a Python store
// object there, which no configuration file can hold; ours is in memory and
// configured by value: unset, null or false for none, true for one of
// replay.DefaultLimit envelopes, or {limit: N}. It returns nil for none.
func StoreFromConfig(v any) (*replay.Store, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case bool:
		if !t {
			return nil, nil
		}
		return replay.NewStore(replay.DefaultLimit)
	case map[string]any:
		limit := replay.DefaultLimit
		for k, lv := range t {
			if k != "limit" {
				return nil, fmt.Errorf("%w: unknown key %q (the only key is limit)", ErrPersistentStore, k)
			}
			n, ok := wholeNumber(lv)
			if !ok || n < 1 {
				return nil, fmt.Errorf("%w: limit must be a whole number >= 1, got %v", ErrPersistentStore, lv)
			}
			limit = n
		}
		return replay.NewStore(limit)
	}
	return nil, fmt.Errorf("%w: want true, false or {limit: N}, got %v (%T)", ErrPersistentStore, v, v)
}

func wholeNumber(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), n <= math.MaxInt32
	case uint64:
		return int(n), n <= math.MaxInt32
	case float64:
		return int(n), n == math.Trunc(n) && math.Abs(n) <= math.MaxInt32
	}
	return 0, false
}

// openReplay gives a publishing context its store and, when
// replay_endpoints names its publisher, the replay server on that
// endpoint (fedmsg's ReplayContext, here in the publishing process since
// the store is in its memory).
func (c *Context) openReplay(cfg *config.Config) error {
	store, err := StoreFromConfig(cfg.PersistentStore)
	if err != nil || store == nil || c.pub == nil {
		return err
	}
	c.store = store
	ep, ok := cfg.ReplayEndpoints[c.pubName]
	if !ok {
		c.log.Warn("persistent_store is set but replay_endpoints has no entry for this publisher: messages carry seq_id, nobody can ask for them", "name", c.pubName)
		return nil
	}
	srv, err := replay.Listen(store, replay.ServerOptions{Endpoint: ep, Socket: ZMQOptions(cfg, c.log)})
	if err != nil {
		return fmt.Errorf("fedmsg: replay_endpoints[%q]: %w", c.pubName, err)
	}
	c.replay = srv
	c.log.Debug("replay server ready", "name", c.pubName, "endpoint", srv.Addr())
	return nil
}

// ReplayAddr is the address the replay server bound, or "" without one.
func (c *Context) ReplayAddr() string {
	if c.replay == nil {
		return ""
	}
	return c.replay.Addr()
}

func (c *Context) closeReplay(ctx context.Context) error {
	if c.replay == nil {
		return nil
	}
	return c.replay.Close(ctx)
}
