package remote_test

import (
	"fmt"
	"html"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/remote"
)

const marker = "[REDACTED]"

// leaked returns the first run of remote.MinFragment characters of a form of
// secret that text holds (letter case ignored), or "".
func leaked(text, secret string) string {
	lower := strings.ToLower(text)
	for _, f := range remote.SecretForms(secret) {
		f = strings.ToLower(f)
		for i := 0; i+remote.MinFragment <= len(f); i++ {
			if w := f[i : i+remote.MinFragment]; strings.Contains(lower, w) {
				return w
			}
		}
	}
	return ""
}

// secretOf returns a deterministic secret of n characters, with characters
// that escaping changes.
func secretOf(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+/= &%\"<"
	r := rand.New(rand.NewPCG(uint64(n), 13))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func TestSecretForms(t *testing.T) {
	if got := remote.SecretForms(""); got != nil {
		t.Errorf("forms of an empty secret: %q", got)
	}
	want := []string{`a b/c"<`, "a+b%2Fc%22%3C", "a%20b%2Fc%22%3C", `a b/c\"\u003c`, `a b/c\"<`, `a b\/c\"<`, "a b/c&#34;&lt;"}
	if got := remote.SecretForms(`a b/c"<`); !slices.Equal(got, want) {
		t.Errorf("forms\n%q\nwant\n%q", got, want)
	}
}

// TestRedactLengths puts secrets of 1 to 40 characters, in each of their
// forms and letter cases, whole, cut and in part, into text, and checks that
// no run of MinFragment characters survives, that short secrets go where they
// stand as a token, and that nothing else is touched.
func TestRedactLengths(t *testing.T) {
	for n := 1; n <= 40; n++ {
		secret := secretOf(n)
		r := remote.NewRedactor(marker, secret)
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			for _, form := range remote.SecretForms(secret) {
				for _, shown := range []string{form, strings.ToUpper(form), strings.ToLower(form)} {
					texts := map[string]string{
						"whole":      "grant_type=password&password=" + shown + "&x=1",
						"at start":   shown + " password",
						"at end":     "password " + shown,
						"alone":      shown,
						"cut":        "password=" + shown[:len(shown)/2],
						"tail":       shown[len(shown)/2:] + " password",
						"twice":      shown + shown,
						"in the end": "Authorization: Bearer " + shown[:min(len(shown), 9)],
					}
					for name, text := range texts {
						got := r.Redact(text)
						if w := leaked(got, secret); w != "" {
							t.Errorf("%s %q: Redact(%q) = %q keeps %q", name, shown, text, got, w)
						}
						if !utf8.ValidString(got) {
							t.Errorf("%s: Redact(%q) = %q is not UTF-8", name, text, got)
						}
					}
					if got := r.Redact(texts["whole"]); !strings.HasPrefix(got, "grant_type=password&password=") ||
						!strings.HasSuffix(got, "&x=1") || !strings.Contains(got, marker) {
						t.Errorf("Redact(%q) = %q, want only the secret replaced", texts["whole"], got)
					}
				}
			}
			// Text without the secret is left alone, and a short secret
			// inside a word is not spelt out.
			for _, text := range []string{"password grant failed", "x" + secret + "y", "Bearer"} {
				if n < remote.MinFragment || !strings.Contains(text, secret) {
					if got := r.Redact(text); got != text {
						t.Errorf("Redact(%q) = %q, want it unchanged", text, got)
					}
				}
			}
		})
	}
}

func TestRedact(t *testing.T) {
	const long = "s3cr3t-VALUE-0123456789"
	for _, tt := range []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"one letter", []string{"a"}, "password=a&grant_type=password", "password=" + marker + "&grant_type=password"},
		{"one letter in words", []string{"a"}, "p a ssword gr a nt", "p " + marker + " ssword gr " + marker + " nt"},
		{"one letter never inside a word", []string{"a"}, "password grant", "password grant"},
		{"short, upper-cased", []string{"abc"}, "X=ABC.", "X=" + marker + "."},
		{"short, starting with a delimiter", []string{"-x"}, "a-x.", "a" + marker + "."},
		{"seven characters in a word", []string{"abcdefg"}, "zabcdefgz abcdefg", "zabcdefgz " + marker},
		{"fragment of 8 at the start", []string{long}, "3456789 and 23456789 more", "3456789 and " + marker + " more"},
		{"fragment of 8 at the end", []string{long}, "cut: s3cr3t-V", "cut: " + marker},
		{"fragment of 7 stays", []string{long}, "cut: s3cr3t-", "cut: s3cr3t-"},
		{"lower-cased", []string{long}, "x " + strings.ToLower(long) + " y", "x " + marker + " y"},
		{"upper-cased", []string{long}, "x " + strings.ToUpper(long) + " y", "x " + marker + " y"},
		{"query-escaped", []string{"p@ss w/rd"}, "password=p%40ss+w%2Frd&x", "password=" + marker + "&x"},
		{"path-escaped", []string{"p@ss w/rd"}, "/p@ss%20w%2Frd/", "/" + marker + "/"},
		{"JSON-escaped", []string{`q"u<o>te\s`}, `{"m":"q\"u\u003co\u003ete\\s"}`, `{"m":"` + marker + `"}`},
		{"JSON-escaped slash", []string{"a/b/c/d/e"}, `{"m":"a\/b\/c\/d\/e"}`, `{"m":"` + marker + `"}`},
		{"HTML-escaped", []string{"x<y>&z"}, "<title>x&lt;y&gt;&amp;z</title>", "<title>" + marker + "</title>"},
		{"overlapping secrets", []string{"abcdefghij", "fghijklmno"}, "(abcdefghijklmno)", "(" + marker + ")"},
		{"adjacent secrets", []string{"abcdefghij", "0123456789"}, "abcdefghij0123456789", marker},
		{"short inside long", []string{"abc", "xxabcxxabcxx"}, "xxabcxxabcxx abc", marker + " " + marker},
		{"long containing short", []string{"abcdefghijkl", "def"}, "def abcdefghijkl", marker + " " + marker},
		{"non-ASCII, upper-cased", []string{"pässwörd-geheim"}, "PÄSSWÖRD-GEHEIM!", marker + "!"},
		{"fragment of non-ASCII bytes", []string{"ééééééé"}, "zéééé", "z" + marker},
		{"match from inside a character", []string{"é0123456"}, "ʩ0123456.", marker + "."},
		{"no secrets", nil, "anything", "anything"},
		{"empty secret", []string{""}, "anything", "anything"},
		{"empty text", []string{long}, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := remote.NewRedactor(marker, tt.secrets...)
			if got := r.Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	var nilRedactor *remote.Redactor
	if got := nilRedactor.Redact("x"); got != "x" {
		t.Errorf("nil Redactor: %q", got)
	}
}

func TestRedactorAdd(t *testing.T) {
	r := remote.NewRedactor(marker, "configured-secret")
	issued := func(i int) string { return secretOf(100 + i) }
	if got := r.Redact(issued(0)); got != issued(0) {
		t.Fatalf("redacted before it was added: %q", got)
	}
	r.Add(issued(0), "")
	if got := r.Redact("Bearer " + issued(0)); got != "Bearer "+marker {
		t.Fatalf("after Add: %q", got)
	}
	for i := 1; i <= remote.MaxIssued; i++ {
		r.Add(issued(i))
		r.Add(issued(1)) // in use: stays the most recent
	}
	for _, tt := range []struct {
		text string
		want string
	}{
		{issued(0), issued(0)}, // forgotten: the oldest of MaxIssued+1
		{issued(1), marker},
		{issued(remote.MaxIssued), marker},
		{"configured-secret", marker}, // configured secrets are never forgotten
	} {
		if got := r.Redact(tt.text); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}

	// Redact while tokens are added: 4 adders, MaxIssued tokens in all, so no token
	// can be pushed out of the newest MaxIssued by the others' before its check
	// (with more, a preempted adder's token could be, and the test failed under load).
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range remote.MaxIssued / 4 {
				tok := fmt.Sprintf("concurrent-%d-%d-token", g, i)
				r.Add(tok)
				if got := r.Redact(tok); got != marker {
					t.Errorf("Redact(%q) = %q right after Add", tok, got)
				}
			}
		}()
	}
	wg.Wait()
}

func TestRedactPrefix(t *testing.T) {
	const secret = "0123456789abcdef"
	r := remote.NewRedactor(marker, secret)
	for _, tt := range []struct {
		name string
		body string
		n    int
		want string
	}{
		{"secret runs past the cut", "head " + secret + " tail", 8, "head " + marker},
		{"cut after the secret", "head " + secret + " tail", 23, "head " + marker + " t"},
		{"secret after the cut", "head " + secret, 5, "head "},
		{"short body", "x " + secret, 100, "x " + marker},
		{"nothing to redact", "plain text", 5, "plain"},
		{"negative", "plain", -1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.RedactPrefix([]byte(tt.body), tt.n); got != tt.want {
				t.Errorf("RedactPrefix(%q, %d) = %q, want %q", tt.body, tt.n, got, tt.want)
			}
		})
	}
	// Every cut of a body that holds the secret.
	body := strings.Repeat("x", 50) + secret + strings.Repeat("y", 50)
	for n := range len(body) + 2 {
		if got := r.RedactPrefix([]byte(body), n); leaked(got, secret) != "" || strings.Contains(got, secret[:3]) && n < 66 {
			t.Errorf("RedactPrefix(body, %d) = %q", n, got)
		}
		if got := r.RedactClip(body, n); leaked(got, secret) != "" {
			t.Errorf("RedactClip(body, %d) = %q", n, got)
		}
	}
	var nilRedactor *remote.Redactor
	if got := nilRedactor.RedactPrefix([]byte("abc"), 2); got != "ab" {
		t.Errorf("nil Redactor: %q", got)
	}
}

func TestClip(t *testing.T) {
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"}, {"exactly", 7, "exactly"}, {"longer text", 6, "longer…"}, {"ééé", 3, "é…"},
	} {
		if got := remote.Clip(tt.s, tt.n); got != tt.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

// BenchmarkRedact measures the error path: a 4 KiB body and a few secrets.
func BenchmarkRedact(b *testing.B) {
	r := remote.NewRedactor(marker, secretOf(20), secretOf(36), secretOf(5), html.EscapeString(secretOf(30)))
	for i := range 10 {
		r.Add(url.QueryEscape(secretOf(40 + i)))
	}
	text := strings.Repeat("lorem ipsum dolor sit amet ", 150) + secretOf(36)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		r.Redact(text)
	}
}
