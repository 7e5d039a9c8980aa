package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/pkg/store"
)

// link is a connection that heals itself: the Store's control connection,
// or the connection of one open Mailbox (which it keeps selected). One
// operation runs at a time; every operation goes through run, which
// reconnects, re-logs in, re-selects and retries as the operation allows.
type link struct {
	st      *Store
	mailbox string // "" for the control connection
	log     *slog.Logger

	sem    chan struct{}           // held by the running operation (or an open stream)
	sess   atomic.Pointer[session] // nil when disconnected
	closed atomic.Bool

	// For a mailbox: the UIDVALIDITY seen by the first SELECT, and the
	// error that ends the link if it changes.
	uidValidity uint32
	broken      error
	// viewNext: messages with lower UIDs are in the session's view. A
	// server may show messages that other connections added only after a
	// command that allows updates (RFC 9051 §7: go-imap's server, for
	// one, polls after each command), so a UID at or above it needs a
	// NOOP first.
	viewNext imap.UID
	// mark is the mailbox's change mark from its first SELECT, "" without
	// CONDSTORE (see Mailbox.ChangeMark).
	mark     string
	selected bool // the first SELECT was done
}

// see makes sure the session's view includes the messages up to the
// highest of uids (sorted), with a NOOP when needed.
func (l *link) see(s *session, uids []imap.UID) error {
	if len(uids) == 0 || uids[len(uids)-1] < l.viewNext {
		return nil
	}
	if err := noop(s); err != nil {
		return err
	}
	l.viewNext = max(l.viewNext, uids[len(uids)-1]+1)
	return nil
}

// noop sends NOOP (RFC 9051 §6.1.2), which lets the server report changes.
func noop(s *session) error {
	cmd := s.c.Noop()
	if err := s.issued(); err != nil {
		return err
	}
	return cmd.Wait()
}

func newLink(st *Store, mailbox string) *link {
	l := &link{st: st, mailbox: mailbox, sem: make(chan struct{}, 1), log: st.log}
	if mailbox != "" {
		l.log = st.log.With("mailbox", mailbox)
	}
	return l
}

// acquire waits for the link to be free.
func (l *link) acquire(ctx context.Context) error {
	if l.closed.Load() {
		return ErrClosed
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if l.closed.Load() {
		l.release()
		return ErrClosed
	}
	return nil
}

func (l *link) release() { <-l.sem }

// opKind says what may be done when the connection fails during an
// operation.
type opKind int

const (
	// opRetry: the operation is idempotent (FETCH, SEARCH, STATUS, LIST,
	// STORE, EXPUNGE by UID); it is run again on a new connection.
	opRetry opKind = iota
	// opOnce: running it twice could duplicate data (APPEND, COPY, MOVE).
	// If the connection fails after the command went out, run returns an
	// uncertainError instead of retrying.
	opOnce
)

// idleProbe: before an opOnce operation on a connection unused for this
// long, a NOOP checks that the server has not dropped it meanwhile, so
// that a connection that timed out server-side does not turn a plain
// retry into an uncertain outcome.
const idleProbe = 20 * time.Second

// notSentError marks a failure that happened before the command was
// complete on the wire: the server cannot have executed it. With retry
// set, run may try again (the caller can resend the same bytes).
type notSentError struct {
	err   error
	retry bool
}

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// uncertainError is run's verdict for an opOnce operation whose
// connection failed after the command was sent.
type uncertainError struct{ err error }

func (e *uncertainError) Error() string { return "outcome unknown: " + e.err.Error() }
func (e *uncertainError) Unwrap() error { return e.err }

// call runs fn as one operation holding the link.
func (l *link) call(ctx context.Context, op string, kind opKind, fn func(s *session) error) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.run(ctx, op, kind, nil, fn)
}

// run runs fn on a live session, reconnecting and retrying after
// transient failures as kind allows and p paces (nil: a new pacer). The
// caller holds the link.
func (l *link) run(ctx context.Context, op string, kind opKind, p *pacer, fn func(s *session) error) error {
	if p == nil {
		p = l.st.newPacer()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s, err := l.ensure(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !transient(err) {
				return err
			}
			if perr := p.failed(ctx, op, err); perr != nil {
				return perr
			}
			continue
		}
		if kind == opOnce && time.Since(s.lastUsed) > idleProbe {
			err := s.do(ctx, l.st.cfg.Timeout, func() error { return noop(s) })
			if err != nil {
				l.drop()
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !transient(err) {
					return err
				}
				if perr := p.failed(ctx, op, err); perr != nil {
					return perr
				}
				continue
			}
		}
		err = s.do(ctx, l.st.cfg.Timeout, func() error { return fn(s) })
		if err == nil {
			return nil
		}
		if !s.alive() {
			l.drop()
		}
		var ns *notSentError
		switch {
		case errors.As(err, &ns):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !ns.retry || !transient(ns.err) {
				return ns.err
			}
			l.drop()
			err = ns.err
		case isNo(err):
			if !transient(err) {
				return err // the server's answer
			}
			// NO [UNAVAILABLE]: the command failed; start again on a new
			// connection after a pause.
			l.drop()
		case ctx.Err() != nil:
			if kind == opOnce {
				return &uncertainError{err: err}
			}
			return ctx.Err()
		case !transient(err):
			return err
		default:
			l.drop()
			if kind == opOnce {
				return &uncertainError{err: err}
			}
		}
		if perr := p.failed(ctx, op, err); perr != nil {
			return perr
		}
	}
}

// ensure returns a live session: the current one, or a new one (logged
// in, and with the mailbox selected). The caller holds the link.
func (l *link) ensure(ctx context.Context) (*session, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if l.broken != nil {
		return nil, l.broken
	}
	if s := l.sess.Load(); s != nil {
		if s.alive() {
			return s, nil
		}
		l.drop()
	}
	var s *session
	if l.mailbox != "" {
		s = l.st.takeIdle()
	}
	if s == nil {
		var err error
		if s, err = l.st.connect(ctx); err != nil {
			return nil, err
		}
	}
	if l.mailbox != "" {
		if err := l.selectMailbox(ctx, s); err != nil {
			s.logout(time.Second)
			return nil, err
		}
	}
	if l.closed.Load() {
		// Closed while connecting (close does not wait for ever).
		s.logout(time.Second)
		return nil, ErrClosed
	}
	l.sess.Store(s)
	return s, nil
}

// drop forgets the current session and closes its connection.
func (l *link) drop() {
	s := l.sess.Swap(nil)
	if s == nil {
		return
	}
	s.kill()
	go func() { _ = s.c.Close() }() // the connection is already dead
}

// selectMailbox selects the link's mailbox on s and checks that its
// UIDVALIDITY did not change since the link first selected it (RFC 9051
// §2.3.1.1): if it did, every UID the caller knows is void.
func (l *link) selectMailbox(ctx context.Context, s *session) error {
	var data *imap.SelectData
	var opts *imap.SelectOptions
	if s.caps.Has(imap.CapCondStore) {
		opts = &imap.SelectOptions{CondStore: true}
	}
	err := s.do(ctx, l.st.cfg.Timeout, func() error {
		cmd := s.c.Select(l.mailbox, opts)
		if err := s.issued(); err != nil {
			return err
		}
		var err error
		data, err = cmd.Wait()
		return err
	})
	if err != nil {
		if isNo(err) && !transient(err) {
			if imapCode(err) == imap.ResponseCodeNonExistent || !l.st.exists(ctx, s, l.mailbox) {
				return fmt.Errorf("select %q: %w", l.mailbox, store.ErrNotFound)
			}
			return fmt.Errorf("select %q: %w", l.mailbox, err)
		}
		return err
	}
	if l.uidValidity == 0 {
		l.uidValidity = data.UIDValidity
	} else if data.UIDValidity != l.uidValidity {
		l.broken = &store.UIDValidityError{Mailbox: l.mailbox, Old: l.uidValidity, New: data.UIDValidity}
		return l.broken
	}
	l.viewNext = data.UIDNext
	if !l.selected {
		l.selected = true
		if data.HighestModSeq != 0 {
			l.mark = fmt.Sprintf("%d/%d/%d/%d", data.UIDValidity, data.UIDNext, data.NumMessages, data.HighestModSeq)
		}
	}
	return nil
}

// close ends the link: it waits (a little) for the running operation,
// then logs out.
func (l *link) close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	timeout := min(l.st.cfg.Timeout, 5*time.Second)
	select {
	case l.sem <- struct{}{}:
	default:
		// Busy (an open message stream, or another goroutine): break the
		// connection so that the holder fails fast, then wait for it.
		if s := l.sess.Load(); s != nil {
			s.kill()
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case l.sem <- struct{}{}:
		case <-t.C:
			return nil
		}
	}
	defer l.release()
	if s := l.sess.Swap(nil); s != nil {
		// A mailbox's connection, still logged in and idle, serves the
		// next Open (which selects another mailbox on it) instead of a new
		// connection and login.
		if l.mailbox == "" || !l.st.keepIdle(s) {
			s.logout(timeout)
		}
	}
	return nil
}

// maxIdle is the number of logged-in connections a Store keeps for the
// next Open after a Mailbox is closed. Connecting and logging in costs
// tens of milliseconds on some servers (Dovecot starts a process per
// connection), more than everything else a small folder needs. Kept
// connections are never more than the Mailboxes that were open at once,
// so they do not raise the number of connections to the server above
// what the caller already used.
const maxIdle = 16

// idleSession is a connection kept for reuse.
type idleSession struct {
	s     *session
	since time.Time
}

// keepIdle keeps s, the connection of a Mailbox being closed, for reuse.
// It reports false when s cannot be kept (the store is closed, s is dead
// or the pool is full): the caller logs out.
func (st *Store) keepIdle(s *session) bool {
	if !s.alive() {
		return false
	}
	st.idleMu.Lock()
	defer st.idleMu.Unlock()
	if st.ctl.closed.Load() || len(st.idle) >= maxIdle {
		return false
	}
	st.idle = append(st.idle, idleSession{s: s, since: time.Now()})
	return true
}

// takeIdle returns a kept connection, or nil. Connections kept for longer
// than idleProbe are logged out rather than reused: the server may have
// dropped them meanwhile, and a fresh one is cheaper than finding out.
func (st *Store) takeIdle() *session {
	st.idleMu.Lock()
	var stale []*session
	var s *session
	for len(st.idle) > 0 {
		is := st.idle[len(st.idle)-1]
		st.idle = st.idle[:len(st.idle)-1]
		if time.Since(is.since) > idleProbe || !is.s.alive() {
			stale = append(stale, is.s)
			continue
		}
		s = is.s
		break
	}
	st.idleMu.Unlock()
	for _, x := range stale {
		go x.logout(time.Second)
	}
	return s
}

// closeIdle logs out of the kept connections.
func (st *Store) closeIdle(timeout time.Duration) {
	st.idleMu.Lock()
	idle := st.idle
	st.idle = nil
	st.idleMu.Unlock()
	var wg stdsync.WaitGroup
	for _, is := range idle {
		wg.Go(func() { is.s.logout(timeout) })
	}
	wg.Wait()
}
