package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/pkg/store"
)

// spoolThreshold: Append keeps a message of unknown size in memory up to
// this size, and spools a larger one to a temporary file.
const spoolThreshold = 1 << 20

// Append stores a message with APPEND (RFC 9051 §6.3.12) and returns its
// UID from APPENDUID (RFC 4315 §3).
//
// APPEND must announce the size first. It is known without reading for a
// *bytes.Reader, *bytes.Buffer, *strings.Reader or regular *os.File;
// other readers are read into memory up to 1 MiB, and spooled to a
// temporary file beyond, so a large message is never held in memory. Use
// AppendSize when the size is known.
//
// See AppendSize for flags, dates, the returned UID and failures.
func (m *Mailbox) Append(ctx context.Context, r io.Reader, opts store.AppendOptions) (store.UID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	sr, size, cleanup, err := sized(r)
	if err != nil {
		return 0, fmt.Errorf("append to %q: read the message: %w", m.name, err)
	}
	defer cleanup()
	return m.AppendSize(ctx, sr, size, opts)
}

// AppendSize stores the next size bytes of r as a message, with its flags
// and keywords (\Recent dropped) and its internal date (the server's
// "now" when opts.Date is zero). It reads exactly size bytes from r, and
// fails without storing anything if r ends sooner.
//
// It returns the new UID reported by APPENDUID. A server without UIDPLUS
// does not report it: AppendSize then returns 0, and callers find the
// message by identity (Message-ID, size, date) when they need its UID.
//
// If the connection fails before the whole message was sent, the server
// cannot have stored it, and AppendSize sends it again on a new connection
// when r is an io.Seeker (as the readers Append makes are). If it fails
// after, AppendSize returns *AppendUncertainError rather than risk storing
// the message twice. NO [TRYCREATE] becomes store.ErrNotFound and NO
// [TOOBIG] (or a size above the server's APPENDLIMIT) store.ErrTooBig.
func (m *Mailbox) AppendSize(ctx context.Context, r io.Reader, size int64, opts store.AppendOptions) (store.UID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if size < 0 {
		return 0, fmt.Errorf("append to %q: negative size %d", m.name, size)
	}
	flags, err := imapFlags(opts.Flags)
	if err != nil {
		return 0, fmt.Errorf("append to %q: %w", m.name, err)
	}
	if lim, ok := m.st.caps.AppendLimit(); ok && lim != nil && size > int64(*lim) {
		return 0, fmt.Errorf("append %d bytes to %q: the server's APPENDLIMIT is %d: %w", size, m.name, *lim, store.ErrTooBig)
	}
	seeker, _ := r.(io.Seeker)
	var start int64
	if seeker != nil {
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil
		}
	}
	ao := &imap.AppendOptions{Flags: flags, Time: opts.Date}
	var data *imap.AppendData
	tries := 0
	err = m.l.call(ctx, "APPEND", opOnce, func(s *session) error {
		tries++
		if tries > 1 {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return &notSentError{err: fmt.Errorf("rewind the message: %w", err)}
			}
		}
		cmd := s.c.Append(m.name, size, ao)
		if err := s.issued(); err != nil {
			return &notSentError{err: err, retry: seeker != nil}
		}
		src := &sourceReader{r: r, touch: s.touch}
		if _, err := io.CopyN(cmd, src, size); err != nil {
			// The literal is incomplete: the server cannot have stored the
			// message, and the command cannot be finished.
			s.kill()
			_ = cmd.Close()
			if src.err != nil {
				if src.err == io.EOF {
					return &notSentError{err: fmt.Errorf("the message ended before its announced size %d", size)}
				}
				return &notSentError{err: fmt.Errorf("read the message: %w", src.err)}
			}
			return &notSentError{err: err, retry: seeker != nil}
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		var err error
		data, err = cmd.Wait()
		if err == nil && data.UID != 0 {
			m.l.viewNext = max(m.l.viewNext, data.UID+1)
		}
		return err
	})
	if err != nil {
		var ue *uncertainError
		if errors.As(err, &ue) {
			return 0, &AppendUncertainError{Mailbox: m.name, Size: size, Err: ue.err}
		}
		switch imapCode(err) {
		case imap.ResponseCodeTryCreate, imap.ResponseCodeNonExistent:
			err = fmt.Errorf("%w (%v)", store.ErrNotFound, err)
		case imap.ResponseCodeTooBig:
			err = fmt.Errorf("%w (%v)", store.ErrTooBig, err)
		}
		return 0, fmt.Errorf("append %d bytes to %q: %w", size, m.name, err)
	}
	if v := m.l.uidValidity; v != 0 && data.UIDValidity != 0 && data.UIDValidity != v {
		return 0, &store.UIDValidityError{Mailbox: m.name, Old: v, New: data.UIDValidity}
	}
	return store.UID(data.UID), nil
}

// sourceReader remembers the source's error (to tell it from the
// connection's) and feeds the watchdog.
type sourceReader struct {
	r     io.Reader
	err   error
	touch func()
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil {
		s.err = err
	}
	s.touch()
	return n, err
}

// sized returns a reader for the rest of r and its size, spooling when the
// size is unknown; cleanup removes the spool.
func sized(r io.Reader) (io.Reader, int64, func(), error) {
	noop := func() {}
	switch v := r.(type) {
	case *bytes.Reader:
		return v, int64(v.Len()), noop, nil
	case *strings.Reader:
		return v, int64(v.Len()), noop, nil
	case *bytes.Buffer:
		b := v.Next(v.Len())
		return bytes.NewReader(b), int64(len(b)), noop, nil
	case *os.File:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			if off, err := v.Seek(0, io.SeekCurrent); err == nil {
				return v, fi.Size() - off, noop, nil
			}
		}
	}
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, r, spoolThreshold+1)
	if err == io.EOF {
		return bytes.NewReader(buf.Bytes()), n, noop, nil
	}
	if err != nil {
		return nil, 0, noop, err
	}
	f, err := os.CreateTemp("", "imapctl-append-*")
	if err != nil {
		return nil, 0, noop, fmt.Errorf("spool: %w", err)
	}
	cleanup := func() { // best effort: the spool is a private temporary file
		_ = f.Close()
		_ = os.Remove(f.Name())
	}
	if _, err := buf.WriteTo(f); err != nil {
		cleanup()
		return nil, 0, noop, fmt.Errorf("spool: %w", err)
	}
	rest, err := io.Copy(f, r)
	if err != nil {
		cleanup()
		return nil, 0, noop, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, 0, noop, fmt.Errorf("spool: %w", err)
	}
	return f, n + rest, cleanup, nil
}
