package message

import "errors"

// Sentinel errors of the message package, wrapped with %w and a reason.
// (Written first by the transport author so the relay could build; the
// decoder shares them.)
var (
	ErrInvalidJSON = errors.New("message: invalid JSON")
	ErrNotObject   = errors.New("message: not a JSON object")
)
