package cmd

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/internal/sdnotify"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

func newSigningRelayCmd(e *env) *cobra.Command {
	var workers int
	c := &cobra.Command{
		Use:   "signing-relay",
		Short: "Run a relay that signs every message with its own certificate",
		Long: `Run fedmsg-signing-relay: like the relay (relay_inbound in,
endpoints["relay_outbound"] out), but every message is signed with the
certificate certnames["signing_relay"] (or the gpg key, with crypto_backend
gpg) before it goes out. Earlier credentials are replaced, so the result
validates. Signing runs on every core; each publisher's order is kept.
SIGINT or SIGTERM sign and send what was received, then exit; SIGHUP
reloads log_level and logs every other changed key as needing a restart.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, log, done, err := prepare(c, e)
			if err != nil || done {
				return err
			}
			signer, err := fedmsg.NewSigner(cfg, "signing_relay", fedmsg.ShortHostname())
			if err != nil {
				return usage(err)
			}
			outbound := cfg.Endpoints["relay_outbound"]
			if len(outbound) == 0 {
				return usage(errors.New(`endpoints["relay_outbound"] is not set: the relay needs an endpoint to publish on`))
			}
			ops, stopOps, err := startOps(cfg, log) // metrics_addr
			if err != nil {
				return err
			}
			defer stopOps() // after the relay has released its sockets
			r, err := zmq.NewRelay(fedmsg.ZMQOptions(cfg, log), cfg.RelayInbound, outbound)
			if err != nil {
				return failure(err)
			}
			ops.AddZMQForwarder("signing-relay", r.Stats())
			// One worker per CPU and GOMAXPROCS left alone: extra Ps for
			// the receiver and sender (which wait in libzmq calls) made
			// the runtime wake threads onto busy cores, and the
			// reschedule interrupts cost 15% of the signing rate
			// (BenchmarkSigningRelay, RELAY_GOMAXPROCS=4 against 2).
			if workers <= 0 {
				workers = runtime.NumCPU()
			}
			// systemd (NOTIFY_SOCKET): READY=1, RELOADING=1, STOPPING=1, watchdog
			sd := sdnotify.New(log)
			defer reloadOnHangup(c, e, log, sd, cfg)() // SIGHUP: log_level; the rest needs a restart
			log.Info("signing relay started", "inbound", r.InboundAddrs(), "outbound", r.OutboundAddr(), "workers", workers)
			stopReports := reportDrops(c.Context(), log, "relay", r.Stats(), dropReportInterval)
			stopped := serving(c.Context(), ops, sd, fmt.Sprintf("signing %v to %s", r.InboundAddrs(), r.OutboundAddr()))
			err = r.RunTransform(c.Context(), func(_ string, body []byte) ([]byte, error) {
				return fedmsg.Resign(signer, body)
			}, workers)
			stopped()
			stopReports()
			st := r.Stats()
			log.Info("signing relay stopped", "received", st.Received(), "dropped", st.DroppedTotal(), "dropped_by_reason", st.DroppedByReason())
			if err != nil {
				return failure(fmt.Errorf("signing relay: %w", err))
			}
			return nil
		},
	}
	c.Flags().IntVar(&workers, "workers", 0, "signing goroutines (0: one per CPU)")
	return addMetricsFlag(c)
}
