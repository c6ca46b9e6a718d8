package cmd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/signing"
)

func newVerifyCmd(e *env) *cobra.Command {
	var signer string
	c := &cobra.Command{
		Use:   "verify [FILE...]",
		Short: "Check the signatures of fedmsg envelopes",
		Long: `Check signed envelopes as fedmsg.crypto.validate does: the certificate's
chain to ca_cert_location, the CRL at crl_location, the signature over the
re-canonicalised envelope, then routing_policy and routing_nitpicky.

Each FILE holds one envelope; with no FILE, stdin holds one envelope per
line. Prints "valid" or "invalid: <reason>" per envelope, in order.
Exit status: 0 all valid, 1 any invalid, 2 usage or configuration error.`,
		Example: `  fedmsg verify message.json
  fedmsg tail --json --count 100 | fedmsg verify
  fedmsg verify --signer bodhi-app01.example.com message.json`,
		RunE: func(c *cobra.Command, files []string) error {
			cfg, log, done, err := prepare(c, e)
			if err != nil || done {
				return err
			}
			v, err := fedmsg.NewValidator(cfg, log)
			if err != nil {
				return usage(err)
			}
			ctx := c.Context()
			anyInvalid := false
			check := func(body []byte) error {
				env, err := message.DecodeObject(body)
				if err == nil {
					if signer != "" {
						err = v.ValidateSignedBy(ctx, env, signer)
					} else {
						err = v.Validate(ctx, env)
					}
				} else {
					err = fmt.Errorf("%w: %v", signing.ErrMalformed, err)
				}
				if err != nil {
					anyInvalid = true
					_, werr := fmt.Fprintf(e.stdout, "invalid: %v\n", err)
					return werr
				}
				_, werr := fmt.Fprintln(e.stdout, "valid")
				return werr
			}
			if len(files) == 0 {
				sc := bufio.NewScanner(e.stdin)
				sc.Buffer(make([]byte, 64*1024), 64<<20)
				for sc.Scan() {
					line := bytes.TrimSpace(sc.Bytes())
					if len(line) == 0 {
						continue
					}
					if err := check(line); err != nil {
						return failure(err)
					}
				}
				if err := sc.Err(); err != nil {
					return failure(fmt.Errorf("read stdin: %w", err))
				}
			}
			for _, f := range files {
				body, err := os.ReadFile(f)
				if err != nil {
					return usage(err)
				}
				if err := check(body); err != nil {
					return failure(err)
				}
			}
			if anyInvalid {
				return &exitError{code: exitFailure, err: errSomeInvalid}
			}
			return nil
		},
	}
	c.Flags().StringVar(&signer, "signer", "", "require the certificate's common name to be `NAME` (fedmsg's validate_signed_by)")
	return c
}

// errSomeInvalid ends verify with exit 1 without repeating the reasons.
var errSomeInvalid = errors.New("some envelopes are invalid")
