package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/internal/sdnotify"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

func newRelayCmd(e *env) *cobra.Command {
	return addMetricsFlag(&cobra.Command{
		Use:   "relay",
		Short: "Run the relay: SUB bound on relay_inbound, PUB bound on endpoints.relay_outbound",
		Long: `Run fedmsg-relay. Short-lived publishers (fedmsg logger, active mode)
connect to relay_inbound; the relay forwards every message, both frames
byte for byte, to the PUB bound on endpoints["relay_outbound"], where
subscribers connect. Malformed input (not two frames, a topic that is not
UTF-8, a body that is not a JSON object or is over zmq_max_msg_size) is
dropped and counted. Stops cleanly on SIGINT or SIGTERM; SIGHUP reloads
log_level and logs every other changed key as needing a restart.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, log, done, err := prepare(c, e)
			if err != nil || done {
				return err
			}
			outbound := cfg.Endpoints["relay_outbound"]
			if len(outbound) == 0 {
				return usage(errors.New(`endpoints["relay_outbound"] is not set: the relay needs an endpoint to publish on`))
			}
			ops, stopOps, err := startOps(cfg, log) // metrics_addr
			if err != nil {
				return err
			}
			defer stopOps() // after Run: the relay has released its sockets
			r, err := zmq.NewRelay(fedmsg.ZMQOptions(cfg, log), cfg.RelayInbound, outbound)
			if err != nil {
				return failure(err)
			}
			ops.AddZMQForwarder("relay", r.Stats())
			// On an error the relay's sockets go with the process, which ends now.
			stopMonitor, err := startMonitor(cfg, log, relayMonitor(r.Stats())) // moksha.monitoring.socket
			if err != nil {
				return err
			}
			defer stopMonitor()
			// systemd (NOTIFY_SOCKET): READY=1, RELOADING=1, STOPPING=1, watchdog
			sd := sdnotify.New(log)
			defer reloadOnHangup(c, e, log, sd, cfg)() // SIGHUP: log_level; the rest needs a restart
			log.Info("relay started", "inbound", r.InboundAddrs(), "outbound", r.OutboundAddr(), "high_water_mark", cfg.HighWaterMark)
			stopReports := reportDrops(c.Context(), log, "relay", r.Stats(), dropReportInterval)
			stopped := serving(c.Context(), ops, sd, fmt.Sprintf("relaying %v to %s", r.InboundAddrs(), r.OutboundAddr()))
			err = r.Run(c.Context())
			stopped()
			stopReports()
			st := r.Stats()
			log.Info("relay stopped", "forwarded", st.Received(), "dropped", st.DroppedTotal(), "dropped_by_reason", st.DroppedByReason())
			if err != nil {
				return failure(fmt.Errorf("relay: %w", err))
			}
			return nil
		},
	})
}

// dropReportInterval paces the relay's warnings about malformed input:
// often enough to notice a bad publisher, never once per message.
const dropReportInterval = 30 * time.Second

// reportDrops warns, at most once per interval, when the forwarder who
// (relay, gateway) dropped messages since the last report. The returned
// func stops it.
func reportDrops(ctx context.Context, log *slog.Logger, who string, st *zmq.Stats, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		var last uint64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n := st.DroppedTotal(); n > last {
					log.Warn(who+" dropped malformed messages", "since_last_report", n-last, "dropped_by_reason", st.DroppedByReason())
					last = n
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
