package signing

import (
	"crypto/sha1"
	"sync"

	"github.com/gofedmsg/fedmsg/message"
)

// bufPool recycles the buffers the signing input is built in.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// mapPool recycles the envelope copies without credentials.
var mapPool = sync.Pool{New: func() any { return make(map[string]any, 16) }}

// maxPooledBuf keeps the pool from holding on to buffers grown for a huge
// message.
const maxPooledBuf = 64 << 10

// signingDigest returns the SHA-1 of the bytes an x509 signature covers:
// message.Canonical(message.WithoutCredentials(env)) (spec §4.4 steps 3
// and 7), built in recycled memory.
func signingDigest(env map[string]any) ([sha1.Size]byte, error) {
	// The stripped copy lives only for this call, so its map is recycled
	// too (emptied before it goes back, keeping no references).
	stripped := mapPool.Get().(map[string]any)
	for k, v := range env {
		if k != message.FieldSignature && k != message.FieldCertificate {
			stripped[k] = v
		}
	}
	bp := bufPool.Get().(*[]byte)
	buf, err := message.AppendCanonical((*bp)[:0], stripped)
	if len(stripped) <= 64 {
		clear(stripped)
		mapPool.Put(stripped)
	}
	var sum [sha1.Size]byte
	if err == nil {
		sum = sha1.Sum(buf)
	}
	if cap(buf) <= maxPooledBuf {
		*bp = buf[:0]
		bufPool.Put(bp)
	}
	return sum, err
}
