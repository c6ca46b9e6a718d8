package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

func newConfigCmd(e *env) *cobra.Command {
	var query string
	c := &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration as JSON, secrets redacted",
		Long: `Print the effective configuration (defaults, files, environment and flags
merged) as JSON, with passwords and secrets redacted.

With --query KEY print one value: a list one item per line, a string as it
is, anything else as JSON. A key that does not exist exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := loadConfig(c, e)
			if err != nil {
				return err
			}
			values := cfg.Redacted()
			if query == "" {
				return failure(printJSON(e.stdout, values))
			}
			// Looked up in the redacted copy: a query into a value
			// (amqp_url.0) must not print the password the whole
			// value hides.
			v, ok := cfg.LookupRedacted(query)
			if !ok {
				//lint:ignore ST1005 fedmsg-config's exact text
				return failure(fmt.Errorf("Key `%s` does not exist in config", query))
			}
			return failure(printValue(e.stdout, v))
		},
	}
	c.Flags().StringVar(&query, "query", "", "print only the value of `KEY` (e.g. relay_inbound, endpoints.relay_outbound)")
	c.AddCommand(newConfigConvertCmd(e))
	return c
}

// printValue prints like fedmsg-config --query: lists one item per line,
// strings as they are, anything else as JSON.
func printValue(w io.Writer, v any) error {
	switch x := v.(type) {
	case string:
		_, err := fmt.Fprintln(w, x)
		return err
	case []string:
		_, err := fmt.Fprintln(w, strings.Join(x, "\n"))
		return err
	case []any:
		for _, item := range x {
			if s, ok := item.(string); ok {
				fmt.Fprintln(w, s)
				continue
			}
			// One line, and <redacted> not escaped to \u003c...: the
			// whole value prints through printJSON the same way.
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(item); err != nil {
				return err
			}
		}
		return nil
	}
	return printJSON(w, v)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
