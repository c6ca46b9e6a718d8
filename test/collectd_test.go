package test

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCollectdCountsPerModname: messages of two modnames go through the
// relay; fedmsg collectd prints, every interval, one PUTVAL line per
// modname seen so far (lowercased, sorted, 0 when quiet) whose counts add
// up to what was published, and ignores another environment's topics.
func TestCollectdCountsPerModname(t *testing.T) {
	b := newBus(t)
	b.startRelay()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ = strings.Cut(host, ".")
	cd := b.start("collectd", "--collectd-interval", "1")
	cd.waitStderr(t, "collectd started")
	line := regexp.MustCompile(`^PUTVAL ` + regexp.QuoteMeta(host) + `/fedmsg/fedmsg_wallboard-(\S+) interval=1 (\d+):(\d+)$`)
	next := func() putval {
		t.Helper()
		l := cd.nextLine(t)
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a PUTVAL line of this host with interval=1: %q", l)
		}
		when, _ := strconv.ParseInt(m[2], 10, 64)
		if d := time.Now().Unix() - when; d < -2 || d > 20 {
			t.Errorf("timestamp %d is %ds away from now", when, d)
		}
		n, _ := strconv.Atoi(m[3])
		return putval{m[1], when, n}
	}
	// A dump is the lines of one timestamp; the line after it is kept.
	var pending *putval
	nextDump := func() []putval {
		t.Helper()
		var dump []putval
		if pending != nil {
			dump = append(dump, *pending)
			pending = nil
		}
		for {
			pv := next()
			if len(dump) > 0 && pv.when != dump[0].when {
				pending = &pv
				return dump
			}
			dump = append(dump, pv)
		}
	}

	// The SUB settles asynchronously: publish probes until one is counted.
	deadline := time.Now().Add(20 * time.Second)
probing:
	for {
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
			t.Fatalf("probe logger exited %d: %s", code, errOut)
		}
		for {
			select {
			case l := <-cd.lines:
				if strings.Contains(l, "fedmsg_wallboard-e2e ") && !strings.HasSuffix(l, ":0") {
					break probing
				}
				continue
			case <-time.After(1500 * time.Millisecond):
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("collectd counted no probe within 20s; stderr:\n%s", cd.stderr.String())
		}
	}

	want := map[string]int{"bodhi": 3, "koji": 2}
	for _, p := range []struct{ modname, env string }{
		{"bodhi", ""}, {"Koji", ""}, {"bodhi", ""}, {"KOJI", ""}, {"bodhi", ""},
		{"bodhi", "stg"}, // another environment: not this collectd's prefix
	} {
		args := []string{"logger", "--modname", p.modname, "--topic", "x.y", "--message", "m"}
		if p.env != "" {
			args = append(args, "--environment", p.env)
		}
		if _, errOut, code := b.run("", args...); code != 0 {
			t.Fatalf("logger %v exited %d: %s", args, code, errOut)
		}
	}

	// Read whole dumps until the counts are in, then until a dump where
	// bodhi and koji were quiet: they must still have their line.
	got := map[string]int{}
	deadline = time.Now().Add(20 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("counts after 20s: %v, want %v and then a quiet dump", got, want)
		}
		dump := nextDump()
		names := make([]string, 0, len(dump))
		counts := map[string]int{}
		for _, pv := range dump {
			names = append(names, pv.name)
			counts[pv.name] = pv.count
		}
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("a dump's names are not sorted and unique: %q", names)
		}
		allIn := got["bodhi"] == want["bodhi"] && got["koji"] == want["koji"]
		for k, n := range counts {
			got[k] += n
		}
		if allIn && counts["bodhi"] == 0 && counts["koji"] == 0 {
			if !slices.Equal(names, []string{"bodhi", "e2e", "koji"}) {
				t.Errorf("quiet dump lists %q, want every service seen so far: bodhi, e2e, koji", names)
			}
			break
		}
	}
	delete(got, "e2e") // how many probes went out is not known
	if !maps.Equal(got, want) {
		t.Errorf("counted %v, want %v (Koji and KOJI lowercased, the stg message ignored)", got, want)
	}
	if code := cd.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("collectd exited %d on SIGTERM, want 0", code)
	}
}

// putval is one parsed PUTVAL line.
type putval struct {
	name  string
	when  int64
	count int
}
