package ionix_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/ionix"
)

// FuzzDecode checks that Decode never panics, that what it accepts is valid,
// and that an accepted item survives encoding and decoding unchanged.
func FuzzDecode(f *testing.F) {
	for _, item := range ionix.SampleItems(12, 3) {
		data, err := json.Marshal(item)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range []string{
		`{"id":"AI-1","title":"Open RDP on 203.0.113.45","type":"Network","urgency":7}`,
		`{"id":"AI-2","title":{"label":"Missing DMARC record on example.net"},"type":"Email Security","urgency":{"urgency":9.0},"tags":[{"name":"email"},"spf",3,null],"cves":[{"id":"CVE-2024-3400"}]}`,
		`{"id":12,"title":"x","type":"DNS","urgency":-0,"is_open":"no","description":{"a":"<&>"},"x":"\u2028"}`,
		`{"id":"a","title":"t","type":"PKI","urgency":"9.3"}`,
		`{"id":"a","title":"t","type":"PKI","urgency":{"urgency":10.01}}`,
		`{"id":"a","title":{"label":""},"type":"PKI","urgency":1e999}`,
		`{"id":"a\ud800","title":"\xff","type":"\u00e9","urgency":1e-400,"tags":{"x":"\xfe"}}`,
		`[1,2,3]`, `null`, `"x"`, ``, `{`, "\x00",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		item, err := ionix.Decode(data)
		if err != nil {
			return
		}
		if err := item.Validate(); err != nil {
			t.Fatalf("Decode accepted an item that Validate rejects: %v\ninput: %q", err, data)
		}
		viaMethod, err := item.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v\ninput: %q", err, data)
		}
		viaJSON, err := json.Marshal(item)
		if err != nil {
			t.Fatalf("json.Marshal: %v\ninput: %q", err, data)
		}
		if string(viaMethod) != string(viaJSON) {
			t.Fatalf("MarshalJSON and json.Marshal differ:\n%s\n%s", viaMethod, viaJSON)
		}
		again, err := ionix.Decode(viaMethod)
		if err != nil {
			t.Fatalf("Decode(Marshal(item)): %v\ninput: %q\nencoded: %s", err, data, viaMethod)
		}
		if !reflect.DeepEqual(again, item) {
			t.Fatalf("round trip changed the item\ninput: %q\nfirst:  %#v\nsecond: %#v", data, item, again)
		}
		if ionix.MsgID(again, ionix.EventOpened) != ionix.MsgID(item, ionix.EventOpened) {
			t.Fatalf("round trip changed the MsgID")
		}
	})
}

// FuzzDecodeKeepsIDsDistinct checks that Decode accepts an id exactly when it is
// non-blank text a strict reading of its JSON string gives, and that the id it
// returns is that text: two items whose ids differ, even only in bytes that are
// not valid UTF-8 or in half a surrogate pair, are never taken for one.
func FuzzDecodeKeepsIDsDistinct(f *testing.F) {
	for _, seed := range []string{
		"AI-1", "a\xff", "a\xfe", "\xe2\x82", `a\ud800`, `\udc00`, `\ud83d\ude00`, `\\ud800`,
		`\u0041\n\t\/\"`, "a\uFFFD", `a\ufffd`, " ", `\u00a0`, "\x00", `\x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, readable, quoteInside := strictJSONString(body)
		if quoteInside {
			return // the string would end early: another document
		}
		data := `{"id":"` + string(body) + `","title":"t","type":"DNS","urgency":5}`
		item, err := ionix.Decode([]byte(data))
		accept := readable && strings.TrimSpace(want) != ""
		switch {
		case accept && err != nil:
			t.Fatalf("id %q (text %q) rejected: %v", body, want, err)
		case !accept && err == nil:
			t.Fatalf("id %q accepted as %q; a strict reading rejects it", body, item.ID)
		case accept && item.ID != want:
			t.Fatalf("id %q decoded as %q, want %q", body, item.ID, want)
		}
	})
}

// strictJSONString reads body, the text between the quotes of a JSON string,
// refusing what encoding/json would repair: bytes that are not UTF-8 and half a
// surrogate pair. quoteInside reports an unescaped quote (the string ends there).
func strictJSONString(body []byte) (text string, ok, quoteInside bool) {
	var b strings.Builder
	ok = true
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == '"':
			return "", false, true
		case c < 0x20:
			ok = false
			i++
		case c != '\\':
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size <= 1 {
				ok = false
			}
			b.WriteRune(r)
			i += size
		case i+1 >= len(body):
			ok = false
			i++
		default:
			r, size, valid := strictEscape(body[i:])
			ok = ok && valid
			b.WriteRune(r)
			i += size
		}
	}
	return b.String(), ok, false
}

// strictEscape reads the escape at the start of s (s[0] is a backslash).
func strictEscape(s []byte) (r rune, size int, ok bool) {
	simple := map[byte]rune{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}
	if r, found := simple[s[1]]; found {
		return r, 2, true
	}
	first, ok := hexRune(s[1:])
	if !ok {
		return 0, 2, false
	}
	if !utf16.IsSurrogate(first) {
		return first, 6, true
	}
	if first >= 0xDC00 || len(s) < 12 || s[6] != '\\' {
		return 0, 6, false
	}
	second, ok := hexRune(s[7:])
	if r := utf16.DecodeRune(first, second); ok && r != utf8.RuneError {
		return r, 12, true
	}
	return 0, 6, false
}

// hexRune reads "uXXXX".
func hexRune(s []byte) (rune, bool) {
	if len(s) < 5 || s[0] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range s[1:5] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}
