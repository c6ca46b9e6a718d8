package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// DefaultTimeout bounds a Query whose ctx has no deadline. fedmsg's
// get_replay waits forever; a subscriber recovering a gap must not.
const DefaultTimeout = 10 * time.Second

// Sentinel errors of the client.
var (
	// ErrRefused: the server answered with an error frame. The error is a
	// *ServerError holding the text.
	ErrRefused = errors.New("replay: query refused")
	// ErrNoMatch: the server found nothing ("There was no match for the
	// given query"). Such an error also matches ErrRefused.
	ErrNoMatch = errors.New("replay: no match")
	// ErrBadReply: a reply frame is neither an envelope nor an error.
	ErrBadReply = errors.New("replay: malformed reply")
	// ErrTimeout: no reply before the deadline.
	ErrTimeout = errors.New("replay: no reply")
)

// ServerError is an error frame from the server; Text is what was inside
// error: '...'.
type ServerError struct{ Text string }

func (e *ServerError) Error() string { return e.Text }

// Is makes every ServerError match ErrRefused, and the no-match answer
// ErrNoMatch as well.
func (e *ServerError) Is(target error) bool {
	return target == ErrRefused || (target == ErrNoMatch && e.Text == textNoMatch)
}

// ClientOptions tune Query; the zero value works.
type ClientOptions struct {
	// Socket carries the configuration's ZeroMQ settings (keepalive,
	// zmq_max_msg_size); zero options mean zmq.DefaultOptions. Linger is
	// always 0: an unanswered request is dropped with the socket.
	Socket zmq.Options
}

// Query sends q to the replay server at endpoint (fedmsg's get_replay,
// spec §7.3) and returns the envelopes of the reply, decoded with
// message.DecodeObject, oldest first. An error frame becomes a
// *ServerError. Without a deadline on ctx, DefaultTimeout applies.
func Query(ctx context.Context, endpoint string, q Request) ([]map[string]any, error) {
	return QueryWith(ctx, endpoint, q, ClientOptions{})
}

// QueryWith is Query with socket options from the configuration.
func QueryWith(ctx context.Context, endpoint string, q Request, o ClientOptions) ([]map[string]any, error) {
	envs, err := QueryEnvelopes(ctx, endpoint, q, o)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(envs))
	for i, e := range envs {
		out[i] = e.Fields
	}
	return out, nil
}

// QueryEnvelopes is QueryWith keeping each envelope's bytes as the server
// sent them (what a subscriber delivers, so signatures are checked on the
// stored bytes).
func QueryEnvelopes(ctx context.Context, endpoint string, q Request, o ClientOptions) ([]Envelope, error) {
	body, err := q.Encode()
	if err != nil {
		return nil, err
	}
	frames, err := Exchange(ctx, endpoint, [][]byte{body}, o)
	if err != nil {
		return nil, err
	}
	envs, err := decodeReply(frames)
	if err != nil {
		return nil, err
	}
	out := make([]Envelope, len(envs))
	for i, env := range envs {
		out[i] = Envelope{Body: frames[i], Fields: env}
	}
	return out, nil
}

// decodeReply turns reply frames into envelopes, or the server's error.
func decodeReply(frames [][]byte) ([]map[string]any, error) {
	if len(frames) == 1 {
		if text, ok := errorText(frames[0]); ok {
			return nil, &ServerError{Text: text}
		}
	}
	out := make([]map[string]any, 0, len(frames))
	for i, f := range frames {
		env, err := message.DecodeObject(f)
		if err != nil {
			return nil, fmt.Errorf("%w: frame %d: %v", ErrBadReply, i, err)
		}
		out = append(out, env)
	}
	return out, nil
}

// errorText recognises fedmsg's error frame.
func errorText(f []byte) (string, bool) {
	const prefix, suffix = "error: '", "'"
	if !bytes.HasPrefix(f, []byte(prefix)) || !bytes.HasSuffix(f, []byte(suffix)) || len(f) < len(prefix)+len(suffix) {
		return "", false
	}
	return string(f[len(prefix) : len(f)-len(suffix)]), true
}

// Exchange sends one request (its frames as given) on a fresh REQ socket
// and returns the reply's frames. It is the raw protocol, for tests and
// tools that must send what Query would refuse to build.
func Exchange(ctx context.Context, endpoint string, request [][]byte, o ClientOptions) ([][]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	so := o.Socket
	if so.IOThreads < 1 {
		// Zero options are "not filled in", not "all zero": a keepalive
		// idle time of 0, for one, makes every connection fail.
		so = zmq.DefaultOptions()
	}
	// An unanswered request must not hold the process at exit.
	so.Linger = 0
	zctx, err := zmq.NewContext(so)
	if err != nil {
		return nil, err
	}
	defer zctx.Term()
	sock, err := zmq.NewSocket(zctx, zmq4.REQ, so)
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	if so.MaxMsgSize > 0 {
		if err := sock.SetMaxmsgsize(int64(so.MaxMsgSize)); err != nil {
			return nil, fmt.Errorf("replay: set zmq_max_msg_size: %w", err)
		}
	}
	if err := sock.SetRcvtimeo(pollInterval); err != nil {
		return nil, fmt.Errorf("replay: set receive timeout: %w", err)
	}
	if err := sock.Connect(endpoint); err != nil {
		return nil, fmt.Errorf("replay: connect %s: %w", endpoint, err)
	}
	// A REQ send only queues the request until the connection is up, so
	// it cannot block here.
	if _, err := sock.SendMessage(request); err != nil {
		return nil, fmt.Errorf("replay: send to %s: %w", endpoint, err)
	}
	for {
		frames, err := sock.RecvMessageBytes(0)
		if err == nil {
			return frames, nil
		}
		if errno := zmq4.AsErrno(err); errno != zmq4.Errno(syscall.EAGAIN) && errno != zmq4.Errno(syscall.EINTR) {
			return nil, fmt.Errorf("replay: receive from %s: %w", endpoint, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w from %s: %w", ErrTimeout, endpoint, ctx.Err())
		}
	}
}
