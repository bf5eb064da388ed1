package publisher

import (
	"strings"
	"testing"
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
		{"ndjson bad line in the middle", "{\"id\":\"a\"}\n{\"id\": oops}\n{\"id\":\"c\"}\n", []seen{{"line 1", "a", false}, {"line 2", "not valid JSON", true}, {"line 3", "c", false}}},
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

func TestReadItemsUnreadableDocument(t *testing.T) {
	for _, input := range []string{"[{\"id\":\"a\"},\n{\"id\":", "{\n\"id\": \"a\",\n oops\n}"} {
		err := ReadItems(strings.NewReader(input), func(Raw) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("ReadItems(%q) = %v, want an error naming the line", input, err)
		}
	}
}

func FuzzReadItems(f *testing.F) {
	for _, s := range []string{
		"{\"id\":\"a\"}\n{\"id\":\"b\"}\n",
		"[\n {\"id\":\"a\"},\n {\"id\":\"b\"}\n]",
		`{"count":1,"next":null,"results":[{"id":"a","title":{"label":"x"}}]}`,
		"{\n\"id\": 1\n}\n[1,2]\n",
		"\xEF\xBB\xBF\n\n{\"id\":\"a\"}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		lastLine := 0
		_ = ReadItems(strings.NewReader(input), func(r Raw) error {
			if r.Err == nil && (len(r.Data) == 0 || r.Data[0] != '{') {
				t.Fatalf("item at %s is not an object: %q", r.Pos, r.Data)
			}
			if r.Pos.Line < 1 || r.Pos.Line < lastLine {
				t.Fatalf("line %d after line %d", r.Pos.Line, lastLine)
			}
			lastLine = r.Pos.Line
			return nil
		})
	})
}
