package message

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrBadPattern: a topic pattern cannot be used (it is not valid UTF-8).
var ErrBadPattern = errors.New("message: bad topic pattern")

// A Pattern is fedmsg's topic selector, with one meaning on every transport.
//
//   - "" matches every topic.
//   - A pattern with no wildcard character ('*', '?', '[') matches as a plain
//     byte prefix: the semantics of fedmsg-tail --topic and of a ZeroMQ SUB
//     subscription (spec §1.2).
//   - A pattern with a wildcard character is an fnmatch glob over the whole
//     topic, as fedmsg's STOMP consumers use (spec §8.2, §9.4), with Python's
//     fnmatch.fnmatchcase rules: '*' matches any run of characters, dots
//     included; '?' matches one character; '[seq]' matches one character in
//     seq and '[!seq]' one not in it, where a ']' right after '[' or '[!' is a
//     member, 'a-z' is a range and a reversed range is empty; a '[' with no
//     closing ']' is a literal '['. Characters are Unicode code points; a
//     topic byte that is not valid UTF-8 counts as one character that no
//     literal matches (Python's surrogateescape).
//
// The zero Pattern is "" and matches everything.
type Pattern struct {
	src    string
	glob   bool
	prefix string  // literal text before the first wildcard
	toks   []token // the glob after prefix; nil for prefix patterns
}

type tokenKind uint8

const (
	tokLiteral tokenKind = iota // one code point, r
	tokAny                      // '?'
	tokStar                     // '*' (consecutive stars collapsed)
	tokClass                    // '[...]'
)

type token struct {
	kind   tokenKind
	r      rune
	negate bool
	ranges []runeRange // tokClass members; a single character is lo == hi
}

type runeRange struct{ lo, hi rune }

// CompilePattern parses s. It never panics: as in fnmatch, a malformed
// class is literal text. The only error is a pattern that is not valid
// UTF-8 (wrapping ErrBadPattern), since no topic fedmsg carries could be
// meant by it.
func CompilePattern(s string) (Pattern, error) {
	if !utf8.ValidString(s) {
		return Pattern{}, fmt.Errorf("%w: %q is not valid UTF-8", ErrBadPattern, s)
	}
	p := Pattern{src: s}
	if !strings.ContainsAny(s, "*?[") {
		p.prefix = s
		return p, nil
	}
	p.glob = true
	rs := []rune(s)
	var toks []token
	for i := 0; i < len(rs); {
		switch c := rs[i]; c {
		case '*':
			if len(toks) == 0 || toks[len(toks)-1].kind != tokStar {
				toks = append(toks, token{kind: tokStar})
			}
			i++
		case '?':
			toks = append(toks, token{kind: tokAny})
			i++
		case '[':
			tok, next, ok := parseClass(rs, i+1)
			if !ok {
				toks = append(toks, token{kind: tokLiteral, r: '['})
				i++
				continue
			}
			toks = append(toks, tok)
			i = next
		default:
			toks = append(toks, token{kind: tokLiteral, r: c})
			i++
		}
	}
	n := 0
	for n < len(toks) && toks[n].kind == tokLiteral {
		n++
	}
	var b strings.Builder
	for _, t := range toks[:n] {
		b.WriteRune(t.r)
	}
	p.prefix = b.String()
	p.toks = toks[n:]
	return p, nil
}

// parseClass reads a class whose '[' precedes rs[i]. It returns the token
// and the index after the closing ']', or ok false when there is none (then
// the '[' is a literal), following fnmatch.translate (Python 3.11) to the
// letter, quirks included: see classChunks.
func parseClass(rs []rune, i int) (tok token, next int, ok bool) {
	tok.kind = tokClass
	j := i
	if j < len(rs) && rs[j] == '!' {
		j++
	}
	if j < len(rs) && rs[j] == ']' {
		j++ // a ']' first is a member
	}
	for j < len(rs) && rs[j] != ']' {
		j++
	}
	if j >= len(rs) {
		return token{}, 0, false
	}
	chunks := classChunks(rs, i, j)
	// Negation is read after reversed ranges are gone, as Python does:
	// "[0- !]" loses "0- " and is left with "!", which matches anything.
	if len(chunks[0]) > 0 && chunks[0][0] == '!' {
		tok.negate = true
		chunks[0] = chunks[0][1:]
	}
	// Between two chunks is a range from the last character of one to the
	// first of the next; every other character is a member, '-' included.
	for k, ch := range chunks {
		for x, r := range ch {
			switch {
			case x == 0 && k > 0:
				// the upper end of the range before
			case x == len(ch)-1 && k < len(chunks)-1:
				tok.ranges = append(tok.ranges, runeRange{r, chunks[k+1][0]})
			default:
				tok.ranges = append(tok.ranges, runeRange{r, r})
			}
		}
	}
	return tok, j + 1, true
}

// classChunks splits the class text rs[i:j] where a '-' makes a range, as
// fnmatch.translate does: a '-' right after the start (or after the '!'),
// or within two characters after a range's '-', is a member; a trailing
// '-' is a member; and a reversed range is removed together with its two
// ends, the text around it joined (so "0- !" becomes "!").
func classChunks(rs []rune, i, j int) [][]rune {
	if !slices.Contains(rs[i:j], '-') {
		return [][]rune{slices.Clone(rs[i:j])}
	}
	var chunks [][]rune
	k := i + 1
	if rs[i] == '!' {
		k = i + 2
	}
	for {
		h := -1
		for x := k; x < j; x++ {
			if rs[x] == '-' {
				h = x
				break
			}
		}
		if h < 0 {
			break
		}
		chunks = append(chunks, slices.Clone(rs[i:h]))
		i, k = h+1, h+3
	}
	if rest := rs[i:j]; len(rest) > 0 {
		chunks = append(chunks, slices.Clone(rest))
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
	return chunks
}

// Match reports whether topic is selected by p.
func (p Pattern) Match(topic string) bool {
	if !strings.HasPrefix(topic, p.prefix) {
		return false
	}
	if !p.glob {
		return true
	}
	return matchTokens(p.toks, topic[len(p.prefix):])
}

// Prefix is the literal text before the first wildcard: all of a prefix
// pattern, and what a ZeroMQ SUB socket (or any broker filter) subscribes
// to for a glob before filtering in-process. Every topic p matches starts
// with it.
func (p Pattern) Prefix() string { return p.prefix }

// WholeWords returns the '.'-separated words that every topic p matches
// starts with, each followed there by a '.': the words of Prefix before
// its last dot (what follows the last dot may be part of a longer word,
// as the prefix "a.b" also matches "a.bc"). Those words followed by a
// broker's any-words wildcard select a superset of p's topics, which is
// how the STOMP and AMQP transports subscribe; each drops trailing words
// its broker cannot express. nil when the prefix holds no dot.
func (p Pattern) WholeWords() []string {
	end := strings.LastIndexByte(p.prefix, '.')
	if end < 0 {
		return nil
	}
	return strings.Split(p.prefix[:end], ".")
}

// Glob reports whether p is an fnmatch glob over the whole topic rather
// than a plain prefix (it contains '*', '?' or '[').
func (p Pattern) Glob() bool { return p.glob }

// String returns the pattern as written.
func (p Pattern) String() string { return p.src }

// MatchAny reports whether any of patterns matches topic; an empty list
// matches everything, like subscribing with no pattern.
func MatchAny(patterns []Pattern, topic string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if p.Match(topic) {
			return true
		}
	}
	return false
}

// nextChar decodes one character of a topic. A byte that is not valid
// UTF-8 becomes the lone surrogate U+DC80+byte, Python's surrogateescape,
// which no literal of a (valid UTF-8) pattern equals.
func nextChar(s string) (rune, int) {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n == 1 {
		return 0xDC00 + rune(s[0]), 1
	}
	return r, n
}

// matchTokens matches the whole of s. Every token but '*' consumes exactly
// one character, so remembering only the last star is enough (the classic
// wildcard algorithm): time is O(len(toks)·len(s)), never exponential.
func matchTokens(toks []token, s string) bool {
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for {
		if ti < len(toks) && toks[ti].kind == tokStar {
			starTi, starSi = ti, si
			ti++
			continue
		}
		if si == len(s) {
			// only a trailing star may remain (stars are collapsed)
			return ti == len(toks)
		}
		if ti < len(toks) {
			r, n := nextChar(s[si:])
			if toks[ti].matches(r) {
				ti++
				si += n
				continue
			}
		}
		if starTi < 0 {
			return false
		}
		// let the last star swallow one more character and retry
		_, n := nextChar(s[starSi:])
		starSi += n
		ti, si = starTi+1, starSi
	}
}

func (t *token) matches(r rune) bool {
	switch t.kind {
	case tokLiteral:
		return t.r == r
	case tokAny:
		return true
	case tokClass:
		in := false
		for _, rg := range t.ranges {
			if rg.lo <= r && r <= rg.hi {
				in = true
				break
			}
		}
		return in != t.negate
	}
	return false
}
