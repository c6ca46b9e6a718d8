package cmd

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/message"
)

type tailFlags struct {
	topics       []string
	exclude      string
	include      string
	reallyPretty bool
	json         bool
	count        int
	validate     bool
	noValidate   bool
}

func newTailCmd(e *env) *cobra.Command {
	var f tailFlags
	c := &cobra.Command{
		Use:   "tail",
		Short: "Print messages from every endpoint of the bus",
		Long: `Watch the bus like fedmsg-tail: connect to every URL of every endpoints
key (but relay_inbound), subscribe to the --topic patterns, and print
each message as "<topic> <body>" until interrupted.

A --topic without wildcards is a prefix, as in fedmsg-tail; one with *, ?
or [...] is a glob over the whole topic (org.fedoraproject.*.bodhi.update).

  --json           print each body (ZeroMQ frame 1) exactly as received, one per line
  --really-pretty  indented JSON without signature and certificate, coloured on a terminal
  --validate       drop messages that fail signature validation, with a warning naming
                   the reason (validate_signatures sets the default)

With replay_endpoints, a gap in a publisher's seq_id is filled from its
replay endpoint (the replay_endpoints entry named like the endpoints key
the message came from): the missing messages are printed first, in order,
each once; a failed query is logged and the message printed anyway.`,
		Example: `  fedmsg tail
  fedmsg tail --topic org.fedoraproject.prod.bodhi. --really-pretty
  fedmsg tail --json --count 10 > ten.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runTail(c, e, f)
		},
	}
	fs := c.Flags()
	addTopicFlags(fs, &f.topics, &f.exclude, &f.include, "print only")
	fs.BoolVar(&f.reallyPretty, "really-pretty", false, "indented, credentials stripped, coloured when stdout is a terminal")
	fs.BoolVar(&f.json, "json", false, "print each received body verbatim, one per line")
	fs.IntVar(&f.count, "count", 0, "exit after `N` messages (0: run until interrupted)")
	fs.BoolVar(&f.validate, "validate", false, "drop messages whose signature does not validate (overrides validate_signatures)")
	fs.BoolVar(&f.noValidate, "no-validate", false, "print messages without validating them (overrides validate_signatures)")
	return c
}

func runTail(c *cobra.Command, e *env, f tailFlags) error {
	if f.json && f.reallyPretty {
		return usage(fmt.Errorf("--json and --really-pretty exclude each other"))
	}
	if f.validate && f.noValidate {
		return usage(fmt.Errorf("--validate and --no-validate exclude each other"))
	}
	if f.count < 0 {
		return usage(fmt.Errorf("--count must be >= 0, got %d", f.count))
	}
	filter, err := newTopicFilter(f.exclude, f.include)
	if err != nil {
		return err
	}
	cfg, log, done, err := prepare(c, e)
	if err != nil || done {
		return err
	}
	cfg.Active, cfg.Name = false, "" // tail never publishes
	notDurable(cfg, log)
	switch {
	case f.validate:
		cfg.ValidateSignatures = true
	case f.noValidate:
		cfg.ValidateSignatures = false
	}
	fc, err := fedmsg.New(cfg, fedmsg.WithLogger(log))
	if err != nil {
		return failure(err)
	}
	defer fc.Close(c.Context())
	colour := f.reallyPretty && isTerminal(e.stdout)
	seen := 0
	for m, err := range fc.Tail(c.Context(), f.topics...) {
		if err != nil {
			return failure(err)
		}
		if !filter.keep(m.Topic) {
			continue
		}
		if err := printMessage(e.stdout, m, f, colour); err != nil {
			return failure(err)
		}
		seen++
		if f.count > 0 && seen >= f.count {
			return nil
		}
	}
	return nil // interrupted
}

// addTopicFlags adds the subscription and topic filters tail and trigger
// share: --topic, --exclude (default _heartbeat) and --include; only says
// what happens to an --include match ("print only").
func addTopicFlags(fs *pflag.FlagSet, topics *[]string, exclude, include *string, only string) {
	fs.StringArrayVar(topics, "topic", nil, "subscribe to topics matching `PATTERN`: a prefix, or a glob with * ? [...] (repeatable; default everything)")
	fs.StringVar(exclude, "exclude", "_heartbeat", "skip topics matching this `REGEXP`")
	fs.StringVar(include, "include", "", only+" topics matching this `REGEXP` (default all)")
}

// topicFilter is --exclude and --include: a topic is skipped when exclude
// matches somewhere in it or include matches nowhere (a regexp search, as
// fedmsg-tail does).
type topicFilter struct{ exclude, include *regexp.Regexp }

func newTopicFilter(exclude, include string) (topicFilter, error) {
	ex, err := optionalRegexp("--exclude", exclude)
	if err != nil {
		return topicFilter{}, err
	}
	in, err := optionalRegexp("--include", include)
	if err != nil {
		return topicFilter{}, err
	}
	return topicFilter{exclude: ex, include: in}, nil
}

func (f topicFilter) keep(topic string) bool {
	return (f.exclude == nil || !f.exclude.MatchString(topic)) && (f.include == nil || f.include.MatchString(topic))
}

func optionalRegexp(flag, expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, usage(fmt.Errorf("%s: %w", flag, err))
	}
	return re, nil
}

func printMessage(w io.Writer, m *fedmsg.Received, f tailFlags, colour bool) error {
	switch {
	case f.json:
		buf := make([]byte, 0, len(m.Body)+1)
		_, err := w.Write(append(append(buf, m.Body...), '\n'))
		return err
	case f.reallyPretty:
		out, err := message.Pretty(message.WithoutCredentials(m.Envelope))
		if err != nil {
			return err
		}
		if colour {
			out = colourJSON(out)
		}
		_, err = fmt.Fprintf(w, "%s\n", out)
		return err
	}
	_, err := fmt.Fprintf(w, "%s %s\n", m.Topic, m.Body)
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ANSI colours for --really-pretty on a terminal: keys blue, strings green,
// numbers and literals yellow.
const (
	ansiKey    = "\x1b[34m"
	ansiString = "\x1b[32m"
	ansiOther  = "\x1b[33m"
	ansiReset  = "\x1b[0m"
)

// colourJSON colours pretty JSON (ASCII, as message.Pretty makes it).
func colourJSON(in []byte) []byte {
	var out bytes.Buffer
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(in) && in[j] != '"' {
				if in[j] == '\\' {
					j++
				}
				j++
			}
			j++
			if j > len(in) {
				j = len(in)
			}
			col := ansiString
			if k := bytes.IndexFunc(in[j:], func(r rune) bool { return r != ' ' }); k >= 0 && in[j+k] == ':' {
				col = ansiKey
			}
			out.WriteString(col)
			out.Write(in[i:j])
			out.WriteString(ansiReset)
			i = j
		case c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f' || c == 'n' || c == 'N' || c == 'I':
			j := i
			for j < len(in) && bytes.IndexByte([]byte(",]}\n "), in[j]) < 0 {
				j++
			}
			out.WriteString(ansiOther)
			out.Write(in[i:j])
			out.WriteString(ansiReset)
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.Bytes()
}
