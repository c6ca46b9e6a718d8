package test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
)

// No secret of the configuration ever reaches the logs: the relay, the
// bridge (an AMQP URL and a STOMP login with passwords), the hub (a
// webhook with an Authorization header and a password in its URL) and a
// signing logger (a private key), all at --log-level debug, in text and in
// JSON, through start-up, traffic, a broker refusing a wrong password,
// and shutdown.

// rabbitUser adds a RabbitMQ user with a password of its own (guest's
// password is also its name, so it could not show a leak), deleted when
// t ends.
func rabbitUser(t *testing.T, name string) (user, pass string) {
	t.Helper()
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		t.Fatalf("rabbitmqctl is needed to add a user with a password: %v", err)
	}
	stamp := time.Now().UnixNano()
	user, pass = fmt.Sprintf("gofedmsg-%s-%d", name, stamp), fmt.Sprintf("%sPw%dSecret", name, stamp)
	for _, args := range [][]string{{"add_user", user, pass}, {"set_permissions", "-p", "/", user, ".*", ".*", ".*"}} {
		if out, err := exec.Command(ctl, args...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl %s: %v\n%s", args[0], err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ctl, "delete_user", user).CombinedOutput(); err != nil {
			t.Logf("rabbitmqctl delete_user %s: %v\n%s", user, err, out)
		}
	})
	return user, pass
}

// keyLines are the base64 lines of a PEM private key.
func keyLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	if len(out) < 10 {
		t.Fatalf("%s does not look like a PEM private key", path)
	}
	return out
}

// webhookTarget answers the hub's POSTs: 500 to the first (so the hub
// logs a failed attempt and retries), 200 after. got is closed once a
// POST carried the Authorization header: the secret is really used.
func webhookTarget(t *testing.T, auth string) (url string, got <-chan struct{}) {
	var mu sync.Mutex
	calls := 0
	ch := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		if r.Header.Get("Authorization") == auth {
			once.Do(func() { close(ch) })
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

func TestLogsHoldNoSecrets(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	brokertest.Use(t, brokertest.RabbitSTOMP)
	amqpUser, amqpPass := rabbitUser(t, "amqp")
	stompUser, stompPass := rabbitUser(t, "stomp")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) { checkNoSecrets(t, format, amqpUser, amqpPass, stompUser, stompPass) })
	}
}

func checkNoSecrets(t *testing.T, format, amqpUser, amqpPass, stompUser, stompPass string) {
	b := newBus(t)
	stamp := time.Now().UnixNano()
	prefix := fmt.Sprintf("org.secrets%d", stamp)
	token := fmt.Sprintf("tok%dBearerSecret", stamp)
	hookPass := fmt.Sprintf("hook%dUrlSecret", stamp)
	wrongAMQP := fmt.Sprintf("wrongAmqp%dSecret", stamp)
	wrongSTOMP := fmt.Sprintf("wrongStomp%dSecret", stamp)
	amqpURL := fmt.Sprintf("amqp://%s:%s@%s/", amqpUser, amqpPass, brokertest.RabbitAMQP.Addr)

	// The secrets sit in the configuration every process reads, used or not.
	shared := writeConfig(t, b, "secrets.yaml", fmt.Sprintf(`topic_prefix: %s
amqp_url: [%q]
stomp_uri: %q
stomp_user: %s
stomp_pass: %s
`, prefix, amqpURL, brokertest.RabbitSTOMP.Addr, stompUser, stompPass))
	signing := b.x509Config(t, "sign_messages: true\n")
	keyPath := filepath.Join(sharedtest.Dir(t, "fedmsg-x509"), "shell-app01.example.com.key")
	secrets := append([]string{amqpPass, stompPass, token, hookPass, wrongAMQP, wrongSTOMP}, keyLines(t, keyPath)...)

	logFlags := []string{"--log-level", "debug", "--log-format", format, "--config", shared}
	var procs []*proc
	start := func(args ...string) *proc {
		p := b.start(append(args, logFlags...)...)
		procs = append(procs, p)
		return p
	}

	relay := start("relay")
	relay.waitStderr(t, "relay started")

	hookURL, hookGot := webhookTarget(t, "Bearer "+token)
	hookURL = strings.Replace(hookURL, "http://", "http://hookuser:"+hookPass+"@", 1)
	hubCfg := writeConfig(t, b, "hub.yaml", fmt.Sprintf(`consumers:
  - name: hook
    kind: webhook
    topics: ["%s."]
    url: %q
    headers: {Authorization: "Bearer %s"}
    backoff: 0.05
`, prefix, hookURL, token))
	hub := start("hub", "--config", hubCfg)
	hub.waitStderr(t, "hub started")

	bridgeCfg := writeConfig(t, b, "bridge.yaml", fmt.Sprintf(`transports:
  bus: {kind: zmq}
  rabbit: {kind: amqp, amqp_url: [%q]}
  amq: {kind: stomp, stomp_uri: %q, stomp_user: %s, stomp_pass: %s}
routes:
  - {name: bus-to-rabbit, from: bus, to: rabbit, topics: ["%s."]}
  - {name: bus-to-stomp, from: bus, to: amq, topics: ["%s."]}
`, amqpURL, brokertest.RabbitSTOMP.Addr, stompUser, stompPass, prefix, prefix))
	amqpGot := plainAMQPConsumer(t, rabbitURL(), prefix+".#")
	stompGot := plainSTOMPConsumer(t, brokertest.RabbitSTOMP, []func(*stomp.Conn) error{stomp.ConnOpt.Host("/"), stomp.ConnOpt.Login("guest", "guest")}, prefix)
	bridge := start("bridge", "--config", bridgeCfg)
	bridge.waitStderr(t, "bus-to-stomp")

	// Traffic: signed logger messages through the relay until the webhook
	// (with its header), RabbitMQ over AMQP and over STOMP all had one.
	var outs []string
	gotHook, gotAMQP, gotSTOMP := false, false, false
	deadline := time.Now().Add(30 * time.Second)
	for !gotHook || !gotAMQP || !gotSTOMP {
		if time.Now().After(deadline) {
			t.Fatalf("traffic did not get through within 30s: webhook %v, AMQP %v, STOMP %v", gotHook, gotAMQP, gotSTOMP)
		}
		out, errOut, code := b.run("", append([]string{"logger", "--modname", "e2e", "--topic", "secret", "--message", "hello"}, append(logFlags, "--config", signing)...)...)
		if code != 0 {
			t.Fatalf("signing logger exited %d: %s", code, errOut)
		}
		outs = append(outs, out, errOut)
		wait := time.After(300 * time.Millisecond)
	collect:
		for {
			select {
			case <-hookGot:
				gotHook, hookGot = true, nil
			case <-amqpGot:
				gotAMQP = true
			case <-stompGot:
				gotSTOMP = true
			case <-wait:
				break collect
			}
		}
	}
	if !strings.Contains(hub.stderr.String(), "webhook attempt failed") {
		t.Errorf("the hub did not log the webhook's failed first attempt at debug; stderr:\n%s", hub.stderr.String())
	}

	// A broker refusing a wrong password, over AMQP and STOMP.
	wrongCfg := writeConfig(t, b, "wrong.yaml", fmt.Sprintf(`transports:
  bus: {kind: zmq}
  rabbit: {kind: amqp, amqp_url: ["amqp://%s:%s@%s/"]}
  amq: {kind: stomp, stomp_uri: %q, stomp_user: %s, stomp_pass: %s}
routes:
  - {name: bus-to-rabbit, from: bus, to: rabbit}
  - {name: bus-to-stomp, from: bus, to: amq}
`, amqpUser, wrongAMQP, brokertest.RabbitAMQP.Addr, brokertest.RabbitSTOMP.Addr, stompUser, wrongSTOMP))
	wrong := b.start(append([]string{"bridge", "--config", wrongCfg}, logFlags...)...)
	// Both brokers said no: RabbitMQ's AMQP refusal is a 403
	// (ACCESS_REFUSED), its STOMP one an ERROR frame "Access refused".
	refused := func() bool {
		s := strings.ToLower(wrong.stderr.String())
		return strings.Contains(s, "amqp: connection failed") && strings.Contains(s, "403") &&
			strings.Contains(s, "stomp: connect failed") && strings.Contains(s, "access refused")
	}
	exited := make(chan struct{})
	go func() { wrong.cmd.Wait(); close(exited) }()
	deadline = time.Now().Add(20 * time.Second)
	for !refused() && time.Now().Before(deadline) {
		select {
		case <-exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case <-exited:
	default:
		wrong.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(shutdownBound):
			t.Errorf("the bridge with wrong passwords did not stop within %v of SIGTERM", shutdownBound)
		}
	}
	if !refused() {
		t.Errorf("the bridge with wrong passwords never said the broker refused it; stderr:\n%s", wrong.stderr.String())
	}
	outs = append(outs, wrong.stderr.String())

	// Shutdown.
	for _, p := range []*proc{bridge, hub, relay} {
		if code := p.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("%v exited %d on SIGTERM, want 0; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
	for _, p := range procs {
		outs = append(outs, p.stderr.String())
		for l := range p.lines { // stdout, closed now that the process ended
			outs = append(outs, l)
		}
	}
	all := strings.Join(outs, "\n")
	if !strings.Contains(all, "<redacted>") && !strings.Contains(all, amqpUser) {
		t.Logf("note: no log line names the AMQP user or a redaction")
	}
	for _, s := range secrets {
		if i := strings.Index(all, s); i >= 0 {
			lo, hi := max(i-200, 0), min(i+len(s)+100, len(all))
			t.Errorf("a secret (%.12s...) is in the output:\n%s", s, all[lo:hi])
		}
	}
	if testing.Verbose() {
		t.Logf("%d bytes of output checked; the wrong-password bridge said:\n%s", len(all), wrong.stderr.String())
	}
}
