package remote

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/pkg/store"
)

// Messages calls fn for every message with a UID >= from, in ascending UID
// order, with its UID, flags, internal date, size and Message-ID.
//
// It lists the UIDs with UID SEARCH, then fetches
// UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]
// in batches of 1,000 explicit UIDs (a command line stays under
// 12 KB). The replies of each batch are checked
// against the UIDs asked for: go-imap silently drops a reply whose body
// section comes before its UID, and an unsolicited FETCH (a flag change by
// another client) can stand in for a real reply, so whatever is missing or
// incomplete is fetched again by sequence number. A message still missing
// then was expunged meanwhile and is skipped. When the connection fails,
// the batch continues on a new connection with the messages not yet
// received.
//
// fn runs between commands, never during one, so it may use the Mailbox.
// Messages added after the call started are not reported.
func (m *Mailbox) Messages(ctx context.Context, from store.UID, fn func(store.MessageInfo) error) error {
	return m.messages(ctx, from, true, fn)
}

// MessageFlags is Messages without the Message-ID (MessageID is ""), which
// saves fetching a header field per message. It implements
// store.FlagLister.
func (m *Mailbox) MessageFlags(ctx context.Context, from store.UID, fn func(store.MessageInfo) error) error {
	return m.messages(ctx, from, false, fn)
}

func (m *Mailbox) messages(ctx context.Context, from store.UID, withID bool, fn func(store.MessageInfo) error) error {
	if from == 0 {
		from = 1
	}
	// UID n:* always matches the highest UID, even below n (RFC 9051
	// §6.4.8), hence the filter.
	uids, err := m.search(ctx, &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: imap.UID(from), Stop: 0}}}})
	if err != nil {
		return fmt.Errorf("list messages of %q: %w", m.name, err)
	}
	uids = slices.DeleteFunc(uids, func(u imap.UID) bool { return u < imap.UID(from) })
	for _, batch := range chunks(uids, m.st.batch*batchesPerCall) {
		infos, err := m.fetchMeta(ctx, batch, withID)
		if err != nil {
			return fmt.Errorf("list messages of %q: %w", m.name, err)
		}
		for _, mi := range infos {
			if err := fn(mi); err != nil {
				return err
			}
		}
	}
	return nil
}

// batchesPerCall is the number of FETCH commands (of up to batch UIDs
// each) behind one call of fn's batch: Messages hands fn the messages of
// that many commands at a time.
const batchesPerCall = 4

// fetchMeta fetches the metadata of uids (sorted) and returns what exists,
// sorted by UID.
func (m *Mailbox) fetchMeta(ctx context.Context, uids []imap.UID, withID bool) ([]store.MessageInfo, error) {
	opts := &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true}
	if withID {
		opts.BodySection = []*imap.FetchItemBodySection{messageIDSection()}
	}
	got := make(map[imap.UID]store.MessageInfo, len(uids))
	missing := func() []imap.UID {
		return slices.DeleteFunc(slices.Clone(uids), func(u imap.UID) bool { _, ok := got[u]; return ok })
	}
	if err := m.l.acquire(ctx); err != nil {
		return nil, err
	}
	defer m.l.release()
	p := m.st.newPacer()
	err := m.l.run(ctx, "UID FETCH", opRetry, p, func(s *session) error {
		rest := missing()
		// One command at a time, each read to its end before the next
		// goes out. Pipelining them saved a round trip per 1,000 messages
		// but is unsafe with go-imap: a server may interleave the replies
		// of pipelined FETCH commands (Dovecot runs them in parallel), and
		// go-imap's reader stops at a reply's literal until the owner of
		// that command reads it; and when writing a later command fails
		// (the connection broke), go-imap closes the earlier commands'
		// reply channels while its reader may still be sending on them
		// (a data race, and a possible panic).
		var err error
		for _, part := range chunks(rest, m.st.batch) {
			cmd := s.c.Fetch(uidSet(part), opts)
			if err = s.issued(); err != nil {
				break
			}
			err = collectMeta(s, cmd, withID, func(mi store.MessageInfo) {
				if _, ok := slices.BinarySearch(rest, imap.UID(mi.UID)); ok {
					got[imap.UID(mi.UID)] = mi
					p.progress()
				}
			})
			if err != nil {
				break
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if rest := missing(); len(rest) > 0 {
		err := m.l.run(ctx, "FETCH", opRetry, p, func(s *session) error {
			return m.fetchBySeq(s, missing(), opts, withID, func(mi store.MessageInfo) {
				got[imap.UID(mi.UID)] = mi
			})
		})
		if err != nil {
			return nil, err
		}
		if rest := missing(); len(rest) > 0 {
			m.l.log.Debug("messages vanished while listing (expunged)", "uids", uidSet(rest).String())
		}
	}
	out := make([]store.MessageInfo, 0, len(got))
	for _, mi := range got {
		out = append(out, mi)
	}
	slices.SortFunc(out, func(a, b store.MessageInfo) int { return cmp.Compare(a.UID, b.UID) })
	return out, nil
}

// fetchBySeq fetches messages by sequence number, which go-imap routes
// without needing the UID first: UID FETCH (UID) maps the UIDs to sequence
// numbers (no literal, so nothing is lost), then FETCH by those numbers.
// Replies are checked by UID, in case an expunge shifted the numbers in
// between.
func (m *Mailbox) fetchBySeq(s *session, uids []imap.UID, opts *imap.FetchOptions, withID bool, add func(store.MessageInfo)) error {
	if len(uids) == 0 {
		return nil
	}
	seqs, err := seqNums(s, uids)
	if err != nil || len(seqs) == 0 {
		return err
	}
	var set imap.SeqSet
	for _, n := range seqs {
		set.AddNum(n)
	}
	cmd := s.c.Fetch(set, opts)
	if err := s.issued(); err != nil {
		return err
	}
	return collectMeta(s, cmd, withID, func(mi store.MessageInfo) {
		if _, ok := slices.BinarySearch(uids, imap.UID(mi.UID)); ok {
			add(mi)
		}
	})
}

// seqNums maps UIDs to the sequence numbers of the messages that exist.
func seqNums(s *session, uids []imap.UID) (map[imap.UID]uint32, error) {
	cmd := s.c.Fetch(uidSet(uids), &imap.FetchOptions{UID: true})
	if err := s.issued(); err != nil {
		return nil, err
	}
	out := map[imap.UID]uint32{}
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			it, ok := item.(imapclient.FetchItemDataUID)
			if !ok {
				continue
			}
			if _, want := slices.BinarySearch(uids, it.UID); want {
				out[it.UID] = msg.SeqNum
			}
		}
	}
	return out, cmd.Close()
}

// collectMeta reads FETCH replies, passing each complete one to add, and
// drains the command.
//
// A reply is passed on only once it is known to have been parsed to its
// end: when the next reply begins or the command completes. go-imap hands
// over the items of a reply cut short by a broken connection too, and a
// number at the cut (RFC822.SIZE 27 of 2772) would parse.
func collectMeta(s *session, cmd *imapclient.FetchCommand, withID bool, add func(store.MessageInfo)) error {
	var pending *store.MessageInfo
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		if pending != nil {
			add(*pending)
			pending = nil
		}
		if mi, ok := readMeta(s, msg, withID); ok {
			pending = &mi
		}
		s.touch()
	}
	err := cmd.Close()
	if err == nil && pending != nil {
		add(*pending)
	}
	return err
}

// readMeta reads one FETCH reply's items; ok is false when some are
// missing (an unsolicited FETCH can stand in for the reply asked for) or
// the header literal was cut short.
func readMeta(s *session, msg *imapclient.FetchMessageData, withID bool) (mi store.MessageInfo, ok bool) {
	var hasFlags, hasDate, hasSize bool
	hasHeader := !withID
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			mi.UID = store.UID(it.UID)
		case imapclient.FetchItemDataFlags:
			mi.Flags, hasFlags = storeFlags(it.Flags), true
		case imapclient.FetchItemDataInternalDate:
			mi.Date, hasDate = it.Time, true
		case imapclient.FetchItemDataRFC822Size:
			mi.Size, hasSize = it.Size, true
		case imapclient.FetchItemDataBodySection:
			if it.Literal != nil {
				b, err := readLiteral(it.Literal, 1<<20)
				if err != nil {
					s.stopReader()
					return mi, false
				}
				mi.MessageID = messageID(b)
			}
			hasHeader = true
		}
	}
	if mi.Flags == nil {
		mi.Flags = []store.Flag{}
	}
	return mi, mi.UID != 0 && hasFlags && hasDate && hasSize && hasHeader
}

// readLiteral reads a literal whole (up to max bytes; the rest is left to
// go-imap's drain). A literal that ends before its announced size — the
// connection broke — is an error, not a short value.
func readLiteral(lit imap.LiteralReader, max int64) ([]byte, error) {
	n := min(lit.Size(), max)
	b := make([]byte, n)
	if _, err := io.ReadFull(lit, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, &connLostError{err: fmt.Errorf("literal cut short: %w", err)}
	}
	return b, nil
}

func messageIDSection() *imap.FetchItemBodySection {
	return &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
}

// messageID extracts the first Message-ID field's value from a header
// block, unfolded, with runs of white space made single spaces.
func messageID(header []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(header))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var cur []byte
	found := false
	for sc.Scan() {
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if found {
				cur = append(append(cur, ' '), line...)
			}
			continue
		}
		if found {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(name)), "Message-ID") {
			found = true
			cur = append(cur, value...)
		}
	}
	return strings.Join(strings.Fields(string(cur)), " ")
}

// OpenHeader returns the message's header block, up to and including the
// blank line, from BODY.PEEK[HEADER]. It implements store.HeaderOpener.
// The header is read before OpenHeader returns.
func (m *Mailbox) OpenHeader(ctx context.Context, uid store.UID) (io.ReadCloser, error) {
	var hdr []byte
	found := false
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}}}
	err := m.l.call(ctx, "UID FETCH", opRetry, func(s *session) error {
		if err := m.l.see(s, []imap.UID{imap.UID(uid)}); err != nil {
			return err
		}
		var err error
		found, err = fetchOne(s, imap.UID(uid), opts, func(msg *imapclient.FetchMessageData) error {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if it, ok := item.(imapclient.FetchItemDataBodySection); ok && it.Literal != nil {
					b, err := readLiteral(it.Literal, it.Literal.Size())
					if err != nil {
						s.stopReader()
						return err
					}
					hdr = b
				}
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("header of UID %d in %q: %w", uid, m.name, err)
	}
	if !found {
		return nil, fmt.Errorf("header of UID %d in %q: %w", uid, m.name, store.ErrNoMessage)
	}
	return io.NopCloser(bytes.NewReader(hdr)), nil
}

// fetchOne fetches one message by UID and passes its reply to fn, which
// must consume the items. If no reply comes, the message either does not
// exist or its reply was routed away by go-imap (a literal before the
// UID); the sequence number tells which, and the message is then fetched
// by it.
func fetchOne(s *session, uid imap.UID, opts *imap.FetchOptions, fn func(*imapclient.FetchMessageData) error) (bool, error) {
	cmd := s.c.Fetch(imap.UIDSetNum(uid), opts)
	if err := s.issued(); err != nil {
		return false, err
	}
	if msg := cmd.Next(); msg != nil {
		err := fn(msg)
		if cerr := cmd.Close(); err == nil {
			err = cerr
		}
		return true, err
	}
	if err := cmd.Close(); err != nil {
		return false, err
	}
	seq, err := verifiedSeq(s, uid)
	if err != nil || seq == 0 {
		return false, err
	}
	cmd = s.c.Fetch(imap.SeqSetNum(seq), opts)
	if err := s.issued(); err != nil {
		return false, err
	}
	msg := cmd.Next()
	if msg == nil {
		return false, cmd.Close()
	}
	err = fn(msg)
	if cerr := cmd.Close(); err == nil {
		err = cerr
	}
	return true, err
}

// verifiedSeq returns the sequence number of uid, or 0 if it does not
// exist. The number from UID FETCH is checked with a plain FETCH, during
// which and until the next plain FETCH the server may not send EXPUNGE
// (RFC 9051 §7.5.1), so it stays valid for one more FETCH.
func verifiedSeq(s *session, uid imap.UID) (uint32, error) {
	for range 3 {
		seqs, err := seqNums(s, []imap.UID{uid})
		if err != nil {
			return 0, err
		}
		seq, ok := seqs[uid]
		if !ok {
			return 0, nil
		}
		cmd := s.c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{UID: true})
		if err := s.issued(); err != nil {
			return 0, err
		}
		var got imap.UID
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if it, ok := item.(imapclient.FetchItemDataUID); ok && msg.SeqNum == seq {
					got = it.UID
				}
			}
		}
		if err := cmd.Close(); err != nil {
			return 0, err
		}
		if got == uid {
			return seq, nil
		}
	}
	return 0, errors.New("message numbers keep changing (concurrent expunges)")
}
