package cmd

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
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
validates. Signing runs on every core; each publisher's order is kept.`,
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
			r, err := zmq.NewRelay(fedmsg.ZMQOptions(cfg, log), cfg.RelayInbound, outbound)
			if err != nil {
				return failure(err)
			}
			if workers <= 0 {
				workers = runtime.NumCPU()
			}
			reserveProcsForLibzmq(workers)
			log.Info("signing relay started", "inbound", r.InboundAddrs(), "outbound", r.OutboundAddr(), "workers", workers)
			stopReports := reportDrops(c.Context(), log, r.Stats(), dropReportInterval)
			err = r.RunTransform(c.Context(), func(_ string, body []byte) ([]byte, error) {
				return fedmsg.Resign(signer, body)
			}, workers)
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
	return c
}

// reserveProcsForLibzmq raises GOMAXPROCS to workers + 2 (unless the
// GOMAXPROCS environment variable sets it). The relay's receiver and sender
// spend their lives inside blocking libzmq calls, and a goroutine in a C
// call keeps its P until the scheduler's monitor takes it back. Measured
// with the relay and a harness in one process, the signing workers got
// about 0.7 of the cores with GOMAXPROCS = cores and 0.85 with two spare
// Ps; with the relay in its own process (BenchmarkSigningRelay now) the
// difference is within the machine's noise.
func reserveProcsForLibzmq(workers int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if want := workers + 2; runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
}
