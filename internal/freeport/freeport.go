// Package freeport hands tests loopback TCP ports for servers they start
// in other processes.
//
// Asking the kernel for port 0 and closing the listener is not enough:
// such a port is in the ephemeral range, where the kernel also picks the
// local port of every outgoing connection, so one of the many
// connections the other tests make (to brokers, to relays) can take it
// before the server binds it ("address already in use"). Ports here come
// from below that range, where only an explicit bind can take them.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// Ports are picked in [low, high): below Linux's default ephemeral range
// (32768-60999) and clear of RabbitMQ's inter-node port 25672, which is
// free for a moment while a fault test restarts the broker.
const (
	low  = 20000
	high = 25000
)

// Port returns a loopback TCP port that nobody listened on a moment ago.
func Port(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := low + rand.IntN(high-low)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatalf("freeport: no free port in 127.0.0.1:%d-%d after 100 tries", low, high-1)
	return 0
}

// Endpoint is Port as a ZeroMQ endpoint, tcp://127.0.0.1:PORT.
func Endpoint(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("tcp://127.0.0.1:%d", Port(t))
}
