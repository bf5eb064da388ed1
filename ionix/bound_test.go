package ionix_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/ionix"
)

// TestBoundedForms: whatever the id's length and characters, its KV key, its
// message id and its category's subject token stay within their bounds, are valid
// where they go, and are different for different ids (and the same for the same).
func TestBoundedForms(t *testing.T) {
	validKey := regexp.MustCompile(`^[-/_=a-zA-Z0-9]+$`)
	validToken := regexp.MustCompile(`^[a-z0-9_~-]+$`)
	shapes := map[string]func(n int) string{
		"plain":       func(n int) string { return strings.Repeat("K", n) },
		"punctuation": func(n int) string { return strings.Repeat("K.%* ", n/5+1)[:n] },
		"multibyte":   func(n int) string { return strings.Repeat("証", n/3+1) },
		"invalid":     func(n int) string { return strings.Repeat("\xff\xfe", n/2+1) },
	}
	seen := map[string]string{}
	for name, shape := range shapes {
		for _, n := range []int{1, 50, 127, 128, 129, 383, 384, 385, 511, 512, 513, 3000, 4100, 100000} {
			id := shape(n)
			t.Run(fmt.Sprintf("%s %d", name, n), func(t *testing.T) {
				key := ionix.KeyToken(id)
				if len(key) > ionix.MaxKeyTokenLen || !validKey.MatchString(key) {
					t.Errorf("KeyToken of %d bytes = %d bytes %.40q…", len(id), len(key), key)
				}
				if other, dup := seen[key]; dup && other != id {
					t.Errorf("KeyToken collides for two ids: %.40q", key)
				}
				seen[key] = id
				if again := ionix.KeyToken(id); again != key {
					t.Errorf("KeyToken not stable")
				}
				msgID := ionix.MsgID(ionix.ActionItem{ID: id}, ionix.EventOpened)
				idPart := strings.TrimSuffix(msgID, msgID[strings.LastIndex(msgID, ":opened:"):])
				if len(idPart) > ionix.MaxMsgIDIDLen || !utf8.ValidString(msgID) || strings.ContainsAny(msgID, "\r\n") {
					t.Errorf("MsgID id part of %d bytes, valid UTF-8 %v", len(idPart), utf8.ValidString(msgID))
				}
				token := ionix.CategoryToken(id)
				if len(token) > ionix.MaxCategoryTokenLen || !validToken.MatchString(token) {
					t.Errorf("CategoryToken of %d bytes = %d bytes %.40q…", len(id), len(token), token)
				}
			})
		}
	}
}

func TestBoundedFormsOfLongIDsDiffer(t *testing.T) {
	a := strings.Repeat("a", 5000)
	b := a[:4999] + "b" // the same beginning, a different end
	if ionix.KeyToken(a) == ionix.KeyToken(b) {
		t.Error("KeyToken: ids differing only past the cut collide")
	}
	if ionix.MsgID(ionix.ActionItem{ID: a}, ionix.EventOpened) == ionix.MsgID(ionix.ActionItem{ID: b}, ionix.EventOpened) {
		t.Error("MsgID: ids differing only past the cut collide")
	}
	if ionix.CategoryToken(a) == ionix.CategoryToken(b) {
		t.Error("CategoryToken: types differing only past the cut collide")
	}
	if _, ok := ionix.IDFromKeyToken(ionix.KeyToken(a)); ok {
		t.Error("IDFromKeyToken claims to reverse a bounded token")
	}
	// Ordinary ids keep their forms (existing ledgers, streams and filters).
	if got := ionix.KeyToken("5f3c2a1e-0b6d"); got != "5f3c2a1e-0b6d" {
		t.Errorf("KeyToken of a plain id changed: %q", got)
	}
	if got := ionix.MsgID(ionix.ActionItem{ID: "AI 1"}, ionix.EventOpened); !strings.HasPrefix(got, "AI 1:opened:") {
		t.Errorf("MsgID of a short id changed: %q", got)
	}
}

// FuzzBoundedForms: for any id or type, the forms that go into KV keys, subjects
// and message ids stay within their bounds and alphabets.
func FuzzBoundedForms(f *testing.F) {
	validKey := regexp.MustCompile(`^[-/_=a-zA-Z0-9]+$`)
	validToken := regexp.MustCompile(`^[a-z0-9_~-]+$`)
	for _, s := range []string{"", "AI-1", "a.b c", strings.Repeat("K", 4100), strings.Repeat("%\xff", 700)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if key := ionix.KeyToken(s); len(key) > ionix.MaxKeyTokenLen || !validKey.MatchString(key) {
			t.Errorf("KeyToken = %.60q (%d bytes)", key, len(key))
		}
		if token := ionix.CategoryToken(s); len(token) > ionix.MaxCategoryTokenLen || !validToken.MatchString(token) {
			t.Errorf("CategoryToken = %.60q (%d bytes)", token, len(token))
		}
		msgID := ionix.MsgID(ionix.ActionItem{ID: s}, ionix.EventClosed)
		if n := len(msgID) - len(":closed:") - ionix.FingerprintLen; n > ionix.MaxMsgIDIDLen || !utf8.ValidString(msgID) || strings.ContainsAny(msgID, "\r\n\x00") {
			t.Errorf("MsgID = %.60q (id part %d bytes)", msgID, n)
		}
	})
}

func TestShownIDsAreShort(t *testing.T) {
	long := strings.Repeat("証", 1000)
	for _, got := range []string{ionix.ShortID(long), ionix.QuoteID(long)} {
		if len(got) > 100 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Errorf("shown id of %d bytes: %q", len(got), got)
		}
	}
	if got := ionix.QuoteID("AI-1"); got != `"AI-1"` {
		t.Errorf("QuoteID(AI-1) = %s", got)
	}
	if got := ionix.ShortID("AI-1"); got != "AI-1" {
		t.Errorf("ShortID(AI-1) = %s", got)
	}
}
