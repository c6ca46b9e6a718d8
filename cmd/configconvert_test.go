package cmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gofedmsg/fedmsg/config"
)

// needPython3 fails the test when python3 is missing: the converter cannot
// work without it, so a skip would hide a broken machine (test/deps.sh
// installs it).
func needPython3(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is needed by fedmsg config convert and its tests (test/deps.sh test installs it): %v", err)
	}
}

// loadYAML loads text with gofedmsg's loader alone (no default
// directories, no environment), as a user's --config file.
func loadYAML(t *testing.T, text string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "converted.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{Dirs: []string{}, Files: []string{p}})
	if err != nil {
		t.Fatalf("gofedmsg does not load the converted configuration: %v\n%s", err, text)
	}
	return cfg
}

func writePy(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A realistic fedmsg.d (testdata/fedmsg.d: base, endpoints, relay, ssl,
// logging and another application's file) converts to YAML that gofedmsg
// loads with the values Python fedmsg would have had.
func TestConfigConvertFedmsgD(t *testing.T) {
	needPython3(t)
	dir := filepath.Join("testdata", "fedmsg.d")
	out, errOut, code := runSecure(t, nil, "config", "convert", dir)
	if code != exitOK {
		t.Fatalf("config convert %s exited %d: %s", dir, code, errOut)
	}
	cfg := loadYAML(t, out)

	// endpoints.py and relay.py each define endpoints: both entries kept.
	wantEndpoints := map[string][]string{
		"fedora-infrastructure": {"tcp://hub.fedoraproject.org:9940"}, // a tuple in the file
		"relay_outbound":        {"tcp://127.0.0.1:4001"},
	}
	if !reflect.DeepEqual(cfg.Endpoints, wantEndpoints) {
		t.Errorf("endpoints = %v, want %v", cfg.Endpoints, wantEndpoints)
	}
	// relay_outbound is also gofedmsg's default: the output itself must
	// hold both entries, or relay.py's would be lost for other values.
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("the output is not YAML: %v", err)
	}
	if ep, _ := raw["endpoints"].(map[string]any); len(ep) != 2 || ep["relay_outbound"] == nil || ep["fedora-infrastructure"] == nil {
		t.Errorf("the output's endpoints = %v, want fedora-infrastructure and relay_outbound", raw["endpoints"])
	}
	if !reflect.DeepEqual(cfg.RelayInbound, []string{"tcp://127.0.0.1:2003"}) {
		t.Errorf("relay_inbound = %v", cfg.RelayInbound)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	short, _, _ := strings.Cut(host, ".")
	wantCertnames := map[string]string{"shell." + short: "shell-" + short, "relay." + short: "relay-" + short}
	if !reflect.DeepEqual(cfg.Certnames, wantCertnames) {
		t.Errorf("certnames = %v, want %v (built with socket.gethostname())", cfg.Certnames, wantCertnames)
	}
	if cfg.SignMessages || !cfg.ValidateSignatures {
		t.Errorf("sign_messages = %v, validate_signatures = %v, want false, true", cfg.SignMessages, cfg.ValidateSignatures)
	}
	if cfg.SSLDir != "/etc/pki/fedmsg" || cfg.CACertCache != "/var/run/fedmsg/ca.crt" {
		t.Errorf("ssldir = %q, ca_cert_cache = %q (built with os.path)", cfg.SSLDir, cfg.CACertCache)
	}
	if cfg.CRLLocation == nil || *cfg.CRLLocation != "https://fedoraproject.org/fedmsg/crl.pem" {
		t.Errorf("crl_location = %v", cfg.CRLLocation)
	}
	if cfg.PostInitSleep != 0.5 || cfg.IOThreads != 1 || cfg.ZMQLinger != 1000 || cfg.ZMQTCPKeepaliveIdle != 60 {
		t.Errorf("post_init_sleep %v io_threads %v zmq_linger %v zmq_tcp_keepalive_idle %v",
			cfg.PostInitSleep, cfg.IOThreads, cfg.ZMQLinger, cfg.ZMQTCPKeepaliveIdle)
	}
	if cfg.GatewayPort != 9940 || cfg.GatewayHighWaterMark != 10000 {
		t.Errorf("gateway port %d hwm %d", cfg.GatewayPort, cfg.GatewayHighWaterMark)
	}
	if !reflect.DeepEqual(cfg.RoutingPolicy["org.fedoraproject.prod.announce.announcement"], []string{"announce-lockbox.phx2.fedoraproject.org"}) {
		t.Errorf("routing_policy = %v", cfg.RoutingPolicy)
	}
	// logging (a dictConfig) is a key gofedmsg accepts: kept whole.
	if cfg.Logging["version"] != 1 {
		t.Errorf("logging = %v", cfg.Logging)
	}
	if h, _ := cfg.Logging["handlers"].(map[string]any); h == nil || h["console"] == nil {
		t.Errorf("logging.handlers.console lost: %v", cfg.Logging)
	}

	// The other application's keys: named on stderr with their file,
	// listed in a comment, not keys of the output, values nowhere.
	for _, k := range []string{"datanommer.sqlalchemy.url", "fmn.sqlalchemy.uri"} {
		if !strings.Contains(errOut, `"`+k+`"`) || !strings.Contains(errOut, filepath.Join(dir, "datanommer.py")) {
			t.Errorf("stderr does not name %s and datanommer.py:\n%s", k, errOut)
		}
		if strings.Contains(out, "\n"+k+":") || !strings.Contains(out, "#   "+k+" (from ") {
			t.Errorf("%s should be only in the closing comment:\n%s", k, out)
		}
	}
	if n := strings.Count(errOut, "\n"); n != 2 {
		t.Errorf("stderr has %d lines, want one warning per unknown key:\n%s", n, errOut)
	}
	for _, pw := range []string{"NommerPw4711", "FmnPw4711"} {
		if strings.Contains(out+errOut, pw) {
			t.Errorf("the unknown keys' password %s was printed", pw)
		}
	}

	// Deterministic: the same files give the same bytes (no date).
	again, _, _ := runSecure(t, nil, "config", "convert", dir)
	if again != out {
		t.Errorf("a second conversion differs:\n%s\n---\n%s", out, again)
	}
}

// Files merge in the order given, later wins, dicts key by key (fedmsg's
// _recursive_update), and a non-dict replaces a dict.
func TestConfigConvertMergeOrder(t *testing.T) {
	needPython3(t)
	dir := t.TempDir()
	// What a file prints goes to stderr: stdout stays the YAML alone.
	a := writePy(t, dir, "a.py", `print("loading a.py")
config = {"topic_prefix": "org.a", "endpoints": {"x": "tcp://127.0.0.1:1", "y": ["tcp://127.0.0.1:2"]},
    "certnames": {"shell.a": "a"}, "stomp_pass": "StompPw4711", "datagrepper_url": "https://u:DgPw4711@dg.example.com/raw"}
`)
	b := writePy(t, dir, "b.py", `config = {"topic_prefix": "org.b", "endpoints": {"x": ["tcp://127.0.0.1:3"]}, "certnames": None}
`)
	out, errOut, code := runSecure(t, nil, "config", "convert", b, a) // a last: a wins
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	cfg := loadYAML(t, out)
	if !strings.Contains(errOut, "loading a.py") || strings.Contains(out, "loading a.py") {
		t.Errorf("a file's print should reach stderr only; stderr:\n%s", errOut)
	}
	if cfg.TopicPrefix != "org.a" {
		t.Errorf("topic_prefix = %q, want org.a (the last file given)", cfg.TopicPrefix)
	}
	// (gofedmsg's built-in relay_outbound default is merged in by the
	// loader, not by the converter: only x and y are compared.)
	want := map[string][]string{"x": {"tcp://127.0.0.1:1"}, "y": {"tcp://127.0.0.1:2"}}
	if got := map[string][]string{"x": cfg.Endpoints["x"], "y": cfg.Endpoints["y"]}; !reflect.DeepEqual(got, want) {
		t.Errorf("endpoints = %v, want %v", cfg.Endpoints, want)
	}
	if !reflect.DeepEqual(cfg.Certnames, map[string]string{"shell.a": "a"}) {
		t.Errorf("certnames = %v: a's dict replaces b's None", cfg.Certnames)
	}
	// The user's own secrets are written as they are, for the user's file.
	if cfg.StompPass != "StompPw4711" || cfg.DatagrepperURL != "https://u:DgPw4711@dg.example.com/raw" {
		t.Errorf("stomp_pass %q datagrepper_url %q: secrets must be written as they are", cfg.StompPass, cfg.DatagrepperURL)
	}

	out, errOut, code = runSecure(t, nil, "config", "convert", a, b) // b last
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	cfg = loadYAML(t, out)
	want = map[string][]string{"x": {"tcp://127.0.0.1:3"}, "y": {"tcp://127.0.0.1:2"}}
	if got := map[string][]string{"x": cfg.Endpoints["x"], "y": cfg.Endpoints["y"]}; cfg.TopicPrefix != "org.b" || !reflect.DeepEqual(got, want) {
		t.Errorf("topic_prefix %q endpoints %v, want org.b and %v", cfg.TopicPrefix, cfg.Endpoints, want)
	}
	if len(cfg.Certnames) != 0 {
		t.Errorf("certnames = %v, want none (b.py's None replaces a's dict)", cfg.Certnames)
	}
}

// Every failure names the file (and the key), exits 1 for bad content and
// 2 for misuse, and writes nothing on stdout.
func TestConfigConvertErrors(t *testing.T) {
	needPython3(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string
		code       int
		want       []string // in stderr, besides the file's name
		secret     string   // never in the output
	}{
		{"no config dict", "settings = {'topic_prefix': 'org.x'}\n", exitFailure, []string{"no dict named config"}, ""},
		{"config not a dict", "config = [('topic_prefix', 'org.x')]\n", exitFailure, []string{"config is a list"}, ""},
		{"syntax error", "config = dict(\n    stomp_pass='SyntaxPw4711',\n    topic_prefix='org.x'\n", exitFailure, []string{"SyntaxError"}, "SyntaxPw4711"},
		{"exception", "import os\nconfig = dict(ssldir=os.environ['NO_SUCH_VARIABLE_4711'])\n", exitFailure, []string{"KeyError", ":2:"}, ""},
		{"object value", "class Store(object):\n    pass\n\nconfig = dict(persistent_store=Store())\n", exitFailure, []string{`'persistent_store'`, "Store"}, ""},
		{"function value", "def pick():\n    return 1\n\nconfig = {'irc': [{'network': 'irc.libera.chat', 'shortener': pick}]}\n", exitFailure, []string{`'irc[0].shortener'`, "function"}, ""},
		{"not finite", "config = dict(post_init_sleep=float('nan'))\n", exitFailure, []string{`'post_init_sleep'`, "not finite"}, ""},
		{"wrong type", "config = dict(io_threads='many', endpoints={'x': 5})\n", exitFailure, []string{`"io_threads"`, "want an integer", `"endpoints.x"`}, ""},
		{"secret of the wrong type", "config = dict(stomp_pass=47114711)\n", exitFailure, []string{`"stomp_pass"`}, "47114711"},
		{"refused by validation", "config = dict(irc_method='privmsg')\n", exitFailure, []string{`"irc_method"`, "must be one of"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writePy(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".py", tc.file)
			out, errOut, code := runSecure(t, nil, "config", "convert", p)
			if code != tc.code {
				t.Errorf("exit %d, want %d: %s", code, tc.code, errOut)
			}
			if out != "" {
				t.Errorf("stdout is not empty:\n%s", out)
			}
			for _, w := range append([]string{p}, tc.want...) {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tc.secret != "" && strings.Contains(errOut, tc.secret) {
				t.Errorf("stderr shows the secret %s:\n%s", tc.secret, errOut)
			}
		})
	}

	// Misuse: exit 2, nothing on stdout.
	empty := t.TempDir()
	good := writePy(t, t.TempDir(), "good.py", "config = {}\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no argument", nil, "name at least one"},
		{"missing file", []string{filepath.Join(dir, "nope.py")}, "nope.py"},
		{"directory without .py", []string{empty}, empty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runSecure(t, nil, append([]string{"config", "convert"}, tc.args...)...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, a message with %q", code, out, errOut, tc.want)
			}
		})
	}
	t.Run("no python3", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		out, errOut, code := runSecure(t, nil, "config", "convert", good)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "python3") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 2 and a message naming python3", code, out, errOut)
		}
	})
}
