package cmd

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
)

// What fedmsg-announce always publishes on and signs with: routing_policy
// is expected to allow announce.announcement only for the announce
// certificate, so neither is a flag.
const (
	announceModname    = "announce"
	announceTopic      = "announcement"
	announceCertPrefix = "announce"
)

func newAnnounceCmd(e *env) *cobra.Command {
	var link string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "announce",
		Short: "Publish an announcement read from stdin through the relay",
		Long: `Publish one announcement like fedmsg-announce, through the relay at
relay_inbound (active mode), on <topic_prefix>.<environment>.announce.announcement.

All of stdin is read; each line is stripped of surrounding whitespace and
the lines are joined with "\n". The body is
{"message": <text>, "link": <--link URL, or null without it>}.

With sign_messages the message is signed with certnames["announce.<short
hostname>"] whatever cert_prefix says: routing_policy can then allow
announcements only from that certificate.`,
		Example: `  echo "The build system is back." | fedmsg announce
  fedmsg announce --link https://status.fedoraproject.org/ < outage.txt`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runAnnounce(c, e, link, timeout)
		},
	}
	c.Flags().StringVar(&link, "link", "", "a `URL` to send along in the body's \"link\" (null without it)")
	addPublishTimeoutFlag(c, &timeout)
	return c
}

func runAnnounce(c *cobra.Command, e *env, link string, timeout time.Duration) error {
	cfg, log, done, err := prepare(c, e)
	if err != nil || done {
		return err
	}
	cfg.CertPrefix = announceCertPrefix
	var l any // null unless --link was given, even as --link ""
	if c.Flags().Changed("link") {
		l = link
	}
	return publishActive(c.Context(), cfg, log, announceTopic, announceModname, announceBody(e.stdin, l), timeout)
}

// announceBody yields the one body fedmsg-announce sends. stdin is read
// inside the iterator, so publishActive can still end the command on a
// signal while stdin blocks.
func announceBody(stdin io.Reader, link any) func(func(loggerBody) bool) {
	return func(yield func(loggerBody) bool) {
		data, err := io.ReadAll(stdin)
		if err != nil {
			yield(loggerBody{err: fmt.Errorf("read stdin: %w", err)})
			return
		}
		yield(loggerBody{msg: map[string]any{"message": announceText(string(data)), "link": link}})
	}
}

// announceText is Python's "\n".join(map(str.strip, sys.stdin.readlines()))
// on text-mode stdin: universal newlines ("\r\n" and a lone "\r" end a
// line too), no line after a final newline, each line stripped as
// str.strip does.
func announceText(in string) string {
	in = strings.ReplaceAll(in, "\r\n", "\n")
	in = strings.ReplaceAll(in, "\r", "\n")
	if in == "" {
		return ""
	}
	lines := strings.Split(strings.TrimSuffix(in, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pyStrip(l)
	}
	return strings.Join(lines, "\n")
}

// pyStrip is str.strip(): Go's unicode.IsSpace plus the ASCII file, group,
// record and unit separators, which Python counts as whitespace.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f
	})
}
