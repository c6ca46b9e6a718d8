package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// write creates dir/name with content and returns its path.
func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadFiles loads only the given files (no directories, no environment).
func loadFiles(t *testing.T, files ...string) (*Config, error) {
	t.Helper()
	return Load(Sources{Dirs: []string{}, Files: files})
}

func mustLoad(t *testing.T, src Sources) *Config {
	t.Helper()
	c, err := Load(src)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error containing %q, got nil", parts)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not wrap ErrInvalid: %v", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := Default()
	crl := "https://fedoraproject.org/fedmsg/crl.pem"
	want := map[string]any{
		"topic_prefix":                  "org.fedoraproject",
		"environment":                   "dev",
		"io_threads":                    1,
		"post_init_sleep":               0.5,
		"timeout":                       2.0,
		"print_config":                  false,
		"high_water_mark":               0,
		"zmq_linger":                    1000,
		"active":                        false,
		"name":                          "",
		"mute":                          false,
		"persistent_store":              nil,
		"logging":                       map[string]any(nil),
		"zmq_enabled":                   true,
		"zmq_strict":                    false,
		"zmq_tcp_keepalive":             1,
		"zmq_tcp_keepalive_cnt":         3,
		"zmq_tcp_keepalive_idle":        60,
		"zmq_tcp_keepalive_intvl":       5,
		"zmq_reconnect_ivl":             100,
		"zmq_reconnect_ivl_max":         1000,
		"zmq_max_msg_size":              4194304,
		"endpoints":                     map[string][]string{"relay_outbound": {"tcp://127.0.0.1:4001"}},
		"relay_inbound":                 []string{"tcp://127.0.0.1:2003"},
		"srv_endpoints":                 []string{},
		"replay_endpoints":              map[string]string{},
		"fedmsg.consumers.gateway.port": 9940,
		"fedmsg.consumers.gateway.high_water_mark": 10000,
		"sign_messages":             false,
		"validate_signatures":       false,
		"crypto_backend":            "x509",
		"crypto_validate_backends":  []string{"x509"},
		"ssldir":                    "/etc/pki/fedmsg",
		"ca_cert_location":          "https://fedoraproject.org/fedmsg/ca.crt",
		"crl_location":              crl,
		"crl_cache":                 "",
		"crl_cache_expiry":          3600,
		"ca_cert_cache":             "",
		"ca_cert_cache_expiry":      0,
		"certnames":                 map[string]string{},
		"certname":                  "",
		"cert_prefix":               "",
		"routing_policy":            map[string][]string{},
		"routing_nitpicky":          false,
		"gpg_home":                  "",
		"gpg_signing_key":           "",
		"gpg_keys":                  map[string]string{},
		"gpg_keyring":               []string(nil),
		"gpg_secret_keyring":        []string(nil),
		"stomp_uri":                 "",
		"stomp_user":                "",
		"stomp_pass":                "",
		"stomp_ssl_crt":             "",
		"stomp_ssl_key":             "",
		"stomp_ssl_ca":              "",
		"stomp_heartbeat":           0,
		"stomp_queue":               "",
		"stomp_durable_name":        "",
		"stomp_ack_mode":            "auto",
		"stomp_send_explicit_nacks": true,
		"stomp_unescape_headers":    true,
		"stomp_delay":               0.1,
		"stomp_broker":              "",
		"stomp_port":                61613,
		"stomp_vhost":               "/",
		"stomp_ssl_verify":          true,
		"amqp_broker":               "",
		"amqp_url":                  []string{},
		"amqp_exchange":             "amq.topic",
		"amqp_queue":                "",
		"amqp_prefetch":             100,
		"amqp_format":               "fedmsg",
		"amqp_ssl_ca":               "",
		"amqp_ssl_crt":              "",
		"amqp_ssl_key":              "",
		"amqp_ssl_verify":           true,
		"datagrepper_url":           "",
		"skip_last_message":         false,
		"status_directory":          "",
		"irc":                       nil,
		"irc_color_lookup": map[string]string{
			"fas": "light blue", "bodhi": "green", "git": "red", "tagger": "brown", "wiki": "purple",
			"logger": "orange", "pkgdb": "teal", "buildsys": "yellow", "planet": "light green",
		},
		"irc_default_color":             "light grey",
		"irc_method":                    "notice",
		"collectd_interval":             2,
		"explicit_hub_consumers":        []string(nil),
		"moksha.blocking_mode":          false,
		"moksha.workers_per_consumer":   1,
		"moksha.threadpool_size":        0,
		"moksha.monitoring.socket":      "",
		"moksha.monitoring.socket.mode": "",
		"zmq_publish_endpoints":         []string(nil),
		"zmq_subscribe_endpoints":       []string(nil),
		"zmq_subscribe_method":          "connect",
		"topic_prefix_re":               "",
		"metrics_addr":                  "",
		"log_format":                    "text",
		"log_level":                     "info",
		"spool_dir":                     "",
		"spool_max_bytes":               256 << 20,
		"spool_full":                    "block",
	}
	got := c.Map()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("Map() lacks %q", k)
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("default %s = %#v, want %#v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("key %q has no documented default in this test", k)
		}
	}
	if !reflect.DeepEqual(Keys(), sortedKeys(want)) {
		t.Errorf("Keys() = %v\nwant %v", Keys(), sortedKeys(want))
	}
	if c.CRL() != crl {
		t.Errorf("CRL() = %q", c.CRL())
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}

	// Loading nothing gives the defaults, with topic_prefix_re derived.
	l := mustLoad(t, Sources{Dirs: []string{}})
	d := Default()
	d.TopicPrefixRe = `org\.fedoraproject\.[^\W\d_]+`
	if !reflect.DeepEqual(l.Map(), d.Map()) {
		t.Errorf("Load of nothing:\n%#v\nwant\n%#v", l.Map(), d.Map())
	}
}

func TestEnvNamesAreUnique(t *testing.T) {
	if got, want := len(envToKey), len(fields)+len(wellKnownExtra); got != want {
		t.Fatalf("%d environment names for %d keys: two keys share a name", got, want)
	}
	for name, key := range map[string]string{
		"FEDMSG_TOPIC_PREFIX":                  "topic_prefix",
		"FEDMSG_HIGH_WATER_MARK":               "high_water_mark",
		"FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT": "fedmsg.consumers.gateway.port",
		"FEDMSG_MOKSHA_MONITORING_SOCKET_MODE": "moksha.monitoring.socket.mode",
	} {
		if envToKey[name] != key {
			t.Errorf("%s -> %q, want %q", name, envToKey[name], key)
		}
	}
}

func TestLayering(t *testing.T) {
	root := t.TempDir()
	dir1 := filepath.Join(root, "etc")
	dir2 := filepath.Join(root, "home")
	// Each layer sets topic_prefix (to see who wins) and one key of its own
	// (to see that earlier layers survive).
	write(t, dir1, "10-a.yaml", "topic_prefix: dir1-a\nenvironment: stg\n")
	write(t, dir1, "20-b.yaml", "topic_prefix: dir1-b\nname: from-dir1\n")
	write(t, dir1, "README", "not: [config\n")    // ignored: not a config extension
	write(t, dir1, "old.py", "config = dict()\n") // ignored: fedmsg's Python files
	write(t, dir2, "01.yml", "topic_prefix: dir2\nio_threads: 2\n")
	fc := write(t, root, "fc.toml", "topic_prefix = \"fedmsg-config\"\ncert_prefix = \"fc\"\n")
	f1 := write(t, root, "one.json", `{"topic_prefix": "file1", "ssldir": "/ssl"}`)
	f2 := write(t, root, "two.yaml", "topic_prefix: file2\nhigh_water_mark: 5\n")

	base := Sources{
		Dirs:  []string{dir1, dir2, filepath.Join(root, "missing")},
		Files: []string{f1, f2},
		Environ: []string{
			"HOME=/nowhere",
			"FEDMSG_CONFIG=" + fc,
			"FEDMSG_TOPIC_PREFIX=env",
			"FEDMSG_ZMQ_LINGER=7",
		},
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("topic-prefix", "", "")
	fs.Int("linger", 0, "")
	fs.Float64("post-init-sleep", 9, "")
	fs.String("unrelated", "", "")
	if err := fs.Parse([]string{"--topic-prefix=flag", "--linger=42", "--unrelated=x"}); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		src  func() Sources
		want string
	}{
		{"dir files by name", func() Sources { s := base; s.Dirs = []string{dir1}; s.Files = nil; s.Environ = nil; return s }, "dir1-b"},
		{"dirs in order", func() Sources { s := base; s.Files = nil; s.Environ = nil; return s }, "dir2"},
		{"FEDMSG_CONFIG", func() Sources { s := base; s.Files = nil; s.Environ = s.Environ[:2]; return s }, "fedmsg-config"},
		{"first --config", func() Sources { s := base; s.Files = s.Files[:1]; s.Environ = s.Environ[:2]; return s }, "file1"},
		{"--config files in order", func() Sources { s := base; s.Environ = s.Environ[:2]; return s }, "file2"},
		{"environment", func() Sources { return base }, "env"},
		{"flags", func() Sources {
			s := base
			s.Flags = fs
			s.FlagKeys = map[string]string{"linger": "zmq_linger"}
			return s
		}, "flag"},
	}
	for _, st := range steps {
		c := mustLoad(t, st.src())
		if c.TopicPrefix != st.want {
			t.Errorf("%s: topic_prefix = %q, want %q", st.name, c.TopicPrefix, st.want)
		}
	}

	// Everything together: every layer's own key survived.
	s := base
	s.Flags = fs
	s.FlagKeys = map[string]string{"linger": "zmq_linger"}
	c := mustLoad(t, s)
	if c.Environment != "stg" || c.Name != "from-dir1" || c.IOThreads != 2 || c.CertPrefix != "fc" ||
		c.SSLDir != "/ssl" || c.HighWaterMark != 5 {
		t.Errorf("a layer was lost: %+v", c)
	}
	if c.ZMQLinger != 42 {
		t.Errorf("zmq_linger = %d, want 42 (flag beats FEDMSG_ZMQ_LINGER=7)", c.ZMQLinger)
	}
	if c.PostInitSleep != 0.5 {
		t.Errorf("an unchanged flag was applied: post_init_sleep = %v", c.PostInitSleep)
	}
	if c.TopicPrefixRe != `flag\.[^\W\d_]+` {
		t.Errorf("topic_prefix_re = %q", c.TopicPrefixRe)
	}
}

func TestFlags(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.Int("high-water-mark", 0, "")
	fs.Bool("print-config", false, "")
	fs.String("timeout", "", "")                 // a string flag for a float key: parsed
	fs.StringSlice("relay-inbound", nil, "")     // a slice flag for a list key
	fs.String("config-filename", "", "")         // not a key: ignored
	fs.Bool("relay", false, "")                  // mapped to an Extra key
	fs.String("io-threads", "", "")              // mapped to "": ignored
	fs.Int("collectd-interval", 2, "")           // unchanged: not applied
	fs.Float64("post-init-sleep", 0, "")         // float flag
	fs.Duration("stomp-delay", 0, "")            // duration flag for a seconds key
	fs.String("crl-location", "", "")            // string key, kept as text
	fs.StringToString("certnames", nil, "")      // map flag
	fs.Bool("moksha-blocking-mode", false, "")   // mapped to a dotted key
	fs.String("zmq-subscribe-endpoints", "", "") // comma list
	args := []string{
		"--high-water-mark=3", "--print-config", "--timeout=1.5", "--relay-inbound=tcp://a:1,tcp://b:2",
		"--config-filename=x", "--relay", "--io-threads=junk", "--post-init-sleep=0.25", "--stomp-delay=2s",
		"--crl-location=", "--certnames=shell.host=shell-host", "--moksha-blocking-mode",
		"--zmq-subscribe-endpoints=tcp://x:1, tcp://y:2",
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, Sources{Dirs: []string{}, Flags: fs, FlagKeys: map[string]string{
		"relay":                "fedmsg.consumers.relay.enabled",
		"io-threads":           "",
		"moksha-blocking-mode": "moksha.blocking_mode",
	}})
	if c.HighWaterMark != 3 || !c.PrintConfig || c.Timeout != 1.5 || c.PostInitSleep != 0.25 || c.StompDelay != 2 {
		t.Errorf("scalar flags: %+v", c)
	}
	if !reflect.DeepEqual(c.RelayInbound, []string{"tcp://a:1", "tcp://b:2"}) {
		t.Errorf("relay_inbound = %q", c.RelayInbound)
	}
	if c.Extra["fedmsg.consumers.relay.enabled"] != true {
		t.Errorf("Extra = %v", c.Extra)
	}
	if c.IOThreads != 1 || c.CollectdInterval != 2 {
		t.Errorf("ignored flags were applied: io_threads=%d collectd_interval=%d", c.IOThreads, c.CollectdInterval)
	}
	if c.CRL() != "" || c.CRLLocation == nil {
		t.Errorf("crl_location = %v", c.CRLLocation)
	}
	if c.Certnames["shell.host"] != "shell-host" || !c.MokshaBlockingMode {
		t.Errorf("certnames = %v, moksha.blocking_mode = %v", c.Certnames, c.MokshaBlockingMode)
	}
	if !reflect.DeepEqual(c.ZMQSubscribeEndpoints, []string{"tcp://x:1", "tcp://y:2"}) {
		t.Errorf("zmq_subscribe_endpoints = %q", c.ZMQSubscribeEndpoints)
	}

	// A flag value of the wrong type names the flag and the key.
	fs2 := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs2.String("io-threads", "", "")
	fs2.String("linger", "", "")
	if err := fs2.Parse([]string{"--io-threads=many", "--linger=1"}); err != nil {
		t.Fatal(err)
	}
	_, err := Load(Sources{Dirs: []string{}, Flags: fs2})
	wantErr(t, err, `flag --io-threads: key "io_threads": want an integer, got string "many"`)
	_, err = Load(Sources{Dirs: []string{}, Flags: fs2, FlagKeys: map[string]string{"linger": "zmq_lingr", "io-threads": ""}})
	wantErr(t, err, `flag --linger: unknown key "zmq_lingr"`, `did you mean "zmq_linger"`)
}

func TestMergeEndpointsAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", `
endpoints:
  bodhi.app01: tcp://app01:3000
  bodhi.app02: [tcp://app02:3000, tcp://app02:3001]
`)
	write(t, dir, "b.yaml", `
endpoints:
  bodhi.app02: tcp://app02:4000
  koji.builder: [tcp://koji:3000]
certnames:
  shell.app01: shell-app01
`)
	write(t, dir, "c.toml", `
[certnames]
"bodhi.app01" = "bodhi-app01"
`)
	c := mustLoad(t, Sources{Dirs: []string{dir}})
	want := map[string][]string{
		"relay_outbound": {"tcp://127.0.0.1:4001"}, // the default survives too
		"bodhi.app01":    {"tcp://app01:3000"},
		"bodhi.app02":    {"tcp://app02:4000"},
		"koji.builder":   {"tcp://koji:3000"},
	}
	if !reflect.DeepEqual(c.Endpoints, want) {
		t.Errorf("endpoints = %v\nwant %v", c.Endpoints, want)
	}
	if !reflect.DeepEqual(c.Certnames, map[string]string{"shell.app01": "shell-app01", "bodhi.app01": "bodhi-app01"}) {
		t.Errorf("certnames = %v", c.Certnames)
	}

	// An explicit null clears the map, and a later file can add again.
	write(t, dir, "d.yaml", "endpoints: null\n")
	write(t, dir, "e.yaml", "endpoints: {only: tcp://only:1}\n")
	c = mustLoad(t, Sources{Dirs: []string{dir}})
	if !reflect.DeepEqual(c.Endpoints, map[string][]string{"only": {"tcp://only:1"}}) {
		t.Errorf("endpoints after null = %v", c.Endpoints)
	}
}

func TestStringOrList(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "a.yaml", `
relay_inbound: tcp://127.0.0.1:9999
srv_endpoints: example.com
crypto_validate_backends: [x509, gpg]
explicit_hub_consumers: fedmsg.consumers.relay:RelayConsumer
amqp_url: amqp://u:p@broker/vhost
zmq_publish_endpoints: "tcp://*:1,tcp://*:2"
endpoints:
  one: tcp://one:1
  two: [tcp://two:1, tcp://two:2]
  none: []
routing_policy:
  org.fedoraproject.prod.announce.announcement: announce-lockbox.phx2.fedoraproject.org
`)
	c := mustLoad(t, Sources{Dirs: []string{}, Files: []string{f}})
	if !reflect.DeepEqual(c.RelayInbound, []string{"tcp://127.0.0.1:9999"}) {
		t.Errorf("relay_inbound = %q", c.RelayInbound)
	}
	if !reflect.DeepEqual(c.SRVEndpoints, []string{"example.com"}) {
		t.Errorf("srv_endpoints = %q", c.SRVEndpoints)
	}
	if !reflect.DeepEqual(c.CryptoValidateBackends, []string{"x509", "gpg"}) {
		t.Errorf("crypto_validate_backends = %q", c.CryptoValidateBackends)
	}
	if !reflect.DeepEqual(c.ExplicitHubConsumers, []string{"fedmsg.consumers.relay:RelayConsumer"}) {
		t.Errorf("explicit_hub_consumers = %q", c.ExplicitHubConsumers)
	}
	if !reflect.DeepEqual(c.AMQPURL, []string{"amqp://u:p@broker/vhost"}) {
		t.Errorf("amqp_url = %q", c.AMQPURL)
	}
	if !reflect.DeepEqual(c.ZMQPublishEndpoints, []string{"tcp://*:1", "tcp://*:2"}) {
		t.Errorf("zmq_publish_endpoints = %q", c.ZMQPublishEndpoints)
	}
	want := map[string][]string{
		"relay_outbound": {"tcp://127.0.0.1:4001"},
		"one":            {"tcp://one:1"},
		"two":            {"tcp://two:1", "tcp://two:2"},
		"none":           {},
	}
	if !reflect.DeepEqual(c.Endpoints, want) {
		t.Errorf("endpoints = %v", c.Endpoints)
	}
	if got := c.RoutingPolicy["org.fedoraproject.prod.announce.announcement"]; !reflect.DeepEqual(got, []string{"announce-lockbox.phx2.fedoraproject.org"}) {
		t.Errorf("routing_policy = %v", c.RoutingPolicy)
	}

	// A list in relay_inbound; an endpoint value of the wrong type names
	// the endpoint.
	f2 := write(t, dir, "b.yaml", "relay_inbound: [tcp://a:1, tcp://b:2]\n")
	c = mustLoad(t, Sources{Dirs: []string{}, Files: []string{f2}})
	if !reflect.DeepEqual(c.RelayInbound, []string{"tcp://a:1", "tcp://b:2"}) {
		t.Errorf("relay_inbound = %q", c.RelayInbound)
	}
	bad := write(t, dir, "c.yaml", "endpoints:\n  bodhi.app01: 42\n  ok: [tcp://x:1, 5]\n")
	_, err := loadFiles(t, bad)
	wantErr(t, err, bad, `key "endpoints.bodhi.app01": want a string or a list of strings, got integer 42`, `key "endpoints.ok"`)
	bad2 := write(t, dir, "d.yaml", "relay_inbound: {a: b}\n")
	_, err = loadFiles(t, bad2)
	wantErr(t, err, bad2, `key "relay_inbound": want a string or a list of strings, got map`)
}

func TestFormats(t *testing.T) {
	dir := t.TempDir()
	yml := write(t, dir, "c.yaml", `
topic_prefix: org.example
io_threads: 3
post_init_sleep: 1
validate_signatures: "True"
crl_location: null
endpoints: {svc.host: "tcp://svc:1"}
logging:
  version: 1
  loggers: {fedmsg: {level: INFO}}
irc:
  - network: irc.libera.chat
    port: 6667
    filters: {topic: [], body: [lub-dub]}
`)
	tml := write(t, dir, "c.toml", `
topic_prefix = "org.example"
io_threads = 3
post_init_sleep = 1
validate_signatures = "true"
crl_location = ""
fedmsg.consumers.gateway.port = 9999
"moksha.monitoring.socket" = "ipc:///tmp/mon"
[endpoints]
svc.host = "tcp://svc:1"
[logging]
version = 1
[logging.loggers.fedmsg]
level = "INFO"
[[irc]]
network = "irc.libera.chat"
port = 6667
`)
	jsn := write(t, dir, "c.json", `{
  "topic_prefix": "org.example",
  "io_threads": 3,
  "post_init_sleep": 1,
  "validate_signatures": true,
  "crl_location": null,
  "fedmsg.consumers.gateway.port": 9999,
  "endpoints": {"svc.host": ["tcp://svc:1"]},
  "logging": {"version": 1, "loggers": {"fedmsg": {"level": "INFO"}}},
  "irc": [{"network": "irc.libera.chat", "port": 6667}]
}`)
	for _, f := range []string{yml, tml, jsn} {
		c, err := loadFiles(t, f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if c.TopicPrefix != "org.example" || c.IOThreads != 3 || c.PostInitSleep != 1 || !c.ValidateSignatures {
			t.Errorf("%s: scalars: %+v", f, c)
		}
		if c.CRL() != "" {
			t.Errorf("%s: crl_location = %q, want none", f, c.CRL())
		}
		if got := c.Endpoints["svc.host"]; !reflect.DeepEqual(got, []string{"tcp://svc:1"}) {
			t.Errorf("%s: endpoints = %v", f, c.Endpoints)
		}
		if v, ok := c.Lookup("logging.loggers.fedmsg.level"); !ok || v != "INFO" {
			t.Errorf("%s: logging = %#v", f, c.Logging)
		}
		if v, ok := c.Lookup("irc.0.network"); !ok || v != "irc.libera.chat" {
			t.Errorf("%s: irc = %#v", f, c.IRC)
		}
		if filepath.Ext(f) != ".yaml" && c.GatewayPort != 9999 {
			t.Errorf("%s: gateway port = %d", f, c.GatewayPort)
		}
	}
	// Explicit null keeps "no CRL" apart from an absent key.
	c, _ := loadFiles(t, yml)
	if c.CRLLocation != nil {
		t.Errorf("crl_location null -> %v, want nil", *c.CRLLocation)
	}
	if v, ok := c.Lookup("crl_location"); !ok || v != nil {
		t.Errorf("Lookup(crl_location) = %v, %v", v, ok)
	}
}

func TestFlatAndNestedDottedKeys(t *testing.T) {
	dir := t.TempDir()
	flat := write(t, dir, "flat.yaml", `
fedmsg.consumers.gateway.port: 9941
fedmsg.consumers.gateway.high_water_mark: 5
moksha.monitoring.socket: ipc:///var/run/fedmsg/monitoring-fedmsg-hub.socket
moksha.monitoring.socket.mode: "770"
moksha.workers_per_consumer: 4
fedmsg.consumers.relay.enabled: true
fedmsg.commands.collectd.enabled: "False"
moksha.livesocket.websocket.port: 9919
`)
	nested := write(t, dir, "nested.yaml", `
fedmsg:
  consumers:
    gateway: {port: 9941, high_water_mark: 5}
    relay: {enabled: true}
  commands:
    collectd: {enabled: "False"}
moksha:
  monitoring:
    socket: ipc:///var/run/fedmsg/monitoring-fedmsg-hub.socket
  workers_per_consumer: 4
  livesocket:
    websocket: {port: 9919}
moksha.monitoring.socket.mode: "770"
`)
	var maps []map[string]any
	for _, f := range []string{flat, nested} {
		c, err := loadFiles(t, f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.GatewayPort != 9941 || c.GatewayHighWaterMark != 5 || c.MokshaWorkersPerConsumer != 4 ||
			c.MokshaMonitoringSocket != "ipc:///var/run/fedmsg/monitoring-fedmsg-hub.socket" ||
			c.MokshaMonitoringSocketMode != "770" {
			t.Errorf("%s: %+v", f, c)
		}
		wantExtra := map[string]any{
			"fedmsg.consumers.relay.enabled":   true,
			"fedmsg.commands.collectd.enabled": false,
			"moksha.livesocket.websocket.port": 9919,
		}
		if !reflect.DeepEqual(c.Extra, wantExtra) {
			t.Errorf("%s: Extra = %#v", f, c.Extra)
		}
		maps = append(maps, c.Map())
	}
	if !reflect.DeepEqual(maps[0], maps[1]) {
		t.Errorf("flat and nested differ:\n%v\n%v", maps[0], maps[1])
	}
}

func TestUnknownKey(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "f.yaml", "topic_prefx: org.example\n")
	_, err := loadFiles(t, f)
	wantErr(t, err, "config: "+f+`: unknown key "topic_prefx"`, `did you mean "topic_prefix"`)

	g := write(t, dir, "g.yaml", "fedmsg:\n  consumers:\n    gateway:\n      prot: 1\ncompletely_unrelated_thing: 1\n")
	_, err = loadFiles(t, g)
	wantErr(t, err, g, `unknown key "fedmsg.consumers.gateway.prot"`, `did you mean "fedmsg.consumers.gateway.port"`,
		`unknown key "completely_unrelated_thing"`)
	if strings.Contains(err.Error(), "completely_unrelated_thing\" (did") {
		t.Errorf("suggested something for an unrelated key: %v", err)
	}

	// A typo'd map key is reported as itself, not by its contents.
	h := write(t, dir, "h.yaml", "endpoint:\n  a: tcp://a:1\n")
	_, err = loadFiles(t, h)
	wantErr(t, err, `unknown key "endpoint"`, `did you mean "endpoints"`)

	// The file at fault is named even when other files are fine.
	okDir := filepath.Join(dir, "d")
	write(t, okDir, "00-ok.yaml", "topic_prefix: ok\n")
	bad := write(t, okDir, "10-bad.yaml", "stomp_usr: me\n")
	_, err = Load(Sources{Dirs: []string{okDir}})
	wantErr(t, err, bad+`: unknown key "stomp_usr"`)
	if strings.Contains(err.Error(), "00-ok.yaml") {
		t.Errorf("error names the good file: %v", err)
	}
}

func TestWrongType(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "f.yaml", "high_water_mark: lots\n")
	_, err := loadFiles(t, f)
	wantErr(t, err, "config: "+f+`: key "high_water_mark": want an integer, got string "lots"`)

	cases := []struct{ body, want string }{
		{"topic_prefix: 5\n", `key "topic_prefix": want a string, got integer 5`},
		{"io_threads: 1.5\n", `key "io_threads": want an integer, got float 1.5`},
		{"io_threads: true\n", `key "io_threads": want an integer, got boolean true`},
		{"post_init_sleep: soon\n", `key "post_init_sleep": want a number, got string "soon"`},
		{"post_init_sleep: .nan\n", `key "post_init_sleep": want a number`},
		{"mute: yes\n", `key "mute": want a boolean, got string "yes"`},
		{"mute: 1\n", `key "mute": want a boolean, got integer 1`},
		{"endpoints: [a]\n", `key "endpoints": want a map, got list`},
		{"certnames: {a: 1}\n", `key "certnames.a": want a string, got integer 1`},
		{"logging: 3\n", `key "logging": want a map, got integer 3`},
		{"fedmsg.consumers.relay.enabled: maybe\n", `key "fedmsg.consumers.relay.enabled": want a boolean, got string "maybe"`},
		{"crl_location: 1\n", `key "crl_location": want a string or null, got integer 1`},
		{"io_threads: null\n", `key "io_threads": want an integer, got null`},
	}
	for i, tc := range cases {
		p := write(t, dir, "c"+string(rune('a'+i))+".yaml", tc.body)
		_, err := loadFiles(t, p)
		wantErr(t, err, p, tc.want)
	}

	// Strings true/false (any case, trimmed) are booleans; integral JSON
	// numbers are integers.
	ok := write(t, dir, "ok.json", `{"mute": " TRUE ", "zmq_strict": "false", "io_threads": 4.0, "timeout": 3}`)
	c, err := loadFiles(t, ok)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Mute || c.ZMQStrict || c.IOThreads != 4 || c.Timeout != 3 {
		t.Errorf("%+v", c)
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	_, err := loadFiles(t, missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	_, err = loadFiles(t, dir)
	wantErr(t, err, dir, "not a regular file")

	for name, body := range map[string]string{
		"bad.yaml": "a: [1\n",
		"bad.toml": "a = \n",
		"bad.json": "{",
		"seq.yaml": "- a\n- b\n",
		"dup.yaml": "a: 1\na: 2\n",
	} {
		p := write(t, dir, name, body)
		_, err := loadFiles(t, p)
		wantErr(t, err, "config: "+p+": cannot parse")
	}
	py := write(t, dir, "x.py", "config = {}\n")
	_, err = loadFiles(t, py)
	wantErr(t, err, py, "unsupported file type")

	// A directory in Dirs that is a file.
	_, err = Load(Sources{Dirs: []string{py}})
	if err == nil || !strings.Contains(err.Error(), py) {
		t.Errorf("Dirs entry that is a file: %v", err)
	}

	// Empty files are fine.
	e1 := write(t, dir, "empty.yaml", "")
	e2 := write(t, dir, "empty.toml", "")
	if _, err := loadFiles(t, e1, e2); err != nil {
		t.Errorf("empty files: %v", err)
	}
}

func TestEnvironment(t *testing.T) {
	env := []string{
		"FEDMSG_TOPIC_PREFIX=org.example",
		"FEDMSG_HIGH_WATER_MARK=12",
		"FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT=9999",
		"FEDMSG_RELAY_INBOUND=tcp://10.0.0.1:2003",
		"FEDMSG_SRV_ENDPOINTS=[a.example, b.example]",
		"FEDMSG_ENDPOINTS={bodhi.app01: tcp://x:1, koji: [tcp://k:1, tcp://k:2]}",
		"FEDMSG_VALIDATE_SIGNATURES=True",
		"FEDMSG_STOMP_PASS=123",   // string key: kept as text
		"FEDMSG_NAME=[not, list]", // string key: kept as text
		"FEDMSG_CRL_LOCATION=",
		"FEDMSG_FEDMSG_CONSUMERS_RELAY_ENABLED=true",
		"FEDMSG_POST_INIT_SLEEP=0",
		"FEDMSG_POST_INIT_SLEEP=1.5", // last wins
		"OTHER=1",
	}
	c := mustLoad(t, Sources{Dirs: []string{}, Environ: env})
	if c.TopicPrefix != "org.example" || c.HighWaterMark != 12 || c.GatewayPort != 9999 ||
		!c.ValidateSignatures || c.StompPass != "123" || c.Name != "[not, list]" || c.PostInitSleep != 1.5 {
		t.Errorf("%+v", c)
	}
	if !reflect.DeepEqual(c.RelayInbound, []string{"tcp://10.0.0.1:2003"}) ||
		!reflect.DeepEqual(c.SRVEndpoints, []string{"a.example", "b.example"}) {
		t.Errorf("relay_inbound %q srv_endpoints %q", c.RelayInbound, c.SRVEndpoints)
	}
	want := map[string][]string{
		"relay_outbound": {"tcp://127.0.0.1:4001"},
		"bodhi.app01":    {"tcp://x:1"},
		"koji":           {"tcp://k:1", "tcp://k:2"},
	}
	if !reflect.DeepEqual(c.Endpoints, want) {
		t.Errorf("endpoints = %v", c.Endpoints)
	}
	if c.CRL() != "" || c.Extra["fedmsg.consumers.relay.enabled"] != true {
		t.Errorf("crl %q extra %v", c.CRL(), c.Extra)
	}

	_, err := Load(Sources{Dirs: []string{}, Environ: []string{"FEDMSG_TOPIC_PREFX=x", "FEDMSG_CONFIG="}})
	wantErr(t, err, "FEDMSG_TOPIC_PREFX", "FEDMSG_TOPIC_PREFIX")
	_, err = Load(Sources{Dirs: []string{}, Environ: []string{"FEDMSG_=x"}})
	wantErr(t, err, "environment variable FEDMSG_:")
	_, err = Load(Sources{Dirs: []string{}, Environ: []string{"FEDMSG_IO_THREADS=lots"}})
	wantErr(t, err, `environment variable FEDMSG_IO_THREADS: key "io_threads": want an integer, got string "lots"`)
	_, err = Load(Sources{Dirs: []string{}, Environ: []string{"FEDMSG_ENDPOINTS={a: [b"}})
	wantErr(t, err, "FEDMSG_ENDPOINTS", "cannot parse")
}

func TestFedmsgConfig(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "conf.d")
	write(t, d, "a.yaml", "topic_prefix: from-dir\nname: a\n")
	write(t, d, "b.json", `{"topic_prefix": "from-dir-b"}`)
	f := write(t, root, "single.yml", "topic_prefix: from-file\n")

	c := mustLoad(t, Sources{Dirs: []string{}, Environ: []string{"FEDMSG_CONFIG=" + d}})
	if c.TopicPrefix != "from-dir-b" || c.Name != "a" {
		t.Errorf("dir: %q %q", c.TopicPrefix, c.Name)
	}
	c = mustLoad(t, Sources{Dirs: []string{}, Environ: []string{"FEDMSG_CONFIG=" + f}})
	if c.TopicPrefix != "from-file" {
		t.Errorf("file: %q", c.TopicPrefix)
	}
	missing := filepath.Join(root, "missing")
	_, err := Load(Sources{Dirs: []string{}, Environ: []string{"FEDMSG_CONFIG=" + missing}})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing FEDMSG_CONFIG: %v", err)
	}
	// Nil Environ: no environment at all, even if the process has one.
	t.Setenv("FEDMSG_TOPIC_PREFIX", "process")
	c = mustLoad(t, Sources{Dirs: []string{}})
	if c.TopicPrefix != "org.fedoraproject" {
		t.Errorf("process environment leaked: %q", c.TopicPrefix)
	}
}

func TestRedacted(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "s.yaml", `
stomp_user: me
stomp_pass: hunter2
amqp_url: ["amqps://user:s3cr3t@broker.example:5671/%2F", "amqp://anon@broker2/"]
datagrepper_url: https://apps.example/datagrepper
endpoints:
  weird: tcp://u:pw@host:1
irc:
  - network: irc.example
    password: ircpass
    nickserv_password: ""
logging: {handlers: {mail: {smtp_secret: xyz, host: "smtp://a:b@c"}}}
`)
	c, err := loadFiles(t, f)
	if err != nil {
		t.Fatal(err)
	}
	m, r := c.Map(), c.Redacted()
	if m["stomp_pass"] != "hunter2" || r["stomp_pass"] != "<redacted>" {
		t.Errorf("stomp_pass: map %v redacted %v", m["stomp_pass"], r["stomp_pass"])
	}
	if r["stomp_user"] != "me" {
		t.Errorf("stomp_user redacted: %v", r["stomp_user"])
	}
	wantURLs := []string{"amqps://user:<redacted>@broker.example:5671/%2F", "amqp://anon@broker2/"}
	if !reflect.DeepEqual(r["amqp_url"], wantURLs) {
		t.Errorf("amqp_url redacted = %v", r["amqp_url"])
	}
	if !reflect.DeepEqual(m["amqp_url"], []string{"amqps://user:s3cr3t@broker.example:5671/%2F", "amqp://anon@broker2/"}) {
		t.Errorf("Map redacted amqp_url: %v", m["amqp_url"])
	}
	if got := r["endpoints"].(map[string][]string)["weird"]; !reflect.DeepEqual(got, []string{"tcp://u:<redacted>@host:1"}) {
		t.Errorf("endpoint redacted = %v", got)
	}
	if v, _ := index(r, "irc.0.password", 0); v != "<redacted>" {
		t.Errorf("irc password = %v", v)
	}
	if v, _ := index(r, "irc.0.nickserv_password", 0); v != "" {
		t.Errorf("empty irc password = %v", v)
	}
	if v, _ := index(r, "logging.handlers.mail.smtp_secret", 0); v != "<redacted>" {
		t.Errorf("smtp_secret = %v", v)
	}
	if v, _ := index(r, "logging.handlers.mail.host", 0); v != "smtp://a:<redacted>@c" {
		t.Errorf("host = %v", v)
	}
	if v, _ := index(m, "irc.0.password", 0); v != "ircpass" {
		t.Errorf("Map changed irc password: %v", v)
	}
	if r["datagrepper_url"] != "https://apps.example/datagrepper" {
		t.Errorf("datagrepper_url = %v", r["datagrepper_url"])
	}
	for in, want := range map[string]string{
		"amqp://u:p@ss@host/v":          "amqp://u:<redacted>@host/v",
		"amqp://:pw@host":               "amqp://:<redacted>@host",
		"amqp://a:1@h1,amqp://b:2@h2":   "amqp://a:<redacted>@h1,amqp://b:<redacted>@h2",
		"tcp://127.0.0.1:4001":          "tcp://127.0.0.1:4001",
		"user@example.com":              "user@example.com",
		"https://host/path?x=a:b@c.com": "https://host/path?x=a:b@c.com",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
	// Redacted must not change the config.
	if c.StompPass != "hunter2" || c.AMQPURL[0] != "amqps://user:s3cr3t@broker.example:5671/%2F" {
		t.Errorf("Redacted modified the config")
	}
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "l.yaml", `
endpoints:
  bodhi.app01: [tcp://app01:3000, tcp://app01:3001]
fedmsg.consumers.gateway.port: 9000
moksha.monitoring.socket: ipc:///m
moksha.monitoring.socket.mode: "770"
fedmsg.consumers.relay.enabled: true
`)
	c, err := loadFiles(t, f)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		key  string
		want any
	}{
		{"topic_prefix", "org.fedoraproject"},
		{"endpoints.relay_outbound", []string{"tcp://127.0.0.1:4001"}},
		{"endpoints.bodhi.app01", []string{"tcp://app01:3000", "tcp://app01:3001"}},
		{"endpoints.bodhi.app01.1", "tcp://app01:3001"},
		{"fedmsg.consumers.gateway.port", 9000},
		{"moksha.monitoring.socket", "ipc:///m"},
		{"moksha.monitoring.socket.mode", "770"},
		{"fedmsg.consumers.relay.enabled", true},
		{"irc_color_lookup.bodhi", "green"},
	}
	for _, tc := range cases {
		got, ok := c.Lookup(tc.key)
		if !ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Lookup(%q) = %#v, %v; want %#v", tc.key, got, ok, tc.want)
		}
	}
	for _, key := range []string{"nope", "endpoints.nope", "topic_prefix.x", "endpoints.bodhi.app01.7", "endpoints.", ""} {
		if v, ok := c.Lookup(key); ok {
			t.Errorf("Lookup(%q) = %v, true", key, v)
		}
	}
}

func TestValidate(t *testing.T) {
	c := Default()
	c.IOThreads = 0
	c.HighWaterMark = -1
	c.PostInitSleep = -0.5
	c.ZMQMaxMsgSize = 0
	c.CryptoBackend = "rsa"
	c.CryptoValidateBackends = []string{"x509", "pgp"}
	c.Endpoints = map[string][]string{"a": {""}, "b": {"http://x"}, "c": {"tcp://ok:1", "nocolon"}}
	c.RelayInbound = []string{"tcp://"}
	c.StompAckMode = "manual"
	c.LogFormat = "xml"
	c.LogLevel = "trace"
	c.StompSSLKey = "/k.pem"
	c.AMQPURL = []string{"http://u:pw@x"}
	c.TopicPrefixRe = "("
	err := c.Validate()
	wantErr(t, err,
		`"io_threads": must be >= 1`,
		`"high_water_mark": must be >= 0`,
		`"post_init_sleep"`,
		`"zmq_max_msg_size"`,
		`"crypto_backend": must be one of x509, gpg, got "rsa"`,
		`"crypto_validate_backends[1]"`,
		`"endpoints.a[0]": endpoint URL must not be empty`,
		`"endpoints.b[0]"`,
		`"endpoints.c[1]"`,
		`"relay_inbound[0]"`,
		`"stomp_ack_mode"`,
		`"log_format"`,
		`"log_level"`,
		`"stomp_ssl_crt": must be set when stomp_ssl_key is set`,
		`"amqp_url[0]"`,
		`"topic_prefix_re"`,
	)
	if strings.Contains(err.Error(), "pw") {
		t.Errorf("validation error leaks a password: %v", err)
	}
	if strings.Contains(err.Error(), `"endpoints.c[0]"`) {
		t.Errorf("valid endpoint reported: %v", err)
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 16 {
		t.Errorf("%d errors, want 16:\n%v", n, err)
	}

	for _, ok := range []string{"tcp://*:4001", "ipc:///var/run/x.sock", "inproc://x", "epgm://eth0;239.192.1.1:5555", "pgm://x"} {
		c := Default()
		c.Endpoints["x"] = []string{ok}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}

	// Load validates.
	f := write(t, t.TempDir(), "v.yaml", "io_threads: 0\nlog_level: loud\n")
	_, err = loadFiles(t, f)
	wantErr(t, err, `"io_threads"`, `"log_level"`)
}

func TestAMQPFormat(t *testing.T) {
	c, err := loadFiles(t, write(t, t.TempDir(), "c.yaml", "amqp_format: fedora-messaging\n"))
	if err != nil {
		t.Fatalf("amqp_format from a file: %v", err)
	}
	if c.AMQPFormat != "fedora-messaging" {
		t.Errorf("amqp_format from a file: %q", c.AMQPFormat)
	}
	_, err = loadFiles(t, write(t, t.TempDir(), "c.yaml", "amqp_format: stomp\n"))
	if err == nil || !strings.Contains(err.Error(), "amqp_format") {
		t.Errorf("bad amqp_format from a file: %v", err)
	}
	for _, ok := range []string{"fedmsg", "fedora-messaging"} {
		c := Default()
		c.AMQPFormat = ok
		if err := c.Validate(); err != nil {
			t.Errorf("amqp_format %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "fedora_messaging", "FEDMSG", "json"} {
		c := Default()
		c.AMQPFormat = bad
		err := c.Validate()
		if err == nil {
			t.Errorf("amqp_format %q accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), `"amqp_format": must be one of fedmsg, fedora-messaging`) {
			t.Errorf("amqp_format %q: error does not name the key and values: %v", bad, err)
		}
	}
}

func TestDefaultDirs(t *testing.T) {
	d := DefaultDirs()
	if d[0] != "/etc/fedmsg.d" || d[len(d)-1] != "./fedmsg.d" {
		t.Errorf("DefaultDirs() = %v", d)
	}
	if home, err := os.UserHomeDir(); err == nil && !slices.Contains(d, filepath.Join(home, ".fedmsg.d")) {
		t.Errorf("DefaultDirs() = %v lacks ~/.fedmsg.d", d)
	}
}

func TestMapIsACopy(t *testing.T) {
	c := Default()
	m := c.Map()
	m["endpoints"].(map[string][]string)["relay_outbound"][0] = "changed"
	m["relay_inbound"].([]string)[0] = "changed"
	if c.Endpoints["relay_outbound"][0] != "tcp://127.0.0.1:4001" || c.RelayInbound[0] != "tcp://127.0.0.1:2003" {
		t.Error("Map shares memory with the config")
	}
}

func TestGatewayKeys(t *testing.T) {
	// fedmsg's defaults (spec §12): port 9940, and the shipped
	// high_water_mark of 10000.
	c := Default()
	if c.GatewayPort != 9940 || c.GatewayHighWaterMark != 10000 {
		t.Errorf("gateway defaults = port %d, hwm %d; want 9940, 10000", c.GatewayPort, c.GatewayHighWaterMark)
	}

	c = mustLoad(t, Sources{Dirs: []string{}, Environ: []string{
		"FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT=9941",
		"FEDMSG_FEDMSG_CONSUMERS_GATEWAY_HIGH_WATER_MARK=7",
	}})
	if c.GatewayPort != 9941 || c.GatewayHighWaterMark != 7 {
		t.Errorf("from the environment: port %d, hwm %d; want 9941, 7", c.GatewayPort, c.GatewayHighWaterMark)
	}

	for _, tc := range []struct{ text, want string }{
		{"fedmsg.consumers.gateway.port: 0\n", `"fedmsg.consumers.gateway.port": must be a port number (1-65535), got 0`},
		{"fedmsg.consumers.gateway.port: 70000\n", `"fedmsg.consumers.gateway.port": must be a port number (1-65535), got 70000`},
		{"fedmsg.consumers.gateway.high_water_mark: -1\n", `"fedmsg.consumers.gateway.high_water_mark": must be >= 0`},
	} {
		_, err := loadFiles(t, write(t, t.TempDir(), "g.yaml", tc.text))
		wantErr(t, err, tc.want)
	}
	_, err := loadFiles(t, write(t, t.TempDir(), "g.yaml", "fedmsg.consumers.gateway.port: nine\n"))
	if err == nil || !strings.Contains(err.Error(), "fedmsg.consumers.gateway.port") {
		t.Errorf("a port that is not a number: %v, want an error naming the key", err)
	}
}
