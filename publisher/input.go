package publisher

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxLine bounds one NDJSON line (one action item).
const maxLine = 16 << 20

// Position says where an item stood in the input, for error reports.
type Position struct {
	Line  int // 1-based line where the item starts
	Index int // 0-based index within a JSON array or page; -1 for NDJSON
}

func (p Position) String() string {
	if p.Index >= 0 && p.Line <= 0 {
		return fmt.Sprintf("item %d", p.Index)
	}
	if p.Index >= 0 {
		return fmt.Sprintf("item %d (line %d)", p.Index, p.Line)
	}
	return fmt.Sprintf("line %d", p.Line)
}

// Raw is one action item as it stood in the input, or the reason it could not be
// read as JSON at all.
type Raw struct {
	Pos  Position
	Data []byte
	Err  error
}

// ErrFormat wraps errors that make the rest of the input unreadable.
var ErrFormat = errors.New("unreadable input")

// ReadItems reads action items from r and calls fn for each, in order. The input is
// NDJSON (one item per line; a bad line is reported and the rest read), a JSON array
// of items, an IONIX API page ({"count":..,"results":[..]}), or a sequence of
// (possibly pretty-printed) items or pages. Returning an error from fn stops reading.
func ReadItems(r io.Reader, fn func(Raw) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	first, skipped, err := firstByte(br)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if first == '[' {
		return readDocument(br, skipped, fn)
	}
	// NDJSON when the first line is a whole JSON value; otherwise a pretty-printed
	// document.
	line, err := br.Peek(min(br.Buffered(), maxLine))
	if i := bytes.IndexByte(line, '\n'); i >= 0 && json.Valid(line[:i]) {
		return readNDJSON(br, skipped, fn)
	}
	if i := bytes.IndexByte(line, '\n'); i < 0 && err == nil && json.Valid(bytes.TrimSpace(line)) {
		return readNDJSON(br, skipped, fn)
	}
	return readDocument(br, skipped, fn)
}

// firstByte skips leading white space and a byte order mark, and returns the first
// byte of the content and how many lines were skipped.
func firstByte(br *bufio.Reader) (first byte, lines int, err error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return 0, lines, err
		}
		switch b[0] {
		case '\n':
			lines++
			_, _ = br.ReadByte()
		case ' ', '\t', '\r':
			_, _ = br.ReadByte()
		case 0xEF: // UTF-8 byte order mark
			bom, _ := br.Peek(3)
			if bytes.Equal(bom, []byte{0xEF, 0xBB, 0xBF}) {
				_, _ = br.Discard(3)
				continue
			}
			return b[0], lines, nil
		default:
			return b[0], lines, nil
		}
	}
}

func readNDJSON(br *bufio.Reader, skipped int, fn func(Raw) error) error {
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line := skipped
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if !json.Valid(text) {
			if err := fn(Raw{Pos: Position{Line: line, Index: -1}, Err: errors.New("not valid JSON")}); err != nil {
				return err
			}
			continue
		}
		// A line may also hold a whole array or API page.
		if err := emitValue(text, 0, &lineCounter{data: text, base: line}, fn); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: after line %d: %w", ErrFormat, line, err)
	}
	return nil
}

// readDocument reads JSON values one after another: arrays of items, pages, items.
func readDocument(br *bufio.Reader, skipped int, fn func(Raw) error) error {
	data, err := io.ReadAll(br)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	lines := lineCounter{data: data, base: skipped + 1}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		start := skipSpace(data, int(dec.InputOffset()))
		var v json.RawMessage
		if err := dec.Decode(&v); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("%w: at line %d: %w", ErrFormat, lines.at(int(dec.InputOffset())), err)
		}
		if err := emitValue(v, start, &lines, fn); err != nil {
			return err
		}
	}
}

// emitValue hands the items of one top-level value to fn: each element of an array,
// each result of a page, or the value itself. start is the value's offset in the
// input, so every item is reported with its own line.
func emitValue(v json.RawMessage, start int, lines *lineCounter, fn func(Raw) error) error {
	dec := json.NewDecoder(bytes.NewReader(v))
	switch v[0] {
	case '[':
		return emitArray(dec, v, start, lines, fn)
	case '{':
		if hasResults(v) {
			_, _ = dec.Token() // {
			for dec.More() {
				key, err := dec.Token()
				if err != nil {
					return fmt.Errorf("%w: %w", ErrFormat, err)
				}
				if key == "results" {
					if err := emitArray(dec, v, start, lines, fn); err != nil {
						return err
					}
					continue
				}
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return fmt.Errorf("%w: %w", ErrFormat, err)
				}
			}
			return nil
		}
		return fn(Raw{Pos: Position{Line: lines.at(start), Index: -1}, Data: compact(v)})
	default:
		return fn(Raw{Pos: Position{Line: lines.at(start), Index: -1}, Err: errors.New("not a JSON object")})
	}
}

// hasResults tells an IONIX API page (an object with a "results" array) from an item.
func hasResults(v json.RawMessage) bool {
	var page struct {
		Results json.RawMessage `json:"results"`
	}
	return json.Unmarshal(v, &page) == nil && len(page.Results) > 0 && page.Results[0] == '['
}

// emitArray streams the elements of the array that dec is positioned at.
func emitArray(dec *json.Decoder, v []byte, start int, lines *lineCounter, fn func(Raw) error) error {
	if _, err := dec.Token(); err != nil { // [
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	for i := 0; dec.More(); i++ {
		off := skipSeparators(v, int(dec.InputOffset()))
		var e json.RawMessage
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("%w: at line %d: %w", ErrFormat, lines.at(start+off), err)
		}
		raw := Raw{Pos: Position{Line: lines.at(start + off), Index: i}}
		if len(e) > 0 && e[0] == '{' {
			raw.Data = compact(e)
		} else {
			raw.Err = errors.New("not a JSON object")
		}
		if err := fn(raw); err != nil {
			return err
		}
	}
	_, err := dec.Token() // ]
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return nil
}

func compact(v []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return bytes.Clone(v)
	}
	return b.Bytes()
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// skipSeparators skips white space and the comma between array elements.
func skipSeparators(data []byte, i int) int {
	for i < len(data) && (data[i] == ',' || data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// lineCounter turns byte offsets into line numbers; data starts at line base. Asked
// for in increasing order, it counts each byte once.
type lineCounter struct {
	data []byte
	base int
	off  int
	seen int // newlines before off
}

func (l *lineCounter) at(off int) int {
	if off < l.off {
		l.off, l.seen = 0, 0
	}
	off = min(off, len(l.data))
	l.seen += bytes.Count(l.data[l.off:off], []byte{'\n'})
	l.off = off
	return l.base + l.seen
}
