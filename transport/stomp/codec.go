package stomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
)

// Limits on what the broker may send. go-stomp's frame.Reader trusts
// content-length (up to 4 GiB, allocated at once) and reads NUL-terminated
// bodies and header lines without bound; a transport that must not fall
// over on anything from the network needs limits, hence this reader.
const (
	readBufferSize = 64 << 10 // also the longest header line accepted
	maxHeaders     = 1024
	maxBody        = 64 << 20 // RabbitMQ's own frame limit is 4 MiB
)

// ErrProtocol wraps every malformed frame from the broker; the connection
// is dropped and made again.
var ErrProtocol = errors.New("stomp: protocol error")

// frameReader reads server frames with limits. Heart-beats (bare EOLs) are
// consumed silently: liveness is judged by bytes arriving (deadlineReader),
// not by frames.
type frameReader struct{ r *bufio.Reader }

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, readBufferSize)}
}

// deadlineReader renews the read deadline before every read, so a broker
// is considered alive while any byte (frame or heart-beat) arrives, and a
// silent one is detected after timeout even in the middle of a frame.
type deadlineReader struct {
	c       net.Conn
	timeout time.Duration // 0 = no deadline
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.timeout > 0 {
		_ = d.c.SetReadDeadline(time.Now().Add(d.timeout))
	}
	return d.c.Read(p)
}

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, a...)...)
}

// read returns the next frame. Header values are unescaped (STOMP 1.2)
// except in CONNECTED, which the specification leaves unescaped.
func (fr *frameReader) read() (*frame.Frame, error) {
	var line []byte
	for {
		l, err := fr.line()
		if err != nil {
			return nil, err
		}
		if len(l) > 0 {
			line = l
			break
		}
	}
	var cmd string
	switch string(line) { // no allocation for the comparison
	case frame.CONNECTED:
		cmd = frame.CONNECTED
	case frame.MESSAGE:
		cmd = frame.MESSAGE
	case frame.RECEIPT:
		cmd = frame.RECEIPT
	case frame.ERROR:
		cmd = frame.ERROR
	default:
		return nil, protoErr("unexpected command %.40q", line)
	}
	f := frame.New(cmd)
	for n := 0; ; n++ {
		l, err := fr.line()
		if err != nil {
			return nil, err
		}
		if len(l) == 0 {
			break
		}
		if n == maxHeaders {
			return nil, protoErr("%s frame with more than %d headers", cmd, maxHeaders)
		}
		i := bytes.IndexByte(l, ':')
		if i <= 0 {
			return nil, protoErr("%s frame: header line %.60q has no name", cmd, l)
		}
		if cmd == frame.CONNECTED {
			f.Header.Add(string(l[:i]), string(l[i+1:]))
		} else {
			f.Header.Add(unescape(l[:i]), unescape(l[i+1:]))
		}
	}
	if cl, ok := f.Header.Contains(frame.ContentLength); ok {
		n, err := strconv.ParseUint(strings.TrimSpace(cl), 10, 63)
		if err != nil {
			return nil, protoErr("%s frame: content-length %.30q", cmd, cl)
		}
		if n > maxBody {
			return nil, protoErr("%s frame: content-length %d beyond the %d-byte limit", cmd, n, maxBody)
		}
		f.Body = make([]byte, n)
		if _, err := io.ReadFull(fr.r, f.Body); err != nil {
			return nil, unexpectedEOF(err)
		}
		b, err := fr.r.ReadByte()
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		if b != 0 {
			return nil, protoErr("%s frame: no NUL after %d body bytes", cmd, n)
		}
		return f, nil
	}
	var body []byte
	for {
		chunk, err := fr.r.ReadSlice(0)
		if len(body)+len(chunk) > maxBody+1 {
			return nil, protoErr("%s frame: body beyond the %d-byte limit", cmd, maxBody)
		}
		body = append(body, chunk...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return nil, unexpectedEOF(err)
		}
	}
	f.Body = body[:len(body)-1]
	return f, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// line returns one line without its EOL (LF or CRLF). The slice is only
// valid until the next read.
func (fr *frameReader) line() ([]byte, error) {
	l, err := fr.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, protoErr("line longer than %d bytes", readBufferSize)
	}
	if err != nil {
		return nil, err
	}
	l = l[:len(l)-1]
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l, nil
}

// unescape decodes a STOMP 1.2 header name or value. An undefined escape
// is kept as written rather than failing the frame: being lenient with a
// broker costs nothing here, and no header steers anything dangerous.
func unescape(b []byte) string {
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	out = append(out, b[:i]...)
	for ; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 == len(b) {
			out = append(out, c)
			continue
		}
		switch b[i+1] {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 'c':
			out = append(out, ':')
		case '\\':
			out = append(out, '\\')
		default:
			out = append(out, c, b[i+1])
		}
		i++
	}
	return string(out)
}

// appendEscaped appends s escaped for a STOMP 1.2 header.
func appendEscaped(dst []byte, s string) []byte {
	if !strings.ContainsAny(s, "\\\r\n:") {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\n':
			dst = append(dst, '\\', 'n')
		case ':':
			dst = append(dst, '\\', 'c')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// appendHeader appends "name:value\n", both escaped.
func appendHeader(dst []byte, name, value string) []byte {
	dst = appendEscaped(dst, name)
	dst = append(dst, ':')
	dst = appendEscaped(dst, value)
	return append(dst, '\n')
}

// encodeHead encodes a client frame's command and headers (escaped). The
// writer adds the receipt header, the blank line, the body and the NUL.
func encodeHead(cmd string, headers ...string) []byte {
	b := make([]byte, 0, 64+16*len(headers))
	b = append(b, cmd...)
	b = append(b, '\n')
	for i := 0; i+1 < len(headers); i += 2 {
		b = appendHeader(b, headers[i], headers[i+1])
	}
	return b
}
