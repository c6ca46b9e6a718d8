package consumer

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecodeConfig(t *testing.T) {
	raw := []any{
		map[string]any{"name": "archive", "kind": "file", "topics": []any{"org.a.", "*.b"}, "path": "/tmp/x.jsonl"},
		map[string]any{"name": "run", "kind": "exec", "topics": "org.c", "command": "cat >/dev/null", "timeout": 2.5,
			"validate_signatures": false},
		map[string]any{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:1/h", "max_attempts": 3,
			"backoff": "200ms", "headers": map[string]any{"Authorization": "x"}, "validate_signatures": true},
	}
	specs, err := DecodeConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if s := specs[0]; s.Name != "archive" || s.Kind != KindFile || !slices.Equal(s.Topics, []string{"org.a.", "*.b"}) ||
		s.File.Path != "/tmp/x.jsonl" || s.ValidateSignatures != nil {
		t.Errorf("file spec = %+v", s)
	}
	if s := specs[1]; !slices.Equal(s.Exec.Command, []string{"/bin/sh", "-c", "cat >/dev/null"}) ||
		s.Exec.Timeout != 2500*time.Millisecond || s.ValidateSignatures == nil || *s.ValidateSignatures ||
		!slices.Equal(s.Topics, []string{"org.c"}) {
		t.Errorf("exec spec = %+v", s)
	}
	if s := specs[2]; s.Webhook.URL != "http://127.0.0.1:1/h" || s.Webhook.MaxAttempts != 3 ||
		s.Webhook.Backoff != 200*time.Millisecond || s.Webhook.Headers["Authorization"] != "x" ||
		s.ValidateSignatures == nil || !*s.ValidateSignatures {
		t.Errorf("webhook spec = %+v", s)
	}
}

func TestDecodeConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		raw  any
		want []string // each must appear in the error
	}{
		{"not a list", map[string]any{}, []string{"consumers must be a list"}},
		{"empty", []any{}, []string{"consumers is empty"}},
		{"unknown key", []any{map[string]any{"name": "arch", "kind": "file", "path": "/x", "pathh": "/y"}},
			[]string{`consumer "arch"`, "pathh", "unknown key"}},
		{"key of another kind", []any{map[string]any{"name": "arch", "kind": "file", "path": "/x", "url": "http://x"}},
			[]string{`consumer "arch"`, "url"}},
		{"unknown kind", []any{map[string]any{"name": "q", "kind": "irc"}}, []string{`consumer "q"`, "kind", `"irc"`}},
		{"no name", []any{map[string]any{"kind": "file", "path": "/x"}}, []string{"consumers[0]", "name", "required"}},
		{"duplicate", []any{map[string]any{"name": "a", "kind": "file", "path": "/x"}, map[string]any{"name": "a", "kind": "file", "path": "/y"}},
			[]string{`consumer "a"`, "two consumers"}},
		{"validate not bool", []any{map[string]any{"name": "a", "kind": "file", "path": "/x", "validate_signatures": "yes"}},
			[]string{"validate_signatures", "true or false"}},
		{"file without path", []any{map[string]any{"name": "a", "kind": "file"}}, []string{`consumer "a"`, "path", "required"}},
		{"exec empty command", []any{map[string]any{"name": "a", "kind": "exec", "command": []any{}}}, []string{"command"}},
		{"webhook bad url", []any{map[string]any{"name": "a", "kind": "webhook", "url": "ftp://x"}}, []string{"url", "http"}},
		{"bad timeout", []any{map[string]any{"name": "a", "kind": "exec", "command": "true", "timeout": "soon"}}, []string{"timeout"}},
		{"topics not strings", []any{map[string]any{"name": "a", "kind": "file", "path": "/x", "topics": []any{1}}}, []string{"topics"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeConfig(c.raw)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestBuild(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	specs, err := DecodeConfig([]any{map[string]any{"name": "f", "kind": "file", "path": path}})
	if err != nil {
		t.Fatal(err)
	}
	c, closer, err := Build(specs[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if c.Name != "f" || c.Handler == nil {
		t.Errorf("consumer = %+v", c)
	}
}
