package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// kind is how a key's value is checked and normalised.
type kind int

const (
	kString        kind = iota // string
	kNullString                // string or null (*string)
	kInt                       // integer
	kFloat                     // number
	kBool                      // boolean, or the strings true/false
	kStringList                // string or list of strings -> []string
	kCommaList                 // comma-separated string or list -> []string
	kStringMap                 // map of strings -> map[string]string
	kStringListMap             // map of string-or-list -> map[string][]string
	kAnyMap                    // any map -> map[string]any
	kAny                       // anything
)

// field describes one key of Config.
type field struct {
	key   string
	index int
	kind  kind
	env   string // FEDMSG_<KEY>
}

var (
	fields     []field
	fieldByKey = map[string]*field{}
	// keyPrefixes holds every proper dotted prefix of a known key or of an
	// open-ended key family ("fedmsg", "fedmsg.consumers", "moksha", ...).
	keyPrefixes = map[string]bool{}
	// envToKey maps an environment variable name to its key.
	envToKey = map[string]string{}
)

// wellKnownExtra are open-ended keys that may also be given through the
// environment (fedmsg's consumer and command enable switches).
var wellKnownExtra = []string{
	"fedmsg.consumers.relay.enabled",
	"fedmsg.consumers.gateway.enabled",
	"fedmsg.consumers.ircbot.enabled",
	"fedmsg.consumers.dummy.enabled",
	"fedmsg.commands.collectd.enabled",
}

func init() {
	t := reflect.TypeFor[Config]()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		key := sf.Tag.Get("koanf")
		if key == "" || key == "-" {
			continue
		}
		fields = append(fields, field{key: key, index: i, kind: kindOf(sf), env: envName(key)})
	}
	for i := range fields {
		f := &fields[i]
		fieldByKey[f.key] = f
		addPrefixes(f.key)
		envToKey[f.env] = f.key
	}
	for _, k := range wellKnownExtra {
		addPrefixes(k)
		envToKey[envName(k)] = k
	}
	addPrefixes("moksha.livesocket.x")
}

func addPrefixes(key string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '.' {
			keyPrefixes[key[:i]] = true
		}
	}
}

func kindOf(sf reflect.StructField) kind {
	t := sf.Type
	switch {
	case t.Kind() == reflect.String:
		return kString
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.String:
		return kNullString
	case t.Kind() == reflect.Int:
		return kInt
	case t.Kind() == reflect.Float64:
		return kFloat
	case t.Kind() == reflect.Bool:
		return kBool
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		if sf.Tag.Get("fedmsg") == "comma" {
			return kCommaList
		}
		return kStringList
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		switch {
		case t.Elem().Kind() == reflect.String:
			return kStringMap
		case t.Elem().Kind() == reflect.Slice && t.Elem().Elem().Kind() == reflect.String:
			return kStringListMap
		case t.Elem().Kind() == reflect.Interface:
			return kAnyMap
		}
	case t.Kind() == reflect.Interface:
		return kAny
	}
	panic("config: unsupported field type " + t.String() + " for " + sf.Name)
}

// envName is the environment variable for key: FEDMSG_ + the key
// upper-cased with every character that is not a letter or digit replaced
// by '_'.
func envName(key string) string {
	var b strings.Builder
	b.WriteString("FEDMSG_")
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// isExtra reports whether key is an accepted open-ended key kept in
// Config.Extra.
func isExtra(key string) bool {
	return isEnableKey(key) || isLivesocketKey(key)
}

func isEnableKey(key string) bool {
	return len(key) > len(".enabled") && strings.HasSuffix(key, ".enabled")
}

func isLivesocketKey(key string) bool {
	return key == "moksha.livesocket" || strings.HasPrefix(key, "moksha.livesocket.")
}

// ---- errors ----

// configError is an error about configuration content; it wraps ErrInvalid
// and, optionally, an underlying cause.
type configError struct {
	msg   string
	cause error
}

func (e *configError) Error() string { return e.msg }

func (e *configError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrInvalid, e.cause}
	}
	return []error{ErrInvalid}
}

func invalidf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// keyProblem is one problem found while checking a source.
type keyProblem struct {
	key     string
	unknown bool   // unknown key (msg holds a suggestion, if any)
	want    string // type error: what was expected
	got     any    // type error: what was found
	msg     string // any other problem
}

func (p keyProblem) format(source string) error {
	switch {
	case p.unknown:
		return invalidf("config: %s: unknown key %q%s", source, p.key, p.msg)
	case p.want != "":
		got := describe(p.got)
		if isSecretKey(p.key) {
			// The type only: a numeric password would be printed whole.
			got, _, _ = strings.Cut(got, " ")
		}
		return invalidf("config: %s: key %q: want %s, got %s", source, p.key, p.want, got)
	default:
		return invalidf("config: %s: key %q: %s", source, p.key, p.msg)
	}
}

// describe names the type and (for scalars) the value of v, for errors.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + quoteShort(redactURL(t))
	case bool:
		return "boolean " + strconv.FormatBool(t)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprintf("integer %d", t)
	case float32, float64:
		return fmt.Sprintf("float %v", t)
	case time.Time:
		return "datetime " + t.Format(time.RFC3339Nano)
	case []any, []string:
		return "list"
	case map[string]any, map[any]any, map[string]string:
		return "map"
	case fmt.Stringer:
		return fmt.Sprintf("%T %s", v, quoteShort(t.String()))
	default:
		return fmt.Sprintf("%T", v)
	}
}

func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// ---- normalisation ----

// checker normalises the values of one source and records its problems.
type checker struct {
	problems []keyProblem
}

func (c *checker) typeErr(key, want string, got any) {
	c.problems = append(c.problems, keyProblem{key: key, want: want, got: got})
}

// file normalises a whole parsed file (or any top-level map): it resolves
// nested spellings of dotted keys, checks every value and returns the map
// to merge, whose top-level keys are known keys or Extra keys.
func (c *checker) file(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	c.walk("", m, out)
	return out
}

func (c *checker) walk(prefix string, m map[string]any, out map[string]any) {
	for _, k := range sortedKeys(m) {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		c.entry(key, m[k], out)
	}
}

func (c *checker) entry(key string, v any, out map[string]any) {
	mv, isMap := asMap(v)
	if f := fieldByKey[key]; f != nil {
		// moksha.monitoring.socket: {mode: ...} nests a longer key under
		// a key whose own value is not a map.
		if isMap && keyPrefixes[key] && !f.kind.isMap() {
			c.walk(key, mv, out)
			return
		}
		out[key] = c.value(f.kind, key, v)
		return
	}
	if isMap && (keyPrefixes[key] || isLivesocketKey(key) || (!isExtra(key) && containsEnabled(mv, 0))) {
		c.walk(key, mv, out)
		return
	}
	if isExtra(key) {
		out[key] = c.extra(key, v)
		return
	}
	c.problems = append(c.problems, keyProblem{key: key, unknown: true, msg: suggestion(key)})
}

// containsEnabled reports whether a map holds an "enabled" key at any depth,
// i.e. whether walking into it may find an accepted *.enabled key.
func containsEnabled(m map[string]any, depth int) bool {
	if depth > 32 {
		return false
	}
	for k, v := range m {
		if k == "enabled" {
			return true
		}
		if sub, ok := asMap(v); ok && containsEnabled(sub, depth+1) {
			return true
		}
	}
	return false
}

// extra normalises the value of an open-ended key.
func (c *checker) extra(key string, v any) any {
	if isEnableKey(key) {
		return c.value(kBool, key, v)
	}
	return c.value(kAny, key, v)
}

func (k kind) isMap() bool {
	return k == kStringMap || k == kStringListMap || k == kAnyMap
}

// value checks v against kind and returns it in its merge form: string,
// nil-or-string, int, float64, bool, []string, map[string]any of string,
// map[string]any of []string, map[string]any, or a cleaned any.
func (c *checker) value(k kind, key string, v any) any {
	switch k {
	case kString:
		switch t := v.(type) {
		case nil:
			return ""
		case string:
			return t
		}
		c.typeErr(key, "a string", v)
	case kNullString:
		switch t := v.(type) {
		case nil:
			return nil
		case string:
			return t
		}
		c.typeErr(key, "a string or null", v)
	case kInt:
		if n, ok := asInt(v); ok {
			return n
		}
		c.typeErr(key, "an integer", v)
	case kFloat:
		if f, ok := asFloat(v); ok {
			return f
		}
		c.typeErr(key, "a number", v)
	case kBool:
		if b, ok := asBool(v); ok {
			return b
		}
		c.typeErr(key, "a boolean", v)
	case kStringList, kCommaList:
		if l, ok := asStringList(v, k == kCommaList); ok {
			return l
		}
		c.typeErr(key, "a string or a list of strings", v)
	case kStringMap, kStringListMap:
		if v == nil {
			return nil
		}
		m, ok := asMap(v)
		if !ok {
			c.typeErr(key, "a map", v)
			return nil
		}
		out := make(map[string]any, len(m))
		c.mapEntries(k, key, "", m, out, 0)
		return out
	case kAnyMap:
		if v == nil {
			return nil
		}
		if m, ok := asMap(v); ok {
			return clean(m, 0)
		}
		c.typeErr(key, "a map", v)
	case kAny:
		return clean(v, 0)
	}
	return nil
}

// mapEntries checks the entries of a map-of-strings or map-of-lists key.
// A nested map is read as dotted entry names (what TOML's dotted keys
// produce): {bodhi: {app01: URL}} is the entry "bodhi.app01".
func (c *checker) mapEntries(k kind, key, prefix string, m map[string]any, out map[string]any, depth int) {
	for _, name := range sortedKeys(m) {
		full := name
		if prefix != "" {
			full = prefix + "." + name
		}
		v := m[name]
		if sub, ok := asMap(v); ok && depth < 32 {
			c.mapEntries(k, key, full, sub, out, depth+1)
			continue
		}
		if k == kStringMap {
			if s, ok := v.(string); ok {
				out[full] = s
			} else {
				c.typeErr(key+"."+full, "a string", v)
			}
			continue
		}
		if l, ok := asStringList(v, false); ok && v != nil {
			out[full] = l
		} else {
			c.typeErr(key+"."+full, "a string or a list of strings", v)
		}
	}
}

func asInt(v any) (int, bool) {
	switch t := v.(type) {
	case int:
		return t, true
	case int8:
		return int(t), true
	case int16:
		return int(t), true
	case int32:
		return int(t), true
	case int64:
		if int64(int(t)) == t {
			return int(t), true
		}
	case uint:
		if uint64(t) <= math.MaxInt {
			return int(t), true
		}
	case uint8:
		return int(t), true
	case uint16:
		return int(t), true
	case uint32:
		if uint64(t) <= math.MaxInt {
			return int(t), true
		}
	case uint64:
		if t <= math.MaxInt {
			return int(t), true
		}
	case float64:
		// JSON has only floats; accept integral ones.
		if t == math.Trunc(t) && t >= math.MinInt64 && t < math.MaxInt64 && float64(int(t)) == t {
			return int(t), true
		}
	case float32:
		return asInt(float64(t))
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	var f float64
	switch t := v.(type) {
	case float64:
		f = t
	case float32:
		f = float64(t)
	case time.Duration:
		f = t.Seconds()
	default:
		if n, ok := asInt(v); ok {
			return float64(n), true
		}
		switch t := v.(type) {
		case int64:
			f = float64(t)
		case uint64:
			f = float64(t)
		default:
			return 0, false
		}
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// asBool accepts booleans and, like fedmsg's new config, the strings
// "true"/"false" in any case, surrounding space trimmed.
func asBool(v any) (bool, bool) {
	switch t := v.(type) {
	case bool:
		return t, true
	case string:
		s := strings.TrimSpace(t)
		if strings.EqualFold(s, "true") {
			return true, true
		}
		if strings.EqualFold(s, "false") {
			return false, true
		}
	}
	return false, false
}

// asStringList accepts a string (one item; "" is no items; with comma, a
// comma-separated list) or a list of strings. null is a nil list.
func asStringList(v any, comma bool) ([]string, bool) {
	switch t := v.(type) {
	case nil:
		return nil, true
	case string:
		if comma {
			out := []string{}
			for _, p := range strings.Split(t, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
			return out, true
		}
		if t == "" {
			return []string{}, true
		}
		return []string{t}, true
	case []string:
		return append([]string{}, t...), true
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// asMap returns v as a map with string keys, converting the other map
// forms parsers and flags produce.
func asMap(v any) (map[string]any, bool) {
	switch t := v.(type) {
	case map[string]any:
		return t, true
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fmt.Sprint(k)] = e
		}
		return out, true
	case map[string]string:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = e
		}
		return out, true
	}
	return nil, false
}

// clean deep-copies a parsed value into plain types only (nil, bool,
// string, int, int64, uint64, float64, []any, map[string]any), turning
// anything else (dates, ...) into its text, so that later copying and
// printing cannot fail.
func clean(v any, depth int) any {
	if depth > 10000 {
		return nil
	}
	switch t := v.(type) {
	case nil, bool, string, int, int64, uint64, float64:
		return t
	case int8, int16, int32, uint, uint8, uint16, uint32:
		n, _ := asInt(t)
		return n
	case float32:
		return float64(t)
	case time.Time:
		return t.Format(time.RFC3339Nano)
	case []string:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = e
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = clean(e, depth+1)
		}
		return out
	}
	if m, ok := asMap(v); ok {
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = clean(e, depth+1)
		}
		return out
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ---- suggestions ----

// suggestion returns ` (did you mean "x"?)` for the known key closest to
// key, or "" when none is close.
func suggestion(key string) string {
	if best := closestKey(key); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

func closestKey(key string) string {
	if len(key) > 200 {
		return ""
	}
	best, bestD := "", -1
	for _, f := range fields {
		d := levenshtein(key, f.key)
		if bestD < 0 || d < bestD || (d == bestD && f.key < best) {
			best, bestD = f.key, d
		}
	}
	limit := len(key) / 4
	if limit < 1 {
		limit = 1
	}
	if limit > 3 {
		limit = 3
	}
	if bestD <= limit {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
