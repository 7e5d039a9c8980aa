package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/pkg/store"
)

// Mailbox is an open mailbox with its own connection, on which it stays
// selected. It implements store.Mailbox, store.Mover, store.FlagLister and
// store.HeaderOpener.
//
// Calls on one Mailbox take turns: one command runs at a time on its
// connection. A stream returned by OpenMessage holds the connection until
// it is closed; other calls on the same Mailbox wait until then (open a
// second Mailbox to work in parallel).
type Mailbox struct {
	st   *Store
	name string
	l    *link
}

var (
	_ store.Mailbox      = (*Mailbox)(nil)
	_ store.Mover        = (*Mailbox)(nil)
	_ store.FlagLister   = (*Mailbox)(nil)
	_ store.HeaderOpener = (*Mailbox)(nil)
)

// Name returns the mailbox's name (INBOX spelled in capitals).
func (m *Mailbox) Name() string { return m.name }

// UIDValidity returns the mailbox's UIDVALIDITY as first selected.
func (m *Mailbox) UIDValidity() uint32 { return m.l.uidValidity }

var _ store.ChangeMarker = (*Mailbox)(nil)

// ChangeMark returns UIDVALIDITY, UIDNEXT, the message count and
// HIGHESTMODSEQ as the first SELECT reported them, or "" when the server
// does not offer CONDSTORE (or has no mod-sequences for this mailbox).
func (m *Mailbox) ChangeMark() string { return m.l.mark }

// Close logs out of the mailbox's connection. An open message stream is
// cut. Closing twice is harmless.
func (m *Mailbox) Close() error { return m.l.close() }

// Status returns the mailbox's counters from STATUS (RFC 9051 §6.3.11) on
// the store's control connection — STATUS is not meant for the selected
// mailbox. DELETED and SIZE are asked for when the server speaks
// IMAP4rev2 (or STATUS=SIZE); otherwise Deleted is counted with UID
// SEARCH DELETED on the mailbox's connection and Size is 0.
func (m *Mailbox) Status(ctx context.Context) (store.Status, error) {
	var data *imap.StatusData
	var rev2 bool
	err := m.st.ctl.call(ctx, "STATUS", opRetry, func(s *session) error {
		_, rev2 = s.caps[imap.CapIMAP4rev2]
		opts := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true,
			NumDeleted: rev2, Size: s.caps.Has(imap.CapStatusSize)}
		cmd := s.c.Status(m.name, opts)
		if err := s.issued(); err != nil {
			return err
		}
		var err error
		data, err = cmd.Wait()
		return err
	})
	if err != nil {
		if imapCode(err) == imap.ResponseCodeNonExistent {
			err = fmt.Errorf("%w (%v)", store.ErrNotFound, err)
		}
		return store.Status{}, fmt.Errorf("status of %q: %w", m.name, err)
	}
	if v := m.l.uidValidity; v != 0 && data.UIDValidity != 0 && data.UIDValidity != v {
		return store.Status{}, &store.UIDValidityError{Mailbox: m.name, Old: v, New: data.UIDValidity}
	}
	st := store.Status{UIDValidity: data.UIDValidity, UIDNext: store.UID(data.UIDNext)}
	if data.NumMessages != nil {
		st.Messages = *data.NumMessages
	}
	if data.NumUnseen != nil {
		st.Unseen = *data.NumUnseen
	}
	if data.Size != nil {
		st.Size = *data.Size
	}
	if data.NumDeleted != nil {
		st.Deleted = *data.NumDeleted
	} else if !rev2 {
		uids, err := m.search(ctx, &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDeleted}})
		if err != nil {
			return store.Status{}, fmt.Errorf("status of %q: %w", m.name, err)
		}
		st.Deleted = uint32(len(uids))
	}
	return st, nil
}

// search runs UID SEARCH on the mailbox's connection and returns the UIDs
// in ascending order.
func (m *Mailbox) search(ctx context.Context, crit *imap.SearchCriteria) ([]imap.UID, error) {
	var uids []imap.UID
	err := m.l.call(ctx, "UID SEARCH", opRetry, func(s *session) error {
		// Let the server report what other connections changed.
		if err := noop(s); err != nil {
			return err
		}
		var opts *imap.SearchOptions
		if s.caps.Has(imap.CapESearch) {
			opts = &imap.SearchOptions{ReturnAll: true}
		}
		cmd := s.c.UIDSearch(crit, opts)
		if err := s.issued(); err != nil {
			return err
		}
		data, err := cmd.Wait()
		if err != nil {
			return err
		}
		uids = data.AllUIDs()
		for _, u := range uids {
			m.l.viewNext = max(m.l.viewNext, u+1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(uids)
	return slices.Compact(uids), nil
}

// SetFlags changes flags with UID STORE ... FLAGS.SILENT (RFC 9051
// §6.4.6), in batches. Unknown UIDs are ignored by the server.
func (m *Mailbox) SetFlags(ctx context.Context, uids []store.UID, op store.FlagOp, flags []store.Flag) error {
	fl, err := imapFlags(flags)
	if err != nil {
		return fmt.Errorf("set flags in %q: %w", m.name, err)
	}
	sf := &imap.StoreFlags{Silent: true, Flags: fl}
	switch op {
	case store.FlagsSet:
		sf.Op = imap.StoreFlagsSet
	case store.FlagsAdd:
		sf.Op = imap.StoreFlagsAdd
	case store.FlagsRemove:
		sf.Op = imap.StoreFlagsDel
	default:
		return fmt.Errorf("set flags in %q: unknown operation %d", m.name, op)
	}
	if op != store.FlagsSet && len(fl) == 0 {
		return nil
	}
	for _, batch := range chunks(sortedUIDs(uids), m.st.batch) {
		err := m.l.call(ctx, "UID STORE", opRetry, func(s *session) error {
			if err := m.l.see(s, batch); err != nil {
				return err
			}
			return m.store(s, batch, sf)
		})
		if err != nil {
			return fmt.Errorf("set flags in %q: %w", m.name, err)
		}
	}
	return nil
}

// store runs one UID STORE and drains its replies.
func (m *Mailbox) store(s *session, uids []imap.UID, sf *imap.StoreFlags) error {
	cmd := s.c.Store(uidSet(uids), sf, nil)
	if err := s.issued(); err != nil {
		return err
	}
	return cmd.Close()
}

// Expunge removes messages with UID STORE +FLAGS.SILENT (\Deleted) and
// UID EXPUNGE (RFC 4315 §2.1), which touches only the given UIDs. A server
// without UIDPLUS can only expunge every \Deleted message of the mailbox,
// including ones this call was not asked to remove, so Expunge refuses.
func (m *Mailbox) Expunge(ctx context.Context, uids []store.UID) error {
	if len(uids) == 0 {
		return nil
	}
	if !m.st.caps.Has(imap.CapUIDPlus) {
		return fmt.Errorf("expunge in %q: the server lacks UIDPLUS, so EXPUNGE would also remove "+
			"other messages marked \\Deleted: %w", m.name, errors.ErrUnsupported)
	}
	for _, batch := range chunks(sortedUIDs(uids), m.st.batch) {
		if err := m.expunge(ctx, batch); err != nil {
			return fmt.Errorf("expunge in %q: %w", m.name, err)
		}
	}
	return nil
}

func (m *Mailbox) expunge(ctx context.Context, uids []imap.UID) error {
	sf := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	return m.l.call(ctx, "UID EXPUNGE", opRetry, func(s *session) error {
		if err := m.l.see(s, uids); err != nil {
			return err
		}
		if err := m.store(s, uids, sf); err != nil {
			return err
		}
		cmd := s.c.UIDExpunge(uidSet(uids))
		if err := s.issued(); err != nil {
			return err
		}
		return cmd.Close()
	})
}

// Copy copies messages with UID COPY (RFC 9051 §6.4.7) and returns the
// pairs reported by COPYUID (RFC 4315 §3). Without UIDPLUS the server does
// not report them: Copy then copies and returns empty slices. A
// connection failure after the command was sent returns *UncertainError.
//
// go-imap sorts the UID sets of COPYUID, so the pairing assumes the
// server assigned new UIDs in ascending order of the source UIDs, which is
// what servers do.
func (m *Mailbox) Copy(ctx context.Context, uids []store.UID, dest string) (src, dst []store.UID, err error) {
	dest = canonicalName(dest)
	for _, batch := range chunks(sortedUIDs(uids), m.st.batch) {
		var data *imap.CopyData
		err := m.l.call(ctx, "UID COPY", opOnce, func(s *session) error {
			if err := m.l.see(s, batch); err != nil {
				return &notSentError{err: err, retry: true}
			}
			cmd := s.c.Copy(uidSet(batch), dest)
			if err := s.issued(); err != nil {
				return &notSentError{err: err, retry: true}
			}
			var err error
			data, err = cmd.Wait()
			return err
		})
		if err != nil {
			return src, dst, m.copyErr("COPY", dest, err)
		}
		s, d, err := copyPairs(data.UIDValidity, data.SourceUIDs, data.DestUIDs)
		if err != nil {
			return src, dst, fmt.Errorf("copy from %q to %q: %w", m.name, dest, err)
		}
		src, dst = append(src, s...), append(dst, d...)
	}
	return src, dst, nil
}

// copyErr maps COPY/MOVE failures.
func (m *Mailbox) copyErr(op, dest string, err error) error {
	var ue *uncertainError
	if errors.As(err, &ue) {
		return &UncertainError{Op: op, Mailbox: m.name, Dest: dest, Err: ue.err}
	}
	if code := imapCode(err); code == imap.ResponseCodeTryCreate || code == imap.ResponseCodeNonExistent {
		err = fmt.Errorf("%w (%v)", store.ErrNotFound, err)
	}
	return fmt.Errorf("%s from %q to %q: %w", op, m.name, dest, err)
}

// copyPairs expands COPYUID's sets into pairs.
func copyPairs(validity uint32, srcSet, dstSet imap.NumSet) (src, dst []store.UID, err error) {
	if validity == 0 || srcSet == nil || dstSet == nil {
		return nil, nil, nil // no COPYUID: nothing copied, or no UIDPLUS
	}
	ss, ok1 := srcSet.(imap.UIDSet)
	ds, ok2 := dstSet.(imap.UIDSet)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("malformed COPYUID")
	}
	s, ok1 := ss.Nums()
	d, ok2 := ds.Nums()
	if !ok1 || !ok2 || len(s) != len(d) {
		return nil, nil, fmt.Errorf("malformed COPYUID: %v -> %v", ss, ds)
	}
	for i := range s {
		src = append(src, store.UID(s[i]))
		dst = append(dst, store.UID(d[i]))
	}
	return src, dst, nil
}

// Move moves messages. With MOVE (RFC 6851) it runs UID MOVE. Without it,
// it copies with UID COPY, and only the source messages that COPYUID
// confirms are then flagged \Deleted and removed with UID EXPUNGE — never
// an EXPUNGE of the whole mailbox, and nothing is deleted when the copy is
// not confirmed. Without MOVE or UIDPLUS it refuses.
func (m *Mailbox) Move(ctx context.Context, uids []store.UID, dest string) (src, dst []store.UID, err error) {
	dest = canonicalName(dest)
	if !m.st.caps.Has(imap.CapMove) {
		return m.copyExpunge(ctx, uids, dest)
	}
	for _, batch := range chunks(sortedUIDs(uids), m.st.batch) {
		var data *imapMoveData
		err := m.l.call(ctx, "UID MOVE", opOnce, func(s *session) error {
			if err := m.l.see(s, batch); err != nil {
				return &notSentError{err: err, retry: true}
			}
			cmd := s.c.Move(uidSet(batch), dest)
			if err := s.issued(); err != nil {
				return &notSentError{err: err, retry: true}
			}
			md, err := cmd.Wait()
			if err != nil {
				return err
			}
			data = &imapMoveData{md.UIDValidity, md.SourceUIDs, md.DestUIDs}
			return nil
		})
		if err != nil {
			return src, dst, m.copyErr("MOVE", dest, err)
		}
		s, d, err := copyPairs(data.validity, data.src, data.dst)
		if err != nil {
			return src, dst, fmt.Errorf("move from %q to %q: %w", m.name, dest, err)
		}
		src, dst = append(src, s...), append(dst, d...)
	}
	return src, dst, nil
}

type imapMoveData struct {
	validity uint32
	src, dst imap.NumSet
}

func (m *Mailbox) copyExpunge(ctx context.Context, uids []store.UID, dest string) (src, dst []store.UID, err error) {
	if !m.st.caps.Has(imap.CapUIDPlus) {
		return nil, nil, fmt.Errorf("move from %q to %q: the server has neither MOVE nor UIDPLUS, "+
			"so a move cannot be done safely: %w", m.name, dest, errors.ErrUnsupported)
	}
	for _, batch := range chunks(sortedUIDs(uids), m.st.batch) {
		s, d, err := m.Copy(ctx, toStoreUIDs(batch), dest)
		if err != nil {
			return src, dst, err
		}
		if len(s) > 0 {
			if err := m.expunge(ctx, toIMAPUIDs(s)); err != nil {
				return src, dst, fmt.Errorf("move from %q to %q: copied, but removing the originals failed: %w",
					m.name, dest, err)
			}
		}
		src, dst = append(src, s...), append(dst, d...)
	}
	return src, dst, nil
}

// imapFlags converts flags for the wire: system flags in canonical case,
// \Recent dropped (it cannot be set, RFC 9051 §2.3.2), and an error for
// anything that is not an atom.
func imapFlags(flags []store.Flag) ([]imap.Flag, error) {
	out := make([]imap.Flag, 0, len(flags))
	for _, f := range store.SortFlags(flags) {
		if !validFlag(string(f)) {
			return nil, fmt.Errorf("%q: %w", f, ErrInvalidFlag)
		}
		out = append(out, imap.Flag(f))
	}
	return out, nil
}

// validFlag reports whether f is a flag-keyword or a system flag: an atom
// (RFC 9051 §9: no CTL, SP, non-ASCII or atom-specials "(){%*\"\\]"),
// optionally after one backslash.
func validFlag(f string) bool {
	if len(f) > 0 && f[0] == '\\' {
		f = f[1:]
	}
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		switch c := f[i]; {
		case c <= ' ' || c >= 0x7f:
			return false
		case c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' || c == '\\' || c == ']':
			return false
		}
	}
	return true
}

// storeFlags converts flags from the server.
func storeFlags(in []imap.Flag) []store.Flag {
	out := make([]store.Flag, len(in))
	for i, f := range in {
		out[i] = store.Flag(f)
	}
	return store.SortFlags(out)
}

func sortedUIDs(uids []store.UID) []imap.UID {
	out := make([]imap.UID, 0, len(uids))
	for _, u := range uids {
		if u != 0 {
			out = append(out, imap.UID(u))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func toStoreUIDs(uids []imap.UID) []store.UID {
	out := make([]store.UID, len(uids))
	for i, u := range uids {
		out[i] = store.UID(u)
	}
	return out
}

func toIMAPUIDs(uids []store.UID) []imap.UID { return sortedUIDs(uids) }

// chunks splits sorted UIDs into batches of at most n.
func chunks(uids []imap.UID, n int) [][]imap.UID {
	var out [][]imap.UID
	for len(uids) > 0 {
		k := min(n, len(uids))
		out = append(out, uids[:k])
		uids = uids[k:]
	}
	return out
}

// uidSet makes a compact UID set (ranges for runs).
func uidSet(uids []imap.UID) imap.UIDSet {
	var set imap.UIDSet
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		set = append(set, imap.UIDRange{Start: uids[i], Stop: uids[j]})
		i = j + 1
	}
	return set
}
