package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

func newRelayCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "relay",
		Short: "Run the relay: SUB bound on relay_inbound, PUB bound on endpoints.relay_outbound",
		Long: `Run fedmsg-relay. Short-lived publishers (fedmsg logger, active mode)
connect to relay_inbound; the relay forwards every message, both frames
byte for byte, to the PUB bound on endpoints["relay_outbound"], where
subscribers connect. Malformed input (not two frames, a topic that is not
UTF-8, a body that is not a JSON object or is over zmq_max_msg_size) is
dropped and counted. Stops cleanly on SIGINT or SIGTERM.`,
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
			r, err := zmq.NewRelay(fedmsg.ZMQOptions(cfg, log), cfg.RelayInbound, outbound)
			if err != nil {
				return failure(err)
			}
			log.Info("relay started", "inbound", r.InboundAddrs(), "outbound", r.OutboundAddr(), "high_water_mark", cfg.HighWaterMark)
			err = r.Run(c.Context())
			st := r.Stats()
			log.Info("relay stopped", "forwarded", st.Received(), "dropped", st.DroppedTotal())
			if err != nil {
				return failure(fmt.Errorf("relay: %w", err))
			}
			return nil
		},
	}
}
