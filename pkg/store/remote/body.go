package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/pkg/store"
)

// drainLimit: closing a stream with at most this much left reads the rest
// and keeps the connection; with more left, the connection is cut.
const drainLimit = 1 << 20

// OpenMessage streams the message's exact bytes (UID FETCH
// BODY.PEEK[], RFC 9051 §6.4.5) and returns its size.
//
// The returned reader reads straight from the connection; nothing is
// buffered beyond go-imap's small read buffer. Until it is closed, the
// Mailbox's connection is busy and other calls on the Mailbox wait. Close
// reads what is left when it is little, else cuts the connection (the
// next call reconnects). The stream stays bound to ctx: when ctx ends,
// reads fail.
//
// If the connection fails mid-message, Read reconnects and continues at
// the same byte with a partial FETCH (BODY.PEEK[]<offset.length>); the
// caller sees only a pause. It fails with store.ErrNoMessage when the UID
// does not exist.
func (m *Mailbox) OpenMessage(ctx context.Context, uid store.UID) (io.ReadCloser, int64, error) {
	if err := m.l.acquire(ctx); err != nil {
		return nil, 0, err
	}
	b := &bodyStream{m: m, ctx: ctx, uid: imap.UID(uid), p: m.st.newPacer(), size: -1}
	if err := b.connect(); err != nil {
		m.l.release()
		return nil, 0, fmt.Errorf("read UID %d in %q: %w", uid, m.name, err)
	}
	return b, b.size, nil
}

// bodyStream is OpenMessage's reader.
type bodyStream struct {
	m   *Mailbox
	ctx context.Context
	uid imap.UID
	p   *pacer

	size int64 // -1 until known
	off  int64 // bytes delivered

	// The FETCH in progress, positioned in the body literal.
	s       *session
	w       *watchdog
	cmd     *imapclient.FetchCommand
	msg     *imapclient.FetchMessageData
	lit     imap.LiteralReader
	litLeft int64
	litErr  bool // a read of lit failed: see session.stopReader

	err    error // sticky
	done   bool  // all bytes delivered and the FETCH completed
	closed bool
}

// connect starts the FETCH at b.off, on the current connection or a new
// one, retrying transient failures.
func (b *bodyStream) connect() error {
	for {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		s, err := b.m.l.ensure(b.ctx)
		if err == nil {
			w := s.watch(b.ctx, b.m.st.cfg.Timeout)
			s.cur.Store(w)
			var found bool
			found, err = b.start(s)
			if err == nil && found {
				b.s, b.w = s, w
				return nil
			}
			s.cur.Store(nil)
			if err == nil {
				w.stop()
				return store.ErrNoMessage
			}
			err = w.verdict(b.ctx, err)
			if !s.alive() {
				b.m.l.drop()
			}
		}
		switch {
		case b.ctx.Err() != nil:
			return b.ctx.Err()
		case !transient(err):
			return err
		}
		b.m.l.drop()
		if perr := b.p.failed(b.ctx, "FETCH BODY[]", err); perr != nil {
			return perr
		}
	}
}

// start sends the FETCH and reads up to the body literal. It reports
// false when the message does not exist. On error the command is drained.
func (b *bodyStream) start(s *session) (bool, error) {
	sec := &imap.FetchItemBodySection{Peek: true}
	if b.size >= 0 {
		sec.Partial = &imap.SectionPartial{Offset: b.off, Size: b.size - b.off}
	}
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}
	if err := b.m.l.see(s, []imap.UID{b.uid}); err != nil {
		return false, err
	}
	cmd := s.c.Fetch(imap.UIDSetNum(b.uid), opts)
	if err := s.issued(); err != nil {
		return false, err
	}
	msg := cmd.Next()
	if msg == nil {
		// No reply: no such message, or go-imap routed the reply away
		// because its literal came before the UID. Try by number.
		if err := cmd.Close(); err != nil {
			return false, err
		}
		seq, err := verifiedSeq(s, b.uid)
		if err != nil || seq == 0 {
			return false, err
		}
		cmd = s.c.Fetch(imap.SeqSetNum(seq), opts)
		if err := s.issued(); err != nil {
			return false, err
		}
		if msg = cmd.Next(); msg == nil {
			return false, cmd.Close()
		}
	}
	var lit imap.LiteralReader
	found := false
	for item := msg.Next(); item != nil; item = msg.Next() {
		if it, ok := item.(imapclient.FetchItemDataBodySection); ok {
			lit, found = it.Literal, true
			break
		}
	}
	fail := func(err error) (bool, error) {
		if cerr := cmd.Close(); cerr != nil && s.alive() {
			err = cerr
		}
		return false, err
	}
	if !found {
		return fail(errors.New("the server's reply has no message body"))
	}
	n := int64(0)
	if lit != nil {
		n = lit.Size()
	}
	switch {
	case b.size < 0:
		b.size = n
	case n != b.size-b.off:
		return fail(fmt.Errorf("the server returned %d bytes from offset %d of a %d-byte message", n, b.off, b.size))
	}
	b.cmd, b.msg, b.lit, b.litLeft, b.litErr = cmd, msg, lit, n, false
	return true, nil
}

// Read reads the message, resuming on a new connection when the current
// one fails.
func (b *bodyStream) Read(p []byte) (int, error) {
	if b.closed {
		return 0, fmt.Errorf("read UID %d in %q: %w", b.uid, b.m.name, ErrClosed)
	}
	if b.err != nil {
		return 0, b.err
	}
	if err := b.ctx.Err(); err != nil && b.off < b.size {
		b.abandon()
		b.err = fmt.Errorf("read UID %d in %q at byte %d: %w", b.uid, b.m.name, b.off, err)
		return 0, b.err
	}
	for {
		if b.off >= b.size {
			b.finish()
			return 0, io.EOF
		}
		if b.lit == nil {
			if err := b.connect(); err != nil {
				b.err = fmt.Errorf("read UID %d in %q at byte %d: %w", b.uid, b.m.name, b.off, err)
				return 0, b.err
			}
		}
		if len(p) == 0 {
			return 0, nil
		}
		q := p
		if int64(len(q)) > b.litLeft {
			q = q[:b.litLeft]
		}
		n, err := b.lit.Read(q)
		if err != nil {
			b.litErr = true
		}
		b.off += int64(n)
		b.litLeft -= int64(n)
		if n > 0 {
			b.w.touch()
			b.p.progress()
		}
		if b.litLeft == 0 {
			b.finish()
			return n, nil
		}
		if err == nil {
			return n, nil
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if ferr := b.broken(err); ferr != nil {
			b.err = fmt.Errorf("read UID %d in %q at byte %d: %w", b.uid, b.m.name, b.off, ferr)
			if n > 0 {
				return n, nil
			}
			return 0, b.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// broken abandons the current FETCH after a read error and decides
// whether to go on: it returns nil after pacing when the stream should
// resume, else the error to fail with.
func (b *bodyStream) broken(err error) error {
	err = b.w.verdict(b.ctx, err)
	b.abandon()
	switch {
	case b.ctx.Err() != nil:
		return b.ctx.Err()
	case !transient(err):
		return err
	}
	return b.p.failed(b.ctx, "FETCH BODY[]", err)
}

// abandon cuts the connection and drains the FETCH (go-imap needs it
// drained to let go of the command).
func (b *bodyStream) abandon() {
	if b.cmd == nil {
		return
	}
	if b.litErr {
		b.s.stopReader()
	} else {
		b.s.kill()
	}
	_ = b.cmd.Close()
	b.w.stop()
	b.s.cur.Store(nil)
	b.m.l.drop()
	b.cmd, b.msg, b.lit, b.s, b.w = nil, nil, nil, nil, nil
}

// finish completes the FETCH once the whole body was read: it consumes the
// rest of the reply and the tagged response.
func (b *bodyStream) finish() {
	if b.done {
		return
	}
	b.done = true
	if b.cmd == nil {
		return
	}
	for item := b.msg.Next(); item != nil; item = b.msg.Next() {
	}
	err := b.w.verdict(b.ctx, b.cmd.Close())
	b.s.cur.Store(nil)
	if err != nil {
		// Every byte arrived; only the end of the reply is missing.
		b.m.l.log.Debug("FETCH did not complete after the body", "uid", b.uid, "err", err)
		b.s.kill()
		b.m.l.drop()
	} else {
		b.s.lastUsed = time.Now()
	}
	b.cmd, b.msg, b.lit, b.s, b.w = nil, nil, nil, nil, nil
}

// Close ends the stream and frees the Mailbox's connection.
func (b *bodyStream) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	defer b.m.l.release()
	if b.cmd != nil && !b.done {
		if b.size-b.off <= drainLimit {
			n, err := io.Copy(io.Discard, io.LimitReader(b.lit, b.litLeft))
			b.off += n
			b.litLeft -= n
			if err != nil || b.litLeft > 0 {
				b.litErr = true
			}
			if err == nil && b.litLeft == 0 {
				b.finish()
				return nil
			}
		}
		b.abandon()
	}
	return nil
}

// maxBulkMessage bounds a message ReadMessages holds in memory.
const maxBulkMessage = 16 << 20

var _ store.BulkReader = (*Mailbox)(nil)

// ReadMessages reads whole messages with one UID FETCH BODY.PEEK[] for
// all of uids and calls fn with each one's bytes, once per message that
// exists. One round trip for many small messages instead of one each
// (OpenMessage); each message is in memory while fn runs, so it is meant
// for small ones: a message over 16 MiB fails the call.
//
// A connection that fails midway is replaced and the FETCH sent again for
// the messages not yet passed to fn.
func (m *Mailbox) ReadMessages(ctx context.Context, uids []store.UID, fn func(uid store.UID, data []byte) error) error {
	want := make([]imap.UID, 0, len(uids))
	for _, u := range uids {
		want = append(want, imap.UID(u))
	}
	slices.Sort(want)
	want = slices.Compact(want)
	done := make(map[imap.UID]bool, len(want))
	var fnErr error
	if err := m.l.acquire(ctx); err != nil {
		return err
	}
	defer m.l.release()
	p := m.st.newPacer()
	err := m.l.run(ctx, "UID FETCH BODY[]", opRetry, p, func(s *session) error {
		rest := slices.DeleteFunc(slices.Clone(want), func(u imap.UID) bool { return done[u] })
		if len(rest) == 0 || fnErr != nil {
			return nil
		}
		if err := m.l.see(s, rest); err != nil {
			return err
		}
		cmd := s.c.Fetch(uidSet(rest), &imap.FetchOptions{UID: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		if err := s.issued(); err != nil {
			return err
		}
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			var (
				uid  imap.UID
				data []byte
			)
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch it := item.(type) {
				case imapclient.FetchItemDataUID:
					uid = it.UID
				case imapclient.FetchItemDataBodySection:
					if it.Literal == nil {
						continue
					}
					if it.Literal.Size() > maxBulkMessage {
						if fnErr == nil {
							fnErr = fmt.Errorf("read UID %d in %q: %d bytes, more than ReadMessages holds (%d)",
								uid, m.name, it.Literal.Size(), maxBulkMessage)
						}
						_, _ = io.Copy(io.Discard, it.Literal)
						continue
					}
					b, err := readLiteral(it.Literal, it.Literal.Size())
					if err != nil {
						s.stopReader()
						_ = cmd.Close()
						return err
					}
					data = b
				}
			}
			s.touch()
			if _, ok := slices.BinarySearch(rest, uid); !ok || data == nil || done[uid] || fnErr != nil {
				continue // an unsolicited FETCH, or no body
			}
			done[uid] = true
			p.progress()
			if err := fn(store.UID(uid), data); err != nil {
				fnErr = err
			}
		}
		return cmd.Close()
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("read %d messages in %q: %w", len(want), m.name, err)
	}
	return nil
}
