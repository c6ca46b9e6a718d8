// Package cmd is the fedmsg command line: one small file per subcommand,
// the aliases by argv[0], signals, logging and exit codes.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
)

// Exit codes: 0 done, 1 the command failed, 2 it was called wrongly (a bad
// flag, argument or configuration).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// aliases maps fedmsg's old command names to subcommands.
var aliases = map[string]string{
	"fedmsg-announce":      "announce",
	"fedmsg-check":         "check",
	"fedmsg-collectd":      "collectd",
	"fedmsg-config":        "config",
	"fedmsg-dg-replay":     "dg-replay",
	"fedmsg-gateway":       "gateway",
	"fedmsg-hub":           "hub",
	"fedmsg-logger":        "logger",
	"fedmsg-relay":         "relay",
	"fedmsg-signing-relay": "signing-relay",
	"fedmsg-tail":          "tail",
	"fedmsg-trigger":       "trigger",
}

// exitError carries an exit code out of a subcommand.
type exitError struct {
	code int
	err  error
	// noHint: an exit status fedmsg gives that is not misuse (dg-replay's
	// 2 for a failed request), so no pointer to --help.
	noHint bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failure marks err as the command failing (exit 1) rather than misuse.
func failure(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitFailure, err: err}
}

// usage marks err as misuse (exit 2).
func usage(err error) error { return &exitError{code: exitUsage, err: err} }

// env is what a command reads and writes besides its flags, so tests can
// run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
	// scrub, when set, is stderr: the secrets a command registers with it
	// never reach the output (reload.go). nil in in-process tests.
	scrub *scrubber
}

// Main runs the command line args (args[0] is the program name) and
// returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer watchShutdown(ctx, stop, stderr)() // the drain is bounded (reload.go)
	scrub := newScrubber(stderr)
	e := &env{stdin: stdin, stdout: stdout, stderr: scrub, environ: os.Environ(), scrub: scrub}
	return run(ctx, e, args)
}

func run(ctx context.Context, e *env, args []string) int {
	rest := args[1:]
	if sub, ok := aliases[filepath.Base(args[0])]; ok {
		rest = append([]string{sub}, rest...)
	}
	root := newRoot(e)
	root.SetArgs(rest)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintf(e.stderr, "fedmsg: %v\n", ee.err)
		if ee.code == exitUsage && !ee.noHint {
			fmt.Fprintln(e.stderr, "Run 'fedmsg --help' for usage.")
		}
		return ee.code
	}
	// Anything cobra itself returns (unknown command or flag, bad
	// arguments) is misuse.
	fmt.Fprintf(e.stderr, "fedmsg: %v\nRun 'fedmsg --help' for usage.\n", err)
	return exitUsage
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "fedmsg",
		Short: "fedmsg message bus: relay, publish and tail, byte-compatible with Python fedmsg",
		Long: `fedmsg is a Go implementation of the fedmsg federated message bus.

It speaks fedmsg's ZeroMQ wire format byte for byte and reads fedmsg's
configuration keys. Linked (or copied) under one of fedmsg's old command
names, ` + aliasList() + `, it runs that command.

Configuration is read, later wins, from built-in defaults, /etc/fedmsg.d/,
~/.fedmsg.d/, ./fedmsg.d/ (*.yaml, *.yml, *.toml, *.json in name order),
the file named by FEDMSG_CONFIG, each --config FILE, FEDMSG_<KEY>
environment variables, then flags.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// A bare "fedmsg" is misuse: say so and show what there is.
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var names []string
			for _, sub := range c.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return usage(fmt.Errorf("a command is required: one of %s", strings.Join(names, ", ")))
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	addCommonFlags(root.PersistentFlags())
	root.AddCommand(
		// daemons
		newRelayCmd(e), newSigningRelayCmd(e), newBridgeCmd(e), newHubCmd(e), newGatewayCmd(e),
		// publishing and listening
		newLoggerCmd(e), newAnnounceCmd(e), newTailCmd(e), newTriggerCmd(e), newReplayCmd(e), newDgReplayCmd(e),
		// operating
		newCheckCmd(e), newCollectdCmd(e), newConfigCmd(e), newVerifyCmd(e), newSignCmd(e), newBenchCmd(e))
	return root
}

// aliasList is the old command names, for the help text.
func aliasList() string {
	names := slices.Sorted(maps.Keys(aliases))
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// flagKeys maps flags whose names differ from their config key.
var flagKeys = map[string]string{
	"linger": "zmq_linger",
}

// addCommonFlags adds the options every fedmsg command shares (spec §13),
// each the override of a config key.
func addCommonFlags(fs *pflag.FlagSet) {
	fs.StringArray("config", nil, "read this configuration `FILE` after the default places (repeatable)")
	fs.StringArray("config-filename", nil, "the same as --config (fedmsg's name)")
	fs.String("topic-prefix", "", "override topic_prefix")
	fs.String("environment", "", "override environment")
	fs.Int("io-threads", 0, "override io_threads, ZeroMQ's I/O threads")
	fs.Float64("post-init-sleep", 0, "override post_init_sleep, seconds to wait for a relay to subscribe")
	fs.Int("high-water-mark", 0, "override high_water_mark (0: no limit)")
	fs.Int("linger", 0, "override zmq_linger, milliseconds to flush on exit")
	fs.Float64("timeout", 0, "override timeout (seconds)")
	fs.Bool("print-config", false, "print the effective configuration as JSON and exit")
	fs.String("log-format", "", "log format: text or json (log_format)")
	fs.String("log-level", "", "log level: debug, info, warn or error (log_level)")
}

// loadConfig reads the configuration for command c and, with
// --print-config, prints it and reports done.
func loadConfig(c *cobra.Command, e *env) (*config.Config, error) {
	files, _ := c.Flags().GetStringArray("config")
	legacy, _ := c.Flags().GetStringArray("config-filename")
	cfg, err := config.Load(config.Sources{
		Files:    append(files, legacy...),
		Environ:  e.environ,
		Flags:    c.Flags(),
		FlagKeys: flagKeys,
	})
	if err != nil {
		return nil, usage(err)
	}
	return cfg, nil
}

// newLogger builds the command's logger from log_format and log_level.
// Its level can change later (a SIGHUP reload: setLevel).
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel) // an unknown level is info
	lv := new(slog.LevelVar)
	lv.Set(level)
	opts := &slog.HandlerOptions{Level: lv}
	var log *slog.Logger
	if cfg.LogFormat == "json" {
		log = slog.New(slog.NewJSONHandler(w, opts))
	} else {
		log = slog.New(slog.NewTextHandler(w, opts))
	}
	levels.Store(log, lv)
	return log
}

// prepare loads the configuration and the logger for a command. With
// --print-config (print_config) it prints the configuration instead and
// reports done.
func prepare(c *cobra.Command, e *env) (cfg *config.Config, log *slog.Logger, done bool, err error) {
	cfg, err = loadConfig(c, e)
	if err != nil {
		return nil, nil, false, err
	}
	if cfg.PrintConfig {
		return cfg, nil, true, failure(printJSON(e.stdout, cfg.Redacted()))
	}
	e.scrub.addConfig(cfg)
	log = newLogger(cfg, e.stderr)
	fedmsg.WarnKeyFiles(cfg, log) // a key others can read is worth a warning whatever the command
	return cfg, log, false, nil
}
