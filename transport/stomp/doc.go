// Package stomp is gofedmsg's STOMP 1.2 transport (RabbitMQ, ActiveMQ,
// any STOMP 1.2 broker), built on go-stomp's frame model
// (github.com/go-stomp/stomp/v3/frame).
//
// Why not go-stomp's Conn: Conn.Send holds the connection's lock until
// its receipt arrives, so receipts cannot be pipelined; its waits cannot
// be bounded by a context; and its read loop can block forever handing an
// ERROR to an abandoned receipt channel. This package runs its own
// session (one reader and one writer goroutine per connection, a
// size-limited frame reader) and uses go-stomp's Frame, Header and
// heart-beat parsing.
//
// Publishing: SEND to /topic/<topic>, persistent:true, content-type
// application/json, the body byte for byte, Message.ID in the
// fedmsg-msg-id header and Message.Headers as extra headers (STOMP's and
// the brokers' own header names are never sent). Every frame asks for a
// receipt; Publish writes all its frames, then awaits the receipts, and
// returns nil only when all arrived. Unconfirmed messages are sent again
// after a reconnect until ctx ends (duplicates possible, losses not).
// Topics containing '/' are refused (RabbitMQ answers them with ERROR).
//
// Subscribing: the broker is told apart by the CONNECTED server header.
// Each pattern becomes the whole words before its first partial word or
// wildcard, then "#" (RabbitMQ, unknown brokers) or ">" (ActiveMQ): a
// superset that message.Pattern then filters in-process, so the
// semantics are fedmsg's on every broker. RabbitMQ percent-encodes
// destinations it delivers; they are decoded. On ActiveMQ the all-topics
// subscription carries a selector excluding advisory messages: ActiveMQ
// cannot convert them for STOMP without XStream (missing in Debian's
// package), and a failed conversion stops the whole connection.
//
// Queue mode (Options.Queue): the transport consumes only that
// destination, with ack:client-individual and a prefetch of 256, one
// broker consumer shared by all local subscriptions (each message goes to
// every matching one; messages matching none are ACKed and dropped).
// On RabbitMQ "/queue/<name>" is consumed as SUBSCRIBE /topic/# with
// x-queue-name:<name>, durable:true, auto-delete:false: RabbitMQ declares
// the durable queue <name> and binds it to amq.topic with "#", so every
// /topic/ publish reaches it and waits there while the client is away
// (retire such a queue with rabbitmqctl delete_queue). Other destinations
// ("/amq/queue/x", ActiveMQ virtual-topic queues) are subscribed as
// written, as fedmsg does. Settlement, once every local delivery of a
// message is settled: any transient Nack sends NACK (redelivery); all
// Nacked with ErrPermanent sends, on RabbitMQ, NACK requeue:false (the
// queue's dead-letter exchange when it has one, else discarded), and ACK
// elsewhere (ActiveMQ's NACK sends to its DLQ); otherwise ACK. Messages a
// subscription received but never settled stay unacknowledged until the
// connection ends, then the broker redelivers them.
//
// Durable mode (Options.DurableName, ActiveMQ only): CONNECT carries
// client-id:<name>, and the local subscriptions share one consumer, as
// in queue mode, of a durable subscription: SUBSCRIBE /topic/> (with the
// advisory selector) with activemq.subscriptionName:<name>,
// ack:client-individual and activemq.prefetchSize:256. ActiveMQ keeps
// the persistent messages (all we publish are) that arrive while no
// connection with that client-id is subscribed, and gives them to the
// next one. One durable subscription whatever the patterns, so its name
// never depends on them: a change of patterns resumes it rather than
// leaving behind one that ActiveMQ fills for ever. Settlement is queue
// mode's, except a transient Nack: ActiveMQ's NACK would move the
// message to its DLQ, so the connection is ended instead and ActiveMQ
// redelivers every unacknowledged message on the next one (the ones
// delivered after the Nacked one too: duplicates, not losses). Close and
// the end of a subscription close the consumer (UNSUBSCRIBE without the
// name) and never remove the durable subscription; an operator removes
// it in the ActiveMQ web console (the Subscribers page: Delete) or
// with an UNSUBSCRIBE carrying activemq.subscriptionName
// (and any id) on a connection whose CONNECT has client-id:<name>, while
// no gofedmsg process uses the name. ActiveMQ accepts one connection per
// client-id: a second one (or one made before ActiveMQ notices the
// previous connection died) is refused with an ERROR, logged with the
// client-id, and retried with backoff. On any other broker the
// subscription fails (Subscribe returns ErrDurableUnsupported, or a
// later one's channel closes after an error log): on RabbitMQ stomp_queue
// is the way to keep messages. Queue and DurableName exclude each other.
//
// Connections: Addrs round robin, backoff from ReconnectDelay times
// 1+2/len(Addrs) with jitter up to MaxReconnectDelay. A connection is left
// on a network error, an ERROR frame (RabbitMQ may keep the socket open
// after one; STOMP says the session is over) or when the broker is silent
// for two heart-beat intervals; the next one re-subscribes every live
// subscription, whose channels stay open.
package stomp
