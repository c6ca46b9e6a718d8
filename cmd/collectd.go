package cmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
)

func newCollectdCmd(e *env) *cobra.Command {
	var interval int
	c := &cobra.Command{
		Use:   "collectd [--collectd-interval N]",
		Short: "Count messages per service and print them for collectd's exec plugin",
		Long: `Run fedmsg-collectd: subscribe to the bus as fedmsg hub does (every
endpoint, or the broker when zmq_enabled is false) to the topics of this
topic_prefix and environment, count the messages per service, and every
--collectd-interval seconds (collectd_interval, 2) print one line per
service, in name order:

  PUTVAL <short host>/fedmsg/fedmsg_wallboard-<service> interval=<N> <unix time>:<count>

then start counting again from zero. Every service seen since the start
gets a line each interval, 0 when it was quiet, so graphs do not gap.

Difference from Python fedmsg: without fedmsg.meta, the service is the
topic's modname (the component after <topic_prefix>.<environment>, e.g.
bodhi in org.fedoraproject.prod.bodhi.update.comment), lowercased, not a
fedmsg.meta processor name; characters collectd cannot take in a name are
replaced by "_". Signatures are not checked: counting trusts nothing.
Stops on SIGINT or SIGTERM.`,
		Example: `  # collectd.conf:
  #   LoadPlugin exec
  #   <Plugin exec>
  #     Exec "fedmsg" "/usr/bin/fedmsg-collectd" "--collectd-interval" "10"
  #   </Plugin>
  fedmsg collectd --collectd-interval 10`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, log, done, err := prepare(c, e)
			if err != nil || done {
				return err
			}
			// collectd_interval from the files, --collectd-interval over it
			// (config.Load applies the flag when it is given).
			n := cfg.CollectdInterval
			if n < 1 {
				return usage(fmt.Errorf("--collectd-interval (collectd_interval) must be >= 1, got %d", n))
			}
			cfg.Active, cfg.Name = false, "" // collectd never publishes
			notDurable(cfg, log)
			cfg.ValidateSignatures = false
			cfg.ReplayEndpoints = nil // counting needs no gap recovery
			fc, err := fedmsg.New(cfg, fedmsg.WithLogger(log))
			if err != nil {
				return failure(err)
			}
			defer fc.Close(context.WithoutCancel(c.Context()))
			prefix := cfg.TopicPrefix + "." + cfg.Environment + "."
			return failure(runCollectd(c.Context(), e.stdout, log, fc, prefix, n, fedmsg.ShortHostname()))
		},
	}
	c.Flags().IntVar(&interval, "collectd-interval", 2, "print the counts every `N` seconds (collectd_interval)")
	return c
}

// collectdCounts are the messages counted per service since the last dump.
type collectdCounts struct {
	mu     sync.Mutex
	counts map[string]uint64
}

func (c *collectdCounts) add(service string) {
	c.mu.Lock()
	c.counts[service]++
	c.mu.Unlock()
}

// dump writes one PUTVAL line per service seen so far, in name order,
// and sets the counts back to zero (keeping the services).
func (c *collectdCounts) dump(w io.Writer, host string, interval int, now time.Time) error {
	c.mu.Lock()
	names := make([]string, 0, len(c.counts))
	for k := range c.counts {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "PUTVAL %s/fedmsg/fedmsg_wallboard-%s interval=%d %d:%d\n", host, k, interval, now.Unix(), c.counts[k])
		c.counts[k] = 0
	}
	c.mu.Unlock()
	_, err := io.WriteString(w, b.String())
	return err
}

// collectdService is the name a topic is counted under: its modname,
// the component after prefix ("<topic_prefix>.<environment>."),
// lowercased and made safe for a collectd identifier; "" when the topic
// has none.
func collectdService(topic, prefix string) string {
	rest, ok := strings.CutPrefix(topic, prefix)
	if !ok {
		return ""
	}
	mod, _, _ := strings.Cut(rest, ".")
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '_' // "/" splits collectd identifiers; keep to ASCII
	}, mod)
}

// runCollectd counts what fc's Tail yields under prefix and dumps the
// counts every interval seconds until ctx ends (nil) or the subscription
// fails.
func runCollectd(ctx context.Context, w io.Writer, log *slog.Logger, fc *fedmsg.Context, prefix string, interval int, host string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	counts := &collectdCounts{counts: map[string]uint64{}}
	tailErr := make(chan error, 1)
	go func() {
		for m, err := range fc.Tail(ctx, prefix) {
			if err != nil {
				tailErr <- err
				return
			}
			if s := collectdService(m.Topic, prefix); s != "" {
				counts.add(s)
			} else {
				log.Debug("not counted: the topic has no modname", "topic", m.Topic)
			}
		}
		tailErr <- nil
	}()
	log.Info("collectd started", "prefix", prefix, "interval", interval, "host", host)
	t := time.NewTicker(time.Duration(interval) * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-tailErr:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				return fmt.Errorf("collectd: the subscription ended")
			}
			return fmt.Errorf("collectd: %w", err)
		case now := <-t.C:
			if err := counts.dump(w, host, interval, now); err != nil {
				return fmt.Errorf("collectd: writing to stdout: %w", err)
			}
		}
	}
}
