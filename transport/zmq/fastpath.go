package zmq

/*
#cgo pkg-config: libzmq
#include <errno.h>
#include <stdlib.h>
#include <zmq.h>

// One received multipart message: the first two parts kept as zmq_msg_t so
// they can be sent on without a copy, and how many parts there were.
typedef struct {
	zmq_msg_t part[2];
	void *data[2];
	size_t size[2];
	int parts;
} gofedmsg_frames;

// gofedmsg_recv receives one whole multipart message into f. Parts past the
// second are received and discarded (and counted). Returns 0, or -1 with
// errno set (EAGAIN on timeout), in which case nothing is held.
static int gofedmsg_recv(void *sock, gofedmsg_frames *f) {
	zmq_msg_t extra;
	f->parts = 0;
	for (;;) {
		zmq_msg_t *m = f->parts < 2 ? &f->part[f->parts] : &extra;
		zmq_msg_init(m);
		int rc;
		// Once the first part is in, the rest of the message is already
		// queued (ZeroMQ delivers multipart messages whole): a signal
		// (Go's preemption sends SIGURG to every thread, including one in
		// C) or the receive timeout must not cut it in two, which would
		// lose this message and turn its tail into a bogus one.
		while ((rc = zmq_msg_recv(m, sock, 0)) < 0 && f->parts > 0 &&
		       (errno == EINTR || errno == EAGAIN)) {
		}
		if (rc < 0) {
			zmq_msg_close(m);
			for (int i = 0; i < f->parts && i < 2; i++) zmq_msg_close(&f->part[i]);
			f->parts = 0;
			return -1;
		}
		int more = zmq_msg_more(m);
		if (f->parts < 2) {
			f->data[f->parts] = zmq_msg_data(m);
			f->size[f->parts] = zmq_msg_size(m);
		} else {
			zmq_msg_close(m);
		}
		f->parts++;
		if (!more) return 0;
	}
}

// gofedmsg_release frees the parts f holds.
static void gofedmsg_release(gofedmsg_frames *f) {
	for (int i = 0; i < f->parts && i < 2; i++) zmq_msg_close(&f->part[i]);
	f->parts = 0;
}

// gofedmsg_send2 sends the two held parts on sock without copying them.
// Returns 0, or -1 with errno set; the parts are released either way.
static int gofedmsg_send2(void *sock, gofedmsg_frames *f) {
	int rc;
	// A signal must not lose the message either (see gofedmsg_recv).
	while ((rc = zmq_msg_send(&f->part[0], sock, ZMQ_SNDMORE)) < 0 && errno == EINTR) {
	}
	if (rc >= 0) {
		while ((rc = zmq_msg_send(&f->part[1], sock, 0)) < 0 && errno == EINTR) {
		}
	}
	gofedmsg_release(f);
	return rc < 0 ? -1 : 0;
}
*/
import "C"

import (
	"context"
	"fmt"
	"reflect"
	"syscall"
	"unsafe"

	zmq4 "github.com/pebbe/zmq4"
)

// rawSocket returns libzmq's handle behind a pebbe/zmq4 socket. pebbe keeps
// it unexported; the relay needs it to move messages from SUB to PUB without
// copying them through Go (a dozen cgo calls per message otherwise, which
// made the relay 40% slower than zmq_proxy). The field is checked by name
// and type so that a pebbe release that moves it disables the fast path
// instead of corrupting memory.
func rawSocket(s *zmq4.Socket) (unsafe.Pointer, bool) {
	f, ok := reflect.TypeOf(zmq4.Socket{}).FieldByName("soc")
	if !ok || f.Offset != 0 || f.Type != reflect.TypeOf(unsafe.Pointer(nil)) {
		return nil, false
	}
	return *(*unsafe.Pointer)(unsafe.Pointer(s)), true
}

// forwardFast is forward without copies: two cgo calls per message, the body
// checked in place in libzmq's buffer. It returns errFastPathUnavailable
// when the raw sockets cannot be had.
func forwardFast(ctx context.Context, in, out *zmq4.Socket, outAddr string, o Options, stats *Stats) error {
	rin, ok1 := rawSocket(in)
	rout, ok2 := rawSocket(out)
	if !ok1 || !ok2 {
		return errFastPathUnavailable
	}
	f := (*C.gofedmsg_frames)(C.malloc(C.sizeof_gofedmsg_frames))
	defer C.free(unsafe.Pointer(f))
	log := o.logger()
	var frames [2][]byte
	for ctx.Err() == nil {
		rc, err := C.gofedmsg_recv(rin, f)
		if rc != 0 {
			switch err {
			case syscall.EAGAIN, syscall.EINTR:
				continue // receive timeout: look at ctx again
			}
			if zmq4.AsErrno(err) == zmq4.ETERM {
				return nil
			}
			return fmt.Errorf("zmq: relay receive: %w", err)
		}
		var reason DropReason
		if f.parts != 2 {
			reason = DropFrames
		} else {
			frames[0] = unsafe.Slice((*byte)(f.data[0]), int(f.size[0]))
			frames[1] = unsafe.Slice((*byte)(f.data[1]), int(f.size[1]))
			reason = checkFrames(frames[:], o.MaxMsgSize)
			frames = [2][]byte{}
		}
		stats.count(reason)
		if reason != DropNone {
			C.gofedmsg_release(f)
			log.Debug("relay dropped malformed message", "reason", reason.String())
			continue
		}
		if rc, err := C.gofedmsg_send2(rout, f); rc != 0 {
			return fmt.Errorf("zmq: relay send on %s: %w", outAddr, err)
		}
	}
	return nil
}
