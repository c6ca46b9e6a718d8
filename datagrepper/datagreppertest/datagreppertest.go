// Package datagreppertest runs a local datagrepper for tests: an
// httptest server that answers /raw and /id from a list of messages stored
// the way datagrepper hands them back (see ../testdata/README.md), honours
// start, end, page, rows_per_page and order like datagrepper does, and
// records every request so a test can assert what was asked.
package datagreppertest

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/gofedmsg/fedmsg/message"
)

// RecordedFile is the recorded /raw reply in the testdata folder: every
// message of the archive, oldest first.
const RecordedFile = "raw.json"

// TestdataDir returns the absolute path of datagrepper/testdata (found
// from this source file, so it works from any package's tests).
func TestdataDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("datagreppertest: cannot locate the testdata folder")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata"), nil
}

// Recorded returns the messages of the recorded /raw reply
// (testdata/raw.json), oldest first, as datagrepper stored them.
func Recorded() ([]map[string]any, error) {
	dir, err := TestdataDir()
	if err != nil {
		return nil, err
	}
	return LoadRaw(filepath.Join(dir, RecordedFile))
}

// LoadRaw reads a /raw reply file and returns its raw_messages.
func LoadRaw(path string) ([]map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("datagreppertest: %w", err)
	}
	obj, err := message.DecodeObject(data)
	if err != nil {
		return nil, fmt.Errorf("datagreppertest: %s: %w", path, err)
	}
	list, ok := obj["raw_messages"].([]any)
	if !ok {
		return nil, fmt.Errorf("datagreppertest: %s: no raw_messages list", path)
	}
	out := make([]map[string]any, 0, len(list))
	for i, m := range list {
		env, ok := m.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("datagreppertest: %s: raw_messages[%d] is not an object", path, i)
		}
		out = append(out, env)
	}
	return out, nil
}

// Server is a running test datagrepper.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	msgs     []map[string]any
	requests []*url.URL
	failing  int // answer the next failing requests with 503
}

// NewServer starts a datagrepper holding msgs (in archive order; /raw
// sorts them by timestamp, keeping that order for equal timestamps).
// Close it when done.
func NewServer(msgs []map[string]any) *Server {
	s := &Server{msgs: slices.Clone(msgs)}
	mux := http.NewServeMux()
	mux.HandleFunc("/raw", s.raw)
	mux.HandleFunc("/id", s.id)
	s.Server = httptest.NewServer(s.record(mux))
	return s
}

// SetMessages replaces the archive.
func (s *Server) SetMessages(msgs []map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = slices.Clone(msgs)
}

// FailNext makes the next n requests fail with 503 Service Unavailable.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = n
}

// Requests returns the URLs requested so far (path and query).
func (s *Server) Requests() []*url.URL {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		u := *r.URL
		s.requests = append(s.requests, &u)
		fail := s.failing > 0
		if fail {
			s.failing--
		}
		s.mu.Unlock()
		if fail {
			http.Error(w, "datagreppertest: failing on purpose", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
}

// raw answers /raw like datagrepper: messages with start <= timestamp <=
// end, sorted by timestamp (asc or desc), cut in pages of rows_per_page.
func (s *Server) raw(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	num := func(key string, def float64) (float64, bool) {
		v := q.Get(key)
		if v == "" {
			return def, true
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			badRequest(w, "%s: %q is not a number", key, v)
			return 0, false
		}
		return f, true
	}
	start, ok1 := num("start", math.Inf(-1))
	end, ok2 := num("end", math.Inf(1))
	page, ok3 := num("page", 1)
	rows, ok4 := num("rows_per_page", 100)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return
	}
	if page < 1 || rows < 1 || rows > 100 {
		badRequest(w, "page must be >= 1 and rows_per_page in 1..100")
		return
	}
	order := q.Get("order")
	if order == "" {
		order = "desc" // datagrepper's default
	}
	if order != "asc" && order != "desc" {
		badRequest(w, "order must be asc or desc")
		return
	}
	s.mu.Lock()
	type entry struct {
		ts  float64
		env map[string]any
	}
	var sel []entry
	for _, m := range s.msgs {
		ts := timestamp(m)
		if ts >= start && ts <= end {
			sel = append(sel, entry{ts, m})
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(sel, func(a, b entry) int {
		switch {
		case a.ts < b.ts:
			return -1
		case a.ts > b.ts:
			return 1
		}
		return 0
	})
	if order == "desc" {
		slices.Reverse(sel)
	}
	n, p := int(rows), int(page)
	pages := (len(sel) + n - 1) / n
	lo := min((p-1)*n, len(sel))
	hi := min(lo+n, len(sel))
	list := make([]any, 0, hi-lo)
	for _, e := range sel[lo:hi] {
		list = append(list, e.env)
	}
	args := map[string]any{}
	for k := range q {
		args[k] = q.Get(k)
	}
	reply := map[string]any{
		"arguments":    args,
		"count":        message.Number(strconv.Itoa(len(list))),
		"pages":        message.Number(strconv.Itoa(pages)),
		"total":        message.Number(strconv.Itoa(len(sel))),
		"raw_messages": list,
	}
	writeJSON(w, reply)
}

// id answers /id?id=<msg_id> with the message, or 404.
func (s *Server) id(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		badRequest(w, "id is required")
		return
	}
	s.mu.Lock()
	var found map[string]any
	for _, m := range s.msgs {
		if m["msg_id"] == id {
			found = m
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		http.Error(w, `{"error": "No message found with that id"}`, http.StatusNotFound)
		return
	}
	writeJSON(w, found)
}

func writeJSON(w http.ResponseWriter, v any) {
	data, err := message.Pretty(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

func timestamp(m map[string]any) float64 {
	switch x := m["timestamp"].(type) {
	case message.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
	case float64:
		return x
	}
	return math.NaN() // never within [start, end]
}
