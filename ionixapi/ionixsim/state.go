package ionixsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// list names one of the server's lists.
type list int

const (
	openList list = iota
	closedList
)

// entry is one item of a list: its JSON as given and its id.
type entry struct {
	id  string
	raw json.RawMessage
}

func newEntry(raw json.RawMessage) entry {
	raw = bytes.Clone(raw)
	return entry{id: ID(raw), raw: raw}
}

// ID returns the "id" of an item: the string, or the JSON text of another
// value (a number); "" when the item is not a JSON object or has no id.
func ID(item json.RawMessage) string {
	var v struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(item, &v) != nil || len(v.ID) == 0 || bytes.Equal(v.ID, []byte("null")) {
		return ""
	}
	var s string
	if json.Unmarshal(v.ID, &s) == nil {
		return s
	}
	return string(v.ID)
}

// SetOpen replaces the open list with items, in that order, kept byte for
// byte (invalid JSON included: it makes the pages invalid, which tests may
// want). Items with these ids leave the closed list.
func (s *Server) SetOpen(items ...json.RawMessage) {
	entries := make([]entry, len(items))
	for i, it := range items {
		entries[i] = newEntry(it)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = entries
	for _, e := range entries {
		s.closed = remove(s.closed, e.id)
	}
}

// SetClosed replaces the closed list with items, in that order, kept byte
// for byte. Items with these ids leave the open list.
func (s *Server) SetClosed(items ...json.RawMessage) {
	entries := make([]entry, len(items))
	for i, it := range items {
		entries[i] = newEntry(it)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = entries
	for _, e := range entries {
		s.open = remove(s.open, e.id)
	}
}

// Upsert replaces the open item with item's id, keeping its position, or
// appends item to the open list; an item with that id leaves the closed
// list. An item without an id is appended.
func (s *Server) Upsert(item json.RawMessage) {
	e := newEntry(item)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.id != "" {
		s.closed = remove(s.closed, e.id)
		if i := index(s.open, e.id); i >= 0 {
			s.open[i] = e
			return
		}
	}
	s.open = append(s.open, e)
}

// Close moves the open item id to the end of the closed list, setting
// "is_open": false and "last_closed_at": at (UTC, RFC 3339) in its JSON
// (other fields keep their order and bytes). It reports whether the item
// was open.
func (s *Server) Close(id string, at time.Time) bool {
	return s.move(id, openList, map[string]json.RawMessage{
		"is_open":        json.RawMessage("false"),
		"last_closed_at": timeJSON(at),
	})
}

// Reopen moves the closed item id to the end of the open list, setting
// "is_open": true and "last_opened_at": at (UTC, RFC 3339). It reports
// whether the item was closed.
func (s *Server) Reopen(id string, at time.Time) bool {
	return s.move(id, closedList, map[string]json.RawMessage{
		"is_open":        json.RawMessage("true"),
		"last_opened_at": timeJSON(at),
	})
}

// Remove deletes the item id from both lists; it reports whether it was
// there.
func (s *Server) Remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.open) + len(s.closed)
	s.open, s.closed = remove(s.open, id), remove(s.closed, id)
	return len(s.open)+len(s.closed) < n
}

// Open returns the open list, in order.
func (s *Server) Open() []json.RawMessage { return s.snapshot(openList) }

// Closed returns the closed list, in order.
func (s *Server) Closed() []json.RawMessage { return s.snapshot(closedList) }

func (s *Server) snapshot(l list) []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries := s.open
	if l == closedList {
		entries = s.closed
	}
	out := make([]json.RawMessage, len(entries))
	for i, e := range entries {
		out[i] = bytes.Clone(e.raw)
	}
	return out
}

// move moves item id from list from to the end of the other list, with
// fields set.
func (s *Server) move(id string, from list, fields map[string]json.RawMessage) bool {
	if id == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	src, dst := &s.open, &s.closed
	if from == closedList {
		src, dst = &s.closed, &s.open
	}
	i := index(*src, id)
	if i < 0 {
		return false
	}
	e := (*src)[i]
	*src = slices.Delete(*src, i, i+1)
	if raw, err := setFields(e.raw, fields); err == nil {
		e.raw = raw
	}
	*dst = append(remove(*dst, id), e)
	return true
}

func index(entries []entry, id string) int {
	return slices.IndexFunc(entries, func(e entry) bool { return e.id == id })
}

func remove(entries []entry, id string) []entry {
	if id == "" {
		return entries
	}
	return slices.DeleteFunc(entries, func(e entry) bool { return e.id == id })
}

func timeJSON(t time.Time) json.RawMessage {
	b, _ := json.Marshal(t.UTC().Format(time.RFC3339)) // a string always encodes
	return b
}

// setFields returns the JSON object obj with the values of fields replaced
// (every occurrence) or, when absent, appended in name order. Other members
// keep their order and values byte for byte.
func setFields(obj json.RawMessage, fields map[string]json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var b bytes.Buffer
	b.WriteByte('{')
	seen := map[string]bool{}
	n := 0
	member := func(name string, value json.RawMessage) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		key, _ := json.Marshal(name)
		b.Write(key)
		b.WriteByte(':')
		b.Write(value)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := t.(string)
		if !ok {
			return nil, errors.New("not a JSON object")
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, err
		}
		if v, ok := fields[name]; ok {
			value = v
			seen[name] = true
		}
		member(name, value)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errors.New("not a JSON object")
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		if !seen[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		member(name, fields[name])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
