package fedmsg_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
)

func TestNoBrokerConfiguredNamesTheKeys(t *testing.T) {
	cfg := config.Default()
	cfg.ZMQEnabled = false
	_, err := fedmsg.New(cfg)
	if !errors.Is(err, fedmsg.ErrNoBroker) {
		t.Fatalf("New = %v, want ErrNoBroker", err)
	}
	for _, key := range []string{"stomp_uri", "amqp_url"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%q does not name %s", err, key)
		}
	}
}

func TestStompOptionsFromFedmsgKeys(t *testing.T) {
	cfg := config.Default()
	cfg.StompURI = " broker1:61613, broker2:61614 ,"
	cfg.StompHeartbeat = 2500
	cfg.StompDelay = 0.25
	cfg.StompUser, cfg.StompPass = "fedmsg", "secret"
	cfg.StompQueue = "/queue/consumer"
	o, err := fedmsg.StompOptions(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(o.Addrs) != "[broker1:61613 broker2:61614]" || o.HeartBeat != 2500*time.Millisecond ||
		o.ReconnectDelay != 250*time.Millisecond || o.Login != "fedmsg" || o.Passcode != "secret" ||
		o.Queue != "/queue/consumer" || o.Vhost != "/" || o.TLS != nil {
		t.Errorf("options %+v", o)
	}

	// fedmsg's fallback when stomp_uri is absent.
	cfg = config.Default()
	cfg.StompBroker = "broker3"
	if o, _ := fedmsg.StompOptions(cfg, nil); fmt.Sprint(o.Addrs) != "[broker3:61613]" {
		t.Errorf("stomp_broker fallback: %v", o.Addrs)
	}

	// TLS: on with a client pair, verifying against stomp_ssl_ca.
	dir := sharedtest.Dir(t, "fedmsg-x509")
	cfg.StompSSLCA = filepath.Join(dir, "ca.crt")
	cfg.StompSSLCrt = filepath.Join(dir, "bodhi-app01.example.com.crt")
	cfg.StompSSLKey = filepath.Join(dir, "bodhi-app01.example.com.key")
	o, err = fedmsg.StompOptions(cfg, nil)
	if err != nil || o.TLS == nil || len(o.TLS.Certificates) != 1 || o.TLS.RootCAs == nil || o.TLS.InsecureSkipVerify {
		t.Errorf("TLS from the stomp_ssl_* keys: %v, %+v", err, o.TLS)
	}
	cfg.StompSSLKey = ""
	if _, err := fedmsg.StompOptions(cfg, nil); err == nil || !strings.Contains(err.Error(), "stomp_ssl_key") {
		t.Errorf("a certificate without its key: %v, want an error naming stomp_ssl_key", err)
	}
}

func TestAMQPOptionsFromFedmsgKeys(t *testing.T) {
	cfg := config.Default()
	cfg.AMQPURL = []string{"amqps://broker1/", "amqps://broker2/"}
	cfg.AMQPQueue, cfg.AMQPPrefetch = "consumer", 7
	cfg.AMQPSSLCA = "/nonexistent/ca.pem"
	if _, err := fedmsg.AMQPOptions(cfg, nil); err == nil || !strings.Contains(err.Error(), "amqp_ssl_ca") {
		t.Errorf("a missing CA file: %v, want an error naming amqp_ssl_ca", err)
	}
	cfg.AMQPSSLCA = ""
	o, err := fedmsg.AMQPOptions(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.URLs) != 2 || o.Queue != "consumer" || o.Prefetch != 7 || o.Exchange != "amq.topic" || o.TLS != nil || o.Format != "fedmsg" {
		t.Errorf("options %+v", o)
	}
	cfg.AMQPFormat = "fedora-messaging"
	if o, err := fedmsg.AMQPOptions(cfg, nil); err != nil || o.Format != "fedora-messaging" {
		t.Errorf("amqp_format fedora-messaging: Format %q, %v", o.Format, err)
	}
}

// The library's Publish and Tail through each broker, with zmq_enabled
// false: what Tail yields is the envelope Publish made, byte for byte.
func TestPublishAndTailThroughBrokers(t *testing.T) {
	for _, tc := range []struct {
		broker brokertest.Broker
		set    func(*config.Config)
	}{
		{brokertest.RabbitSTOMP, func(c *config.Config) { c.StompURI = brokertest.RabbitSTOMP.Addr }},
		{brokertest.ActiveMQSTOMP, func(c *config.Config) { c.StompURI = brokertest.ActiveMQSTOMP.Addr }},
		{brokertest.RabbitAMQP, func(c *config.Config) {
			c.AMQPURL = []string{"amqp://guest:guest@" + brokertest.RabbitAMQP.Addr + "/"}
		}},
		{brokertest.RabbitAMQP, func(c *config.Config) { // the #01 subtest
			c.AMQPURL = []string{"amqp://guest:guest@" + brokertest.RabbitAMQP.Addr + "/"}
			c.AMQPFormat = "fedora-messaging"
		}},
	} {
		t.Run(tc.broker.Name, func(t *testing.T) {
			brokertest.Use(t, tc.broker)
			cfg := config.Default()
			cfg.ZMQEnabled = false
			cfg.TopicPrefix = fmt.Sprintf("org.libtest%d", time.Now().UnixNano())
			tc.set(cfg)
			bus, err := fedmsg.New(cfg, fedmsg.WithModname("libtest"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			defer bus.Close(context.Background())

			got := make(chan *fedmsg.Received, 100)
			go func() {
				for m, err := range bus.Tail(ctx, cfg.TopicPrefix+".") {
					if err != nil {
						t.Error(err)
						return
					}
					got <- m
				}
			}()
			// The subscription is made in the background: publish until
			// one message arrives, then one more that must arrive intact.
			for arrived := false; !arrived; {
				if err := bus.Publish(ctx, "probe", "", map[string]any{}); err != nil {
					t.Fatalf("Publish: %v", err)
				}
				select {
				case <-got:
					arrived = true
				case <-time.After(300 * time.Millisecond):
				case <-ctx.Done():
					t.Fatal("no message came back within 30s")
				}
			}
			drain(got)
			if err := bus.Publish(ctx, "update", "bodhi", map[string]any{"karma": 1, "text": "naïve ☃"}); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				want := cfg.TopicPrefix + ".dev.bodhi.update"
				if m.Topic != want || m.Envelope["topic"] != want {
					t.Errorf("topic %q (envelope %q), want %q", m.Topic, m.Envelope["topic"], want)
				}
				if !strings.Contains(string(m.Body), `"text":"na\u00efve \u2603"`) {
					t.Errorf("body is not fedmsg's canonical JSON: %s", m.Body)
				}
			case <-ctx.Done():
				t.Fatal("the message did not come back")
			}
		})
	}
}

func drain(ch chan *fedmsg.Received) {
	for {
		select {
		case <-ch:
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}
