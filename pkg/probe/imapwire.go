package probe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// imapConn speaks just enough raw IMAP (RFC 9051) for the probe: it reads
// response lines (skipping literals) and sends fixed commands. It never
// sends credentials.
type imapConn struct {
	conn net.Conn
	br   *bufio.Reader
}

const (
	maxIMAPLine    = 64 << 10
	maxIMAPLiteral = 64 << 10
	maxUntagged    = 1000
)

var errIMAPLineTooLong = errors.New("IMAP response line too long")

func newIMAPConn(c net.Conn) *imapConn {
	return &imapConn{conn: c, br: bufio.NewReaderSize(c, 4096)}
}

// readLine reads one response line without CRLF. Literals ({n} at the end
// of a line, RFC 9051 §4.3) are read and replaced by a quoted placeholder
// when short and printable, so that the line stays parseable.
func (ic *imapConn) readLine() (string, error) {
	var b strings.Builder
	for {
		part, err := ic.readRawLine(maxIMAPLine - b.Len())
		if err != nil {
			return b.String() + part, err
		}
		n, ok := literalSize(part)
		if !ok {
			b.WriteString(part)
			return b.String(), nil
		}
		if n > maxIMAPLiteral {
			return b.String(), fmt.Errorf("IMAP literal of %d bytes is too large", n)
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(ic.br, lit); err != nil {
			return b.String(), err
		}
		b.WriteString(part[:strings.LastIndexByte(part, '{')])
		b.WriteString(strconv.Quote(string(lit)))
	}
}

func (ic *imapConn) readRawLine(limit int) (string, error) {
	var b []byte
	for {
		chunk, err := ic.br.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > limit {
			return "", errIMAPLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return string(b), err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}

// literalSize parses a trailing {n} or {n+} literal announcement.
func literalSize(line string) (int, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	num := strings.TrimSuffix(line[i+1:len(line)-1], "+")
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// imapResponse is the result of one command.
type imapResponse struct {
	untagged []string // lines after "* "
	status   string   // OK, NO or BAD
	text     string   // rest of the tagged line
}

// command sends "tag cmd" and reads until the tagged response.
func (ic *imapConn) command(tag, cmd string) (*imapResponse, error) {
	if _, err := io.WriteString(ic.conn, tag+" "+cmd+"\r\n"); err != nil {
		return nil, err
	}
	resp := &imapResponse{}
	for {
		line, err := ic.readLine()
		if err != nil {
			return resp, err
		}
		switch {
		case strings.HasPrefix(line, "* "):
			if len(resp.untagged) >= maxUntagged {
				return resp, fmt.Errorf("more than %d untagged responses to %s", maxUntagged, cmd)
			}
			resp.untagged = append(resp.untagged, line[2:])
		case strings.HasPrefix(line, "+"):
			return resp, fmt.Errorf("unexpected continuation request %q", oneLine(line, 80))
		case strings.HasPrefix(line, tag+" "):
			rest := line[len(tag)+1:]
			status, text, _ := strings.Cut(rest, " ")
			resp.status, resp.text = strings.ToUpper(status), text
			return resp, nil
		}
		// Other tags cannot occur (one command at a time); ignore.
	}
}

// parseGreeting splits a greeting line into its status (OK, PREAUTH, BYE)
// and text; ok is false when the line is not an IMAP greeting.
func parseGreeting(line string) (status, text string, ok bool) {
	rest, found := strings.CutPrefix(line, "* ")
	if !found {
		return "", "", false
	}
	status, text, _ = strings.Cut(rest, " ")
	status = strings.ToUpper(status)
	switch status {
	case "OK", "PREAUTH", "BYE":
		return status, text, true
	}
	return "", "", false
}

// capsFromCode extracts capabilities from a [CAPABILITY ...] response code
// at the start of text (RFC 9051 §7.1).
func capsFromCode(text string) []string {
	if !strings.HasPrefix(strings.ToUpper(text), "[CAPABILITY ") {
		return nil
	}
	end := strings.IndexByte(text, ']')
	if end < 0 {
		return nil
	}
	return normCaps(strings.Fields(text[len("[CAPABILITY "):end]))
}

// capsFromResponse returns the capabilities of a CAPABILITY response.
func capsFromResponse(r *imapResponse) []string {
	for _, u := range r.untagged {
		f := strings.Fields(u)
		if len(f) > 0 && strings.EqualFold(f[0], "CAPABILITY") {
			return normCaps(f[1:])
		}
	}
	return capsFromCode(r.text)
}

// normCaps returns the capability atoms as sent (capabilities are
// case-insensitive; hasCap compares accordingly).
func normCaps(caps []string) []string {
	out := make([]string, 0, len(caps))
	return append(out, caps...)
}

func hasCap(caps []string, c string) bool {
	for _, x := range caps {
		if strings.EqualFold(x, c) {
			return true
		}
	}
	return false
}

// authMechs returns the AUTH= mechanisms in caps, upper-cased.
func authMechs(caps []string) []string {
	var out []string
	for _, c := range caps {
		if len(c) > 5 && strings.EqualFold(c[:5], "AUTH=") {
			out = append(out, strings.ToUpper(c[5:]))
		}
	}
	return out
}

// parseID parses the field list of an ID response (RFC 2971):
// ("name" "Dovecot" "version" "2.3") or NIL. Pairs come back in order.
func parseID(s string) ([][2]string, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "NIL") {
		return nil, nil
	}
	if !strings.HasPrefix(s, "(") || !strings.HasSuffix(s, ")") {
		return nil, fmt.Errorf("ID response is not a list: %q", oneLine(s, 80))
	}
	var toks []string
	rest := strings.TrimSpace(s[1 : len(s)-1])
	for rest != "" {
		switch rest[0] {
		case '"':
			tok, n, err := unquote(rest)
			if err != nil {
				return nil, err
			}
			toks = append(toks, tok)
			rest = rest[n:]
		default:
			end := strings.IndexAny(rest, " ")
			if end < 0 {
				end = len(rest)
			}
			atom := rest[:end]
			if strings.EqualFold(atom, "NIL") {
				atom = ""
			}
			toks = append(toks, atom)
			rest = rest[end:]
		}
		rest = strings.TrimLeft(rest, " ")
	}
	if len(toks)%2 != 0 {
		return nil, fmt.Errorf("ID response has an odd number of fields")
	}
	var out [][2]string
	for i := 0; i < len(toks); i += 2 {
		out = append(out, [2]string{toks[i], toks[i+1]})
	}
	return out, nil
}

// unquote reads an IMAP quoted string at the start of s and returns it and
// the number of bytes consumed.
func unquote(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), i + 1, nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, fmt.Errorf("unterminated quoted string")
}
