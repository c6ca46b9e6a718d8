// Package message owns the fedmsg envelope: fully-qualified topics, msg_id,
// the envelope fields added by publish, and the JSON dialect fedmsg speaks.
//
// Python fedmsg signs and verifies the canonical JSON of an envelope
// (fedmsg.encoding.dumps: json.dumps with sort_keys=True, compact separators,
// ensure_ascii and allow_nan), never the bytes that were received, so a Go
// peer has to parse exactly like json.loads and re-encode exactly like
// json.dumps. encoding/json cannot do that (it escapes <>&, keeps non-ASCII,
// formats floats differently and turns every number into a float64), hence
// the hand-written decoder and encoder here:
//
//   - Decode keeps each number's source text (type Number) so that integers
//     of any size survive and floats can be re-printed the way Python's
//     repr() prints them.
//   - Lone UTF-16 surrogates written as escapes ("\ud800") are legal in
//     Python strings; they are kept in Go strings as their 3-byte
//     generalised UTF-8 (WTF-8) form, which Canonical turns back into the
//     same escape and which sorts by code point like every other character.
//   - Canonical sorts object keys by code point, i.e. by the bytes of their
//     UTF-8 encoding, which is exactly Go's string order.
package message
