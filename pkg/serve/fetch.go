package serve

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapctl/imapctl/internal/mimeparse"
	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/maildir"
)

// fetchBatch bounds how many messages' metadata a FETCH holds at once.
const fetchBatch = 512

// Fetch implements imapserver.Session (FETCH and UID FETCH). Metadata
// comes from the index; ENVELOPE, BODYSTRUCTURE and body sections come
// from the message file through a streaming MIME parse, so a large
// message is never loaded into memory. No lock is held while writing.
func (sess *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	seqs, uids := sel.targets(sess.resolveSaved(numSet))
	markSeen := false
	if !sel.readOnly {
		for _, bs := range options.BodySection {
			if !bs.Peek {
				markSeen = true
			}
		}
		for _, bs := range options.BinarySection {
			if !bs.Peek {
				markSeen = true
			}
		}
	}
	for start := 0; start < len(uids); start += fetchBatch {
		end := min(start+fetchBatch, len(uids))
		msgs := sel.mb.Lookup(uids[start:end])
		seqOf := make(map[uint32]uint32, end-start)
		for i := start; i < end; i++ {
			seqOf[uids[i]] = seqs[i]
		}
		changed := map[uint32]bool{}
		if markSeen {
			var unseen []uint32
			for _, m := range msgs {
				if !m.HasFlag(store.FlagSeen) {
					unseen = append(unseen, uint32(m.UID))
				}
			}
			if len(unseen) > 0 {
				if err := sess.srv.enter(); err != nil {
					return err
				}
				updated, err := sel.mb.UpdateFlags(sess.ctx(), unseen, store.FlagsAdd, []store.Flag{store.FlagSeen})
				sess.srv.leave()
				if err != nil {
					return imapError(err)
				}
				byUID := map[store.UID][]store.Flag{}
				for _, u := range updated {
					byUID[u.UID] = u.Flags
				}
				for i := range msgs {
					if fl, ok := byUID[msgs[i].UID]; ok {
						msgs[i].Flags = fl
						changed[uint32(msgs[i].UID)] = true
					}
				}
			}
		}
		for i := range msgs {
			m := &msgs[i]
			if err := sess.fetchOne(w, seqOf[uint32(m.UID)], m, options, changed[uint32(m.UID)]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (sess *session) fetchOne(w *imapserver.FetchWriter, seq uint32, m *maildir.Message, options *imap.FetchOptions, flagsChanged bool) error {
	var (
		f    *os.File
		part *mimeparse.Part
	)
	defer func() {
		if f != nil {
			_ = f.Close() // read only
		}
	}()
	open := func() error {
		if f != nil {
			return nil
		}
		var err error
		f, err = sess.sel.mb.OpenFile(*m)
		return err
	}
	parse := func() error {
		if part != nil {
			return nil
		}
		if err := open(); err != nil {
			return err
		}
		var err error
		part, err = sess.srv.parts.get(f, m)
		return err
	}
	needParse := options.Envelope || options.BodyStructure != nil || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	for _, bs := range options.BodySection {
		if !isWholeMessage(bs) {
			needParse = true
		}
	}
	if needParse {
		if err := parse(); err != nil {
			return fetchError(m, err)
		}
	} else if len(options.BodySection) > 0 {
		if err := open(); err != nil {
			return fetchError(m, err)
		}
	}

	rw := w.CreateMessage(seq)
	if options.UID {
		rw.WriteUID(imap.UID(m.UID))
	}
	if options.Flags || flagsChanged {
		rw.WriteFlags(imapFlags(m.Flags))
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.Date)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.Envelope {
		rw.WriteEnvelope(part.Envelope())
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(part.BodyStructure(options.BodyStructure.Extended))
	}
	for _, bs := range options.BodySection {
		var (
			r    io.Reader
			size int64
			err  error
		)
		if isWholeMessage(bs) {
			r, size = io.NewSectionReader(f, 0, m.Size), m.Size
		} else {
			r, size, err = part.BodySection(f, bs)
		}
		if err != nil {
			_ = rw.Close() // err is the failure to report
			return fetchError(m, err)
		}
		if err := copyLiteral(rw.WriteBodySection(bs, size), r, size); err != nil {
			_ = rw.Close() // err is the failure to report
			return err
		}
	}
	for _, bs := range options.BinarySection {
		r, size, err := part.BinarySection(f, bs)
		if err != nil {
			_ = rw.Close() // err is the failure to report
			return binaryError(m, err)
		}
		if err := copyLiteral(rw.WriteBinarySection(bs, size), r, size); err != nil {
			_ = rw.Close() // err is the failure to report
			return err
		}
	}
	for _, bss := range options.BinarySectionSize {
		n, err := part.BinarySectionSize(f, bss.Part)
		if err != nil {
			_ = rw.Close() // err is the failure to report
			return binaryError(m, err)
		}
		rw.WriteBinarySectionSize(bss, n)
	}
	return rw.Close()
}

func isWholeMessage(bs *imap.FetchItemBodySection) bool {
	return len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone && bs.Partial == nil
}

// copyLiteral writes exactly size bytes of r to a literal.
func copyLiteral(wc io.WriteCloser, r io.Reader, size int64) error {
	n, err := io.Copy(wc, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("message data shorter than announced (%d of %d bytes)", n, size)
	}
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

func fetchError(m *maildir.Message, err error) error {
	if errors.Is(err, store.ErrNoMessage) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
			Text: fmt.Sprintf("Message UID %d no longer exists", m.UID)}
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug,
		Text: fmt.Sprintf("Cannot read message UID %d: %v", m.UID, err)}
}

func binaryError(m *maildir.Message, err error) error {
	if errors.Is(err, mimeparse.ErrUnknownEncoding) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnknownCTE,
			Text: fmt.Sprintf("Message UID %d has an unknown Content-Transfer-Encoding", m.UID)}
	}
	return fetchError(m, err)
}
