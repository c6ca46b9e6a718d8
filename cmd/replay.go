package cmd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/replay"
)

// replayFlags are the query forms of fedmsg's replay protocol (spec §7.2).
type replayFlags struct {
	endpoint     string
	seqID        int64
	seqIDs       []int64
	seqIDRange   string
	msgID        string
	msgIDs       []string
	since, until string
	timeRange    string
}

func newReplayCmd(e *env) *cobra.Command {
	var f replayFlags
	c := &cobra.Command{
		Use:   "replay [NAME] [flags]",
		Short: "Ask a publisher's replay endpoint for messages it sent",
		Long: `Query the replay endpoint of publisher NAME (replay_endpoints[NAME]), or
--endpoint URL, with fedmsg's replay protocol, and print each envelope the
server returns on its own line, as canonical JSON (seq_id included).

Every query flag given adds a predicate; an envelope is returned when any
of them matches. Times are seconds since the epoch or RFC 3339.
The reply must arrive within --timeout seconds (timeout, default 2).

Exit status: 0 envelopes printed, 1 the server answered with an error
(printed, e.g. "There was no match for the given query") or did not answer,
2 usage or configuration error.`,
		Example: `  fedmsg replay bodhi.app01 --seq-id-range 40:45
  fedmsg replay --endpoint tcp://hub.example.com:9941 --msg-id 2024-5d1c...
  fedmsg replay bodhi.app01 --since 2024-05-01T10:00:00Z --until 2024-05-01T11:00:00Z`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, log, done, err := prepare(c, e)
			if err != nil || done {
				return err
			}
			endpoint, err := replayEndpoint(args, f.endpoint, cfg.ReplayEndpoints)
			if err != nil {
				return usage(err)
			}
			q, err := f.request(c, time.Now())
			if err != nil {
				return usage(err)
			}
			timeout := time.Duration(cfg.Timeout * float64(time.Second))
			if timeout <= 0 {
				timeout = replay.DefaultTimeout
			}
			ctx, cancel := context.WithTimeout(c.Context(), timeout)
			defer cancel()
			envs, err := replay.QueryWith(ctx, endpoint, q, replay.ClientOptions{Socket: fedmsg.ZMQOptions(cfg, log)})
			if err != nil {
				var se *replay.ServerError
				if errors.As(err, &se) {
					return failure(fmt.Errorf("%s answered: %s", endpoint, se.Text))
				}
				return failure(err)
			}
			for _, env := range envs {
				line, err := message.Canonical(env)
				if err != nil {
					return failure(err)
				}
				if _, err := fmt.Fprintf(e.stdout, "%s\n", line); err != nil {
					return failure(err)
				}
			}
			return nil
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.endpoint, "endpoint", "", "query this replay `URL` instead of replay_endpoints[NAME]")
	fs.Int64Var(&f.seqID, "seq-id", 0, "the envelope with seq_id `N` (seq_id)")
	fs.Int64SliceVar(&f.seqIDs, "seq-ids", nil, "the envelopes with any of the seq_ids `N,N,...` (seq_ids)")
	fs.StringVar(&f.seqIDRange, "seq-id-range", "", "seq_ids `FROM:TO`, both included (seq_id_range)")
	fs.StringVar(&f.msgID, "msg-id", "", "the envelope with msg_id `ID` (msg_id)")
	fs.StringSliceVar(&f.msgIDs, "msg-ids", nil, "the envelopes with any of the msg_ids `ID,ID,...` (msg_ids)")
	fs.StringVar(&f.since, "since", "", "envelopes with a timestamp at or after `TIME` (time; --until defaults to now)")
	fs.StringVar(&f.until, "until", "", "envelopes with a timestamp at or before `TIME` (time; --since defaults to the epoch)")
	fs.StringVar(&f.timeRange, "time", "", "timestamps `FROM:TO` in seconds since the epoch, both included (time)")
	return c
}

// replayEndpoint picks the URL to query: --endpoint, or the name's entry.
func replayEndpoint(args []string, endpoint string, known map[string]string) (string, error) {
	switch {
	case endpoint != "" && len(args) > 0:
		return "", errors.New("give a NAME or --endpoint, not both")
	case endpoint != "":
		return endpoint, nil
	case len(args) == 0:
		return "", errors.New("give the NAME of a replay_endpoints entry, or --endpoint URL")
	}
	ep, ok := known[args[0]]
	if !ok {
		names := make([]string, 0, len(known))
		for n := range known {
			names = append(names, n)
		}
		slices.Sort(names)
		return "", fmt.Errorf("no appropriate replay endpoint found for %s (replay_endpoints has: %s)", args[0], strings.Join(names, ", "))
	}
	return ep, nil
}

// request builds the query object from the flags that were given.
func (f *replayFlags) request(c *cobra.Command, now time.Time) (replay.Request, error) {
	var q replay.Request
	changed := c.Flags().Changed
	if changed("seq-id") {
		q.SeqID = &f.seqID
	}
	if changed("seq-ids") {
		q.SeqIDs = f.seqIDs
	}
	if changed("seq-id-range") {
		from, to, ok := strings.Cut(f.seqIDRange, ":")
		a, errA := strconv.ParseInt(strings.TrimSpace(from), 10, 64)
		b, errB := strconv.ParseInt(strings.TrimSpace(to), 10, 64)
		if !ok || errA != nil || errB != nil || a > b {
			return q, fmt.Errorf("--seq-id-range %q: want FROM:TO, two integers with FROM <= TO", f.seqIDRange)
		}
		q.SeqIDRange = &replay.Range{From: a, To: b}
	}
	if changed("msg-id") {
		q.MsgID = &f.msgID
	}
	if changed("msg-ids") {
		q.MsgIDs = f.msgIDs
	}
	if changed("time") && (changed("since") || changed("until")) {
		return q, errors.New("--time and --since/--until are two spellings of the same key: give one")
	}
	if changed("time") {
		from, to, ok := strings.Cut(f.timeRange, ":")
		a, errA := parseSeconds(from)
		b, errB := parseSeconds(to)
		if !ok || errA != nil || errB != nil || a > b {
			return q, fmt.Errorf("--time %q: want FROM:TO, seconds since the epoch with FROM <= TO", f.timeRange)
		}
		q.Time = &replay.TimeRange{From: a, To: b}
	}
	if changed("since") || changed("until") {
		r := replay.TimeRange{From: 0, To: float64(now.Unix())}
		var err error
		if changed("since") {
			if r.From, err = parseTime(f.since); err != nil {
				return q, fmt.Errorf("--since: %w", err)
			}
		}
		if changed("until") {
			if r.To, err = parseTime(f.until); err != nil {
				return q, fmt.Errorf("--until: %w", err)
			}
		}
		if r.From > r.To {
			return q, fmt.Errorf("--since is after --until")
		}
		q.Time = &r
	}
	if q.IsZero() {
		return q, errors.New("give at least one of --seq-id, --seq-ids, --seq-id-range, --msg-id, --msg-ids, --since/--until, --time")
	}
	return q, nil
}

func parseSeconds(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err == nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
		err = errors.New("not a finite number")
	}
	return f, err
}

// parseTime reads seconds since the epoch or an RFC 3339 time.
func parseTime(s string) (float64, error) {
	if f, err := parseSeconds(s); err == nil {
		return f, nil
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds since the epoch nor an RFC 3339 time", s)
	}
	return float64(t.UnixNano()) / 1e9, nil
}
