package testmail

import (
	"bytes"
	"encoding/base64"
	"mime"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"
)

const crlf = "\r\n"

// part is a MIME entity: a leaf with an encoded body, or a multipart with
// children.
type part struct {
	mediaType  string
	params     map[string]string
	cte        string
	disp       string
	dispParams map[string]string
	extra      [][2]string // additional headers, e.g. Content-ID
	body       []byte      // encoded leaf body, CRLF line endings
	preamble   string
	boundary   string
	children   []*part
}

func (p *part) writeHeaders(b *bytes.Buffer) {
	params := p.params
	if p.boundary != "" {
		params = make(map[string]string, len(p.params)+1)
		for k, v := range p.params {
			params[k] = v
		}
		params["boundary"] = p.boundary
	}
	writeHeader(b, "Content-Type", mime.FormatMediaType(p.mediaType, params))
	if p.cte != "" {
		writeHeader(b, "Content-Transfer-Encoding", p.cte)
	}
	if p.disp != "" {
		writeHeader(b, "Content-Disposition", mime.FormatMediaType(p.disp, p.dispParams))
	}
	for _, h := range p.extra {
		writeHeader(b, h[0], h[1])
	}
}

func (p *part) writeBody(b *bytes.Buffer) {
	if len(p.children) == 0 {
		b.Write(p.body)
		if !bytes.HasSuffix(p.body, []byte(crlf)) {
			b.WriteString(crlf)
		}
		return
	}
	if p.preamble != "" {
		b.WriteString(p.preamble)
		b.WriteString(crlf)
		b.WriteString(crlf)
	}
	for _, c := range p.children {
		b.WriteString("--" + p.boundary + crlf)
		c.writeHeaders(b)
		b.WriteString(crlf)
		c.writeBody(b)
	}
	b.WriteString("--" + p.boundary + "--" + crlf)
}

// size estimates the encoded size, used to preallocate buffers.
func (p *part) size() int {
	n := len(p.body) + 512
	for _, c := range p.children {
		n += c.size()
	}
	return n
}

// writeHeader writes "name: value" folded at spaces (outside quoted strings)
// so lines stay within 78 characters where possible.
func writeHeader(b *bytes.Buffer, name, value string) {
	const limit = 78
	b.WriteString(name)
	b.WriteString(":")
	lineLen := len(name) + 1
	first := true
	for _, w := range splitFoldable(value) {
		if !first && lineLen+1+len(w) > limit {
			b.WriteString(crlf)
			lineLen = 0
		}
		b.WriteString(" ")
		b.WriteString(w)
		lineLen += 1 + len(w)
		first = false
	}
	b.WriteString(crlf)
}

// splitFoldable splits a header value at single spaces that are not inside
// a quoted string.
func splitFoldable(v string) []string {
	var out []string
	inQuote, escaped := false, false
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && inQuote:
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ' ' && !inQuote:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// encodeBase64 returns data base64 encoded in lines of 76 characters.
func encodeBase64(data []byte) []byte {
	const lineBytes = 57 // 76 encoded characters
	lines := (len(data) + lineBytes - 1) / lineBytes
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(data))+2*lines)
	var tmp [76]byte
	for len(data) > 0 {
		n := min(lineBytes, len(data))
		m := base64.StdEncoding.EncodedLen(n)
		base64.StdEncoding.Encode(tmp[:m], data[:n])
		out = append(out, tmp[:m]...)
		out = append(out, crlf...)
		data = data[n:]
	}
	return out
}

// encodeQP returns text (lines separated by "\n") quoted-printable encoded
// with CRLF line endings.
func encodeQP(text []byte) []byte {
	var b bytes.Buffer
	// The writer fails only when b does, and a bytes.Buffer does not.
	w := quotedprintable.NewWriter(&b)
	for i, line := range bytes.Split(text, []byte("\n")) {
		if i > 0 {
			_, _ = w.Write([]byte(crlf))
		}
		_, _ = w.Write(line)
	}
	_, _ = w.Write([]byte(crlf))
	_ = w.Close()
	return b.Bytes()
}

// crlfLines joins lines with CRLF and terminates the last line.
func crlfLines(lines []string) []byte {
	return []byte(strings.Join(lines, crlf) + crlf)
}

// toLatin1 converts s to ISO-8859-1 bytes; s must be representable.
func toLatin1(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			panic("testmail: not representable in ISO-8859-1: " + s)
		}
		out = append(out, byte(r))
	}
	return out
}

// bWords encodes s as one or more =?UTF-8?B?...?= encoded words, split at
// rune boundaries so each word stays within 75 characters.
func bWords(s string) string {
	const prefix, suffix = "=?UTF-8?B?", "?="
	const maxRaw = 45 // 60 base64 characters
	var words []string
	for len(s) > 0 {
		n := 0
		for n < len(s) {
			_, size := utf8.DecodeRuneInString(s[n:])
			if n+size > maxRaw {
				break
			}
			n += size
		}
		words = append(words, prefix+base64.StdEncoding.EncodeToString([]byte(s[:n]))+suffix)
		s = s[n:]
	}
	return strings.Join(words, " ")
}

// qWordsLatin1 encodes s (representable in ISO-8859-1) as
// =?ISO-8859-1?Q?...?= encoded words.
func qWordsLatin1(s string) string {
	const prefix, suffix = "=?ISO-8859-1?Q?", "?="
	const maxEnc = 75 - len(prefix) - len(suffix)
	const hexDigits = "0123456789ABCDEF"
	var words []string
	var cur []byte
	for _, c := range toLatin1(s) {
		var enc []byte
		switch {
		case c == ' ':
			enc = []byte{'_'}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '!', c == '*', c == '+', c == '-', c == '/':
			enc = []byte{c}
		default:
			enc = []byte{'=', hexDigits[c>>4], hexDigits[c&15]}
		}
		if len(cur)+len(enc) > maxEnc {
			words = append(words, prefix+string(cur)+suffix)
			cur = nil
		}
		cur = append(cur, enc...)
	}
	if len(cur) > 0 || len(words) == 0 {
		words = append(words, prefix+string(cur)+suffix)
	}
	return strings.Join(words, " ")
}

// isASCII reports whether s contains only 7-bit characters.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isLatin1 reports whether s is representable in ISO-8859-1.
func isLatin1(s string) bool {
	for _, r := range s {
		if r > 0xff {
			return false
		}
	}
	return true
}
