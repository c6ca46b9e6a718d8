package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runSecure runs the command line as Main does (stderr through the
// scrubber) with only the environment given, and returns stdout, stderr
// and the exit code.
func runSecure(t *testing.T, environ []string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	scrub := newScrubber(&errOut)
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: scrub, environ: environ, scrub: scrub}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := run(ctx, e, append([]string{"fedmsg"}, args...))
	return out.String(), errOut.String(), code
}

func writeSecretFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// `fedmsg config`, whole or queried at any depth, never prints a password:
// not the broker URL's, not stomp_pass, not one inside a free-form value.
func TestConfigCommandRedactsAtAnyDepth(t *testing.T) {
	secrets := []string{"AmqpPw4711", "StompPw4711", "IrcPw4711", "DgPw4711"}
	cfg := writeSecretFile(t, "secret.yaml", `amqp_url: ["amqp://bob:AmqpPw4711@broker.example.com/", "amqps://alice:AmqpPw4711@b2/%2f"]
stomp_pass: StompPw4711
irc: [{network: irc.example.com, port: 6667, password: IrcPw4711}]
datagrepper_url: "https://u:DgPw4711@dg.example.com/raw"
`)
	for _, q := range []string{"", "amqp_url", "amqp_url.0", "amqp_url.1", "stomp_pass", "irc", "irc.0", "irc.0.password", "datagrepper_url"} {
		args := []string{"config", "--config", cfg}
		if q != "" {
			args = append(args, "--query", q)
		}
		out, errOut, code := runSecure(t, nil, args...)
		if code != exitOK {
			t.Errorf("config --query %q exited %d: %s", q, code, errOut)
			continue
		}
		for _, s := range secrets {
			if strings.Contains(out+errOut, s) {
				t.Errorf("config --query %q printed the secret %s:\n%s", q, s, out)
			}
		}
		if !strings.Contains(out, "<redacted>") {
			t.Errorf("config --query %q shows no <redacted>:\n%s", q, out)
		}
	}
	// What is not secret is still there to read.
	if out, _, _ := runSecure(t, nil, "config", "--config", cfg, "--query", "amqp_url.0"); !strings.Contains(out, "bob:<redacted>@broker.example.com") {
		t.Errorf("amqp_url.0 printed %q, want the URL with only its password hidden", out)
	}
}

// Errors about a broker URL name the URL without its password, whether
// the configuration or the transport refuses it, given in a file or in
// the environment.
func TestErrorsHideBrokerURLPasswords(t *testing.T) {
	const pw = "UrlPw4711"
	for _, tc := range []struct {
		name    string
		file    string
		environ []string
	}{
		{"bad scheme in a file", `amqp_url: ["http://u:` + pw + `@h/"]` + "\nzmq_enabled: false\n", nil},
		{"bad port in a file", `amqp_url: ["amqp://u:` + pw + `@h:99999/"]` + "\nzmq_enabled: false\n", nil},
		{"no host in a file", `amqp_url: ["amqp://u:` + pw + `@/"]` + "\nzmq_enabled: false\n", nil},
		{"bad port in the environment", "", []string{"FEDMSG_AMQP_URL=amqp://u:" + pw + "@h:99999/", "FEDMSG_ZMQ_ENABLED=false"}},
		{"bad percent escape", `amqp_url: ["amqp://u:` + pw + `@h:5672/%zz"]` + "\nzmq_enabled: false\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"logger", "--message", "hi", "--log-level", "debug"}
			if tc.file != "" {
				args = append(args, "--config", writeSecretFile(t, "c.yaml", tc.file))
			}
			out, errOut, code := runSecure(t, tc.environ, args...)
			if code == exitOK {
				t.Fatalf("logger with a broken amqp_url succeeded")
			}
			if !strings.Contains(errOut, "amqp_url") {
				t.Errorf("the error does not name amqp_url: %s", errOut)
			}
			if strings.Contains(out+errOut, pw) {
				t.Errorf("the password is in the output:\n%s%s", out, errOut)
			}
		})
	}
}
