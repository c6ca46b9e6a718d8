package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runT is bus.run for a subtest: it reports through t, not the bus's.
func runT(t *testing.T, b *bus, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, fedmsgBin, args...)
	c.Dir, c.Env = b.dir, b.env
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out.String(), errb.String(), 0
}

// checkReport is what fedmsg check prints after its first line: the
// report as JSON, indented by 2 with keys sorted (Python's
// json.dumps(indent=2, sort_keys=True)). It fails t unless the text is
// exactly that layout, which Go's encoder also produces for this report
// (numbers kept as written, no <>& in it).
func checkReport(t *testing.T, text string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var report map[string]any
	if err := dec.Decode(&report); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, text)
	}
	want, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimRight(text, "\n") != string(want) {
		t.Errorf("the report is not printed indented by 2 with sorted keys:\n got %s\nwant %s", text, want)
	}
	return report
}

// entries maps report[kind]'s entries by name.
func entries(t *testing.T, report map[string]any, kind string) map[string]map[string]any {
	t.Helper()
	list, ok := report[kind].([]any)
	if !ok {
		t.Fatalf("report has no %s list: %v", kind, report)
	}
	out := map[string]map[string]any{}
	for _, item := range list {
		e, _ := item.(map[string]any)
		name, _ := e["name"].(string)
		out[name] = e
	}
	return out
}

// TestCheckHubMonitoring: a hub with moksha.monitoring.socket on ipc://
// (mode 640) and two consumers reports them; fedmsg check finds named
// consumers and the MonitoringProducer, fails on a missing name, shows
// everything with no names, and the report counts what a consumer
// handled while the other saw nothing.
func TestCheckHubMonitoring(t *testing.T) {
	b := newBus(t)
	sock := filepath.Join(b.dir, "monitoring-hub.socket")
	b.env = append(b.env, "FEDMSG_MOKSHA_MONITORING_SOCKET=ipc://"+sock)
	b.startRelay()
	cfg := filepath.Join(b.dir, "hub.yaml")
	yaml := `moksha.monitoring.socket.mode: "640"
consumers:
  - name: archive
    kind: file
    topics: [org.fedoraproject.dev.e2e.]
    path: ` + filepath.Join(b.dir, "archive.jsonl") + `
  - name: notify
    kind: file
    topics: ["*.never.sent", "org.fedoraproject.prod.x"]
    path: ` + filepath.Join(b.dir, "notify.jsonl") + `
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	hub := b.start("hub", "--config", cfg)
	hub.waitStderr(t, "hub started")
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatalf("the hub made no monitoring socket file: %v", err)
	}
	if st.Mode().Perm() != 0o640 || st.Mode()&os.ModeSocket == 0 {
		t.Errorf("monitoring socket file mode = %v, want a socket with mode 640", st.Mode())
	}

	// Publish through the relay for as long as the checks run, so the
	// report each check receives covers messages for archive.
	stopPub := make(chan struct{})
	var pubs sync.WaitGroup
	pubs.Add(1)
	go func() {
		defer pubs.Done()
		for {
			select {
			case <-stopPub:
				return
			default:
			}
			_ = b.command("logger", "--modname", "e2e", "--topic", "count", "--message", "m").Run()
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// Reports come every 5 s: the checks wait for the same ones, together.
	t.Run("checks", func(t *testing.T) {
		t.Run("named consumers and producer", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runT(t, b, "check", "-c", "archive", "--consumer", "notify", "-p", "MonitoringProducer")
			if code != 0 {
				t.Fatalf("check exited %d, want 0; stderr:\n%s", code, errOut)
			}
			first, rest, _ := strings.Cut(out, "\n")
			if first != "All consumers and producers are active!" {
				t.Errorf("first line = %q, want the success line", first)
			}
			report := checkReport(t, rest)
			cons := entries(t, report, "consumers")
			if len(cons) != 2 || cons["archive"] == nil || cons["notify"] == nil {
				t.Fatalf("consumers = %v, want archive and notify", cons)
			}
			for _, name := range []string{"archive", "notify"} {
				c := cons[name]
				for _, k := range []string{"name", "module", "topic", "initialized", "exceptions", "jsonify", "backlog", "headcount_out", "headcount_in", "times"} {
					if _, ok := c[k]; !ok {
						t.Errorf("consumer %s has no %q: %v", name, k, c)
					}
				}
				if len(c) != 10 {
					t.Errorf("consumer %s has %d fields, want the 10 of spec §1.4: %v", name, len(c), c)
				}
				if c["initialized"] != true {
					t.Errorf("consumer %s not initialized: %v", name, c)
				}
			}
			if got := cons["archive"]["topic"]; got != "org.fedoraproject.dev.e2e." {
				t.Errorf("archive's topic = %v, want its one topic as a string", got)
			}
			if got, _ := cons["notify"]["topic"].([]any); len(got) != 2 {
				t.Errorf("notify's topic = %v, want its two topics as a list", cons["notify"]["topic"])
			}
			if n := cons["notify"]["headcount_in"]; n != json.Number("0") {
				t.Errorf("notify counted %v messages, want 0 (no topic of its own was sent)", n)
			}
			prods := entries(t, report, "producers")
			if p := prods["MonitoringProducer"]; p == nil || p["initialized"] != true || p["frequency"] != json.Number("5") {
				t.Errorf("producers = %v, want MonitoringProducer, initialized, frequency 5", prods)
			}
		})
		t.Run("missing", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runT(t, b, "check", "-c", "archive", "-c", "missing")
			if code != 1 {
				t.Fatalf("check -c missing exited %d, want 1; stdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			if !strings.Contains(errOut, `"missing" is not active!`) || strings.Contains(errOut, `"archive" is not`) {
				t.Errorf("stderr does not name exactly the missing consumer:\n%s", errOut)
			}
			if !strings.Contains(errOut, "Some consumers and/or producers are missing!") {
				t.Errorf("stderr lacks the error:\n%s", errOut)
			}
			if out != "" {
				t.Errorf("a failed check printed on stdout:\n%s", out)
			}
		})
		t.Run("all", func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runT(t, b, "check")
			if code != 0 {
				t.Fatalf("check exited %d; stderr:\n%s", code, errOut)
			}
			first, rest, _ := strings.Cut(out, "\n")
			if first != "No consumers or producers specified so all will be shown." {
				t.Errorf("first line = %q", first)
			}
			checkReport(t, rest)
		})
	})

	// Counters cover one interval: keep checking until a report shows
	// archive's messages (a check may land on a report from before the
	// publishing started).
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, code := b.run("", "check", "-c", "archive")
		if code != 0 {
			t.Fatalf("check exited %d; stderr:\n%s", code, errOut)
		}
		_, rest, _ := strings.Cut(out, "\n")
		a := entries(t, checkReport(t, rest), "consumers")["archive"]
		in, _ := a["headcount_in"].(json.Number).Int64()
		outN, _ := a["headcount_out"].(json.Number).Int64()
		times, _ := a["times"].([]any)
		if in > 0 {
			if outN == 0 || len(times) == 0 {
				t.Errorf("archive received %d messages but handled %d in %d timed runs: %v", in, outN, len(times), a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report counted archive's messages within 30s; last: %v", a)
		}
	}
	close(stopPub)
	pubs.Wait()
	if code := hub.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("hub exited %d on SIGTERM", code)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("the monitoring socket file is still there after the hub stopped")
	}
}

// TestCheckRelayMonitoring: fedmsg relay with a monitoring socket
// reports its RelayConsumer.
func TestCheckRelayMonitoring(t *testing.T) {
	b := newBus(t)
	b.env = append(b.env, "FEDMSG_MOKSHA_MONITORING_SOCKET=ipc://"+filepath.Join(b.dir, "monitoring-relay.socket"))
	b.startRelay()
	out, errOut, code := b.run("", "check", "-c", "RelayConsumer", "-p", "MonitoringProducer")
	if code != 0 {
		t.Fatalf("check exited %d; stderr:\n%s", code, errOut)
	}
	if !strings.HasPrefix(out, "All consumers and producers are active!\n") {
		t.Errorf("stdout:\n%s", out)
	}
}

func TestCheckWithoutSocketConfigured(t *testing.T) {
	b := newBus(t)
	out, errOut, code := b.run("", "check", "-c", "archive")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
	}
	want := `No monitoring endpoint has been configured: please set "moksha.monitoring.socket"`
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
	if out != "" {
		t.Errorf("stdout = %q, want nothing", out)
	}
}

// TestCheckTimesOutWhenNobodyBinds runs fedmsg-check by its old name
// against a socket nobody binds.
func TestCheckTimesOutWhenNobodyBinds(t *testing.T) {
	b := newBus(t)
	ep := "ipc://" + filepath.Join(b.dir, "nobody.socket")
	b.env = append(b.env, "FEDMSG_MOKSHA_MONITORING_SOCKET="+ep)
	alias := filepath.Join(b.dir, "fedmsg-check")
	if err := os.Symlink(fedmsgBin, alias); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(alias, "--timeout", "1")
	c.Dir, c.Env = b.dir, b.env
	var errb bytes.Buffer
	c.Stderr = &errb
	start := time.Now()
	err := c.Run()
	took := time.Since(start)
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("fedmsg-check --timeout 1: %v, want exit 1; stderr:\n%s", err, errb.String())
	}
	want := "Failed to receive message from the monitoring endpoint (" + ep + ") in 1 seconds."
	if !strings.Contains(errb.String(), want) {
		t.Errorf("stderr = %q, want %q", errb.String(), want)
	}
	if took < time.Second || took > 10*time.Second {
		t.Errorf("fedmsg-check --timeout 1 took %v", took)
	}
}
