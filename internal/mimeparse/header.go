package mimeparse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"mime"
	"strings"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// fieldName returns the name of the header field whose first line is line,
// and whether the line starts a valid field: a name of printable US-ASCII
// characters other than colon, optionally surrounded by blanks, then a colon
// (RFC 5322 §2.2, with the tolerance for blanks before the colon that real
// mail needs).
func fieldName(line []byte) ([]byte, bool) {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return nil, false
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return nil, false
	}
	name := bytes.Trim(line[:colon], " \t")
	if len(name) == 0 {
		return nil, false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return nil, false
		}
	}
	return name, true
}

// isBlankLine reports whether line is an empty line (the end of a header).
func isBlankLine(line []byte) bool {
	return string(line) == "\n" || string(line) == "\r\n"
}

// forEachLine calls f for every line of b, line endings included.
func forEachLine(b []byte, f func(line []byte) bool) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i+1], b[i+1:]
		}
		if !f(line) {
			return
		}
	}
}

// parseHeader parses a raw header into a textproto.Header, leaving out lines
// that do not belong to a valid field. For a well-formed header the result is
// exactly what textproto.ReadHeader returns.
func parseHeader(raw []byte) textproto.Header {
	clean := raw
	valid, inField := true, false
	forEachLine(raw, func(line []byte) bool {
		if isBlankLine(line) {
			return false
		}
		if line[0] == ' ' || line[0] == '\t' {
			valid = inField
			return valid
		}
		_, inField = fieldName(line)
		valid = inField
		return valid
	})
	if !valid {
		var buf bytes.Buffer
		keep := false
		forEachLine(raw, func(line []byte) bool {
			if isBlankLine(line) {
				return false
			}
			if line[0] != ' ' && line[0] != '\t' {
				_, keep = fieldName(line)
			}
			if keep {
				buf.Write(line)
				if line[len(line)-1] != '\n' {
					buf.WriteString("\r\n")
				}
			}
			return true
		})
		clean = buf.Bytes()
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(clean)))
	return h
}

// classify derives the media type and parameters of p from its header. A
// part of a multipart/digest without Content-Type is message/rfc822
// (RFC 2046 §5.1.5). A missing or unusable Content-Type means text/plain
// (RFC 2045 §5.2).
func (p *Part) classify(parentDigest bool) {
	if p.Synthetic {
		p.typ, p.sub, p.params = "text", "plain", nil
		return
	}
	h := gomessage.Header{Header: p.Header}
	if parentDigest && !h.Has("Content-Type") {
		p.typ, p.sub, p.params = "message", "rfc822", nil
		return
	}
	mt, params, err := h.ContentType()
	if err != nil {
		mt, params = lenientMediaType(h.Get("Content-Type"))
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || !isToken(typ) || !isToken(sub) {
		typ, sub = "text", "plain"
	}
	p.typ, p.sub, p.params = typ, sub, params
}

// contentDisposition parses Content-Disposition like go-message does, with a
// lenient fallback for malformed parameters.
func contentDisposition(h *gomessage.Header) (string, map[string]string) {
	v := h.Get("Content-Disposition")
	if v == "" {
		return "", nil
	}
	disp, params, err := h.ContentDisposition()
	if err != nil {
		disp, params = lenientMediaType(v)
	}
	return disp, params
}

// lenientMediaType parses a Content-Type or Content-Disposition value that
// mime.ParseMediaType rejects: the lower-cased leading token, and whatever
// parameters can be made sense of (first occurrence wins).
func lenientMediaType(v string) (string, map[string]string) {
	mt, _, err := mime.ParseMediaType(v)
	head, rest, _ := strings.Cut(v, ";")
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		mt = strings.ToLower(strings.TrimSpace(head))
	}
	var params map[string]string
	for rest != "" {
		var seg string
		seg, rest = cutParam(rest)
		k, val, ok := strings.Cut(seg, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" || !isToken(strings.TrimSuffix(k, "*")) {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' {
			val = unquote(val)
		}
		if params == nil {
			params = make(map[string]string)
		}
		if _, dup := params[k]; !dup {
			params[k] = decodeWords(val)
		}
	}
	return mt, params
}

// cutParam splits s at the first semicolon outside a quoted string.
func cutParam(s string) (seg, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ';' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// unquote removes the quotes and backslash escapes of a quoted string; an
// unterminated one runs to the end.
func unquote(s string) string {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// decodeWords decodes RFC 2047 encoded words in a parameter value, as
// go-message does for well-formed parameters.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	dec := mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
		if gomessage.CharsetReader == nil {
			return nil, errors.New("unhandled charset")
		}
		return gomessage.CharsetReader(strings.ToLower(charset), input)
	}}
	if d, err := dec.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// isToken reports whether s is a non-empty RFC 2045 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

func cloneParams(m map[string]string) map[string]string { return maps.Clone(m) }
