package cmd

// What every daemon shares for running in production: the shutdown bound,
// SIGHUP reloads, the log level that a reload can change, and the scrubber
// that keeps secrets out of everything written to stderr.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/sdnotify"
	"github.com/gofedmsg/fedmsg/transport"
)

// drainTimeout is how long a daemon lets in-flight messages finish after
// SIGTERM or SIGINT (the bridge's confirmations, the hub's handlers)
// before it hands what is left back to the broker.
const drainTimeout = 10 * time.Second

// shutdownBound is the most a daemon takes to exit after SIGTERM or
// SIGINT: the drain, then closing the transports (each bounded by
// drainTimeout too), with a margin. Past it the process exits 1 on its
// own, so a stuck broker never makes systemd resort to SIGKILL (the units
// set TimeoutStopSec above this).
const shutdownBound = 30 * time.Second

// watchShutdown ends the process with exitFailure when it is still alive
// shutdownBound after ctx (the signal context) ended. It also calls
// release then, which gives SIGTERM and SIGINT back their default action:
// an operator's second signal ends a drain at once. The returned func
// disarms it.
func watchShutdown(ctx context.Context, release func(), stderr io.Writer) (disarm func()) {
	var mu sync.Mutex
	var timer *time.Timer
	disarmed := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if disarmed {
			return
		}
		release()
		timer = time.AfterFunc(shutdownBound, func() {
			fmt.Fprintf(stderr, "fedmsg: did not stop within %v of the signal: exiting\n", shutdownBound)
			os.Exit(exitFailure)
		})
	})
	return func() {
		stop()
		mu.Lock()
		defer mu.Unlock()
		disarmed = true
		if timer != nil {
			timer.Stop()
		}
	}
}

// ---- log level ----

// levels remembers the level of each logger newLogger built, so that a
// reload can change it in place (every logger derived with With shares it).
var levels sync.Map // *slog.Logger -> *slog.LevelVar

// parseLevel reads log_level; "" is info.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("log_level %q: want debug, info, warn or error", s)
}

// setLevel changes the level of a logger built by newLogger.
func setLevel(log *slog.Logger, s string) error {
	lv, ok := levels.Load(log)
	if !ok {
		return errors.New("log_level: this logger's level cannot change")
	}
	l, err := parseLevel(s)
	if err != nil {
		return err
	}
	lv.(*slog.LevelVar).Set(l)
	return nil
}

// ---- secrets ----

// scrubber is the process's stderr: it replaces every secret it was told
// about (the password of a broker URL, stomp_pass, a webhook's header
// values, a private key's lines) with "<redacted>" in whatever is written,
// logs and error messages alike. The code takes care not to log secrets;
// this is the net under it, for a library error that quotes a URL.
type scrubber struct {
	w       io.Writer
	mu      sync.RWMutex
	secrets [][]byte // every form each secret may take in the output
}

func newScrubber(w io.Writer) *scrubber { return &scrubber{w: w} }

// minSecret is the shortest value hunted in free text: a shorter one
// (a test password "x") would shred every log line. Such values are
// still redacted where the configuration is printed.
const minSecret = 4

var redactedBytes = []byte("<redacted>")

// Write writes p with the secrets replaced. Each log record and each error
// message is one Write, so a secret is never split between two.
func (s *scrubber) Write(p []byte) (int, error) {
	s.mu.RLock()
	out := p
	for _, sec := range s.secrets {
		if bytes.Contains(out, sec) {
			out = bytes.ReplaceAll(out, sec, redactedBytes)
		}
	}
	s.mu.RUnlock()
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// add registers secret values: each as it is, as it looks quoted by the
// text and JSON log handlers, and percent-decoded (a URL's password).
func (s *scrubber) add(values ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		forms := []string{v, strings.Trim(strconv.Quote(v), `"`)}
		if j, err := json.Marshal(v); err == nil {
			forms = append(forms, strings.Trim(string(j), `"`))
		}
		if u, err := url.PathUnescape(v); err == nil {
			forms = append(forms, u)
		}
		for _, f := range forms {
			if len(f) < minSecret || slices.ContainsFunc(s.secrets, func(b []byte) bool { return string(b) == f }) {
				continue
			}
			s.secrets = append(s.secrets, []byte(f))
		}
	}
	// Longest first, so a secret that contains another goes whole.
	slices.SortFunc(s.secrets, func(a, b []byte) int { return len(b) - len(a) })
}

// addConfig registers the secrets of cfg: whatever config.Redacted (what
// `fedmsg config` prints) hides, and the lines of the private keys the
// configuration signs with.
func (s *scrubber) addConfig(cfg *config.Config) {
	if s == nil || cfg == nil {
		return
	}
	s.add(redactedValues(cfg.Map(), cfg.Redacted())...)
	s.add(privateKeyLines(cfg)...)
}

// addURL registers the password of a URL (a webhook's).
func (s *scrubber) addURL(raw string) {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			s.add(p)
		}
	}
}

// redactedValues walks a configuration's Map beside its Redacted copy and
// returns what the redaction replaced: a whole value, or the part of a
// string (a URL's password) between the text kept around "<redacted>".
func redactedValues(plain, red any) []string {
	var out []string
	switch p := plain.(type) {
	case string:
		r, ok := red.(string)
		if !ok || r == p {
			return nil
		}
		return secretSpans(p, r)
	}
	pv, rv := reflect.ValueOf(plain), reflect.ValueOf(red)
	if !pv.IsValid() || !rv.IsValid() || pv.Kind() != rv.Kind() {
		// A value replaced as a whole by "<redacted>" (a list or a
		// map under a secret key): every string in it is secret.
		if r, ok := red.(string); ok && r == "<redacted>" {
			return stringsIn(plain)
		}
		return nil
	}
	switch pv.Kind() {
	case reflect.Map:
		for _, k := range pv.MapKeys() {
			if e := rv.MapIndex(k); e.IsValid() {
				out = append(out, redactedValues(pv.MapIndex(k).Interface(), e.Interface())...)
			}
		}
	case reflect.Slice:
		for i := 0; i < pv.Len() && i < rv.Len(); i++ {
			out = append(out, redactedValues(pv.Index(i).Interface(), rv.Index(i).Interface())...)
		}
	}
	return out
}

// secretSpans returns the parts of plain that "<redacted>" stands for in
// red, matching the kept text around each marker in order.
func secretSpans(plain, red string) []string {
	parts := strings.Split(red, "<redacted>")
	if len(parts) == 1 {
		return nil
	}
	rest, ok := strings.CutPrefix(plain, parts[0])
	if !ok {
		return []string{plain}
	}
	var out []string
	for i, kept := range parts[1:] {
		if i == len(parts)-2 { // the text after the last marker ends the string
			if !strings.HasSuffix(rest, kept) {
				return append(out, rest)
			}
			return append(out, rest[:len(rest)-len(kept)])
		}
		j := strings.Index(rest, kept)
		if kept == "" || j < 0 {
			return append(out, rest)
		}
		out = append(out, rest[:j])
		rest = rest[j+len(kept):]
	}
	return out
}

func stringsIn(v any) []string {
	var out []string
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		out = append(out, rv.String())
	case reflect.Slice:
		for i := range rv.Len() {
			out = append(out, stringsIn(rv.Index(i).Interface())...)
		}
	case reflect.Map:
		for _, k := range rv.MapKeys() {
			out = append(out, stringsIn(rv.MapIndex(k).Interface())...)
		}
	}
	return out
}

// privateKeyLines are the base64 lines of the private keys cfg may sign
// with (<ssldir>/<certname>.key) and of its gpg secret keyrings: no log
// line should ever hold a piece of one.
func privateKeyLines(cfg *config.Config) []string {
	var files []string
	for _, name := range cfg.Certnames {
		files = append(files, filepath.Join(cfg.SSLDir, name+".key"))
	}
	files = append(files, cfg.GPGSecretKeyring...)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a missing key is the signer's error to report
		}
		for line := range strings.Lines(string(b)) {
			line = strings.TrimSpace(line)
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") && !strings.Contains(line, ":") {
				out = append(out, line)
			}
		}
	}
	return out
}

// ---- SIGHUP ----

// onHangup calls reload for every SIGHUP until ctx ends; the returned
// func stops listening, ends the ctx reload is given and waits for a
// reload in progress. Installed
// before a daemon says it started, so a SIGHUP never kills it (the
// default action). Around each reload systemd is told RELOADING=1, then
// READY=1 (once the daemon was ready: sd ignores both before).
func onHangup(ctx context.Context, log *slog.Logger, sd *sdnotify.Notifier, reload func(context.Context)) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				log.Info("SIGHUP: reloading the configuration")
				sd.Reloading()
				reload(ctx)
				sd.Reloaded()
			}
		}
	}()
	return func() {
		cancel()
		<-done
		// Keep ignoring SIGHUP during the rest of the shutdown.
		signal.Ignore(syscall.SIGHUP)
		signal.Stop(ch)
	}
}

// configChanges lists the keys whose values differ between two
// configurations, one level into map values ("endpoints.relay_outbound").
func configChanges(old, cur *config.Config) []string {
	a, b := old.Map(), cur.Map()
	var out []string
	for _, k := range slices.Sorted(maps.Keys(union(a, b))) {
		if reflect.DeepEqual(a[k], b[k]) {
			continue
		}
		av, bv := reflect.ValueOf(a[k]), reflect.ValueOf(b[k])
		if av.Kind() == reflect.Map && bv.Kind() == reflect.Map && av.Type().Key().Kind() == reflect.String {
			sub := map[string]bool{}
			for _, m := range []reflect.Value{av, bv} {
				for _, sk := range m.MapKeys() {
					sub[sk.String()] = true
				}
			}
			for _, sk := range slices.Sorted(maps.Keys(sub)) {
				x, y := av.MapIndex(reflect.ValueOf(sk)), bv.MapIndex(reflect.ValueOf(sk))
				if x.IsValid() != y.IsValid() || (x.IsValid() && !reflect.DeepEqual(x.Interface(), y.Interface())) {
					out = append(out, k+"."+sk)
				}
			}
			continue
		}
		out = append(out, k)
	}
	return out
}

func union(a, b map[string]any) map[string]any {
	u := maps.Clone(a)
	maps.Copy(u, b)
	return u
}

// topKey is the configuration key a change is under ("endpoints" for
// "endpoints.relay_outbound").
func topKey(change string) string {
	for _, k := range []string{"endpoints", "certnames", "routing_policy", "gpg_keys"} {
		if change == k || strings.HasPrefix(change, k+".") {
			return k
		}
	}
	return change
}

// reloadable reports whether a daemon applies a change to key (under
// its top key) on SIGHUP: log_level always, and the keys in extra.
func reloadable(key string, extra []string) bool {
	top := topKey(key)
	return top == "log_level" || slices.Contains(extra, top)
}

// reloadKeys compares the configuration just read (cur) with the running
// one and the one the process started with. It applies log_level and
// returns every reloadable key (log_level and extra) that changed since
// running, for the caller to apply; every other key that differs from
// started is logged as needing a restart, at each reload until there is
// one.
func reloadKeys(log *slog.Logger, started, running, cur *config.Config, extra ...string) (changed []string) {
	for _, k := range configChanges(running, cur) {
		if !reloadable(k, extra) {
			continue
		}
		if k == "log_level" {
			if err := setLevel(log, cur.LogLevel); err != nil {
				log.Error("reload: log_level not changed", "err", err)
				continue
			}
		}
		changed = append(changed, k)
	}
	for _, k := range configChanges(started, cur) {
		if !reloadable(k, extra) {
			log.Warn("reload: needs a restart: "+k, "key", k)
		}
	}
	if len(changed) > 0 {
		log.Info("reload: applied", "keys", changed)
	}
	return changed
}

// reloadFlat is the SIGHUP handler of a daemon whose configuration is the
// fedmsg keys alone (relay, signing-relay, gateway): it reads the
// configuration again, the same way as at start-up, and applies
// log_level; every other change needs a restart. A configuration that
// does not load is logged and the running one kept.
func reloadFlat(load func() (*config.Config, error), log *slog.Logger, s *scrubber, started *config.Config) func(context.Context) {
	running := started
	return func(context.Context) {
		cur, err := load()
		if err == nil {
			_, err = parseLevel(cur.LogLevel)
		}
		if err != nil {
			log.Error("reload failed, keeping the running configuration", "err", err)
			return
		}
		s.addConfig(cur)
		reloadKeys(log, started, running, cur)
		next := *running
		next.LogLevel = cur.LogLevel
		running = &next
	}
}

// reloadOnHangup installs reloadFlat for a daemon configured by the fedmsg
// keys alone; the returned func stops it.
func reloadOnHangup(c *cobra.Command, e *env, log *slog.Logger, sd *sdnotify.Notifier, cfg *config.Config) (stop func()) {
	load := func() (*config.Config, error) { return loadConfig(c, e) }
	return onHangup(c.Context(), log, sd, reloadFlat(load, log, e.scrub, cfg))
}

// reloadBridge is the bridge's SIGHUP handler: log_level is applied; a
// change to the transports, the routes or the bridge section, like any
// other key, is reported as needing a restart (a route's in-flight
// messages and its broker connections cannot be moved safely).
func reloadBridge(c *cobra.Command, e *env, files []string, log *slog.Logger, started *config.Config, raw map[string]any) func(context.Context) {
	running := started
	return func(context.Context) {
		cur, curRaw, err := loadBridgeConfig(c, e, files)
		if err == nil {
			_, err = parseLevel(cur.LogLevel)
		}
		if err != nil {
			log.Error("reload failed, keeping the running configuration", "err", err)
			return
		}
		e.scrub.addConfig(cur)
		for _, k := range slices.Sorted(maps.Keys(union(raw, curRaw))) {
			if !reflect.DeepEqual(raw[k], curRaw[k]) {
				log.Warn("reload: needs a restart: "+k, "key", k)
			}
		}
		reloadKeys(log, started, running, cur)
		next := *running
		next.LogLevel = cur.LogLevel
		running = &next
	}
}

// hubReloadable are the keys the hub applies on SIGHUP besides log_level
// and its consumers: what buildHub reads (signature validation, status
// files, the backlog), none of the transport's.
var hubReloadable = []string{
	"validate_signatures", "crypto_backend", "crypto_validate_backends", "ssldir",
	"ca_cert_location", "crl_location", "crl_cache", "crl_cache_expiry", "ca_cert_cache", "ca_cert_cache_expiry",
	"routing_policy", "routing_nitpicky", "gpg_home", "gpg_keys", "gpg_keyring",
	"status_directory", "skip_last_message", "datagrepper_url",
}

// reloadHub is the hub's SIGHUP handler. When the consumers or a key of
// hubReloadable changed it builds a new hub and hands it to runHubs on
// next, which swaps it for the running one; a configuration that does not
// load or build is logged and the running hub kept.
func reloadHub(c *cobra.Command, e *env, files []string, log *slog.Logger, first *hubRun, next chan<- *hubRun) func(context.Context) {
	started, running := first.cfg, first
	return func(ctx context.Context) {
		cfg, raw, found, err := loadHubConfig(c, e, files)
		if err == nil && !found {
			err = errors.New(`no consumers: list them under "consumers" in a --config file`)
		}
		if err == nil {
			_, err = parseLevel(cfg.LogLevel)
		}
		if err != nil {
			log.Error("reload failed, keeping the running configuration", "err", err)
			return
		}
		e.scrub.addConfig(cfg)
		changed := reloadKeys(log, started, running.cfg, cfg, hubReloadable...)
		rebuild := !reflect.DeepEqual(running.raw, raw) || slices.ContainsFunc(changed, func(k string) bool { return k != "log_level" })
		if !rebuild {
			cp := *running
			nc := *running.cfg
			nc.LogLevel = cfg.LogLevel
			cp.cfg = &nc
			running = &cp
			return
		}
		hr, err := buildHub(cfg, raw, log, e.scrub)
		if err != nil {
			log.Error("reload failed, keeping the running consumers", "err", fmt.Errorf("hub: %w", err))
			return
		}
		select {
		case next <- hr:
			running = hr
		case <-ctx.Done(): // the hub is stopping
			hr.close()
		}
	}
}

// runHubs runs the hub in current until ctx ends or it fails, swapping in
// each hub that comes on next: the running one stops (what it holds is
// finished; what it queued is handed back, redelivered by a broker, lost
// on ZeroMQ, which never redelivers) and the new one subscribes.
func runHubs(ctx context.Context, t transport.Transport, log *slog.Logger, current *atomic.Pointer[hubRun], next <-chan *hubRun) error {
	for {
		hr := current.Load()
		runCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- hr.hub.Run(runCtx, t) }()
		select {
		case err := <-errc:
			cancel()
			return err
		case nr := <-next:
			cancel()
			if err := <-errc; err != nil {
				nr.close()
				return err
			}
			for _, st := range hr.hub.Stats() {
				log.Info("consumer stopped for the reload", "consumer", st.Consumer, "received", st.Received, "handled", st.Handled,
					"failed", st.Failed, "rejected", st.Rejected)
			}
			hr.close()
			current.Store(nr)
			nr.logConsumers(log)
			log.Info("hub reloaded", "consumers", len(nr.specs))
		}
	}
}
