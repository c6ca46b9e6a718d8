package message

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Expected values follow Python's fnmatch.fnmatchcase for globs and a byte
// prefix for patterns without '*', '?' or '['.
var patternCases = []struct {
	pattern string
	prefix  string
	glob    bool
	match   []string
	noMatch []string
}{
	// "" selects everything, as fedmsg-tail with no --topic.
	{"", "", false, []string{"", "org.fedoraproject.prod.bodhi.update", "x"}, nil},
	// Plain prefixes: ZeroMQ's byte-prefix filter, dots mean nothing.
	{"org.fedoraproject.prod.bodhi", "org.fedoraproject.prod.bodhi", false,
		[]string{"org.fedoraproject.prod.bodhi", "org.fedoraproject.prod.bodhi.update", "org.fedoraproject.prod.bodhix"},
		[]string{"org.fedoraproject.prod.bodh", "org.fedoraproject.stg.bodhi.update", "", "Org.fedoraproject.prod.bodhi"}},
	{"org.fedoraproject.dev.wiki.café", "org.fedoraproject.dev.wiki.café", false,
		[]string{"org.fedoraproject.dev.wiki.café.ümläut"},
		[]string{"org.fedoraproject.dev.wiki.cafe"}},
	// '*' crosses dots and the glob covers the whole topic.
	{"org.fedoraproject.*.bodhi.update", "org.fedoraproject.", true,
		[]string{"org.fedoraproject.prod.bodhi.update", "org.fedoraproject.a.b.bodhi.update", "org.fedoraproject..bodhi.update"},
		[]string{"org.fedoraproject.prod.bodhi.update.comment", "org.fedoraproject.prod.bodhi.updat", "org.fedoraproject.bodhi.update", "xorg.fedoraproject.prod.bodhi.update"}},
	{"org.*", "org.", true, []string{"org.", "org.a", "org.a.b", "org.a\nb"}, []string{"org", "or.a", "xorg.a"}},
	{"*", "", true, []string{"", "anything", "a.b.c", "\n"}, nil},
	{"**", "", true, []string{"", "abc"}, nil},
	{"*.update", "", true, []string{".update", "org.fedoraproject.prod.bodhi.update"}, []string{"update", "org.update.x"}},
	{"a*b*c", "a", true, []string{"abc", "aXbYc", "abbbc", "acbc", "abcbc"}, []string{"ab", "acb", "abcd", "bac"}},
	{"*a*a*a", "", true, []string{"aaa", "xaxaxa", "aaaa"}, []string{"aa", "aaab", strings.Repeat("a", 2) + "b"}},
	// '?' is one character, any character, dots and multi-byte ones included.
	{"a?c", "a", true, []string{"abc", "a.c", "a?c", "aéc", "a\nc"}, []string{"ac", "abbc", "abcd", "Abc"}},
	{"??", "", true, []string{"ab", "éü"}, []string{"a", "abc", ""}},
	// Classes.
	{"[!x]", "", true, []string{"a", "é", "]", "!"}, []string{"x", "", "ab"}},
	{"[abc]z", "", true, []string{"az", "cz"}, []string{"dz", "z", "abz"}},
	{"[a-c]z", "", true, []string{"az", "bz", "cz"}, []string{"dz", "-z", "Az"}},
	{"[!a-c]z", "", true, []string{"dz", "-z"}, []string{"az", "bz", "cz"}},
	{"[]]", "", true, []string{"]"}, []string{"[", "[]]", ""}},
	{"[]a]", "", true, []string{"]", "a"}, []string{"b"}},
	{"[!]]", "", true, []string{"a"}, []string{"]"}},
	{"[-a]", "", true, []string{"-", "a"}, []string{"b"}},
	{"[a-]", "", true, []string{"-", "a"}, []string{"b"}},
	{"[!-]", "", true, []string{"a"}, []string{"-"}},
	{"[z-a]", "", true, nil, []string{"a", "m", "z", "-", ""}}, // reversed range: matches nothing
	{"[!z-a]", "", true, []string{"a", "m", "-"}, []string{"", "ab"}},
	{"[a-c-e]", "", true, []string{"a", "b", "c", "-", "e"}, []string{"d"}},
	{"[a--]", "", true, nil, []string{"a", "-", "b"}}, // range 'a'..'-' is reversed
	{"[--/]", "", true, []string{"-", ".", "/"}, []string{"0", ","}},
	{"[\\]", "", true, []string{"\\"}, []string{"]"}},
	{"[^a]", "", true, []string{"^", "a"}, []string{"b"}},
	{"[[]", "", true, []string{"["}, []string{"]"}},
	{"[a&&b]", "", true, []string{"a", "&", "b"}, []string{"c"}},
	{"[é-ü]", "", true, []string{"é", "ö"}, []string{"e", "ÿ"}},
	{"org.fedoraproject.[ps]*.bodhi.*", "org.fedoraproject.", true,
		[]string{"org.fedoraproject.prod.bodhi.update", "org.fedoraproject.stg.bodhi.x"},
		[]string{"org.fedoraproject.dev.bodhi.update"}},
	// A '[' without a closing ']' is a literal, and still makes a glob: the
	// whole topic must equal the pattern.
	{"org.wiki[", "org.wiki[", true, []string{"org.wiki["}, []string{"org.wiki[x", "org.wiki", "org.wikix"}},
	{"[", "[", true, []string{"["}, []string{"", "[a"}},
	{"[!]", "[!]", true, []string{"[!]"}, []string{"a", "!"}},
	{"[]", "[]", true, []string{"[]"}, []string{"]", "["}},
	{"a[b*", "a[b", true, []string{"a[b", "a[bcd"}, []string{"ab", "a[", "a[c"}},
	{"[a]x[", "", true, []string{"ax["}, []string{"ax", "ax[b"}},
	// Literal text around wildcards.
	{"org.fedoraproject.prod.*", "org.fedoraproject.prod.", true,
		[]string{"org.fedoraproject.prod.x", "org.fedoraproject.prod."},
		[]string{"org.fedoraproject.prod", "org.fedoraproject.stg.x"}},
	{"a.b?", "a.b", true, []string{"a.bc"}, []string{"a.b", "a.bcd"}},
}

func TestPatternMatchesLikeFnmatch(t *testing.T) {
	for _, c := range patternCases {
		p, err := CompilePattern(c.pattern)
		if err != nil {
			t.Fatalf("CompilePattern(%q): %v", c.pattern, err)
		}
		if p.String() != c.pattern {
			t.Errorf("String() = %q, want %q", p.String(), c.pattern)
		}
		if p.Prefix() != c.prefix {
			t.Errorf("%q: Prefix() = %q, want %q", c.pattern, p.Prefix(), c.prefix)
		}
		if p.Glob() != c.glob {
			t.Errorf("%q: Glob() = %v, want %v", c.pattern, p.Glob(), c.glob)
		}
		for _, topic := range c.match {
			if !p.Match(topic) {
				t.Errorf("%q should match %q", c.pattern, topic)
			}
		}
		for _, topic := range c.noMatch {
			if p.Match(topic) {
				t.Errorf("%q should not match %q", c.pattern, topic)
			}
		}
	}
}

// A topic byte that is not UTF-8 is one character no literal equals.
func TestPatternInvalidUTF8Topic(t *testing.T) {
	for pattern, want := range map[string]bool{
		"a?b":       true,
		"a*":        true,
		"a[!x]":     true,
		"a\ufffd":   false, // U+FFFD is not the invalid byte
		"a[\ufffd]": false,
		"a??":       false,
	} {
		p, err := CompilePattern(pattern)
		if err != nil {
			t.Fatal(err)
		}
		topic := "a\xff"
		if pattern == "a?b" {
			topic = "a\xffb"
		}
		if got := p.Match(topic); got != want {
			t.Errorf("%q.Match(%q) = %v, want %v", pattern, topic, got, want)
		}
	}
}

func TestCompilePatternRefusesInvalidUTF8(t *testing.T) {
	if _, err := CompilePattern("org.\xff*"); !errors.Is(err, ErrBadPattern) {
		t.Fatalf("want ErrBadPattern, got %v", err)
	}
}

func TestZeroPatternMatchesEverything(t *testing.T) {
	var p Pattern
	if !p.Match("anything") || !p.Match("") || p.Prefix() != "" || p.Glob() {
		t.Fatal("the zero Pattern must be the empty prefix")
	}
}

func TestMatchAny(t *testing.T) {
	if !MatchAny(nil, "org.x") {
		t.Error("an empty list matches everything")
	}
	var ps []Pattern
	for _, s := range []string{"org.fedoraproject.prod.", "*.koji.*"} {
		p, err := CompilePattern(s)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for topic, want := range map[string]bool{
		"org.fedoraproject.prod.bodhi.update":  true,
		"org.fedoraproject.stg.koji.build.tag": true,
		"org.fedoraproject.stg.bodhi.update":   false,
		"koji.x":                               false,
	} {
		if got := MatchAny(ps, topic); got != want {
			t.Errorf("MatchAny(%q) = %v, want %v", topic, got, want)
		}
	}
}

// A pathological glob against a long topic stays linear-ish in time.
func TestPatternNoExponentialBacktracking(t *testing.T) {
	p, err := CompilePattern(strings.Repeat("*a", 30) + "b")
	if err != nil {
		t.Fatal(err)
	}
	if p.Match(strings.Repeat("a", 5000)) {
		t.Fatal("matched without the final b")
	}
}

// FuzzPattern checks, for any pattern and topic: CompilePattern never
// panics and fails only on invalid UTF-8 (with ErrBadPattern); Prefix() is a
// prefix of the pattern and of every topic it matches; a pattern without
// '*', '?' or '[' is a plain byte prefix; and a glob agrees with pyFnmatch,
// a line-by-line port of CPython 3.11's fnmatch.translate onto Go's regexp.
// Seeds live in testdata/fuzz/FuzzPattern.
func FuzzPattern(f *testing.F) {
	f.Add("org.fedoraproject.*.bodhi.update", "org.fedoraproject.prod.bodhi.update")
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		p, err := CompilePattern(pattern)
		if err != nil {
			if !errors.Is(err, ErrBadPattern) || utf8.ValidString(pattern) {
				t.Fatalf("CompilePattern(%q): %v", pattern, err)
			}
			return
		}
		if p.String() != pattern {
			t.Fatalf("String() = %q, want %q", p.String(), pattern)
		}
		if !strings.HasPrefix(pattern, p.Prefix()) {
			t.Fatalf("Prefix() %q is not a prefix of %q", p.Prefix(), pattern)
		}
		matched := p.Match(topic)
		if matched && !strings.HasPrefix(topic, p.Prefix()) {
			t.Fatalf("%q matches %q, which does not start with Prefix() %q", pattern, topic, p.Prefix())
		}
		if p.Glob() != strings.ContainsAny(pattern, "*?[") {
			t.Fatalf("%q: Glob() = %v", pattern, p.Glob())
		}
		if !p.Glob() {
			if p.Prefix() != pattern || matched != strings.HasPrefix(topic, pattern) {
				t.Fatalf("prefix pattern %q: Prefix() %q, Match(%q) = %v", pattern, p.Prefix(), topic, matched)
			}
			return
		}
		if utf8.ValidString(topic) {
			if want := pyFnmatch(t, pattern, topic); matched != want {
				t.Fatalf("%q.Match(%q) = %v, fnmatch says %v", pattern, topic, matched, want)
			}
		}
	})
}

// pyFnmatch is fnmatch.fnmatchcase(topic, pattern) the way CPython 3.11
// computes it: fnmatch.translate (ported structure and all, including its
// chunking of ranges and removal of reversed ones) into a regular
// expression, matched against the whole topic.
func pyFnmatch(t *testing.T, pattern, topic string) bool {
	pat := []rune(pattern)
	lit := func(r rune) string { return regexp.QuoteMeta(string(r)) }
	var res strings.Builder
	i, n := 0, len(pat)
	for i < n {
		c := pat[i]
		i++
		switch c {
		case '*':
			res.WriteString(".*")
		case '?':
			res.WriteString(".")
		case '[':
			j := i
			if j < n && pat[j] == '!' {
				j++
			}
			if j < n && pat[j] == ']' {
				j++
			}
			for j < n && pat[j] != ']' {
				j++
			}
			if j >= n {
				res.WriteString(`\[`)
				continue
			}
			var chunks [][]rune
			if !slices.Contains(pat[i:j], '-') {
				chunks = [][]rune{slices.Clone(pat[i:j])}
			} else {
				k := i + 1
				if pat[i] == '!' {
					k = i + 2
				}
				for {
					h := -1
					for x := k; x < j; x++ {
						if pat[x] == '-' {
							h = x
							break
						}
					}
					if h < 0 {
						break
					}
					chunks = append(chunks, slices.Clone(pat[i:h]))
					i = h + 1
					k = h + 3
				}
				if chunk := pat[i:j]; len(chunk) > 0 {
					chunks = append(chunks, slices.Clone(chunk))
				} else {
					chunks[len(chunks)-1] = append(chunks[len(chunks)-1], '-')
				}
				for k := len(chunks) - 1; k > 0; k-- {
					prev := chunks[k-1]
					if prev[len(prev)-1] > chunks[k][0] {
						chunks[k-1] = append(slices.Clone(prev[:len(prev)-1]), chunks[k][1:]...)
						chunks = slices.Delete(chunks, k, k+1)
					}
				}
			}
			i = j + 1
			negate := len(chunks[0]) > 0 && chunks[0][0] == '!'
			if negate {
				chunks[0] = chunks[0][1:]
			}
			empty := true
			for _, ch := range chunks {
				empty = empty && len(ch) == 0
			}
			switch {
			case empty && !negate: // Python's (?!)
				res.WriteString(`[^\x00-\x{10FFFF}]`)
			case empty && negate:
				res.WriteString(".")
			default:
				if negate {
					res.WriteString("[^")
				} else {
					res.WriteString("[")
				}
				for x, ch := range chunks {
					if x > 0 {
						res.WriteString("-") // a range between the chunks' ends
					}
					for _, r := range ch {
						if r == '-' { // a literal hyphen inside a chunk, as Python escapes it
							res.WriteString(`\-`)
							continue
						}
						res.WriteString(lit(r))
					}
				}
				res.WriteString("]")
			}
		default:
			res.WriteString(lit(c))
		}
	}
	re, err := regexp.Compile(`\A(?s:` + res.String() + `)\z`)
	if err != nil {
		t.Fatalf("pyFnmatch(%q): %v", pattern, err)
	}
	return re.MatchString(topic)
}

// WholeWords is what broker subscriptions are built from: every topic the
// pattern matches must start with those words, each followed by a dot.
func TestWholeWords(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{"", nil},
		{"org", nil},
		{"org.fedoraproject", []string{"org"}}, // "org.fedoraprojectX" matches too
		{"org.fedoraproject.", []string{"org", "fedoraproject"}},
		{"org.fedoraproject.*.bodhi.update", []string{"org", "fedoraproject"}},
		{"org.fedora?roject.prod", []string{"org"}},
		{"org.fedoraproject.prod.b[ou]dhi", []string{"org", "fedoraproject", "prod"}},
		{"a..b.c", []string{"a", "", "b"}},
		{".a", []string{""}},
	} {
		p, err := CompilePattern(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.WholeWords(); !slices.Equal(got, tc.want) {
			t.Errorf("WholeWords(%q) = %q, want %q", tc.pattern, got, tc.want)
		}
		// Every topic the pattern matches starts with the words and a dot.
		prefix := ""
		if len(tc.want) > 0 {
			prefix = strings.Join(tc.want, ".") + "."
		}
		for _, topic := range []string{"org.fedoraproject.prod.bodhi.update", "org.fedoraprojectX.y", "a..b.c.d", ".a.b"} {
			if p.Match(topic) && !strings.HasPrefix(topic, prefix) {
				t.Errorf("%q matches %q, which does not start with %q", tc.pattern, topic, prefix)
			}
		}
	}
}
