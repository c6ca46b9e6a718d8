package fedmsg_test

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/gofedmsg/fedmsg"
)

// fakeDNS answers SRV queries for _fedmsg._tcp.<domain> from records, and
// NXDOMAIN for anything else, on a loopback UDP port.
func fakeDNS(t *testing.T, records map[string][]dnsmessage.SRVResource) *net.Resolver {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}
			srvs, ok := records[q.Name.String()]
			if !ok || q.Type != dnsmessage.TypeSRV {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if rh.RCode == dnsmessage.RCodeSuccess {
				for _, s := range srvs {
					b.SRVResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, s)
				}
			}
			out, err := b.Finish()
			if err == nil {
				conn.WriteTo(out, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", conn.LocalAddr().String())
	}}
}

func TestResolveSRV(t *testing.T) {
	r := fakeDNS(t, map[string][]dnsmessage.SRVResource{
		"_fedmsg._tcp.example.com.": {
			{Priority: 10, Weight: 1, Port: 9940, Target: dnsmessage.MustNewName("hub.example.com.")},
		},
	})
	var warned []string
	got := fedmsg.ResolveSRV(context.Background(), r, []string{"example.com", "missing.example"}, func(d string, err error) {
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) {
			t.Errorf("warning for %s carries %T, want a *net.DNSError", d, err)
		}
		warned = append(warned, d)
	})
	// fedmsg keeps the target's trailing dot (spec §6.5).
	want := map[string][]string{"example.com": {"tcp://hub.example.com.:9940"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveSRV = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(warned, []string{"missing.example"}) {
		t.Errorf("warned about %v, want [missing.example]", warned)
	}
}
