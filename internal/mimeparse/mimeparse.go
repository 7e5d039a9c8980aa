// Package mimeparse locates the MIME entities of a message by byte offsets, so
// that an IMAP server can answer FETCH BODY[...], BINARY[...], BODYSTRUCTURE
// and ENVELOPE without ever loading a whole message into memory.
//
// [Parse] reads a message once, sequentially, keeping only the header of each
// entity; bodies are never buffered. The resulting [Part] tree serves any body
// section as a byte range of the original message (RFC 3501 §6.4.5,
// RFC 9051 §6.4.5) and can be cached with [Part.MarshalBinary].
//
// The raw bytes of the message are never rewritten: CRLF and bare-LF messages
// both work, with offsets exact on the stored bytes.
//
// # Differences from go-imap's imapserver extractors
//
// On well-formed CRLF messages the answers are those of
// imapserver.ExtractBodySection, ExtractBinarySection, ExtractBodyStructure
// and ExtractEnvelope. They differ where go-imap is wrong or fails:
//
//   - Header bytes are returned raw. go-imap re-serialises headers (bare LF
//     becomes CRLF, nameless fields are dropped, a missing blank line is
//     added), so its BODY[] of a bare-LF message is not the stored message
//     and does not match RFC822.SIZE. HEADER.FIELDS ends with the header's
//     own blank line (CRLF, or LF in a bare-LF message).
//   - Malformed input yields a best-effort answer where go-imap returns
//     nothing: a multipart without closing delimiter (its last part runs to
//     the end, final line break included), a part header ended by a
//     delimiter line, header lines that are not fields (skipped).
//   - A multipart without any part gets one synthetic text/plain child
//     covering its body (go-imap's encoder panics on a multipart without
//     children).
//   - A part of a multipart/digest without Content-Type is message/rfc822
//     in BODYSTRUCTURE too (RFC 2046 §5.1.5), and the digest default does
//     not leak into the parts of an encapsulated message.
//   - For a top-level message/rfc822, BODY[2] does not exist (go-imap
//     treats it as BODY[1.2]).
//   - BINARY decodes the transfer encoding only (RFC 3516), without charset
//     conversion, leniently (go-imap fails on malformed base64 or
//     quoted-printable), and reports an unknown encoding as
//     ErrUnknownEncoding.
//   - A malformed Content-Type or Content-Disposition is parsed leniently;
//     an unusable media type is text/plain (RFC 2045 §5.2).
package mimeparse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-message/textproto"
)

// Limits that keep Parse bounded on hostile input. Beyond them the parser
// degrades to a coarser but still valid tree; it never fails.
const (
	// MaxDepth is the deepest nesting of multipart and message/rfc822
	// entities that is parsed. A deeper container is represented with a single
	// synthetic text/plain child covering its whole body.
	MaxDepth = 64
	// MaxParts is the largest number of entities in one tree. Further
	// boundary delimiter lines are treated as body content.
	MaxParts = 10000
	// MaxPartHeaderBytes is the largest header stored for one entity. Longer
	// headers are still skipped correctly, but only their first whole lines up
	// to this size are kept and parsed.
	MaxPartHeaderBytes = 1 << 20
	// MaxHeaderBytes is the largest total of stored header bytes for one
	// message.
	MaxHeaderBytes = 8 << 20
	// maxBoundaryLen bounds the boundary parameter that is honoured (RFC 2046
	// allows 70 characters; real mail sometimes uses a little more).
	maxBoundaryLen = 1000
	// readBufferSize is the size of the sequential read buffer.
	readBufferSize = 64 << 10
)

// ErrUnknownEncoding is wrapped by the error returned for a part whose
// Content-Transfer-Encoding cannot be decoded (RFC 3516 §4.3: the server
// answers NO [UNKNOWN-CTE]).
var ErrUnknownEncoding = errors.New("mimeparse: unknown Content-Transfer-Encoding")

// Part is one MIME entity located by byte offsets in the raw message.
//
// A Part is immutable once returned by [Parse] or [UnmarshalPart] and safe
// for concurrent use.
type Part struct {
	// Start is the offset of the first header byte.
	Start int64
	// BodyStart is the offset of the first body byte, after the blank line
	// that ends the header (or the end of the header when there is no blank
	// line).
	BodyStart int64
	// End is the offset one past the last body byte. For a multipart child
	// it excludes the line break that precedes the next boundary delimiter,
	// which belongs to the delimiter (RFC 2046 §5.1.1).
	End int64
	// Header is the parsed header. Malformed lines (no colon, invalid field
	// name, leading white space) are left out.
	Header textproto.Header
	// RawHeader holds the raw bytes [Start, BodyStart), including the blank
	// line, unless HeaderTruncated is set, in which case it holds only a
	// prefix made of whole lines.
	RawHeader []byte
	// HeaderTruncated reports that the header was longer than the storage
	// limits and RawHeader/Header hold only its beginning.
	HeaderTruncated bool
	// BodyLines is the number of line feeds in [BodyStart, End), the "lines"
	// of BODYSTRUCTURE for text/* and message/rfc822 parts.
	BodyLines int64
	// Children are the parts of a multipart entity (never empty for one).
	Children []*Part
	// Message is the encapsulated message of a message/rfc822 or
	// message/global entity (never nil for one).
	Message *Part
	// Synthetic marks a part that is not in the message: the single child
	// given to a multipart without any part, or the encapsulated message of a
	// message/rfc822 entity nested too deep. It has an empty header and is
	// treated as text/plain.
	Synthetic bool

	// Derived from Header and the parent; see classify.
	typ, sub string
	params   map[string]string
}

// MediaType returns the lower-case media type of the part as used for its
// structure, for example "text/plain" or "multipart/mixed".
func (p *Part) MediaType() string { return p.typ + "/" + p.sub }

// Size returns the number of bytes of the entity, header included.
func (p *Part) Size() int64 { return p.End - p.Start }

// IsMultipart reports whether the part is a multipart entity with children.
func (p *Part) IsMultipart() bool { return len(p.Children) > 0 }

// Parse reads the message once, sequentially from r (size bytes), and returns
// its structure. Memory is bounded by the total size of the headers, never by
// the body sizes. Malformed input never fails: a missing closing boundary, a
// multipart without boundary, garbage headers all yield a best-effort tree.
// The only errors are read errors from r.
func Parse(r io.ReaderAt, size int64) (*Part, error) {
	if size < 0 {
		return nil, fmt.Errorf("mimeparse: negative size %d", size)
	}
	ps := &parser{
		br:   bufio.NewReaderSize(io.NewSectionReader(r, 0, size), readBufferSize),
		size: size,
	}
	root := &Part{}
	ps.nparts = 1
	ps.stack = append(ps.stack, &entity{p: root, inHeader: true})
	if err := ps.run(); err != nil {
		return nil, err
	}
	return root, nil
}

// entity is an open entity on the parser's stack.
type entity struct {
	p        *Part
	depth    int
	inHeader bool
	digest   bool   // the parent is multipart/digest
	boundary []byte // "--" + boundary while the delimiters of this multipart are recognised
	bodyNL   int64  // line feeds before BodyStart
	lineMark int    // len(p.RawHeader) at the start of the current header line
	hdrFull  bool   // stop storing header bytes
}

type parser struct {
	br     *bufio.Reader
	size   int64
	off    int64 // offset of the next byte to read
	nl     int64 // line feeds read so far
	stack  []*entity
	nparts int
	hdrTot int // total stored header bytes
	// Line ending of the previous complete line.
	prevCRLF bool
}

func (ps *parser) top() *entity { return ps.stack[len(ps.stack)-1] }

func (ps *parser) run() error {
	atLineStart := true
	var lastByte byte
	for {
		frag, err := ps.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return fmt.Errorf("mimeparse: read at offset %d: %w", ps.off+int64(len(frag)), err)
		}
		if err == io.EOF && ps.off+int64(len(frag)) != ps.size {
			return fmt.Errorf("mimeparse: read at offset %d: %w", ps.off+int64(len(frag)), io.ErrUnexpectedEOF)
		}
		lineOff := ps.off
		ps.off += int64(len(frag))
		complete := len(frag) > 0 && frag[len(frag)-1] == '\n'
		// A line is whole in frag when it ends with LF or at the end of input.
		whole := complete || err == io.EOF
		if len(frag) > 0 {
			if atLineStart {
				ps.lineHead(frag, lineOff, whole, complete)
			} else {
				ps.lineMore(frag)
			}
		}
		if complete {
			ps.nl++
			switch {
			case len(frag) >= 2:
				ps.prevCRLF = frag[len(frag)-2] == '\r'
			default:
				ps.prevCRLF = lastByte == '\r'
			}
		}
		if len(frag) > 0 {
			lastByte = frag[len(frag)-1]
		}
		atLineStart = complete
		if err == io.EOF {
			break
		}
	}
	for len(ps.stack) > 0 {
		ps.closeTop(ps.size, ps.nl)
	}
	return nil
}

// lineHead handles the first fragment of a line starting at lineOff.
func (ps *parser) lineHead(frag []byte, lineOff int64, whole, complete bool) {
	if whole && len(frag) >= 2 && frag[0] == '-' && frag[1] == '-' {
		for i := len(ps.stack) - 1; i >= 0; i-- {
			e := ps.stack[i]
			if e.boundary == nil {
				continue
			}
			kind := matchBoundary(frag, e.boundary)
			if kind == 0 {
				continue
			}
			if kind == delimiter && ps.nparts >= MaxParts {
				break // too many parts: the line is plain content
			}
			if len(ps.stack)-1 > i {
				ps.closeAbove(i, lineOff)
			}
			if kind == closeDelimiter {
				e.boundary = nil // the rest is epilogue
				return
			}
			child := &Part{Start: ps.off}
			e.p.Children = append(e.p.Children, child)
			ps.nparts++
			ps.stack = append(ps.stack, &entity{
				p:        child,
				depth:    e.depth + 1,
				inHeader: true,
				digest:   e.p.typ == "multipart" && e.p.sub == "digest",
			})
			return
		}
	}
	e := ps.top()
	if !e.inHeader {
		return
	}
	if complete && (len(frag) == 1 || (len(frag) == 2 && frag[0] == '\r')) {
		ps.storeHeader(e, frag, true)
		ps.endHeader(e, ps.off, ps.nl+1)
		return
	}
	ps.storeHeader(e, frag, true)
}

// lineMore handles a further fragment of a long line.
func (ps *parser) lineMore(frag []byte) {
	if e := ps.top(); e.inHeader {
		ps.storeHeader(e, frag, false)
	}
}

func (ps *parser) storeHeader(e *entity, frag []byte, lineStart bool) {
	if lineStart {
		e.lineMark = len(e.p.RawHeader)
	}
	if e.hdrFull {
		return
	}
	if len(e.p.RawHeader)+len(frag) > MaxPartHeaderBytes || ps.hdrTot+len(frag) > MaxHeaderBytes {
		// Keep whole lines only.
		ps.hdrTot -= len(e.p.RawHeader) - e.lineMark
		e.p.RawHeader = e.p.RawHeader[:e.lineMark]
		e.hdrFull = true
		e.p.HeaderTruncated = true
		return
	}
	e.p.RawHeader = append(e.p.RawHeader, frag...)
	ps.hdrTot += len(frag)
}

// endHeader finishes the header of e; the body starts at bodyStart, after
// bodyNL line feeds.
func (ps *parser) endHeader(e *entity, bodyStart, bodyNL int64) {
	p := e.p
	e.inHeader = false
	p.BodyStart = bodyStart
	e.bodyNL = bodyNL
	if !p.HeaderTruncated && int64(len(p.RawHeader)) != p.BodyStart-p.Start {
		// Cannot happen; keep the invariant checked by UnmarshalPart anyway.
		p.HeaderTruncated = true
	}
	p.RawHeader = trimCap(p.RawHeader)
	p.Header = parseHeader(p.RawHeader)
	p.classify(e.digest)
	if e.depth >= MaxDepth {
		return // treated as a leaf; closeTop adds synthetic children
	}
	switch {
	case p.typ == "multipart":
		b := p.params["boundary"]
		if b != "" && len(b) <= maxBoundaryLen {
			e.boundary = []byte("--" + b)
		}
	case isMessageType(p.typ, p.sub):
		if ps.nparts >= MaxParts {
			return
		}
		m := &Part{Start: bodyStart}
		p.Message = m
		ps.nparts++
		ps.stack = append(ps.stack, &entity{p: m, depth: e.depth + 1, inHeader: true})
	}
}

// closeAbove closes every open entity above stack index i at the start of
// one of its delimiter lines, at. The line break before the delimiter line
// belongs to the delimiter (RFC 2046 §5.1.1), so the part directly inside
// the multipart ends before it, unless its body is empty or its header runs
// up to the delimiter (go-imap's multipart reader behaves the same way).
// Entities nested in that part end at the same offset; a header cut by it
// loses its final line break.
func (ps *parser) closeAbove(i int, at int64) {
	x := ps.stack[i+1]
	end, endNL := at, ps.nl
	if !x.inHeader && at > x.p.BodyStart {
		if ps.prevCRLF && at-2 >= x.p.BodyStart {
			end = at - 2
		} else {
			end = at - 1
		}
		endNL--
	}
	for len(ps.stack)-1 > i {
		ps.closeTop(end, endNL)
	}
}

// closeTop closes the innermost open entity at end, which is preceded by
// endNL line feeds.
func (ps *parser) closeTop(end, endNL int64) {
	e := ps.top()
	ps.stack = ps.stack[:len(ps.stack)-1]
	p := e.p
	if p.Start > end {
		p.Start = end
	}
	if e.inHeader || p.BodyStart > end {
		if n := end - p.Start; int64(len(p.RawHeader)) > n {
			p.RawHeader = trimCap(p.RawHeader[:n])
		}
		if e.inHeader {
			// The header runs up to the end of the entity.
			ps.endHeader(e, end, endNL)
			if p.Message != nil {
				// endHeader opened the encapsulated message: close it empty.
				ps.closeTop(end, endNL)
			}
		} else {
			p.BodyStart, e.bodyNL = end, endNL
		}
	}
	p.End = end
	p.BodyLines = max(endNL-e.bodyNL, 0)
	if p.typ == "multipart" && len(p.Children) == 0 {
		p.Children = []*Part{p.synthetic()}
		ps.nparts++
	}
	if isMessageType(p.typ, p.sub) && p.Message == nil {
		p.Message = p.synthetic()
		ps.nparts++
	}
}

// synthetic returns an empty-header text/plain part covering p's body.
func (p *Part) synthetic() *Part {
	s := &Part{
		Start:     p.BodyStart,
		BodyStart: p.BodyStart,
		End:       p.End,
		BodyLines: p.BodyLines,
		Synthetic: true,
	}
	s.classify(false)
	return s
}

func trimCap(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if cap(b)-len(b) > 64 {
		return append([]byte(nil), b...)
	}
	return b
}

const (
	delimiter      = 1
	closeDelimiter = 2
)

// matchBoundary reports whether line (a whole line, with its line ending if
// any) is a delimiter line "--boundary" or a close-delimiter line
// "--boundary--" for dashBoundary ("--boundary"), optionally followed by
// linear white space (RFC 2046 §5.1.1).
func matchBoundary(line, dashBoundary []byte) int {
	if !bytes.HasPrefix(line, dashBoundary) {
		return 0
	}
	rest := line[len(dashBoundary):]
	kind := delimiter
	if len(rest) >= 2 && rest[0] == '-' && rest[1] == '-' {
		kind = closeDelimiter
		rest = rest[2:]
	}
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	switch string(rest) {
	case "", "\n", "\r\n":
		return kind
	}
	return 0
}

func isMessageType(typ, sub string) bool {
	return typ == "message" && (sub == "rfc822" || sub == "global")
}
