package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/knadh/koanf/parsers/json"
	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// Sources says where Load reads configuration from.
type Sources struct {
	// Dirs are read in order; nil means DefaultDirs(), an empty non-nil
	// slice means no directories. A missing directory is skipped.
	Dirs []string
	// Files are explicit files (--config FILE, repeatable), loaded after
	// FEDMSG_CONFIG. A missing or non-regular file is an error.
	Files []string
	// Environ is the environment, like os.Environ(); nil means none.
	Environ []string
	// Flags are applied last; only flags that were Changed are used.
	Flags *pflag.FlagSet
	// FlagKeys maps a flag name to a config key (e.g. "linger" ->
	// "zmq_linger"); "" ignores the flag. A flag not in the map is applied
	// when its name with '-' replaced by '_' is a known key, else ignored.
	FlagKeys map[string]string
}

// delim is koanf's key delimiter. fedmsg keys and endpoint names contain
// dots, so they must not be split: use a byte that cannot appear in a key.
const delim = "\x1f"

// configEnv names the variable holding an extra file or directory.
const configEnv = "FEDMSG_CONFIG"

// Load builds a Config from the defaults and the given sources (see the
// package documentation for the order), derives topic_prefix_re when it is
// empty, and validates the result. Every problem with configuration content
// is reported (all together) with an error wrapping ErrInvalid; each names
// its source (file, environment variable or flag) and key.
func Load(src Sources) (*Config, error) {
	k := koanf.NewWithConf(koanf.Conf{Delim: delim})
	if err := k.Load(confmap.Provider(Default().layer(), ""), nil); err != nil {
		return nil, fmt.Errorf("config: loading defaults: %w", err)
	}
	l := &loader{k: k}

	dirs := src.Dirs
	if dirs == nil {
		dirs = DefaultDirs()
	}
	for _, d := range dirs {
		l.dir(d, false)
	}

	environ := envMap(src.Environ)
	if p := environ[configEnv]; p != "" {
		st, err := os.Stat(p)
		switch {
		case err != nil:
			l.fail(fmt.Errorf("config: %s=%s: %w", configEnv, p, err))
		case st.IsDir():
			l.dir(p, true)
		default:
			l.file(p)
		}
	}

	for _, f := range src.Files {
		l.file(f)
	}

	l.env(src.Environ)
	if src.Flags != nil {
		l.flags(src.Flags, src.FlagKeys)
	}

	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}

	c, err := fromRaw(k.Raw())
	if err != nil {
		return nil, err
	}
	if c.TopicPrefixRe == "" {
		c.TopicPrefixRe = regexp.QuoteMeta(c.TopicPrefix) + `\.[^\W\d_]+`
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// loader accumulates layers into k and errors into errs.
type loader struct {
	k    *koanf.Koanf
	errs []error
}

func (l *loader) fail(err error) { l.errs = append(l.errs, err) }

// merge checks m (the content of source) and, when it has no problems,
// merges it as the next layer.
func (l *loader) merge(source string, m map[string]any) {
	var c checker
	out := c.file(m)
	if l.report(source, c.problems) {
		return
	}
	if err := l.k.Load(confmap.Provider(out, ""), nil); err != nil {
		l.fail(&configError{msg: fmt.Sprintf("config: %s: %v", source, err), cause: err})
	}
}

// report records problems found in source; it returns true if there were
// any.
func (l *loader) report(source string, problems []keyProblem) bool {
	for _, p := range problems {
		l.fail(p.format(source))
	}
	return len(problems) > 0
}

// configExts are the file name extensions read from directories.
var configExts = map[string]bool{".yaml": true, ".yml": true, ".toml": true, ".json": true}

// dir loads every config file of dir sorted by name. A missing directory
// is skipped unless mustExist.
func (l *loader) dir(dir string, mustExist bool) {
	entries, err := os.ReadDir(dir) // sorted by file name
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !mustExist {
			return
		}
		l.fail(fmt.Errorf("config: reading directory %s: %w", dir, err))
		return
	}
	for _, e := range entries {
		if e.IsDir() || !configExts[filepath.Ext(e.Name())] {
			continue
		}
		path := filepath.Join(dir, e.Name())
		st, err := os.Stat(path) // follows symbolic links
		if err != nil {
			l.fail(fmt.Errorf("config: %s: %w", path, err))
			continue
		}
		if !st.Mode().IsRegular() {
			continue
		}
		l.file(path)
	}
}

// file loads one file, which must exist and be a regular file. Its format
// comes from its extension.
func (l *loader) file(path string) {
	st, err := os.Stat(path)
	if err != nil {
		l.fail(fmt.Errorf("config: %s: %w", path, err))
		return
	}
	if !st.Mode().IsRegular() {
		l.fail(invalidf("config: %s: not a regular file", path))
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		l.fail(fmt.Errorf("config: %s: %w", path, err))
		return
	}
	m, err := parse(path, data)
	if err != nil {
		l.fail(err)
		return
	}
	l.merge(path, m)
}

// parser is what koanf's parsers provide.
type parser interface {
	Unmarshal([]byte) (map[string]any, error)
}

// parse parses data by the extension of path. It never panics.
func parse(path string, data []byte) (m map[string]any, err error) {
	var p parser
	var format string
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		p, format = yaml.Parser(), "YAML"
	case ".toml":
		p, format = toml.Parser(), "TOML"
	case ".json":
		p, format = json.Parser(), "JSON"
	default:
		return nil, invalidf("config: %s: unsupported file type %q (want .yaml, .yml, .toml or .json)", path, filepath.Ext(path))
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, invalidf("config: %s: cannot parse %s: %v", path, format, r)
		}
	}()
	m, err = p.Unmarshal(data)
	if err != nil {
		return nil, &configError{msg: fmt.Sprintf("config: %s: cannot parse %s: %v", path, format, err), cause: err}
	}
	return m, nil
}

// envMap turns an environ list into a map; the last of duplicates wins.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// env applies FEDMSG_<KEY> variables.
func (l *loader) env(environ []string) {
	var errs []error
	p := env.Provider("", env.Opt{
		Prefix:      "FEDMSG_",
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			if name == configEnv {
				return "", nil
			}
			key, ok := envToKey[name]
			if !ok {
				errs = append(errs, invalidf("config: environment variable %s: no such key%s", name, envSuggestion(name)))
				return "", nil
			}
			var c checker
			v := c.text(key, value)
			if len(c.problems) > 0 {
				for _, pr := range c.problems {
					errs = append(errs, pr.format("environment variable "+name))
				}
				return "", nil
			}
			return key, v
		},
	})
	mp, err := p.Read()
	l.errs = append(l.errs, errs...)
	if err != nil {
		l.fail(fmt.Errorf("config: environment: %w", err))
		return
	}
	if len(errs) > 0 || len(mp) == 0 {
		return
	}
	if err := l.k.Load(confmap.Provider(mp, ""), nil); err != nil {
		l.fail(fmt.Errorf("config: environment: %w", err))
	}
}

func envSuggestion(name string) string {
	key := strings.ToLower(strings.TrimPrefix(name, "FEDMSG_"))
	if best := closestKey(key); best != "" {
		return fmt.Sprintf(" (did you mean %s?)", envName(best))
	}
	return ""
}

// text checks a value given as text (an environment variable or a string
// flag) for key. String keys keep the text as is; string-or-list keys take
// it as one string unless it starts with '['; every other key parses it as
// YAML, so lists and maps can be written [a, b] and {k: v}.
func (c *checker) text(key, s string) any {
	k := kAny
	if f := fieldByKey[key]; f != nil {
		k = f.kind
	} else if isEnableKey(key) {
		k = kBool
	}
	switch k {
	case kString, kNullString:
		return s
	case kStringList, kCommaList:
		if !strings.HasPrefix(strings.TrimSpace(s), "[") {
			return c.value(k, key, s)
		}
	}
	v, err := parseYAMLValue(s)
	if err != nil {
		c.problems = append(c.problems, keyProblem{key: key, msg: "cannot parse value as YAML: " + err.Error()})
		return nil
	}
	return c.value(k, key, v)
}

// parseYAMLValue parses one YAML value. It never panics.
func parseYAMLValue(s string) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%v", r)
		}
	}()
	m, err := yaml.Parser().Unmarshal([]byte("v: " + indentValue(s)))
	if err != nil {
		return nil, err
	}
	return m["v"], nil
}

// indentValue makes s usable as the value of a one-key YAML mapping, also
// when it spans several lines.
func indentValue(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	return "\n  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// flags applies the changed flags of fs.
func (l *loader) flags(fs *pflag.FlagSet, flagKeys map[string]string) {
	var errs []error
	p := posflag.ProviderWithFlag(fs, delim, nil, func(f *pflag.Flag) (string, any) {
		if !f.Changed {
			return "", nil
		}
		key, mapped := flagKeys[f.Name]
		if !mapped {
			key = strings.ReplaceAll(f.Name, "-", "_")
			if fieldByKey[key] == nil {
				return "", nil
			}
		}
		if key == "" {
			return "", nil
		}
		source := "flag --" + f.Name
		if fieldByKey[key] == nil && !isExtra(key) {
			errs = append(errs, invalidf("config: %s: unknown key %q%s", source, key, suggestion(key)))
			return "", nil
		}
		var c checker
		var v any
		raw := posflag.FlagVal(fs, f)
		if s, ok := raw.(string); ok {
			v = c.text(key, s)
		} else {
			k := kAny
			if fld := fieldByKey[key]; fld != nil {
				k = fld.kind
			} else if isEnableKey(key) {
				k = kBool
			}
			v = c.value(k, key, raw)
		}
		if len(c.problems) > 0 {
			for _, pr := range c.problems {
				errs = append(errs, pr.format(source))
			}
			return "", nil
		}
		return key, v
	})
	mp, err := p.Read()
	l.errs = append(l.errs, errs...)
	if err != nil {
		l.fail(fmt.Errorf("config: flags: %w", err))
		return
	}
	if len(errs) > 0 || len(mp) == 0 {
		return
	}
	if err := l.k.Load(confmap.Provider(mp, ""), nil); err != nil {
		l.fail(fmt.Errorf("config: flags: %w", err))
	}
}

// layer returns c in merge form: every known key with its value as the
// checker produces it, plus the Extra keys.
func (c *Config) layer() map[string]any {
	rv := reflect.ValueOf(c).Elem()
	out := make(map[string]any, len(fields)+len(c.Extra))
	for _, f := range fields {
		fv := rv.Field(f.index)
		var v any
		switch f.kind {
		case kNullString:
			if !fv.IsNil() {
				v = fv.Elem().String()
			}
		case kStringMap, kStringListMap:
			if !fv.IsNil() {
				m := make(map[string]any, fv.Len())
				iter := fv.MapRange()
				for iter.Next() {
					e := iter.Value().Interface()
					if l, ok := e.([]string); ok {
						e = append([]string{}, l...)
					}
					m[iter.Key().String()] = e
				}
				v = m
			}
		case kStringList, kCommaList:
			if !fv.IsNil() {
				v = append([]string{}, fv.Interface().([]string)...)
			}
		case kAnyMap:
			if !fv.IsNil() {
				v = clean(fv.Interface(), 0)
			}
		case kAny:
			v = clean(fv.Interface(), 0)
		default:
			v = fv.Interface()
		}
		out[f.key] = v
	}
	for k, v := range c.Extra {
		out[k] = clean(v, 0)
	}
	return out
}

// fromRaw builds a Config from a merged map in merge form.
func fromRaw(raw map[string]any) (*Config, error) {
	c := &Config{}
	rv := reflect.ValueOf(c).Elem()
	var chk checker
	for key, v := range raw {
		f := fieldByKey[key]
		if f == nil {
			if isExtra(key) {
				if c.Extra == nil {
					c.Extra = map[string]any{}
				}
				c.Extra[key] = chk.extra(key, v)
				continue
			}
			chk.problems = append(chk.problems, keyProblem{key: key, unknown: true})
			continue
		}
		// Re-checking is a no-op on merged values; it converts them to
		// the field's type.
		nv := chk.value(f.kind, key, v)
		setField(rv.Field(f.index), f.kind, nv)
	}
	if len(chk.problems) > 0 {
		errs := make([]error, 0, len(chk.problems))
		for _, p := range chk.problems {
			errs = append(errs, p.format("merged configuration"))
		}
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func setField(fv reflect.Value, k kind, v any) {
	switch k {
	case kNullString:
		if s, ok := v.(string); ok {
			fv.Set(reflect.ValueOf(&s))
		}
	case kStringMap:
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]string, len(m))
			for name, e := range m {
				out[name], _ = e.(string)
			}
			fv.Set(reflect.ValueOf(out))
		}
	case kStringListMap:
		if m, ok := v.(map[string]any); ok {
			out := make(map[string][]string, len(m))
			for name, e := range m {
				out[name], _ = e.([]string)
			}
			fv.Set(reflect.ValueOf(out))
		}
	case kAnyMap:
		if m, ok := v.(map[string]any); ok {
			fv.Set(reflect.ValueOf(m))
		}
	case kAny:
		if v != nil {
			fv.Set(reflect.ValueOf(v))
		}
	default:
		if v != nil {
			fv.Set(reflect.ValueOf(v))
		}
	}
}
