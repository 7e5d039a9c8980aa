package imapsearch

import (
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-message"
)

// maxDepth bounds the nesting of multipart and message/rfc822 parts that are
// descended into; deeper parts are not searched.
const maxDepth = 32

// errDone stops the scan once every needle has been found.
var errDone = errors.New("imapsearch: every string found")

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
// silently (what was read so far counts); read errors are returned.
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
	ent, err := message.Read(r)
	if ent == nil {
		return s.soft(err)
	}
	// An unknown charset or transfer encoding still yields a readable
	// entity, whose body is then searched undecoded.
	if !top || s.textLeft() {
		if err := s.header(ent.Header, top); err != nil {
			return err
		}
	}
	return s.part(ent, depth, false)
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
func (s *scanner) header(h message.Header, top bool) error {
	fields := h.Fields()
	for fields.Next() {
		s.begin(top)
		s.buf, _ = appendFold(s.buf, []byte(fields.Key()), true)
		s.buf = append(s.buf, ':', ' ')
		s.buf, _ = appendFold(s.buf, []byte(decodeText(fields.Value())), true)
		if s.end() {
			return errDone
		}
	}
	return nil
}

// part searches one entity according to its media type.
func (s *scanner) part(ent *message.Entity, depth int, inDigest bool) error {
	mt, params, err := ent.Header.ContentType()
	switch {
	case err != nil:
		mt = "text/plain" // RFC 2045: an invalid Content-Type means text/plain
	case inDigest && !ent.Header.Has("Content-Type"):
		mt = "message/rfc822" // RFC 2046 section 5.1.5
	}
	mt = strings.ToLower(mt)
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if params["boundary"] == "" {
			return s.text(ent.Body)
		}
		if depth >= maxDepth {
			return nil
		}
		mr := ent.MultipartReader()
		if mr == nil {
			return s.text(ent.Body)
		}
		digest := mt == "multipart/digest"
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if p == nil {
				return s.soft(err)
			}
			if err := s.part(p, depth+1, digest); err != nil {
				return err
			}
		}
	case mt == "message/rfc822" || mt == "message/global":
		if depth >= maxDepth {
			return nil
		}
		return s.entity(ent.Body, depth+1, false)
	case strings.HasPrefix(mt, "text/") || strings.HasPrefix(mt, "message/"):
		return s.text(ent.Body)
	default:
		return nil // not text: not searched
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
