package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// pollInterval bounds how long the server takes to notice Close.
const pollInterval = 50 * time.Millisecond

// Sentinel errors of the server.
var (
	// ErrBind: the replay endpoint could not be bound (fedmsg's "The
	// replay endpoint cannot be bound.").
	ErrBind = errors.New("replay: the replay endpoint cannot be bound")
	// ErrClosed: the server was closed.
	ErrClosed = errors.New("replay: closed")
)

// ServerOptions configure a replay server.
type ServerOptions struct {
	// Endpoint is replay_endpoints[name]. A tcp endpoint is bound on
	// every interface at its port (spec §7.1), except a loopback address,
	// which is bound as written (see zmq.PublisherBindAddr).
	Endpoint string
	// Socket carries the ZeroMQ settings of the configuration (high-water
	// mark, linger, keepalive, io_threads, zmq_max_msg_size, logger); its
	// Bind, Connect and Subscribe lists are ignored. Zero options mean
	// zmq.DefaultOptions.
	Socket zmq.Options
}

// Server answers replay queries from one store on a REP socket: one frame
// of JSON in, one frame per matching envelope out, or one frame
// "error: '<text>'". One goroutine owns the socket.
type Server struct {
	store   *Store
	opts    ServerOptions
	log     *slog.Logger
	zctx    *zmq4.Context
	sock    *zmq4.Socket
	addr    string
	stop    chan struct{}
	done    chan struct{}
	closeMu sync.Once
}

// Listen binds the REP socket and starts answering queries from store.
func Listen(store *Store, o ServerOptions) (*Server, error) {
	if store == nil {
		return nil, errors.New("replay: Listen needs a store")
	}
	if o.Endpoint == "" {
		return nil, fmt.Errorf("%w: no endpoint", ErrBind)
	}
	if o.Socket.IOThreads < 1 {
		// Not filled in: zero keepalive settings would break connections.
		o.Socket = zmq.DefaultOptions()
	}
	if o.Socket.MaxMsgSize <= 0 {
		o.Socket.MaxMsgSize = zmq.DefaultMaxMsgSize
	}
	log := o.Socket.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	zctx, err := zmq.NewContext(o.Socket)
	if err != nil {
		return nil, err
	}
	sock, err := zmq.NewSocket(zctx, zmq4.REP, o.Socket)
	if err == nil {
		// The receive timeout lets the serving goroutine look at stop.
		err = sock.SetRcvtimeo(pollInterval)
		if err != nil {
			sock.Close()
		}
	}
	if err != nil {
		zctx.Term()
		return nil, err
	}
	bindAddr := zmq.PublisherBindAddr(o.Endpoint)
	if err := sock.Bind(bindAddr); err != nil {
		sock.Close()
		zctx.Term()
		return nil, fmt.Errorf("%w: %s: %v", ErrBind, bindAddr, err)
	}
	addr, err := sock.GetLastEndpoint()
	if err != nil || addr == "" {
		addr = bindAddr
	}
	s := &Server{
		store: store, opts: o, log: log, zctx: zctx, sock: sock, addr: addr,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.serve()
	return s, nil
}

// Addr is the address bound, with the port resolved.
func (s *Server) Addr() string { return s.addr }

func (s *Server) serve() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		frames, err := s.sock.RecvMessageBytes(0)
		if err != nil {
			switch zmq4.AsErrno(err) {
			case zmq4.Errno(syscall.EAGAIN), zmq4.Errno(syscall.EINTR):
				continue
			case zmq4.ETERM:
				return
			}
			s.log.Warn("replay: receive failed", "endpoint", s.addr, "err", err)
			continue
		}
		reply := s.answer(frames)
		// A REP socket must answer before it can receive again; a send
		// that fails (the client left) resets it for the next request.
		if _, err := s.sock.SendMessage(reply); err != nil {
			s.log.Debug("replay: reply not sent", "endpoint", s.addr, "err", err)
		}
	}
}

// answer turns one request into the frames of its reply. It never fails:
// every problem becomes an error frame.
func (s *Server) answer(frames [][]byte) [][]byte {
	if len(frames) != 1 {
		return errorReply(queryErr(textFrames, len(frames)).Text)
	}
	if len(frames[0]) > s.opts.Socket.MaxMsgSize {
		return errorReply(queryErr(textTooBig, s.opts.Socket.MaxMsgSize).Text)
	}
	q, err := ParseRequest(frames[0])
	if err != nil {
		var qe *QueryError
		if errors.As(err, &qe) {
			s.log.Debug("replay: query refused", "reason", qe.Text)
			return errorReply(qe.Text)
		}
		return errorReply(err.Error())
	}
	found := s.store.Find(q)
	if len(found) == 0 {
		return errorReply(textNoMatch)
	}
	return found
}

// errorReply is fedmsg's error frame: error: '<text>'.
func errorReply(text string) [][]byte {
	return [][]byte{[]byte("error: '" + text + "'")}
}

// Close stops answering and releases the socket, waiting at most until ctx
// ends for a query being answered and for zmq_linger to flush the reply.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.closeMu.Do(func() {
		close(s.stop)
		select {
		case <-s.done:
		case <-ctx.Done():
			// The goroutine still owns the socket; leave it to exit on its
			// own (within pollInterval) and the context to be collected.
			err = fmt.Errorf("replay: close: %w", ctx.Err())
			go func() { <-s.done; s.sock.Close(); s.zctx.Term() }()
			return
		}
		s.sock.Close()
		termed := make(chan struct{})
		go func() { s.zctx.Term(); close(termed) }()
		select {
		case <-termed:
		case <-ctx.Done():
			err = fmt.Errorf("replay: close: %w", ctx.Err())
		}
	})
	return err
}
