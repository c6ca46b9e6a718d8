// Package replay is fedmsg's replay protocol (spec §7): a bounded store of
// the envelopes one publisher sent, numbered with seq_id; a server that
// answers queries about them on a ZeroMQ REP socket bound on
// replay_endpoints[name]; and the client, Query, fedmsg's get_replay.
//
// # Wire
//
// A request is one frame of JSON, the query object (Request). The reply is
// one frame per matching envelope, oldest first, each the canonical JSON
// that was stored (and sent), seq_id included; or one frame
// "error: '<text>'". The server answers every request, however malformed,
// with one of those: it never stops serving because of a query.
//
// # Differences from fedmsg, on purpose
//
//   - seq_id_range works and is inclusive at both ends (fedmsg's store has
//     an attribute typo and always answers an error).
//   - An unknown key is named: error: 'Unsupported field: "foo"'. fedmsg
//     formats the literal word key there (a bug) and so tells the client
//     nothing. A client matching on the text most plausibly matches its
//     start, "Unsupported field", which is unchanged; matching the whole
//     text "...: \"key\"" would only ever have told it "some key was
//     unsupported", and no fedmsg client does so (get_replay raises on any
//     non-JSON frame without reading it). Likewise the malformed-range text
//     says "seq_id_range", not fedmsg's misspelt "sed_id_range", which no
//     client can have seen in a useful answer since the range never worked.
//   - Inputs fedmsg's server died on or mishandled get an error frame in the
//     same style: not JSON or not an object, an empty query, several
//     frames, a query over zmq_max_msg_size, a list longer than MaxListLen.
//     Wrong types (a string seq_id, true, 1.0) and reversed or wrongly sized
//     ranges are 'Ill-format "<key>" field', fedmsg's text for bad ranges.
//   - time compares epoch seconds, not local-time datetimes: the same
//     answer without daylight-saving ambiguity.
//   - The client has a deadline (ctx, else DefaultTimeout); fedmsg's waits
//     forever.
//
// # Where seq_id is added, and signatures
//
// fedmsg's publisher adds seq_id after signing (spec §6.2), so every
// message from a publisher with a persistent_store fails validation
// (vector t10-seq-id-added). Store.Add instead assigns seq_id first and
// then calls a Seal function, which the publishing fedmsg.Context sets to
// its signer: seq_id is inside the signed bytes. That is compatible with
// every fedmsg validator, since they all verify the canonical envelope
// minus signature and certificate, seq_id included. The bytes stored are
// the bytes sent, so a replayed envelope validates as the original did.
//
// The store lives in the publisher's memory (fedmsg's SqlStore is a shared
// database), so the replay server runs in the publishing process: a
// fedmsg.Context with persistent_store (true, or {limit: N}) whose
// publisher name has a replay_endpoints entry starts one. Numbering,
// storing and sending happen under one lock, so one publisher's seq_ids go
// out in order. A store is per publisher name; seq_ids restart at 1 when
// the process does (a subscriber sees a smaller seq_id, which fedmsg's gap
// logic treats as a duplicate; GapTracker recognises it as a restart).
//
// # Subscribers
//
// GapTracker is the subscriber's side (fedmsg's check_for_replay): fed
// each envelope with the replay name it came from (the endpoints key), it
// returns what to deliver, filling a gap in seq_id from the name's replay
// endpoint, in order and once, bounded per gap, and following publisher
// restarts. fedmsg.Context.Tail, and so fedmsg tail, use it.
package replay
