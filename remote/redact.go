package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"html"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// MinFragment is the length in bytes (characters, for ASCII) of the shortest
// run of a secret that [Redactor] removes wherever it stands: a server may echo
// part of a secret, or cut it. A secret (in one of its forms) shorter than this
// is removed only where it stands as a whole token, so that a one-letter
// password does not turn "password" into "p[REDACTED]ssword".
const MinFragment = 8

// MaxIssued is how many secrets added with [Redactor.Add] are remembered; the
// least recently added are forgotten first (tokens that long expired).
const MaxIssued = 32

// Redactor removes secret values from text that reaches a log, an error, a
// header, a metric or an HTTP answer. It knows the secrets it was made with and
// the ones added later (tokens issued at run time). Its rule, applied to the
// forms a secret takes in text (see [SecretForms]), in any letter case:
//
//   - every run of [MinFragment] or more consecutive bytes of a form is
//     replaced, wherever it stands, so a secret cut short or echoed in part
//     is removed too;
//   - a form shorter than MinFragment is replaced only where it stands as a
//     whole token: not preceded or followed by a letter or digit (where the
//     secret itself starts or ends with one).
//
// Overlapping and adjacent matches become one marker. Redact before cutting a
// text short ([Redactor.RedactClip], [Redactor.RedactPrefix]): a secret cut in
// half is no longer recognised. The cost is linear in the text and in the total
// length of the secrets. A nil *Redactor redacts nothing. It is safe for
// concurrent use.
type Redactor struct {
	marker string

	mu     sync.Mutex // serialises Add
	static []string
	issued []string // newest last, at most MaxIssued
	index  atomic.Pointer[redactIndex]
}

// redactIndex is what Redact searches: built once per set of secrets.
type redactIndex struct {
	windows map[uint64]struct{} // every MinFragment-byte window of every long form, folded
	short   []string            // the folded forms shorter than MinFragment
	longest int                 // length of the longest form
}

// NewRedactor returns a Redactor that replaces the secrets with marker (empty
// secrets are ignored).
func NewRedactor(marker string, secrets ...string) *Redactor {
	r := &Redactor{marker: marker}
	for _, s := range secrets {
		if s != "" && !slices.Contains(r.static, s) {
			r.static = append(r.static, s)
		}
	}
	r.index.Store(buildIndex(r.static))
	return r
}

// Add makes r redact secrets issued at run time (access and refresh tokens),
// from now on; empty ones are ignored. Of those added, the MaxIssued most
// recently added are kept (adding one again makes it the most recent).
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, s := range secrets {
		if s == "" || slices.Contains(r.static, s) {
			continue
		}
		if i := slices.Index(r.issued, s); i >= 0 {
			r.issued = slices.Delete(r.issued, i, i+1)
		} else {
			changed = true
		}
		r.issued = append(r.issued, s)
		if len(r.issued) > MaxIssued {
			r.issued = slices.Delete(r.issued, 0, len(r.issued)-MaxIssued)
		}
	}
	if changed {
		r.index.Store(buildIndex(append(slices.Clone(r.static), r.issued...)))
	}
}

// Redact returns text with every secret replaced by the marker.
func (r *Redactor) Redact(text string) string {
	if r == nil || text == "" {
		return text
	}
	idx := r.index.Load()
	spans := idx.find(text)
	if len(spans) == 0 {
		return text
	}
	return r.replace(text, spans, len(text))
}

// RedactClip redacts text, then cuts it to at most n bytes (see [Clip]).
func (r *Redactor) RedactClip(text string, n int) string { return Clip(r.Redact(text), n) }

// RedactPrefix returns the first n bytes of body (all of it if shorter),
// redacted as they stand in the whole body: a secret that starts within them
// and runs past byte n is replaced too, and the text ends with its marker. It
// reads no more of body than n bytes and the longest form of a secret, so a
// large body costs no more than its head.
func (r *Redactor) RedactPrefix(body []byte, n int) string {
	n = max(0, min(n, len(body)))
	if r == nil {
		return string(body[:n])
	}
	idx := r.index.Load()
	// One byte more than the longest form: enough to see whether a short
	// secret before byte n stands as a token.
	scan := string(body[:min(len(body), n+idx.longest+1)])
	spans := idx.find(scan)
	if len(spans) == 0 {
		return scan[:n]
	}
	return r.replace(scan, spans, n)
}

// replace builds text[:end] with the spans replaced by the marker; a span that
// starts before end is replaced whole.
func (r *Redactor) replace(text string, spans []span, end int) string {
	var b strings.Builder
	b.Grow(end + len(spans)*len(r.marker))
	at := 0
	for _, s := range spans {
		if s.start >= end {
			break
		}
		b.WriteString(text[at:s.start])
		b.WriteString(r.marker)
		at = s.end
	}
	if at < end {
		b.WriteString(text[at:end])
	}
	return b.String()
}

// span is a byte range [start, end) of a text to replace.
type span struct{ start, end int }

// find returns the ranges of text to replace, sorted and disjoint (overlapping
// or touching ranges merged), each widened to whole UTF-8 characters.
func (idx *redactIndex) find(text string) []span {
	if len(idx.windows) == 0 && len(idx.short) == 0 {
		return nil
	}
	folded := foldASCII(text)
	var spans []span
	if len(idx.windows) > 0 {
		for i := 0; i+MinFragment <= len(folded); i++ {
			if _, ok := idx.windows[binary.LittleEndian.Uint64(folded[i:])]; !ok {
				continue
			}
			if n := len(spans); n > 0 && i <= spans[n-1].end {
				spans[n-1].end = i + MinFragment // a longer run
				continue
			}
			spans = append(spans, span{i, i + MinFragment})
		}
	}
	for _, f := range idx.short {
		for from := 0; ; {
			i := bytes.Index(folded[from:], []byte(f))
			if i < 0 {
				break
			}
			start, end := from+i, from+i+len(f)
			if wholeToken(folded, f, start, end) {
				spans = append(spans, span{start, end})
			}
			from = start + 1
		}
	}
	if len(spans) == 0 {
		return nil
	}
	for i := range spans {
		for spans[i].start > 0 && !utf8.RuneStart(text[spans[i].start]) {
			spans[i].start--
		}
		for spans[i].end < len(text) && !utf8.RuneStart(text[spans[i].end]) {
			spans[i].end++
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	merged := spans[:1]
	for _, s := range spans[1:] {
		if last := &merged[len(merged)-1]; s.start <= last.end {
			last.end = max(last.end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// wholeToken reports whether the match of form at text[start:end] stands as a
// token: where the form starts (ends) with a letter or digit, the text has none
// just before (after) it.
func wholeToken(text []byte, form string, start, end int) bool {
	if isWordByte(form[0]) && start > 0 && isWordByte(text[start-1]) {
		return false
	}
	if isWordByte(form[len(form)-1]) && end < len(text) && isWordByte(text[end]) {
		return false
	}
	return true
}

// isWordByte reports whether b is part of a word: an ASCII letter or digit, or a
// byte of a non-ASCII character.
func isWordByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b >= utf8.RuneSelf
}

// buildIndex indexes the forms of secrets, in every letter case.
func buildIndex(secrets []string) *redactIndex {
	idx := &redactIndex{windows: map[uint64]struct{}{}}
	seen := map[string]bool{}
	for _, s := range secrets {
		for _, v := range []string{s, strings.ToUpper(s), strings.ToLower(s)} {
			for _, f := range SecretForms(v) {
				f = string(foldASCII(f))
				if seen[f] {
					continue
				}
				seen[f] = true
				idx.longest = max(idx.longest, len(f))
				if len(f) < MinFragment {
					idx.short = append(idx.short, f)
					continue
				}
				for i := 0; i+MinFragment <= len(f); i++ {
					idx.windows[binary.LittleEndian.Uint64([]byte(f[i:]))] = struct{}{}
				}
			}
		}
	}
	return idx
}

// foldASCII returns s with its ASCII letters lower-cased; other bytes, and so
// every byte offset, are unchanged.
func foldASCII(s string) []byte {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// SecretForms returns a secret as text may show it: as is, query- and
// path-escaped (as a URL, a form body or a server echoing a request shows it),
// JSON-escaped (with and without HTML escaping, and with "\/") and HTML-escaped;
// none for "".
func SecretForms(secret string) []string {
	if secret == "" {
		return nil
	}
	out := []string{secret}
	for _, f := range []string{url.QueryEscape(secret), url.PathEscape(secret),
		jsonEscape(secret, true), jsonEscape(secret, false), strings.ReplaceAll(jsonEscape(secret, false), "/", `\/`),
		html.EscapeString(secret)} {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// jsonEscape returns s as it stands inside a JSON string.
func jsonEscape(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s) // a string always encodes
	return string(bytes.TrimSuffix(bytes.TrimPrefix(bytes.TrimSuffix(b.Bytes(), []byte("\n")), []byte(`"`)), []byte(`"`)))
}

// Clip cuts s to at most n bytes on a character boundary, marking the cut with
// "…". Clip only text that has been redacted.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// RedactErr returns the text of err redacted and clipped to n, and the cause to
// keep: err itself when its text holds no secret, else only the context error it
// wraps (Canceled, DeadlineExceeded), if any — an error whose text held a secret is
// not kept, so nothing can print it later.
func (r *Redactor) RedactErr(err error, n int) (string, error) {
	text := err.Error()
	redacted := r.Redact(text)
	if redacted == text {
		return Clip(text, n), err
	}
	for _, target := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, target) {
			return Clip(redacted, n), target
		}
	}
	return Clip(redacted, n), nil
}
