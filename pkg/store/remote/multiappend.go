package remote

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/internal/mutf7"
	"github.com/imapctl/imapctl/pkg/store"
)

// Batch limits: what one MULTIAPPEND carries at most. A server stores a
// batch in one transaction (Dovecot: one index and uidlist update, one
// fsync), which is what makes it cheaper than as many APPENDs; beyond a
// few dozen messages the saving flattens, and a batch lost to a broken
// connection has to be sent again whole.
const (
	batchMsgs  = 50
	batchBytes = 8 << 20
)

var _ store.BatchAppender = (*Mailbox)(nil)

// BatchLimits returns how many messages and bytes AppendBatch takes at
// most, or 0 messages when the server does not offer MULTIAPPEND.
func (m *Mailbox) BatchLimits() (int, int64) {
	if !m.st.caps.Has(imap.CapMultiAppend) {
		return 0, 0
	}
	return batchMsgs, batchBytes
}

// AppendBatch stores items with one MULTIAPPEND command (RFC 3502), which
// the server carries out whole or not at all, and returns their UIDs from
// APPENDUID (RFC 4315; zeros when the server does not report them).
//
// go-imap's client cannot send MULTIAPPEND: the command is written and its
// reply read on the mailbox's own connection, taken over from go-imap
// between its commands. Each item's stream is opened when its turn comes
// and copied straight to the connection, so one message is in memory at a
// time (none, in fact, beyond the copy buffer). Literals are
// non-synchronising when the server offers LITERAL+ (or LITERAL- for
// messages up to 4 KiB); otherwise each waits for the server's go-ahead.
//
// When an item's Open fails, the command ends with the items before it,
// and AppendBatch returns their UIDs and that error as it is. When the
// connection fails before the command was complete, nothing is stored and
// the error says so; it is sent again once on a new connection (the
// server may have closed an idle one), and then left to the caller, which
// may prefer smaller batches. When it fails after, the outcome is unknown:
// the error is an *AppendUncertainError. A NO for the command (the server
// refused one of the messages, or the mailbox is gone) stores nothing; NO
// [TRYCREATE] becomes store.ErrNotFound and NO [TOOBIG] store.ErrTooBig.
//
// Without MULTIAPPEND, AppendBatch appends the items one by one.
func (m *Mailbox) AppendBatch(ctx context.Context, items []store.BatchItem) ([]store.UID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, nil
	}
	if !m.st.caps.Has(imap.CapMultiAppend) {
		return m.appendEach(ctx, items)
	}
	var (
		res     batchResult
		openErr error
		size    int64
	)
	tries := 0
	err := m.l.call(ctx, "MULTIAPPEND", opOnce, func(s *session) error {
		var err error
		tries++
		res, openErr, err = s.multiAppend(ctx, m.st, m.name, items, tries == 1)
		size = res.bytes
		return err
	})
	if err != nil {
		var ue *uncertainError
		if errors.As(err, &ue) {
			return nil, &AppendUncertainError{Mailbox: m.name, Size: size, Messages: res.sent, Err: ue.err}
		}
		switch imapCode(err) {
		case imap.ResponseCodeTryCreate, imap.ResponseCodeNonExistent:
			err = fmt.Errorf("%w (%v)", store.ErrNotFound, err)
		case imap.ResponseCodeTooBig:
			err = fmt.Errorf("%w (%v)", store.ErrTooBig, err)
		}
		return nil, fmt.Errorf("append %d messages (%d bytes) to %q: %w", res.sent, size, m.name, err)
	}
	if res.sent == 0 {
		return nil, openErr
	}
	if v := m.l.uidValidity; v != 0 && res.uidValidity != 0 && res.uidValidity != v {
		return nil, &store.UIDValidityError{Mailbox: m.name, Old: v, New: res.uidValidity}
	}
	uids := make([]store.UID, res.sent)
	if len(res.uids) == res.sent {
		for i, u := range res.uids {
			uids[i] = store.UID(u)
			m.l.viewNext = max(m.l.viewNext, u+1)
		}
	} else if len(res.uids) > 0 {
		m.l.log.Warn("APPENDUID does not list one UID per message; the copies will be paired by identity",
			"messages", res.sent, "uids", len(res.uids))
	}
	return uids, openErr
}

// appendEach is AppendBatch one APPEND at a time.
func (m *Mailbox) appendEach(ctx context.Context, items []store.BatchItem) ([]store.UID, error) {
	var uids []store.UID
	for _, it := range items {
		rc, size, err := it.Open(ctx)
		if err != nil {
			return uids, err
		}
		uid, err := m.AppendSize(ctx, rc, size, it.Opts)
		closeSource(rc)
		if err != nil {
			return uids, err
		}
		uids = append(uids, uid)
	}
	return uids, nil
}

// batchResult is what one MULTIAPPEND did.
type batchResult struct {
	sent        int   // messages in the command
	bytes       int64 // their bytes
	uidValidity uint32
	uids        []imap.UID // from APPENDUID, in order
}

// maxBack bounds the untagged responses kept for go-imap during a
// takeover, and maxReply a response line.
const (
	maxBack  = 1 << 20
	maxReply = 64 << 10
)

// multiAppend sends items as one APPEND command to mailbox on s's
// connection, taken over from go-imap. It returns what was sent; openErr
// is the error of the item's Open that ended the command early. retry
// says whether a connection that fails before the command is complete may
// be replaced and the command sent again.
func (s *session) multiAppend(ctx context.Context, st *Store, mailbox string, items []store.BatchItem, retry bool) (res batchResult, openErr error, err error) {
	s.tk.take()
	rw := &rawExchange{s: s, r: bufio.NewReaderSize(s.tk.Conn, 4<<10)}
	defer func() { s.tk.give(rw.leftover()) }()
	w := bufio.NewWriterSize(s.tk.Conn, 32<<10)

	s.tags++
	tag := "M" + strconv.FormatUint(s.tags, 10)
	rw.tag = tag
	// Each piece of the command is put together in line and written with
	// one Write; a bufio.Writer's error sticks, and Flush reports it.
	line := append([]byte(tag), " APPEND "...)
	line = appendMailbox(line, mailbox, s.utf8)
	limit, hasLimit := st.caps.AppendLimit()
	literalPlus, literalMinus := s.caps.Has(imap.CapLiteralPlus), s.caps.Has(imap.CapLiteralMinus)
	for i, it := range items {
		rc, size, err := it.Open(ctx)
		if err == nil {
			switch {
			case size < 0:
				err = fmt.Errorf("item %d: negative size %d", i, size)
			case hasLimit && limit != nil && size > int64(*limit):
				err = fmt.Errorf("append %d bytes to %q: the server's APPENDLIMIT is %d: %w", size, mailbox, *limit, store.ErrTooBig)
			}
			var flags []imap.Flag
			if err == nil {
				flags, err = imapFlags(it.Opts.Flags)
			}
			if err == nil {
				sync := !literalPlus && (!literalMinus || size > 4096)
				line = appendAnnouncement(line, flags, it.Opts.Date, size, sync)
				if _, err := w.Write(line); err != nil {
					closeSource(rc)
					s.kill()
					return res, nil, &notSentError{err: err, retry: retry}
				}
				line = line[:0]
				if sync {
					if err := w.Flush(); err != nil {
						closeSource(rc)
						s.kill()
						return res, nil, &notSentError{err: err, retry: retry}
					}
					if err := rw.goAhead(); err != nil {
						closeSource(rc)
						return res, nil, err
					}
				}
			} else {
				closeSource(rc)
			}
		}
		if err != nil {
			if i == 0 {
				return res, err, nil // nothing was written: the command is dropped
			}
			openErr = err
			break
		}
		src := &sourceReader{r: rc, touch: s.touch}
		_, err = io.CopyN(w, src, size)
		closeSource(rc)
		if err != nil {
			// The literal is incomplete: the server cannot have stored
			// anything, and the command cannot be finished.
			s.kill()
			if src.err != nil {
				if src.err == io.EOF {
					return res, nil, &notSentError{err: fmt.Errorf("message %d ended before its announced size %d", i+1, size)}
				}
				return res, nil, &notSentError{err: fmt.Errorf("read message %d: %w", i+1, src.err)}
			}
			return res, nil, &notSentError{err: err, retry: retry}
		}
		res.sent++
		res.bytes += size
	}
	if err := w.Flush(); err != nil {
		s.kill()
		return res, nil, &notSentError{err: err, retry: retry}
	}
	// From the end of the line on, the server may carry out the command.
	if _, err := w.Write(append(line, "\r\n"...)); err != nil {
		s.kill()
		return res, nil, &connLostError{err: err}
	}
	if err := w.Flush(); err != nil {
		s.kill()
		return res, nil, &connLostError{err: err}
	}
	code, args, err := rw.tagged()
	if err != nil {
		return res, nil, err
	}
	if strings.EqualFold(code, "APPENDUID") {
		res.uidValidity, res.uids, err = parseAppendUID(args)
		if err != nil {
			st.log.Warn("unreadable APPENDUID; the copies will be paired by identity", "err", err)
			res.uidValidity, res.uids = 0, nil
		}
	}
	return res, openErr, nil
}

// appendMailbox appends a mailbox name as go-imap writes it: INBOX as an
// atom, others in modified UTF-7 (or UTF-8 with '&' escaped), quoted
// (names with CR or LF, which stores refuse anyway, fail on the server).
func appendMailbox(b []byte, name string, utf8 bool) []byte {
	if strings.EqualFold(name, "INBOX") {
		return append(b, "INBOX"...)
	}
	if utf8 {
		name = mutf7.Escape(name)
	} else {
		name = mutf7.Encode(name)
	}
	b = append(b, '"')
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, name[i])
	}
	return append(b, '"')
}

// appendAnnouncement appends one message's APPEND arguments up to its
// literal: " (flags) "date" {size+}" and CRLF ({size} when the literal is
// synchronising).
func appendAnnouncement(b []byte, flags []imap.Flag, date time.Time, size int64, sync bool) []byte {
	b = append(b, " ("...)
	for j, f := range flags {
		if j > 0 {
			b = append(b, ' ')
		}
		b = append(b, f...)
	}
	b = append(b, ')')
	if !date.IsZero() {
		b = append(b, " \""...)
		b = date.AppendFormat(b, "02-Jan-2006 15:04:05 -0700")
		b = append(b, '"')
	}
	b = append(b, " {"...)
	b = strconv.AppendInt(b, size, 10)
	if !sync {
		b = append(b, '+')
	}
	return append(b, "}\r\n"...)
}

// closeSource closes a message stream read to its end (or abandoned with
// the command): its error changes nothing.
func closeSource(rc io.Closer) { _ = rc.Close() }

// rawExchange reads the replies to one raw command.
type rawExchange struct {
	s    *session
	r    *bufio.Reader
	tag  string
	back bytes.Buffer // untagged responses, for go-imap
}

// leftover returns what go-imap's reader must see: the untagged responses
// read, then whatever was buffered past the tagged one.
func (x *rawExchange) leftover() []byte {
	if n := x.r.Buffered(); n > 0 {
		b, _ := x.r.Peek(n)
		x.back.Write(b)
	}
	return x.back.Bytes()
}

// line reads one response line, CRLF included.
func (x *rawExchange) line() ([]byte, error) {
	var line []byte
	for {
		part, err := x.r.ReadSlice('\n')
		line = append(line, part...)
		if err == nil {
			return line, nil
		}
		if err != bufio.ErrBufferFull {
			x.s.kill()
			return nil, &connLostError{err: fmt.Errorf("read the reply to APPEND: %w", err)}
		}
		if len(line) > maxReply {
			x.s.kill()
			return nil, &connLostError{err: errors.New("reply line to APPEND too long")}
		}
	}
}

// untagged keeps an untagged response (line, and any literals it ends
// with) for go-imap.
func (x *rawExchange) untagged(line []byte) error {
	for {
		x.back.Write(line)
		if x.back.Len() > maxBack {
			x.s.kill()
			return &connLostError{err: errors.New("too many untagged responses during APPEND")}
		}
		n, ok := literalAtEnd(line)
		if !ok {
			return nil
		}
		if int64(x.back.Len())+n > maxBack {
			x.s.kill()
			return &connLostError{err: errors.New("untagged literal too large during APPEND")}
		}
		if _, err := io.CopyN(&x.back, x.r, n); err != nil {
			x.s.kill()
			return &connLostError{err: fmt.Errorf("read the reply to APPEND: %w", err)}
		}
		var err error
		if line, err = x.line(); err != nil {
			return err
		}
	}
}

// goAhead waits for the continuation request of a synchronising literal.
// A tagged reply instead means the server refused the command.
func (x *rawExchange) goAhead() error {
	for {
		line, err := x.line()
		if err != nil {
			return &notSentError{err: err}
		}
		switch {
		case bytes.HasPrefix(line, []byte("+")):
			return nil
		case bytes.HasPrefix(line, []byte("* ")):
			if err := x.untagged(line); err != nil {
				return &notSentError{err: err}
			}
		default:
			_, _, err := x.status(line)
			if err == nil {
				err = errors.New("the server accepted APPEND before its message")
				x.s.kill()
				return &connLostError{err: err}
			}
			return err // NO or BAD: nothing was stored
		}
	}
}

// tagged reads up to the command's tagged reply and returns its response
// code and the code's arguments, or the NO/BAD as an *imap.Error.
func (x *rawExchange) tagged() (string, string, error) {
	for {
		line, err := x.line()
		if err != nil {
			return "", "", err
		}
		switch {
		case bytes.HasPrefix(line, []byte("* ")):
			if err := x.untagged(line); err != nil {
				return "", "", err
			}
		case bytes.HasPrefix(line, []byte("+")):
			x.s.kill()
			return "", "", &connLostError{err: fmt.Errorf("unexpected continuation request %q", trimCRLF(line))}
		default:
			return x.status(line)
		}
	}
}

// status parses the command's tagged status response.
func (x *rawExchange) status(line []byte) (string, string, error) {
	l := trimCRLF(line)
	tag, rest, _ := strings.Cut(l, " ")
	if tag != x.tag {
		x.s.kill()
		return "", "", &connLostError{err: fmt.Errorf("unexpected reply %q to APPEND", l)}
	}
	word, rest, _ := strings.Cut(rest, " ")
	code, args, text := parseRespText(rest)
	var typ imap.StatusResponseType
	switch strings.ToUpper(word) {
	case "OK":
		return code, args, nil
	case "NO":
		typ = imap.StatusResponseTypeNo
	case "BAD":
		typ = imap.StatusResponseTypeBad
	default:
		x.s.kill()
		return "", "", &connLostError{err: fmt.Errorf("unexpected reply %q to APPEND", l)}
	}
	return "", "", &imap.Error{Type: typ, Code: imap.ResponseCode(strings.ToUpper(code)), Text: text}
}

// parseRespText splits "[CODE args] text" (RFC 9051 resp-text).
func parseRespText(s string) (code, args, text string) {
	if !strings.HasPrefix(s, "[") {
		return "", "", s
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return "", "", s
	}
	code, args, _ = strings.Cut(s[1:end], " ")
	return code, args, strings.TrimSpace(s[end+1:])
}

// parseAppendUID parses APPENDUID's arguments: the UIDVALIDITY and the
// UIDs given to the messages, in their order (RFC 4315 §3).
func parseAppendUID(args string) (uint32, []imap.UID, error) {
	v, set, ok := strings.Cut(strings.TrimSpace(args), " ")
	if !ok {
		return 0, nil, fmt.Errorf("APPENDUID %q: want UIDVALIDITY and UIDs", args)
	}
	validity, err := strconv.ParseUint(v, 10, 32)
	if err != nil || validity == 0 {
		return 0, nil, fmt.Errorf("APPENDUID %q: bad UIDVALIDITY", args)
	}
	var uids []imap.UID
	for _, r := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(r, ":")
		a, err := parseUID(lo)
		if err != nil {
			return 0, nil, fmt.Errorf("APPENDUID %q: %w", args, err)
		}
		b := a
		if isRange {
			if b, err = parseUID(hi); err != nil {
				return 0, nil, fmt.Errorf("APPENDUID %q: %w", args, err)
			}
		}
		step := imap.UID(1)
		if b < a {
			step = ^imap.UID(0) // -1: a range may be written high:low
		}
		if n := int64(b) - int64(a); n > batchMsgs*4 || n < -batchMsgs*4 {
			return 0, nil, fmt.Errorf("APPENDUID %q: range %s is larger than any batch", args, r)
		}
		for u := a; ; u += step {
			uids = append(uids, u)
			if u == b {
				break
			}
		}
	}
	return uint32(validity), uids, nil
}

func parseUID(s string) (imap.UID, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad UID %q", s)
	}
	return imap.UID(n), nil
}

// literalAtEnd reports whether a response line ends with a literal's
// announcement, "{N}" (or "{N+}"), and its length.
func literalAtEnd(line []byte) (int64, bool) {
	l := bytes.TrimRight(line, "\r\n")
	if !bytes.HasSuffix(l, []byte("}")) {
		return 0, false
	}
	i := bytes.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(string(l[i+1:len(l)-1]), "+"), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func trimCRLF(b []byte) string { return string(bytes.TrimRight(b, "\r\n")) }
