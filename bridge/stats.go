package bridge

import (
	"errors"
	"sync/atomic"

	"github.com/gofedmsg/fedmsg/signing"
)

// DropReason says why a route did not forward a message it received.
type DropReason int

const (
	dropNone DropReason = iota

	// Signature failures on require-valid routes, one per signing
	// sentinel, so an operator can tell tampering from a stale CRL.
	DropUnsigned
	DropUnknownBackend
	DropBackendDisallowed
	DropMalformed
	DropBadSignature
	DropUntrusted
	DropCertNotValid
	DropRevoked
	DropCRLExpired
	DropCRLInvalid
	DropRoutingPolicy
	DropTrustUnavailable
	DropInvalidOther // a validation error wrapping no known sentinel

	// DropResignFailed: a resign route could not decode or sign the body.
	DropResignFailed
	// DropSinkError: the sink failed on an at-most-once route.
	DropSinkError
	// DropSinkRejected: the sink refused the message itself
	// (transport.ErrBadMessage or ErrPermanent); retrying cannot help.
	DropSinkRejected

	// Loop prevention and deduplication (loop.go); these are acked, not
	// nacked: the message was handled.

	// DropLoop: HeaderBridge already names this bridge.
	DropLoop
	// DropMaxHops: HeaderHops reached Options.MaxHops.
	DropMaxHops
	// DropEcho: this bridge's own output, back from the transport it was
	// published to (the ZeroMQ case, no headers).
	DropEcho
	// DropDuplicate: a msg_id this route forwarded within DedupWindow.
	DropDuplicate

	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropUnsigned:          "signature_unsigned",
	DropUnknownBackend:    "signature_unknown_backend",
	DropBackendDisallowed: "signature_backend_disallowed",
	DropMalformed:         "signature_malformed",
	DropBadSignature:      "signature_bad",
	DropUntrusted:         "signature_untrusted",
	DropCertNotValid:      "signature_cert_not_valid",
	DropRevoked:           "signature_revoked",
	DropCRLExpired:        "signature_crl_expired",
	DropCRLInvalid:        "signature_crl_invalid",
	DropRoutingPolicy:     "signature_routing_policy",
	DropTrustUnavailable:  "signature_trust_unavailable",
	DropInvalidOther:      "signature_other",
	DropResignFailed:      "resign_failed",
	DropSinkError:         "sink_error",
	DropSinkRejected:      "sink_rejected",
	DropLoop:              "loop",
	DropMaxHops:           "max_hops",
	DropEcho:              "echo",
	DropDuplicate:         "duplicate",
}

// String is the reason's label, stable for metrics.
func (r DropReason) String() string {
	if r <= dropNone || r >= numDropReasons {
		return "unknown"
	}
	return dropNames[r]
}

// signatureReasons maps the signing package's sentinels to drop reasons;
// each validation error wraps exactly one of them.
var signatureReasons = []struct {
	err    error
	reason DropReason
}{
	{signing.ErrUnsigned, DropUnsigned},
	{signing.ErrUnknownBackend, DropUnknownBackend},
	{signing.ErrBackendDisallowed, DropBackendDisallowed},
	{signing.ErrMalformed, DropMalformed},
	{signing.ErrBadSignature, DropBadSignature},
	{signing.ErrUntrusted, DropUntrusted},
	{signing.ErrCertNotValid, DropCertNotValid},
	{signing.ErrRevoked, DropRevoked},
	{signing.ErrCRLExpired, DropCRLExpired},
	{signing.ErrCRLInvalid, DropCRLInvalid},
	{signing.ErrRoutingPolicy, DropRoutingPolicy},
	{signing.ErrTrustUnavailable, DropTrustUnavailable},
}

func signatureReason(err error) DropReason {
	for _, s := range signatureReasons {
		if errors.Is(err, s.err) {
			return s.reason
		}
	}
	return DropInvalidOther
}

// trustProblem reports validation failures caused by the bridge's own
// trust material (CA/CRL missing, stale or unreadable) rather than by the
// message. On an at-least-once route those are retried, not dropped: the
// message may well be valid once the CA or CRL is reloaded.
func trustProblem(err error) bool {
	return errors.Is(err, signing.ErrTrustUnavailable) ||
		errors.Is(err, signing.ErrCRLExpired) ||
		errors.Is(err, signing.ErrCRLInvalid)
}

// counters are one route's live counts, updated without locks.
type counters struct {
	received, forwarded, filtered, retried, settleErrors atomic.Uint64
	dropped                                              [numDropReasons]atomic.Uint64
}

// RouteStats is a snapshot of one route's counters.
type RouteStats struct {
	Route string
	// Received counts deliveries taken from the source, redeliveries
	// included.
	Received uint64
	// Forwarded counts messages the sink accepted.
	Forwarded uint64
	// Filtered counts messages whose topic the route's patterns refused
	// (possible when a source subscribes by prefix only).
	Filtered uint64
	// Retried counts deliveries handed back to the source for redelivery
	// (at-least-once: sink failure or unusable trust material).
	Retried uint64
	// SettleErrors counts Ack/Nack calls the source refused.
	SettleErrors uint64
	// Dropped counts messages not forwarded, by DropReason label; reasons
	// never seen are absent.
	Dropped map[string]uint64
}

// DroppedTotal is the number of messages dropped for any reason.
func (s RouteStats) DroppedTotal() uint64 {
	var n uint64
	for _, v := range s.Dropped {
		n += v
	}
	return n
}

func (c *counters) snapshot(route string) RouteStats {
	s := RouteStats{
		Route:        route,
		Received:     c.received.Load(),
		Forwarded:    c.forwarded.Load(),
		Filtered:     c.filtered.Load(),
		Retried:      c.retried.Load(),
		SettleErrors: c.settleErrors.Load(),
		Dropped:      map[string]uint64{},
	}
	for r := dropNone + 1; r < numDropReasons; r++ {
		if n := c.dropped[r].Load(); n > 0 {
			s.Dropped[r.String()] = n
		}
	}
	return s
}
