package imapsearch

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

const (
	// maxDepth bounds the nesting of multipart and message/rfc822 parts that
	// are descended into; deeper parts are not searched.
	maxDepth = 32
	// maxHeaderBytes bounds the header of the message and of embedded
	// messages; a larger header ends the search of that entity.
	maxHeaderBytes = 1 << 20
)

var (
	// errDone stops the scan once every needle has been found.
	errDone = errors.New("imapsearch: every string found")

	errHeaderTooBig = errors.New("imapsearch: header too large")
)

// recordingReader remembers the first error of the underlying reader other
// than io.EOF, which tells I/O failures apart from malformed content.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// headerLimitReader fails once more than n bytes are read while limited.
type headerLimitReader struct {
	r       io.Reader
	n       int64
	limited bool
}

func (r *headerLimitReader) Read(p []byte) (int, error) {
	if !r.limited {
		return r.r.Read(p)
	}
	if r.n <= 0 {
		return 0, errHeaderTooBig
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, err := r.r.Read(p)
	r.n -= int64(n)
	return n, err
}

// scanner walks the MIME structure of a raw message and feeds the decoded
// text of searchable parts through a window.
type scanner struct {
	*window
	src   *recordingReader
	rbuf  []byte
	texts int // number of TEXT needles
}

func newScanner(needles []needleSpec, maxLen int) *scanner {
	s := &scanner{window: newWindow(needles, maxLen), rbuf: make([]byte, readSize)}
	for _, n := range needles {
		if n.text {
			s.texts++
		}
	}
	return s
}

// scanMessage searches the raw message r. Malformed content ends the search
// of the affected part silently (what was read so far counts); read errors
// are returned.
func (s *scanner) scanMessage(r io.Reader) error {
	if s.done() {
		return nil
	}
	s.src = &recordingReader{r: r}
	err := s.entity(s.src, 0, true)
	if errors.Is(err, errDone) {
		return nil
	}
	return s.src.err
}

// soft turns an error caused by malformed content into nil, so that the walk
// goes on with the next part; errDone and read errors are kept.
func (s *scanner) soft(err error) error {
	if err == nil || errors.Is(err, errDone) || s.src.err != nil {
		return err
	}
	return nil
}

// entity parses a header followed by a body: the message itself (top) or an
// embedded message/rfc822 part.
func (s *scanner) entity(r io.Reader, depth int, top bool) error {
	lr := &headerLimitReader{r: r, n: maxHeaderBytes, limited: true}
	br := bufio.NewReader(lr)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return s.soft(err)
	}
	lr.limited = false
	if !top || s.textLeft() {
		if err := s.header(&h, top); err != nil {
			return err
		}
	}
	return s.part(&h, br, depth, false)
}

// textLeft reports whether some TEXT needle has not been found yet.
func (s *scanner) textLeft() bool {
	if s.texts == 0 {
		return false
	}
	for i, n := range s.needles {
		if n.text && !s.found[i] {
			return true
		}
	}
	return false
}

// header searches every field as "Name: decoded value", one segment per
// field. The top-level header is only searched for TEXT needles; the header
// of an embedded message is part of the body.
func (s *scanner) header(h *textproto.Header, top bool) error {
	fields := h.Fields()
	for fields.Next() {
		s.begin(top)
		s.buf = appendFoldString(s.buf, fields.Key())
		s.buf = append(s.buf, ':', ' ')
		s.buf = appendFoldString(s.buf, decodeText(fields.Value()))
		if s.end() {
			return errDone
		}
	}
	return nil
}

// part searches the raw body of an entity according to its media type.
func (s *scanner) part(h *textproto.Header, body io.Reader, depth int, inDigest bool) error {
	mt, params := "text/plain", map[string]string(nil)
	if v := h.Get("Content-Type"); v != "" {
		// RFC 2045: an invalid Content-Type means text/plain.
		if t, p, err := mime.ParseMediaType(v); err == nil {
			mt, params = t, p
		}
	} else if inDigest {
		mt = "message/rfc822" // RFC 2046 section 5.1.5
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		boundary := params["boundary"]
		if boundary == "" {
			return s.text(body)
		}
		if depth >= maxDepth {
			return nil
		}
		mr := textproto.NewMultipartReader(body, boundary)
		digest := mt == "multipart/digest"
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return s.soft(err)
			}
			if err := s.part(&p.Header, p, depth+1, digest); err != nil {
				return err
			}
		}
	case mt == "message/rfc822" || mt == "message/global":
		if depth >= maxDepth {
			return nil
		}
		return s.entity(decodeTransfer(h, body), depth+1, false)
	case strings.HasPrefix(mt, "text/"):
		r := decodeTransfer(h, body)
		if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
			// An unknown charset is searched as raw bytes.
			if cr, err := charset.Reader(cs, r); err == nil {
				r = cr
			}
		}
		return s.text(r)
	case strings.HasPrefix(mt, "message/"):
		return s.text(decodeTransfer(h, body))
	default:
		return nil // not text: not searched
	}
}

// decodeTransfer undoes the Content-Transfer-Encoding of a body. Unknown
// encodings are returned raw.
func decodeTransfer(h *textproto.Header, body io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &base64Filter{r: body})
	case "quoted-printable":
		return quotedprintable.NewReader(&qpLineBreaker{r: body})
	default:
		return body
	}
}

// text streams a decoded body through the window in fixed-size reads.
func (s *scanner) text(r io.Reader) error {
	s.begin(false)
	keep := 0
	for {
		n, err := r.Read(s.rbuf[keep:])
		data := s.rbuf[:keep+n]
		var used int
		s.buf, used = appendFold(s.buf, data, err != nil)
		keep = copy(s.rbuf, data[used:])
		if s.maybeFlush() {
			return errDone
		}
		if err != nil {
			if s.end() {
				return errDone
			}
			if err == io.EOF {
				return nil
			}
			return s.soft(err)
		}
	}
}

// base64Filter drops every byte outside the base64 alphabet (line breaks,
// stray spaces and garbage), as lenient mail readers do.
type base64Filter struct {
	r io.Reader
}

func (f *base64Filter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// qpMaxLine is the line length after which qpLineBreaker inserts a soft line
// break. RFC 2045 allows 76 characters; longer lines exist in the wild, and
// mime/quotedprintable fails on lines longer than its 4 KiB buffer.
const qpMaxLine = 1000

// qpLineBreaker inserts quoted-printable soft line breaks ("=\r\n") into
// over-long lines, never inside an "=XX" escape or a CRLF, so that the
// decoded text is unchanged.
type qpLineBreaker struct {
	r       io.Reader
	buf     [4096]byte
	pending []byte
	err     error
	line    int  // bytes since the last line feed
	esc     int  // bytes of an "=XX" escape still to come
	cr      bool // the last byte was a carriage return
	insert  int  // bytes of "=\r\n" still to emit
}

func (b *qpLineBreaker) Read(p []byte) (int, error) {
	const softBreak = "=\r\n"
	n := 0
	for n < len(p) {
		if b.insert > 0 {
			p[n] = softBreak[len(softBreak)-b.insert]
			b.insert--
			n++
			continue
		}
		if len(b.pending) == 0 {
			if n > 0 {
				return n, nil
			}
			if b.err != nil {
				return 0, b.err
			}
			m, err := b.r.Read(b.buf[:])
			b.pending, b.err = b.buf[:m], err
			continue
		}
		c := b.pending[0]
		if b.line >= qpMaxLine && b.esc == 0 && !b.cr && c != '\n' {
			b.insert = len(softBreak)
			b.line = 0
			continue
		}
		b.pending = b.pending[1:]
		p[n] = c
		n++
		if c == '\n' {
			b.line = 0
		} else {
			b.line++
		}
		b.cr = c == '\r'
		if c == '=' {
			b.esc = 2
		} else if b.esc > 0 {
			b.esc--
		}
	}
	return n, nil
}
