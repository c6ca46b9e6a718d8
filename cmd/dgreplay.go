package cmd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg/datagrepper"
	"github.com/gofedmsg/fedmsg/message"
)

// dgReplayExitStatus is fedmsg-dg-replay's exit status when datagrepper
// does not answer 200 (spec §13).
const dgReplayExitStatus = 2

type dgReplayFlags struct {
	msgID   string
	url     string
	timeout time.Duration
}

func newDgReplayCmd(e *env) *cobra.Command {
	var f dgReplayFlags
	c := &cobra.Command{
		Use:   "dg-replay --msg-id ID [--datagrepper-url URL]",
		Short: "Fetch one message from datagrepper and publish its body again",
		Long: `Fetch the message with this msg_id from datagrepper (GET <url>/id?id=ID)
and publish its msg again through the relay at relay_inbound (active mode),
like fedmsg-dg-replay: the modname is the 4th dot-separated part of its
topic and the topic the parts after it, so the copy gets this host's
topic_prefix and environment, a new msg_id and timestamp, and this host's
signature when sign_messages is true (certificate <cert_prefix>.<host>,
cert_prefix "shell" unless configured).

The URL is --datagrepper-url, else the configuration's datagrepper_url
(a trailing /raw is dropped), else fedmsg's default. Prints Retrieving,
Broadcasting and OK. A reply other than 200 prints
"datagrepper request of '<ID>' failed. Status: <code>" and exits 2.`,
		Example: `  fedmsg dg-replay --msg-id 2026-81559e8c-2f27-4dc2-b107-020387b56416
  fedmsg-dg-replay --msg-id ID --datagrepper-url http://127.0.0.1:5000`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runDgReplay(c, e, f)
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.msgID, "msg-id", "", "the msg_id (`ID`) of the message to publish again (required)")
	fs.StringVar(&f.url, "datagrepper-url", datagrepper.DefaultURL, "datagrepper's root `URL`; when not given, datagrepper_url if set")
	addPublishTimeoutFlag(c, &f.timeout)
	return c
}

func runDgReplay(c *cobra.Command, e *env, f dgReplayFlags) error {
	cfg, log, done, err := prepare(c, e)
	if err != nil || done {
		return err
	}
	if f.msgID == "" {
		return failure(errors.New("--msg-id is required")) // exit 1, as fedmsg-dg-replay
	}
	url := f.url
	if !c.Flags().Changed("datagrepper-url") && cfg.DatagrepperURL != "" {
		url = cfg.DatagrepperURL
	}
	dg, err := datagrepper.New(url, datagrepper.Options{})
	if err != nil {
		return usage(fmt.Errorf("dg-replay: --datagrepper-url: %w", err))
	}
	ctx := c.Context()
	fmt.Fprintf(e.stdout, "Retrieving %s\n", pyRepr(f.msgID))
	env, err := dg.ByID(ctx, f.msgID)
	var se *datagrepper.StatusError
	if errors.As(err, &se) {
		fmt.Fprintf(e.stdout, "datagrepper request of %s failed. Status: %d\n", pyRepr(f.msgID), se.Code)
		return &exitError{code: dgReplayExitStatus, err: fmt.Errorf("dg-replay: %w", err), noHint: true}
	}
	if err != nil {
		return failure(fmt.Errorf("dg-replay: %w", err))
	}
	topic, _ := env[message.FieldTopic].(string)
	tokens := strings.Split(topic, ".")
	if len(tokens) < 4 {
		// fedmsg assumes <prefix part 1>.<prefix part 2>.<env>.<modname>...
		return failure(fmt.Errorf("dg-replay: message %s has topic %q: want at least 4 dot-separated parts", f.msgID, topic))
	}
	modname, sub := tokens[3], strings.Join(tokens[4:], ".")
	id, _ := env["msg_id"].(string)
	fmt.Fprintf(e.stdout, "Broadcasting %s\n", pyRepr(id))

	if cfg.CertPrefix == "" {
		cfg.CertPrefix = "shell"
	}
	one := func(yield func(loggerBody) bool) { yield(loggerBody{msg: env["msg"]}) }
	if err := publishActive(ctx, cfg, log, sub, modname, one, f.timeout); err != nil {
		return fmt.Errorf("dg-replay: %w", err)
	}
	if ctx.Err() != nil {
		return nil // interrupted: a clean exit
	}
	fmt.Fprintln(e.stdout, "OK.")
	return nil
}

// pyRepr quotes s as Python's repr() of a str does for printable text
// (fedmsg-dg-replay prints ids with %r): single quotes unless s holds a
// single quote and no double quote.
func pyRepr(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	var b strings.Builder
	b.WriteString(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case string(r) == q:
			b.WriteString(`\` + q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString(q)
	return b.String()
}
