package publisher

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxLine bounds one line of input held in memory; a longer line is reported
// and skipped without being read into memory. An item takes one message, which
// is far smaller (DefaultMaxPayload); a line may also hold a whole array or page.
const maxLine = 16 << 20

// Position says where an item stood in the input, for error reports.
type Position struct {
	Line  int // 1-based line where the item starts
	Index int // 0-based index within a JSON array or page; -1 for NDJSON
}

func (p Position) String() string {
	if p.Index < 0 && p.Line <= 0 {
		return "item" // no position: an item the poller remembered
	}
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

// ErrFormat wraps errors that make the rest of a multi-line JSON document (a
// pretty-printed array, page or item) unreadable. NDJSON never stops at a bad line.
var ErrFormat = errors.New("unreadable input")

// ReadItems reads action items from r and calls fn for each, in order. The input is
// NDJSON (one item per line), a JSON array of items, an IONIX API page
// ({"count":..,"results":[..]}), or a sequence of (possibly pretty-printed) items
// or pages. In NDJSON every line that is not an item — not JSON, not an object,
// or longer than 16 MiB — is handed to fn with its line and reason, wherever it
// stands, and the rest is read. Returning an error from fn stops reading.
//
// The format is told from the first line with content: NDJSON when it is a whole
// JSON value or no JSON at all; a document when it opens '[' or a value that goes
// on past the line (a document whose first value cannot be read is taken for
// NDJSON after all when its second line is a whole JSON value).
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
		data, err := io.ReadAll(br)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrFormat, err)
		}
		return readDocument(bytes.TrimPrefix(data, byteOrderMark), skipped+1, fn)
	}
	lines := &lineReader{br: br, n: skipped}
	head, err := lines.next()
	if err != nil {
		return readFailure(err, lines.n)
	}
	text := lineContent(head.text)
	if head.tooLong() || json.Valid(text) || !opensValue(text) {
		if err := emitLine(head, fn); err != nil {
			return err
		}
		return readNDJSON(lines, fn)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return readDocument(append(append(bytes.TrimPrefix(head.text, byteOrderMark), '\n'), rest...), head.n, fn)
}

// byteOrderMark is the UTF-8 byte order mark, which some tools write first.
var byteOrderMark = []byte{0xEF, 0xBB, 0xBF}

// lineContent is a line without its byte order mark (a file's first line, or any
// line of files joined with cat) and the white space around it.
func lineContent(l []byte) []byte { return trimSpace(bytes.TrimPrefix(l, byteOrderMark)) }

// firstByte skips the blank lines at the start (lineContent empty) and returns the
// first byte of the first line's content, and how many lines were skipped. That line
// is left unread, so that it is read like any other.
func firstByte(br *bufio.Reader) (first byte, lines int, err error) {
	for {
		// Peek the line a byte at a time, so that a reader that delivers slowly
		// (a pipe) is read no further than the line.
		var line []byte
		newline := false
		for n := 1; n <= br.Size(); n++ {
			peeked, err := br.Peek(n)
			if len(peeked) < n {
				if len(peeked) == 0 && err != nil {
					return 0, lines, err
				}
				line = peeked
				break
			}
			if peeked[n-1] == '\n' {
				line, newline = peeked[:n-1], true
				break
			}
			if c := lineContent(peeked); len(c) > 0 && !bytes.HasPrefix(byteOrderMark, peeked) {
				return c[0], lines, nil
			}
			line = peeked
		}
		if c := lineContent(line); len(c) > 0 {
			return c[0], lines, nil
		}
		if !newline {
			if len(line) < br.Size() {
				return 0, lines, io.EOF // blank to the end
			}
			// A blank stretch longer than the buffer: drop it and look on.
			_, _ = br.Discard(len(line))
			continue
		}
		_, _ = br.Discard(len(line) + 1)
		lines++
	}
}

// opensValue reports whether text is the beginning of a JSON value that goes on
// past its end, as the first line of a pretty-printed document is.
func opensValue(text []byte) bool {
	var v json.RawMessage
	return errors.Is(json.NewDecoder(bytes.NewReader(text)).Decode(&v), io.ErrUnexpectedEOF)
}

// readNDJSON hands fn the items of every line that lines reads.
func readNDJSON(lines *lineReader, fn func(Raw) error) error {
	for {
		l, err := lines.next()
		if err != nil {
			return readFailure(err, lines.n)
		}
		if err := emitLine(l, fn); err != nil {
			return err
		}
	}
}

// readFailure is nil at the end of the input, else the error that stopped reading.
func readFailure(err error, line int) error {
	if err == io.EOF {
		return nil
	}
	return fmt.Errorf("%w: after line %d: %w", ErrFormat, line, err)
}

// emitLine hands fn the item of one NDJSON line (or the items of an array or page
// on the line), or the reason the line holds none. Blank lines hold nothing.
func emitLine(l line, fn func(Raw) error) error {
	pos := Position{Line: l.n, Index: -1}
	if l.tooLong() {
		return fn(Raw{Pos: pos, Err: fmt.Errorf("line of %d bytes, longer than the %d MiB a line may hold; not read", l.size, maxLine>>20)})
	}
	text := lineContent(l.text) // files joined with cat keep their marks
	if len(text) == 0 {
		return nil
	}
	if !json.Valid(text) {
		return fn(Raw{Pos: pos, Err: notJSON(text)})
	}
	return emitValue(text, 0, &lineCounter{data: text, base: l.n}, fn)
}

// notJSON says why text is not valid JSON.
func notJSON(text []byte) error {
	var v json.RawMessage
	if err := json.Unmarshal(text, &v); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	return errors.New("not valid JSON")
}

// line is one line of input.
type line struct {
	n    int    // 1-based line number
	text []byte // without the line end; nil when the line is too long
	size int    // length in bytes, without the line end
}

func (l line) tooLong() bool { return l.size > maxLine }

// lineReader reads lines of any length, and keeps a line in memory only when it
// is at most maxLine bytes long.
type lineReader struct {
	br *bufio.Reader
	n  int // number of the last line read
}

// next returns the next line, or io.EOF after the last.
func (r *lineReader) next() (line, error) {
	var (
		l     line
		ended bool
	)
	for !ended {
		chunk, err := r.br.ReadSlice('\n')
		switch {
		case err == nil:
			ended = true
			chunk = chunk[:len(chunk)-1]
		case err == io.EOF && l.size == 0 && len(chunk) == 0:
			return line{}, io.EOF
		case err == io.EOF:
			ended = true
		case err != bufio.ErrBufferFull:
			return line{}, err
		}
		l.size += len(chunk)
		if l.size <= maxLine {
			l.text = append(l.text, chunk...)
		} else {
			l.text = nil
		}
	}
	r.n++
	l.n = r.n
	return l, nil
}

// readDocument reads JSON values one after another (arrays of items, pages,
// items) from data, whose first line is line firstLine of the input.
func readDocument(data []byte, firstLine int, fn func(Raw) error) error {
	lines := lineCounter{data: data, base: firstLine}
	dec := json.NewDecoder(bytes.NewReader(data))
	for values := 0; ; values++ {
		start := skipSpace(data, int(dec.InputOffset()))
		var v json.RawMessage
		if err := dec.Decode(&v); err == io.EOF {
			return nil
		} else if err != nil {
			if values == 0 && notMultiLine(data) {
				// NDJSON whose first line is broken in a way that looked like
				// the start of a document.
				return readNDJSON(&lineReader{br: bufio.NewReader(bytes.NewReader(data)), n: firstLine - 1}, fn)
			}
			return fmt.Errorf("%w: at line %d: %w", ErrFormat, lines.at(int(dec.InputOffset())), err)
		}
		if err := emitValue(v, start, &lines, fn); err != nil {
			return err
		}
	}
}

// notMultiLine reports whether data is no multi-line JSON document: its second
// line with content is a whole JSON value, as in NDJSON and never in a
// pretty-printed document, or it has no second line with content.
func notMultiLine(data []byte) bool {
	_, rest, _ := bytes.Cut(data, []byte{'\n'})
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if l = trimSpace(l); len(l) > 0 {
			return json.Valid(l)
		}
	}
	return true
}

// trimSpace trims JSON white space.
func trimSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
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
