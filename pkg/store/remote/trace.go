package remote

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
)

// tracer records a connection's protocol exchange, with credentials
// redacted: the arguments of LOGIN and AUTHENTICATE, and every line the
// client sends until the server's tagged reply to them (SASL responses,
// literals). Each line goes to w prefixed with "C: " or "S: "; literal
// contents are copied as they are. Command and status lines (not data)
// also go to the logger at debug level, shortened.
type tracer struct {
	w   io.Writer    // may be nil
	log *slog.Logger // may be nil

	mu          sync.Mutex
	client      lineSplitter
	server      lineSplitter
	secretTag   []byte // tag of a LOGIN/AUTHENTICATE in progress
	secretShown bool
}

// maxTraceLine bounds the part of a line that is buffered; the rest of a
// longer line is passed through as it comes.
const maxTraceLine = 16 << 10

// lineSplitter tracks one direction: a partial line and the bytes left of
// a literal.
type lineSplitter struct {
	line    []byte
	literal int64
}

func newTracer(w io.Writer, log *slog.Logger) *tracer {
	if log != nil && !log.Enabled(context.Background(), slog.LevelDebug) {
		log = nil
	}
	if w == nil && log == nil {
		return nil
	}
	return &tracer{w: w, log: log}
}

// wrap returns conn with its traffic traced.
func (t *tracer) wrap(conn net.Conn) net.Conn {
	if t == nil {
		return conn
	}
	return &tracedConn{Conn: conn, t: t}
}

type tracedConn struct {
	net.Conn
	t *tracer
}

func (c *tracedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.t.feed(false, p[:n])
	}
	return n, err
}

func (c *tracedConn) Write(p []byte) (int, error) {
	// Traced before it is sent, so that it comes before the reply.
	c.t.feed(true, p)
	return c.Conn.Write(p)
}

// clientLine and serverLine trace lines written outside a tracedConn (the
// exchange before STARTTLS).
func (t *tracer) clientLine(line string) {
	if t != nil {
		t.feed(true, []byte(line))
	}
}

func (t *tracer) serverLine(line string) {
	if t != nil {
		t.feed(false, []byte(line))
	}
}

func (t *tracer) feed(fromClient bool, p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ls := &t.server
	if fromClient {
		ls = &t.client
	}
	for len(p) > 0 {
		if ls.literal > 0 {
			n := int64(len(p))
			if n > ls.literal {
				n = ls.literal
			}
			// A client literal within LOGIN or AUTHENTICATE is a secret.
			secret := fromClient && t.secretTag != nil
			if !secret && t.w != nil {
				// The trace is best effort: it must not fail the connection.
				_, _ = t.w.Write(p[:n])
			}
			ls.literal -= n
			p = p[n:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			ls.line = append(ls.line, p...)
			if len(ls.line) > maxTraceLine {
				t.emit(fromClient, ls.line, false)
				ls.line = ls.line[:0]
			}
			return
		}
		ls.line = append(ls.line, p[:i+1]...)
		p = p[i+1:]
		ls.literal = literalSize(ls.line)
		t.emit(fromClient, ls.line, true)
		ls.line = ls.line[:0]
	}
}

// emit traces one line (complete when whole is true).
func (t *tracer) emit(fromClient bool, line []byte, whole bool) {
	var out []byte
	if fromClient {
		out = t.redactClient(line)
	} else {
		if t.secretTag != nil && bytes.HasPrefix(line, t.secretTag) {
			t.secretTag, t.secretShown = nil, false
		}
		out = line
	}
	if out == nil {
		return
	}
	prefix := "S: "
	if fromClient {
		prefix = "C: "
	}
	if t.w != nil {
		// The trace is best effort: it must not fail the connection.
		_, _ = t.w.Write([]byte(prefix))
		_, _ = t.w.Write(out)
		if !whole {
			_, _ = t.w.Write([]byte("\r\n"))
		}
	}
	if t.log != nil && whole && (fromClient || isStatusLine(out)) {
		s := string(bytes.TrimRight(out, "\r\n"))
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		t.log.Debug("imap", "dir", prefix[:1], "line", s)
	}
}

// redactClient returns the line to trace for a client line, or nil to
// trace nothing.
func (t *tracer) redactClient(line []byte) []byte {
	if t.secretTag != nil {
		if t.secretShown {
			return nil
		}
		t.secretShown = true
		return []byte("[redacted]\r\n")
	}
	f := bytes.Fields(line)
	if len(f) >= 2 && (bytes.EqualFold(f[1], []byte("LOGIN")) || bytes.EqualFold(f[1], []byte("AUTHENTICATE"))) {
		t.secretTag = append(append([]byte(nil), f[0]...), ' ')
		t.secretShown = true
		out := append([]byte(nil), f[0]...)
		out = append(out, ' ')
		out = append(out, f[1]...)
		if bytes.EqualFold(f[1], []byte("AUTHENTICATE")) && len(f) >= 3 {
			out = append(out, ' ')
			out = append(out, f[2]...)
		}
		return append(out, " [redacted]\r\n"...)
	}
	return line
}

// literalSize returns n if line ends with a literal announcement "{n}" or
// "{n+}" (RFC 9051 §4.3, RFC 7888), else 0.
func literalSize(line []byte) int64 {
	l := bytes.TrimRight(line, "\r\n")
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0
	}
	i := bytes.LastIndexByte(l, '{')
	if i < 0 {
		return 0
	}
	num := bytes.TrimSuffix(l[i+1:len(l)-1], []byte("+"))
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// isStatusLine reports whether a server line is a status response (tagged,
// or untagged OK/NO/BAD/BYE/PREAUTH) rather than data.
func isStatusLine(line []byte) bool {
	f := bytes.Fields(line)
	if len(f) < 2 {
		return false
	}
	if string(f[0]) != "*" {
		return string(f[0]) != "+"
	}
	switch string(bytes.ToUpper(f[1])) {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		return true
	}
	return false
}
