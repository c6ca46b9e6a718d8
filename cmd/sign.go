package cmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/signing"
)

func newSignCmd(e *env) *cobra.Command {
	var certPrefix string
	c := &cobra.Command{
		Use:   "sign",
		Short: "Sign the envelope on stdin and write the signed envelope to stdout",
		Long: `Read one fedmsg envelope (JSON) on stdin, sign it as fedmsg would publish
it, and write the signed envelope, canonical JSON, on stdout.

With crypto_backend x509 the key pair is certnames["<cert-prefix>.<short
hostname>"] in ssldir (<certname>.crt and .key); with gpg, gpg_signing_key
from gpg_secret_keyring. Existing signature and certificate fields are
replaced.`,
		Example: `  fedmsg sign --cert-prefix bodhi < envelope.json > signed.json`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, _, done, err := prepare(c, e)
			if err != nil || done {
				return err
			}
			host := fedmsg.ShortHostname()
			signer, err := fedmsg.NewSigner(cfg, signing.CertIndex(certPrefix, "", host), host)
			if err != nil {
				return usage(err)
			}
			in, err := io.ReadAll(e.stdin)
			if err != nil {
				return failure(fmt.Errorf("read stdin: %w", err))
			}
			if _, err := message.DecodeObject(in); err != nil {
				return usage(fmt.Errorf("stdin is not one JSON object: %w", err))
			}
			out, err := fedmsg.Resign(signer, in)
			if err != nil {
				return failure(err)
			}
			_, err = fmt.Fprintf(e.stdout, "%s\n", out)
			return failure(err)
		},
	}
	c.Flags().StringVar(&certPrefix, "cert-prefix", "shell", "sign with certnames[\"`PREFIX`.<short hostname>\"]")
	return c
}
