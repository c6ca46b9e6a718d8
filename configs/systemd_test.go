package configs

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The systemd units in systemd/: one per daemon, each with what running
// in production needs (README "Running in production"), each starting a
// subcommand bin/fedmsg really has, with flags it accepts; and, where
// systemd-analyze is installed, each passing `systemd-analyze verify`.

// daemons are the long-running subcommands, each with its unit.
var daemons = []string{"relay", "signing-relay", "gateway", "bridge", "hub"}

// shutdownBound is the README's promise: a daemon exits within 30 s of
// SIGTERM. TimeoutStopSec must leave it that time before SIGKILL.
const shutdownBound = 30 * time.Second

// unit is a parsed unit file: section -> key -> values, in file order
// (a key may repeat).
type unit map[string]map[string][]string

func (u unit) get(section, key string) []string { return u[section][key] }

func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u.get(section, key)
	if len(v) != 1 {
		t.Errorf("[%s] %s: %d values %q, want exactly one", section, key, len(v), v)
		return ""
	}
	return v[0]
}

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value inside a section: %q", path, n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

// buildFedmsg builds bin/fedmsg into a temporary directory.
func buildFedmsg(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fedmsg")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/fedmsg").CombinedOutput()
	if err != nil {
		t.Fatalf("building bin/fedmsg: %v\n%s", err, out)
	}
	return bin
}

func TestSystemdUnits(t *testing.T) {
	files, err := filepath.Glob("systemd/*.service")
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, f := range files {
		have = append(have, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "fedmsg-"), ".service"))
	}
	for _, d := range daemons {
		if !slices.Contains(have, d) {
			t.Errorf("no unit systemd/fedmsg-%s.service for the %s daemon", d, d)
		}
	}
	bin := buildFedmsg(t)

	for _, f := range files {
		daemon := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "fedmsg-"), ".service")
		t.Run(daemon, func(t *testing.T) {
			u := parseUnit(t, f)
			// fedmsg speaks sd_notify (internal/sdnotify): with Type=notify
			// systemd waits for READY=1, so units ordered after this one
			// start once it serves. notify-reload would let systemd send
			// the SIGHUP itself, but needs systemd 253 (verify below
			// rejects it on older ones).
			want := map[string]string{
				"Type":            "notify",
				"NotifyAccess":    "main", // not the commands a hub's exec consumer runs
				"User":            "fedmsg",
				"ExecReload":      "/bin/kill -HUP $MAINPID",
				"KillSignal":      "SIGTERM",
				"Restart":         "on-failure",
				"NoNewPrivileges": "yes",
				"ProtectSystem":   "strict",
				"ProtectHome":     "yes",
				"PrivateTmp":      "yes",
			}
			for k, v := range want {
				if got := u.one(t, "Service", k); got != v {
					t.Errorf("%s=%s, want %s", k, got, v)
				}
			}
			stop, err := time.ParseDuration(u.one(t, "Service", "TimeoutStopSec") + "s")
			if err != nil || stop <= shutdownBound {
				t.Errorf("TimeoutStopSec=%v: want seconds above the %v shutdown bound, so systemd never kills a draining daemon", u.get("Service", "TimeoutStopSec"), shutdownBound)
			}
			var rw []string
			for _, v := range u.get("Service", "ReadWritePaths") {
				rw = append(rw, strings.Fields(v)...)
			}
			if !slices.Contains(rw, "-/var/lib/fedmsg") && !slices.Contains(rw, "/var/lib/fedmsg") {
				t.Errorf("ReadWritePaths %q: /var/lib/fedmsg (status_directory, spools) must stay writable under ProtectSystem=strict", rw)
			}
			envFiles := u.get("Service", "EnvironmentFile")
			if len(envFiles) == 0 {
				t.Errorf("no EnvironmentFile")
			}
			for _, e := range envFiles {
				if !strings.HasPrefix(e, "-") {
					t.Errorf("EnvironmentFile=%s must be optional (start with -)", e)
				}
			}
			if got := u.get("Install", "WantedBy"); !slices.Contains(got, "multi-user.target") {
				t.Errorf("WantedBy=%v, want multi-user.target", got)
			}

			// ExecStart runs this daemon, with flags the binary takes.
			argv := strings.Fields(u.one(t, "Service", "ExecStart"))
			if len(argv) < 2 || argv[0] != "/usr/local/bin/fedmsg" || argv[1] != daemon {
				t.Fatalf("ExecStart=%q: want /usr/local/bin/fedmsg %s ...", argv, daemon)
			}
			var args []string
			for _, a := range argv[1:] {
				if !strings.HasPrefix(a, "$") { // the EnvironmentFile's extra flags
					args = append(args, a)
				}
			}
			cmd := exec.Command(bin, append(args, "--help")...)
			cmd.Env = []string{"HOME=" + t.TempDir()}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("fedmsg %s --help: %v: the subcommand or a flag of ExecStart does not exist\n%s", strings.Join(args, " "), err, out)
			}
		})
	}

	// systemd's own check, with ExecStart pointed at the binary just built
	// (verify looks for the executable).
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze is not installed: the units were only parsed")
		return
	}
	dir := t.TempDir()
	var copies []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(dst, bytes.ReplaceAll(data, []byte("/usr/local/bin/fedmsg"), []byte(bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, dst)
	}
	// verify warns about unknown keys and bad values but still exits 0:
	// any output is a failure.
	out, err := exec.Command(analyze, append([]string{"verify"}, copies...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
