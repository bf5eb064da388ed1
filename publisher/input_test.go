package publisher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

type seen struct {
	pos  string
	id   string // the "id" field of the raw JSON, or the error
	fail bool
}

func readAll(t *testing.T, input string) []seen {
	t.Helper()
	var out []seen
	err := ReadItems(strings.NewReader(input), func(r Raw) error {
		s := seen{pos: r.Pos.String()}
		if r.Err != nil {
			s.fail, s.id = true, r.Err.Error()
		} else {
			s.id = idOf(string(r.Data))
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadItems: %v", err)
	}
	return out
}

// idOf pulls "id":"..." out of compact JSON.
func idOf(s string) string {
	_, rest, ok := strings.Cut(s, `"id":"`)
	if !ok {
		return s
	}
	id, _, _ := strings.Cut(rest, `"`)
	return id
}

func TestReadItemsFormats(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []seen
	}{
		{"ndjson", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n", []seen{{"line 1", "a", false}, {"line 2", "b", false}}},
		{"ndjson without final newline", "{\"id\":\"a\"}\n{\"id\":\"b\"}", []seen{{"line 1", "a", false}, {"line 2", "b", false}}},
		{"ndjson with blank lines and CRLF", "\r\n{\"id\":\"a\"}\r\n\r\n{\"id\":\"b\"}\r\n", []seen{{"line 2", "a", false}, {"line 4", "b", false}}},
		{"ndjson bad line in the middle", "{\"id\":\"a\"}\n{\"id\": oops}\n{\"id\":\"c\"}\n", []seen{{"line 1", "a", false}, {"line 2", "not valid JSON: invalid character 'o' looking for beginning of value", true}, {"line 3", "c", false}}},
		{"ndjson scalar line", "{\"id\":\"a\"}\n42\n", []seen{{"line 1", "a", false}, {"line 2", "not a JSON object", true}}},
		{"single object", `{"id":"only"}`, []seen{{"line 1", "only", false}}},
		{"array on one line", `[{"id":"a"},{"id":"b"}]`, []seen{{"item 0 (line 1)", "a", false}, {"item 1 (line 1)", "b", false}}},
		{"pretty array", "[\n  {\n    \"id\": \"a\"\n  },\n  {\n    \"id\": \"b\"\n  }\n]\n", []seen{{"item 0 (line 2)", "a", false}, {"item 1 (line 5)", "b", false}}},
		{"array with a non-object", "[{\"id\":\"a\"},\n\"text\",\n{\"id\":\"c\"}]", []seen{{"item 0 (line 1)", "a", false}, {"item 1 (line 2)", "not a JSON object", true}, {"item 2 (line 3)", "c", false}}},
		{"identical elements keep their own lines", "[\n{\"id\":\"a\"},\n{\"id\":\"a\"}\n]", []seen{{"item 0 (line 2)", "a", false}, {"item 1 (line 3)", "a", false}}},
		{"api page on one line", `{"count":2,"next":null,"results":[{"id":"a"},{"id":"b"}]}`, []seen{{"item 0 (line 1)", "a", false}, {"item 1 (line 1)", "b", false}}},
		{"pretty api page", "{\n  \"count\": 2,\n  \"next\": \"https://api.portal.ionix.io/x?offset=2\",\n  \"results\": [\n    {\"id\": \"a\"},\n    {\"id\": \"b\"}\n  ]\n}\n", []seen{{"item 0 (line 5)", "a", false}, {"item 1 (line 6)", "b", false}}},
		{"pages one per line", "{\"results\":[{\"id\":\"a\"}]}\n{\"results\":[{\"id\":\"b\"}]}\n", []seen{{"item 0 (line 1)", "a", false}, {"item 0 (line 2)", "b", false}}},
		{"pretty objects one after another", "{\n \"id\": \"a\"\n}\n{\n \"id\": \"b\"\n}\n", []seen{{"line 1", "a", false}, {"line 4", "b", false}}},
		{"byte order mark", "\xEF\xBB\xBF{\"id\":\"a\"}\n", []seen{{"line 1", "a", false}}},
		{"empty", "", nil},
		{"only white space", " \n\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAll(t, tt.input)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d items %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("item %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestReadItemsSkipsUnreadableLines: in NDJSON a line that holds no item is named
// with its line and reason wherever it stands — first, middle or last, alone or
// many, after blank lines, longer than any buffer — and every other line is read.
func TestReadItemsSkipsUnreadableLines(t *testing.T) {
	const a, b, c = `{"id":"a"}`, `{"id":"b"}`, `{"id":"c"}`
	huge := strings.Repeat("x", maxLine+1)
	longItem := `{"id":"long","d":"` + strings.Repeat("y", 200<<10) + `"}` // longer than the read buffer
	bad := func(line int, reason string) seen { return seen{fmt.Sprintf("line %d", line), reason, true} }
	ok := func(line int, id string) seen { return seen{fmt.Sprintf("line %d", line), id, false} }
	tests := []struct {
		name  string
		input string
		want  []seen
	}{
		{"garbage first", "oops\n" + a + "\n" + b + "\n", []seen{bad(1, "not valid JSON"), ok(2, "a"), ok(3, "b")}},
		{"garbage middle", a + "\noops\n" + b + "\n", []seen{ok(1, "a"), bad(2, "not valid JSON"), ok(3, "b")}},
		{"garbage last without line end", a + "\n" + b + "\noops", []seen{ok(1, "a"), ok(2, "b"), bad(3, "not valid JSON")}},
		{"every other line garbage", "x\n" + a + "\ny\n" + b + "\nz\n", []seen{bad(1, "not valid JSON"), ok(2, "a"), bad(3, "not valid JSON"), ok(4, "b"), bad(5, "not valid JSON")}},
		{"only garbage", "x\ny\n", []seen{bad(1, "not valid JSON"), bad(2, "not valid JSON")}},
		{"blank lines before a bad first line", "\n \r\n\t\nbad\n" + a + "\n\n" + b + "\n\n", []seen{bad(4, "not valid JSON"), ok(5, "a"), ok(7, "b")}},
		{"object broken on the first line", `{"id": oops}` + "\n" + a + "\n", []seen{bad(1, "not valid JSON"), ok(2, "a")}},
		{"first line cut short", `{"id":"x","title":` + "\n" + a + "\n" + b + "\n", []seen{bad(1, "not valid JSON"), ok(2, "a"), ok(3, "b")}},
		{"only line cut short", `{"id":"x","title":`, []seen{bad(1, "not valid JSON")}},
		{"only line cut short, then blank lines", "\n" + `[{"id":"x"},` + "\n\n", []seen{bad(2, "not valid JSON")}},
		{"first line an unclosed string", `{"id":"x` + "\n" + a + "\n", []seen{bad(1, "not valid JSON"), ok(2, "a")}},
		{"first line an open bracket", "[\n" + a + "\n" + b + "\n", []seen{bad(1, "not valid JSON"), ok(2, "a"), ok(3, "b")}},
		{"first line a closing brace", "}\n" + a + "\n", []seen{bad(1, "not valid JSON"), ok(2, "a")}},
		{"NUL bytes, and a byte order mark where files were joined", a + "\n\x00\x00\n\xEF\xBB\xBF" + b + "\n", []seen{ok(1, "a"), bad(2, "not valid JSON"), ok(3, "b")}},
		{"CRLF with a bad line", a + "\r\n{oops\r\n" + b + "\r\n", []seen{ok(1, "a"), bad(2, "not valid JSON"), ok(3, "b")}},
		{"line longer than 16 MiB first", huge + "\n" + a + "\n", []seen{bad(1, "longer than the 16 MiB"), ok(2, "a")}},
		{"line longer than 16 MiB in the middle", a + "\n" + huge + "\n" + b + "\n", []seen{ok(1, "a"), bad(2, "longer than the 16 MiB"), ok(3, "b")}},
		{"line longer than 16 MiB last, without line end", a + "\n" + huge, []seen{ok(1, "a"), bad(2, "longer than the 16 MiB")}},
		{"line longer than the read buffer", longItem + "\n" + a + "\n", []seen{ok(1, "long"), ok(2, "a")}},
	}
	// Read at once, as from a file, and a byte at a time, as from a slow pipe.
	arrivals := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"byte by byte", iotest.OneByteReader},
	}
	for _, tt := range tests {
		for _, arrival := range arrivals {
			if arrival.name != "whole" && len(tt.input) > 1<<20 {
				continue // millions of reads: slow, and the same path as above
			}
			t.Run(tt.name+"/"+arrival.name, func(t *testing.T) {
				var got []seen
				err := ReadItems(arrival.wrap(strings.NewReader(tt.input)), func(r Raw) error {
					s := seen{pos: r.Pos.String(), fail: r.Err != nil}
					if r.Err != nil {
						s.id = r.Err.Error()
					} else {
						s.id = idOf(string(r.Data))
					}
					got = append(got, s)
					return nil
				})
				if err != nil {
					t.Fatalf("ReadItems: %v", err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d items %.300v, want %d %v", len(got), got, len(tt.want), tt.want)
				}
				for i, w := range tt.want {
					g := got[i]
					if g.pos != w.pos || g.fail != w.fail || (w.fail && !strings.Contains(g.id, w.id)) || (!w.fail && g.id != w.id) {
						t.Errorf("item %d = %.300v, want %v", i, g, w)
					}
				}
			})
		}
	}
}

func TestReadItemsUnreadableDocument(t *testing.T) {
	for _, input := range []string{"[{\"id\":\"a\"},\n{\"id\":", "{\n\"id\": \"a\",\n oops\n}"} {
		err := ReadItems(strings.NewReader(input), func(Raw) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("ReadItems(%q) = %v, want an error naming the line", input, err)
		}
	}
}

// FuzzReadItems checks that ReadItems never panics, hands fn only objects, and
// names lines that exist, in increasing order.
func FuzzReadItems(f *testing.F) {
	for _, s := range []string{
		"{\"id\":\"a\"}\n{\"id\":\"b\"}\n",
		"[\n {\"id\":\"a\"},\n {\"id\":\"b\"}\n]",
		`{"count":1,"next":null,"results":[{"id":"a","title":{"label":"x"}}]}`,
		"{\n\"id\": 1\n}\n[1,2]\n",
		"\xEF\xBB\xBF\n\n{\"id\":\"a\"}",
		"oops\n{\"id\":\"a\"}\n",
		"{\"id\":\"a\",\n{\"id\":\"b\"}\n",
		"[\n{\"id\":\"a\"}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		lastLine, lines := 0, strings.Count(input, "\n")+1
		_ = ReadItems(strings.NewReader(input), func(r Raw) error {
			if r.Err == nil && (len(r.Data) == 0 || r.Data[0] != '{') {
				t.Fatalf("item at %s is not an object: %q", r.Pos, r.Data)
			}
			if r.Pos.Line < 1 || r.Pos.Line < lastLine || r.Pos.Line > lines {
				t.Fatalf("line %d after line %d, in an input of %d lines", r.Pos.Line, lastLine, lines)
			}
			lastLine = r.Pos.Line
			return nil
		})
	})
}

// FuzzReadItemsNDJSON checks that in NDJSON every line is accounted for, whatever
// it holds and wherever it stands: an object line is an item, any other line with
// content is named as unreadable with its number, blank lines are skipped, and
// reading never stops.
func FuzzReadItemsNDJSON(f *testing.F) {
	for _, s := range []string{
		"{\"id\":\"a\"}\noops\n{\"id\":\"b\"}",
		"oops\n{\"id\":\"a\"}\n\n42\n{\"id\":\"b\"}\r\n\"x\"\n",
		"{\"id\": oops}\n{\"id\":\"a\"}\n{",
		"\xEF\xBB\xBF\x00\n\xEF\xBB\xBF{\"id\":\"a\"}\n",
		"\n \n}\n{\"id\":\"a\"}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		type outcome struct {
			line int
			item bool
		}
		var want []outcome
		first := true
		for i, l := range strings.Split(input, "\n") {
			text := trimSpace(bytes.TrimPrefix([]byte(l), byteOrderMark))
			if len(text) == 0 {
				continue
			}
			if strings.Contains(l, "results") || text[0] == '[' {
				return // arrays and pages hold items of their own
			}
			if first && !json.Valid(text) && opensValue(text) {
				return // the start of a pretty-printed document
			}
			first = false
			want = append(want, outcome{i + 1, json.Valid(text) && text[0] == '{'})
		}
		var got []outcome
		err := ReadItems(strings.NewReader(input), func(r Raw) error {
			got = append(got, outcome{r.Pos.Line, r.Err == nil})
			return nil
		})
		if err != nil {
			t.Fatalf("ReadItems(%q) stopped: %v", input, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ReadItems(%q) gave %v, want %v", input, got, want)
		}
	})
}
