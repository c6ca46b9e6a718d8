// Package datagrepper reads fedmsg's message archive, datagrepper, over
// HTTP: the /raw listing that fedmsg-hub uses to catch up on what a
// consumer missed while it was down (spec §8.4), and /id, which
// fedmsg-dg-replay republishes from (spec §13).
//
// Messages come back the way datagrepper stores them: with source_name,
// source_version, a headers key and a float timestamp. Those changes break
// x509 signatures (the float timestamp changes the canonical bytes, vector
// t03-timestamp-float); FixMessage undoes them as fedmsg's
// fix_datagrepper_message does (spec §11) so the copy validates again.
package datagrepper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofedmsg/fedmsg/message"
)

// DefaultURL is fedmsg-dg-replay's default --datagrepper-url.
const DefaultURL = "https://apps.fedoraproject.org/datagrepper"

// RowsPerPage is the page size fedmsg asks /raw for (spec §8.4).
const RowsPerPage = 100

// DefaultTimeout bounds one HTTP request when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxReply bounds how much of one reply is read: a page of 100 messages
// is far below it, and a server that sends more is broken or hostile.
const maxReply = 64 << 20

// Errors of this package, checked with errors.Is.
var (
	// ErrStatus: datagrepper answered with an HTTP status other than 200
	// (the error is a *StatusError carrying the code).
	ErrStatus = errors.New("datagrepper: unexpected HTTP status")
	// ErrBadReply: the reply is not the JSON datagrepper sends.
	ErrBadReply = errors.New("datagrepper: malformed reply")
	// ErrBadURL: the datagrepper URL is not an absolute http(s) URL.
	ErrBadURL = errors.New("datagrepper: bad URL")
)

// StatusError is a reply whose HTTP status was not 200.
type StatusError struct {
	URL  string // the URL requested
	Code int    // the HTTP status code
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("datagrepper: GET %s: HTTP status %d", e.URL, e.Code)
}

// Is makes errors.Is(err, ErrStatus) true.
func (e *StatusError) Is(target error) bool { return target == ErrStatus }

// Options configure a Client.
type Options struct {
	// HTTPClient makes the requests; nil uses a private one.
	HTTPClient *http.Client
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
}

// Client talks to one datagrepper.
type Client struct {
	base    string
	http    *http.Client
	timeout time.Duration
}

// New returns a client for the datagrepper at baseURL, its root (as
// fedmsg-dg-replay's --datagrepper-url) or its /raw URL (as fedmsg's
// datagrepper_url, which hub configurations point at /raw): see BaseURL.
func New(baseURL string, o Options) (*Client, error) {
	base := BaseURL(baseURL)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q: want an absolute http:// or https:// URL", ErrBadURL, baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: %q: no query or fragment, please: the client adds its own", ErrBadURL, baseURL)
	}
	c := &Client{base: base, http: o.HTTPClient, timeout: o.Timeout}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	return c, nil
}

// BaseURL returns the datagrepper root for u: u without trailing slashes
// and without a final "/raw". fedmsg's hub GETs datagrepper_url itself
// (configured as ".../datagrepper/raw"), while fedmsg-dg-replay appends
// "/id" to its root; accepting both forms lets one key serve both.
func BaseURL(u string) string {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	u = strings.TrimSuffix(u, "/raw")
	return strings.TrimRight(u, "/")
}

// URL returns the datagrepper root the client talks to.
func (c *Client) URL() string { return c.base }

// Query selects one page of /raw. Messages are always asked for oldest
// first (order=asc), as fedmsg does.
type Query struct {
	// Start and End bound the messages' timestamps, in seconds since the
	// epoch (datagrepper includes both ends).
	Start, End int64
	// Page is 1-based (0 means 1).
	Page int
	// RowsPerPage is the page size (0 means RowsPerPage).
	RowsPerPage int
}

// Values returns the query parameters fedmsg sends (spec §8.4).
func (q Query) Values() url.Values {
	page, rows := q.Page, q.RowsPerPage
	if page <= 0 {
		page = 1
	}
	if rows <= 0 {
		rows = RowsPerPage
	}
	v := url.Values{}
	v.Set("rows_per_page", strconv.Itoa(rows))
	v.Set("page", strconv.Itoa(page))
	v.Set("start", strconv.FormatInt(q.Start, 10))
	v.Set("end", strconv.FormatInt(q.End, 10))
	v.Set("order", "asc")
	return v
}

// Page is one reply of /raw.
type Page struct {
	// Pages is how many pages the whole query has.
	Pages int
	// Messages are the page's raw_messages, decoded with message.Decode
	// (numbers keep their text), as datagrepper stored them: apply
	// FixMessage before validating.
	Messages []map[string]any
}

// Raw fetches one page of <root>/raw.
func (c *Client) Raw(ctx context.Context, q Query) (*Page, error) {
	u := c.base + "/raw?" + q.Values().Encode()
	v, err := c.get(ctx, u)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: GET %s: the reply is not a JSON object", ErrBadReply, u)
	}
	p := &Page{}
	switch n := obj["pages"].(type) {
	case message.Number:
		f, err := n.Float64()
		if err != nil || f < 0 || f > math.MaxInt32 {
			return nil, fmt.Errorf("%w: GET %s: \"pages\" is %s", ErrBadReply, u, n)
		}
		p.Pages = int(f)
	default:
		return nil, fmt.Errorf("%w: GET %s: no number \"pages\" in the reply", ErrBadReply, u)
	}
	list, ok := obj["raw_messages"].([]any)
	if !ok {
		return nil, fmt.Errorf("%w: GET %s: no list \"raw_messages\" in the reply", ErrBadReply, u)
	}
	for i, m := range list {
		env, ok := m.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: GET %s: raw_messages[%d] is not an object", ErrBadReply, u, i)
		}
		p.Messages = append(p.Messages, env)
	}
	return p, nil
}

// Walk calls fn with every message of /raw whose timestamp is within
// [start, end], oldest first, page after page, until the last page, an
// empty page, an error (returned as is) or ctx's end. The window is fixed
// by end, so messages arriving meanwhile do not shift the pages.
func (c *Client) Walk(ctx context.Context, start, end int64, fn func(env map[string]any) error) error {
	for page, pages := 1, 1; page <= pages; page++ {
		p, err := c.Raw(ctx, Query{Start: start, End: end, Page: page})
		if err != nil {
			return err
		}
		pages = p.Pages
		if len(p.Messages) == 0 {
			return nil
		}
		for _, m := range p.Messages {
			if err := fn(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// ByID fetches one message from <root>/id?id=<id>. A status other than
// 200 is a *StatusError (errors.Is ErrStatus).
func (c *Client) ByID(ctx context.Context, id string) (map[string]any, error) {
	u := c.base + "/id?" + url.Values{"id": {id}}.Encode()
	v, err := c.get(ctx, u)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: GET %s: the reply is not a JSON object", ErrBadReply, u)
	}
	return obj, nil
}

func (c *Client) get(ctx context.Context, u string) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("datagrepper: GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("datagrepper: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, &StatusError{URL: u, Code: resp.StatusCode}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return nil, fmt.Errorf("datagrepper: GET %s: reading the reply: %w", u, err)
	}
	if len(data) > maxReply {
		return nil, fmt.Errorf("%w: GET %s: the reply is larger than %d bytes", ErrBadReply, u, maxReply)
	}
	v, err := message.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrBadReply, u, err)
	}
	return v, nil
}

// FixMessage is fedmsg's fix_datagrepper_message (spec §11). Only when env
// has both source_name and source_version (it came out of datanommer) it
// returns a copy without them, without headers when those are empty or
// null (falsy), and with timestamp truncated to an integer; anything else
// is returned unchanged. Nothing else is touched, so the canonical JSON of
// the result is what the publisher signed.
func FixMessage(env map[string]any) map[string]any {
	_, hasName := env["source_name"]
	_, hasVersion := env["source_version"]
	if !hasName || !hasVersion {
		return env
	}
	out := make(map[string]any, len(env))
	for k, v := range env {
		out[k] = v
	}
	delete(out, "source_name")
	delete(out, "source_version")
	if h, ok := out["headers"]; ok && message.IsFalsy(h) {
		delete(out, "headers")
	}
	if ts, ok := out["timestamp"]; ok {
		out["timestamp"] = intTimestamp(ts)
	}
	return out
}

// intTimestamp is Python's int() of a JSON number: floats are truncated
// toward zero; integers, and values int() would refuse (NaN, infinities,
// non-numbers), are kept as they are, so validation fails on them rather
// than this function guessing.
func intTimestamp(v any) any {
	var f float64
	switch x := v.(type) {
	case message.Number:
		if !x.IsFloat() {
			return x
		}
		var err error
		if f, err = x.Float64(); err != nil {
			return x
		}
	case float64:
		f = x
	default:
		return v
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return v
	}
	return message.Number(strconv.FormatFloat(math.Trunc(f), 'f', 0, 64))
}

// Timestamp returns env's timestamp as whole seconds (a float truncated),
// and whether it has a usable one.
func Timestamp(env map[string]any) (int64, bool) {
	switch x := intTimestamp(env["timestamp"]).(type) {
	case message.Number:
		n, err := x.Int64()
		return n, err == nil
	}
	return 0, false
}
