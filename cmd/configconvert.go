package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/gofedmsg/fedmsg/config"
)

func newConfigConvertCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "convert FILE.py|DIRECTORY...",
		Short: "Convert Python fedmsg configuration files (fedmsg.d/*.py) to one YAML file",
		Long: `Convert Python fedmsg's configuration, Python files each defining a dict
named config, to one YAML configuration for gofedmsg, written on stdout.

Each FILE is run by python3 as fedmsg runs it (the files may import
socket, os, ... and compute values); a DIRECTORY stands for its *.py files
in name order, as fedmsg reads a fedmsg.d directory. The dicts merge as
fedmsg merges them: later files win, nested dicts merge key by key, so
endpoints from endpoints.py and relay.py are both kept.

Keys gofedmsg does not know (other applications' keys in a shared
fedmsg.d, such as datanommer.sqlalchemy.url) are left out: each is named on
stderr, and listed in a comment at the end of the output, without its
value. A known key with a value of the wrong type, a file that fails to
run, defines no config dict, or holds a value YAML cannot represent (an
object, a function) is an error naming the file and key: exit 1 and
nothing on stdout. No python3 in PATH, no argument or a missing file:
exit 2. Secrets (stomp_pass, passwords in URLs) are written as they are.

Example:
  fedmsg config convert /etc/fedmsg.d > fedmsg.yaml
  fedmsg config --config fedmsg.yaml      # review what gofedmsg reads
  sudo install -m 0640 fedmsg.yaml /etc/fedmsg.d/fedmsg.yaml`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usage(errors.New("config convert: name at least one Python configuration file or directory"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return convertConfig(c.Context(), e, args)
		},
	}
}

// convertConfig writes the YAML equivalent of the Python fedmsg files
// named by args (files, or directories standing for their *.py files).
func convertConfig(ctx context.Context, e *env, args []string) error {
	files, err := pythonConfigFiles(args)
	if err != nil {
		return usage(err)
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		return usage(fmt.Errorf("config convert: python3 is needed to run fedmsg's Python configuration files and was not found in PATH: %w", err))
	}
	layers, err := runPythonConfigs(ctx, python, files, e.stderr)
	if err != nil {
		return failure(err)
	}

	// Merged here rather than in the Python script: each key must be
	// traced back to the file that set it, for the warnings and errors.
	merged := map[string]any{}
	origin := origins{}
	for _, l := range layers {
		mergeFedmsg(merged, l.config, l.file, "", origin)
	}

	kept, problems := config.Check(merged)
	var unknown, bad []string
	for _, p := range problems {
		if p.Unknown {
			unknown = append(unknown, p.Key)
			continue
		}
		bad = append(bad, p.Err(origin.last(p.Key)).Error())
	}
	for _, k := range unknown {
		fmt.Fprintf(e.stderr, "fedmsg: warning: config convert: %s: key %q is not a gofedmsg key (another application's?): left out\n",
			strings.Join(origin.all(k), ", "), k)
	}
	if len(bad) > 0 {
		return failure(errors.New(strings.Join(bad, "\n")))
	}

	out, err := renderConvertedYAML(files, kept, unknown, origin)
	if err != nil {
		return failure(fmt.Errorf("config convert: writing YAML: %w", err))
	}
	// What is written must load: the same loader, with its validation of
	// ranges and choices (irc_method, ports, URLs), reads it back first.
	cfg, err := loadConverted(out, origin)
	if err != nil {
		return failure(err)
	}
	e.scrub.addConfig(cfg) // anything printed from here on hides its secrets
	_, err = e.stdout.Write(out)
	return failure(err)
}

// pythonConfigFiles expands args: a directory into its *.py regular files
// sorted by name (fedmsg's _gather_configs_in), a file as it is.
func pythonConfigFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("config convert: %w", err)
		}
		if !st.IsDir() {
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("config convert: %s: not a regular file", a)
			}
			files = append(files, a)
			continue
		}
		entries, err := os.ReadDir(a) // sorted by name
		if err != nil {
			return nil, fmt.Errorf("config convert: %w", err)
		}
		n := 0
		for _, ent := range entries {
			if !strings.HasSuffix(ent.Name(), ".py") {
				continue
			}
			p := filepath.Join(a, ent.Name())
			if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
				continue // fedmsg skips what os.path.isfile refuses
			}
			files = append(files, p)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("config convert: %s: no *.py files in this directory", a)
		}
	}
	return files, nil
}

// pythonConfigScript runs each file named in sys.argv like fedmsg's
// load_config (compile and exec with a fresh globals dict, then read
// "config"), with __file__ set as imp.load_source sets it. It prints one
// JSON object: {"files": [[file, config], ...]} or {"error": {...}}.
// Values JSON cannot hold are refused with the path of the key; tuples
// become lists. Whatever the files print goes to stderr, so stdout is
// only the result.
const pythonConfigScript = `
import sys
# Modules in the current directory must not shadow json, socket, ...
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
import json, math, os, traceback

result = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr


class Bad(Exception):
    pass


def path_text(path):
    out = ""
    for p in path:
        if isinstance(p, int):
            out += "[%d]" % p
        else:
            out += ("." if out else "") + p
    return out


def plain(v, path):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise Bad(path, "a float that is not finite (%r)" % v)
        return float(v)
    if isinstance(v, (list, tuple)):
        return [plain(e, path + [i]) for i, e in enumerate(v)]
    if isinstance(v, dict):
        out = {}
        for k, e in v.items():
            if not isinstance(k, str):
                raise Bad(path, "a dict key that is not a string (%s %r)" % (type(k).__name__, k))
            out[k] = plain(e, path + [k])
        return out
    raise Bad(path, "a %s value, which YAML cannot hold (fedmsg's Python objects and functions have no YAML form)" % type(v).__name__)


def fail(fname, message, key=None):
    json.dump({"error": {"file": fname, "key": key, "message": message}}, result)
    result.close()
    sys.exit(0)


def where(fname, tb):
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == fname:
            line = lineno
    return fname if line is None else "%s:%d" % (fname, line)


layers = []
for fname in sys.argv[1:]:
    variables = {"__file__": fname}
    try:
        with open(fname, "rb") as f:
            code = compile(f.read(), fname, "exec")
        exec(code, variables)
    except SyntaxError as e:
        at = fname if not e.lineno else "%s:%d" % (fname, e.lineno)
        fail(fname, "%s: %s: %s" % (at, type(e).__name__, e.msg))
    except (Exception, SystemExit) as e:
        # The message, never the source line: it may hold a password.
        fail(fname, "%s: %s: %s" % (where(fname, e.__traceback__), type(e).__name__, e))
    if "config" not in variables:
        fail(fname, "%s: defines no dict named config (fedmsg needs one in every file)" % fname)
    cfg = variables["config"]
    if not isinstance(cfg, dict):
        fail(fname, "%s: config is a %s, not a dict" % (fname, type(cfg).__name__))
    try:
        layers.append([fname, plain(cfg, [])])
    except Bad as e:
        path, why = e.args
        fail(fname, "%s: key %r: %s" % (fname, path_text(path), why), path_text(path))
    except RecursionError:
        fail(fname, "%s: config is nested too deeply or contains itself" % fname)

json.dump({"files": layers}, result, allow_nan=False)
result.close()
`

// pythonLayer is one file's config dict.
type pythonLayer struct {
	file   string
	config map[string]any
}

// runPythonConfigs runs files through python3 and returns each one's
// config. The file names are arguments of the script, never part of its
// code. Whatever the files print goes to stderr.
func runPythonConfigs(ctx context.Context, python string, files []string, stderr io.Writer) ([]pythonLayer, error) {
	// -B: no __pycache__ written next to /etc/fedmsg.d's files.
	cmd := exec.CommandContext(ctx, python, append([]string{"-B", "-c", pythonConfigScript}, files...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	if errOut.Len() > 0 {
		stderr.Write(errOut.Bytes())
	}
	var res struct {
		Files [][2]json.RawMessage `json:"files"`
		Error *struct {
			File    string `json:"file"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || (res.Files == nil && res.Error == nil) {
		if runErr != nil {
			return nil, fmt.Errorf("config convert: %s running %s: %w", python, strings.Join(files, " "), runErr)
		}
		return nil, fmt.Errorf("config convert: %s gave no result for %s", python, strings.Join(files, " "))
	}
	if res.Error != nil {
		return nil, fmt.Errorf("config convert: %s", res.Error.Message)
	}
	layers := make([]pythonLayer, 0, len(res.Files))
	for _, f := range res.Files {
		var name string
		if err := json.Unmarshal(f[0], &name); err != nil {
			return nil, fmt.Errorf("config convert: reading python3's result: %w", err)
		}
		d := json.NewDecoder(bytes.NewReader(f[1]))
		d.UseNumber() // integers stay integers, not float64
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return nil, fmt.Errorf("config convert: %s: reading python3's result: %w", name, err)
		}
		v, err := fromJSONNumbers(m, "")
		if err != nil {
			return nil, fmt.Errorf("config convert: %s: %w", name, err)
		}
		layers = append(layers, pythonLayer{file: name, config: v.(map[string]any)})
	}
	return layers, nil
}

// fromJSONNumbers replaces json.Number with int (Python int) or float64
// (Python float: its JSON always has a '.' or an exponent).
func fromJSONNumbers(v any, key string) (any, error) {
	switch t := v.(type) {
	case json.Number:
		s := t.String()
		if !strings.ContainsAny(s, ".eE") {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || int64(int(n)) != n {
				return nil, fmt.Errorf("key %q: integer %s is out of range", key, s)
			}
			return int(n), nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("key %q: number %s is out of range", key, s)
		}
		return f, nil
	case []any:
		for i, e := range t {
			ne, err := fromJSONNumbers(e, fmt.Sprintf("%s[%d]", key, i))
			if err != nil {
				return nil, err
			}
			t[i] = ne
		}
	case map[string]any:
		for k, e := range t {
			sub := k
			if key != "" {
				sub = key + "." + k
			}
			ne, err := fromJSONNumbers(e, sub)
			if err != nil {
				return nil, err
			}
			t[k] = ne
		}
	}
	return v, nil
}

// origins records, for each dotted key path, the files that set it or
// something under it, in order.
type origins map[string][]string

func (o origins) add(path, file string) {
	if fs := o[path]; len(fs) == 0 || fs[len(fs)-1] != file {
		o[path] = append(fs, file)
	}
}

// lookup finds the longest recorded prefix of key (keys and endpoint
// names contain dots, so the split is not known).
func (o origins) lookup(key string) []string {
	for k := key; ; {
		if fs, ok := o[k]; ok {
			return fs
		}
		i := strings.LastIndexAny(k, ".[")
		if i <= 0 {
			return nil
		}
		k = k[:i]
	}
}

// last is the file whose value of key is the one in effect.
func (o origins) last(key string) string {
	if fs := o.lookup(key); len(fs) > 0 {
		return fs[len(fs)-1]
	}
	return "merged configuration"
}

func (o origins) all(key string) []string {
	if fs := o.lookup(key); len(fs) > 0 {
		return fs
	}
	return []string{"merged configuration"}
}

// mergeFedmsg merges src into dst as fedmsg's _recursive_update does: a
// dict merges into a dict key by key, anything else replaces. It records
// which file set each key.
func mergeFedmsg(dst, src map[string]any, file, prefix string, o origins) {
	for k, v := range src {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		o.add(path, file)
		dm, dIsMap := dst[k].(map[string]any)
		sm, sIsMap := v.(map[string]any)
		if dIsMap && sIsMap {
			mergeFedmsg(dm, sm, file, path, o)
			continue
		}
		if sIsMap {
			// A fresh copy, so a later merge into it cannot change src.
			nm := map[string]any{}
			mergeFedmsg(nm, sm, file, path, o)
			v = nm
		}
		dst[k] = v
	}
}

// renderConvertedYAML writes kept as YAML, keys sorted, between a header
// naming the files and a comment listing the keys left out. No date: the
// same files give the same bytes.
func renderConvertedYAML(files []string, kept map[string]any, unknown []string, o origins) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# gofedmsg configuration converted by `fedmsg config convert` from\n")
	b.WriteString("# Python fedmsg configuration files, merged in this order:\n")
	for _, f := range files {
		fmt.Fprintf(&b, "#   %s\n", commentText(f))
	}
	if len(kept) > 0 {
		var body bytes.Buffer
		enc := yaml.NewEncoder(&body)
		enc.SetIndent(2)
		if err := enc.Encode(kept); err != nil {
			return nil, err
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
		b.Write(body.Bytes())
	} else {
		b.WriteString("{}\n")
	}
	if len(unknown) > 0 {
		b.WriteString("\n# Left out: keys gofedmsg does not know (other applications' settings).\n")
		b.WriteString("# Their values are not copied here.\n")
		keys := append([]string{}, unknown...)
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "#   %s (from %s)\n", commentText(k), commentText(strings.Join(o.all(k), ", ")))
		}
	}
	return b.Bytes(), nil
}

// commentText keeps a file or key name on its comment line.
func commentText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// quotedKey finds the key an error from the loader names.
var quotedKey = regexp.MustCompile(`key "([^"]+)"`)

// loadConverted loads out with gofedmsg's loader (nothing else: no
// defaults directories, no environment) and returns the configuration.
// Its errors name the Python file that set the key at fault.
func loadConverted(out []byte, o origins) (*config.Config, error) {
	dir, err := os.MkdirTemp("", "fedmsg-convert-")
	if err != nil {
		return nil, fmt.Errorf("config convert: checking the result: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "converted.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return nil, fmt.Errorf("config convert: checking the result: %w", err)
	}
	cfg, err := config.Load(config.Sources{Dirs: []string{}, Files: []string{path}})
	if err == nil {
		return cfg, nil
	}
	var lines []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.ReplaceAll(line, path, "converted configuration")
		if m := quotedKey.FindStringSubmatch(line); m != nil {
			line += " (set in " + o.last(m[1]) + ")"
		}
		lines = append(lines, line)
	}
	return nil, fmt.Errorf("config convert: gofedmsg would refuse the result:\n%s", strings.Join(lines, "\n"))
}
