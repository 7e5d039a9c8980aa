package mimeparse

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Find returns the part at an IMAP part path, or nil if there is none.
//
// The empty path is the message itself. Indices are 1-based (RFC 3501
// §6.4.5): the children of a multipart are numbered from 1; the body of a
// non-multipart entity is its part 1; a path that goes through a
// message/rfc822 part descends into the encapsulated message's body, whose
// parts are numbered as those of a top-level message. So for a
// message/rfc822 part n, n.1 is the encapsulated message itself when it is
// not multipart, or its first part when it is.
func (p *Part) Find(path []int) *Part {
	e := p
	for i, n := range path {
		if n < 1 {
			return nil
		}
		if i > 0 && e.Message != nil {
			e = e.Message
		}
		if len(e.Children) > 0 {
			if n > len(e.Children) {
				return nil
			}
			e = e.Children[n-1]
		} else if n != 1 {
			return nil
		}
	}
	return e
}

// BodySection returns a reader for FETCH BODY[section]<partial> of the
// message rooted at p, and the exact number of bytes it yields. r must read
// the same bytes that were given to Parse.
//
// Ranges of the message are served as io.SectionReader; only HEADER.FIELDS
// and HEADER.FIELDS.NOT build a (small) byte slice. A part path that does not
// exist yields an empty section.
//
// RFC 3501 §6.4.5: with a part path, HEADER and TEXT refer to the
// encapsulated message of a message/rfc822 part; for any other part they
// return the part's own MIME header and body, as go-imap does. MIME is the
// MIME header of the part. The empty specifier is the whole message for the
// empty path and the part body otherwise.
func (p *Part) BodySection(r io.ReaderAt, item *imap.FetchItemBodySection) (io.Reader, int64, error) {
	e := p.Find(item.Part)
	if e == nil {
		return bytes.NewReader(nil), 0, nil
	}
	target := e
	if len(item.Part) > 0 && e.Message != nil &&
		(item.Specifier == imap.PartSpecifierHeader || item.Specifier == imap.PartSpecifierText) {
		target = e.Message
	}
	var start, end int64
	switch item.Specifier {
	case imap.PartSpecifierNone:
		start, end = e.BodyStart, e.End
		if len(item.Part) == 0 {
			start = e.Start
		}
	case imap.PartSpecifierText:
		start, end = target.BodyStart, target.End
	case imap.PartSpecifierMIME:
		start, end = e.Start, e.BodyStart
	case imap.PartSpecifierHeader:
		if len(item.HeaderFields) > 0 || len(item.HeaderFieldsNot) > 0 {
			b, err := target.filterHeader(r, item.HeaderFields, item.HeaderFieldsNot)
			if err != nil {
				return nil, 0, err
			}
			b = partialBytes(b, item.Partial)
			return bytes.NewReader(b), int64(len(b)), nil
		}
		start, end = target.Start, target.BodyStart
	default:
		return nil, 0, fmt.Errorf("mimeparse: unknown section specifier %q", item.Specifier)
	}
	start, end = partialRange(start, end, item.Partial)
	return io.NewSectionReader(r, start, end-start), end - start, nil
}

// partialRange applies <offset.count> to [start, end): clamped to the
// section, empty when the offset is beyond its end.
func partialRange(start, end int64, partial *imap.SectionPartial) (int64, int64) {
	if partial == nil {
		return start, end
	}
	size := end - start
	off, n := partial.Offset, partial.Size
	if off < 0 {
		off = 0
	}
	if n < 0 {
		n = 0
	}
	if off >= size {
		return end, end
	}
	if n > size-off {
		n = size - off
	}
	return start + off, start + off + n
}

func partialBytes(b []byte, partial *imap.SectionPartial) []byte {
	s, e := partialRange(0, int64(len(b)), partial)
	return b[s:e]
}

// filterHeader returns the header fields of p whose names are in keep (if
// keep is not empty) and not in drop, in their original order and bytes
// (folding kept), followed by the blank line that ends the header (RFC 3501
// §6.4.5 HEADER.FIELDS, HEADER.FIELDS.NOT). The blank line is the header's
// own, or CRLF when the header has none. Names compare case-insensitively;
// lines that are not part of a valid field are left out.
func (p *Part) filterHeader(r io.ReaderAt, keep, drop []string) ([]byte, error) {
	var src io.Reader
	if p.HeaderTruncated {
		src = io.NewSectionReader(r, p.Start, p.BodyStart-p.Start)
	} else {
		src = bytes.NewReader(p.RawHeader)
	}
	f := newFieldFilter(src, keep, drop)
	var out bytes.Buffer
	if _, err := io.Copy(&out, f); err != nil {
		return nil, fmt.Errorf("mimeparse: read header at offset %d: %w", p.Start, err)
	}
	return out.Bytes(), nil
}

// fieldFilter streams the selected fields of a raw header, reading it line
// by line with bounded memory.
type fieldFilter struct {
	br          *bufio.Reader
	keep, drop  map[string]bool
	pending     []byte
	including   bool
	atLineStart bool
	lastNL      bool   // the last byte written was a line feed
	crlf        bool   // line ending style of the last complete line
	tail        []byte // written after the fields
	done        bool
	err         error
}

func newFieldFilter(src io.Reader, keep, drop []string) *fieldFilter {
	set := func(l []string) map[string]bool {
		if len(l) == 0 {
			return nil
		}
		m := make(map[string]bool, len(l))
		for _, k := range l {
			m[strings.ToLower(k)] = true
		}
		return m
	}
	return &fieldFilter{
		br:          bufio.NewReaderSize(src, 4096),
		keep:        set(keep),
		drop:        set(drop),
		atLineStart: true,
		lastNL:      true,
		crlf:        true,
	}
}

func (f *fieldFilter) selected(name []byte) bool {
	k := strings.ToLower(string(name))
	if f.keep != nil && !f.keep[k] {
		return false
	}
	return !f.drop[k]
}

func (f *fieldFilter) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		if len(f.pending) > 0 {
			c := copy(b[n:], f.pending)
			f.pending = f.pending[c:]
			n += c
			continue
		}
		if f.done {
			if len(f.tail) > 0 {
				c := copy(b[n:], f.tail)
				f.tail = f.tail[c:]
				n += c
				continue
			}
			if n > 0 {
				return n, nil
			}
			return 0, f.err
		}
		frag, err := f.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			f.done, f.err = true, err
			f.tail = nil
			continue
		}
		complete := len(frag) > 0 && frag[len(frag)-1] == '\n'
		if f.atLineStart && len(frag) > 0 {
			if complete && isBlankLine(frag) {
				f.finish(frag)
				continue
			}
			if frag[0] != ' ' && frag[0] != '\t' {
				name, ok := fieldName(frag)
				f.including = ok && f.selected(name)
			}
		}
		if f.including && len(frag) > 0 {
			f.pending = frag
			f.lastNL = complete
		}
		if complete {
			f.crlf = len(frag) >= 2 && frag[len(frag)-2] == '\r'
		}
		f.atLineStart = complete
		if err == io.EOF {
			f.finish(nil)
		}
	}
	return n, nil
}

// finish ends the output with the header's own blank line, or a synthesised
// one (preceded by a line ending if the last field had none).
func (f *fieldFilter) finish(blank []byte) {
	f.done, f.err = true, io.EOF
	nl := "\r\n"
	if !f.crlf {
		nl = "\n"
	}
	switch {
	case blank != nil:
		f.tail = append([]byte(nil), blank...)
	case !f.lastNL:
		f.tail = []byte(nl + nl)
	default:
		f.tail = []byte(nl)
	}
}
