package serve

import (
	"context"
	"errors"
	"io"

	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapctl/imapctl/pkg/auth"
	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/maildir"
)

// session is one IMAP connection's state.
type session struct {
	srv      *Server
	conn     *imapserver.Conn
	remote   string
	user     string
	st       *maildir.Store
	sel      *selected
	failures int
	// searchRes is the last SEARCH result saved with RETURN (SAVE), as
	// UIDs (RFC 5182); "$" in later commands refers to it.
	searchRes []uint32

	// mu serialises Idle with Close and with the commands that use or
	// replace the selected mailbox: go-imap runs Idle in a goroutine of
	// its own and does not wait for it when the connection ends during
	// IDLE (or IDLE ends with a syntax error), so Idle may still run, or
	// not have started yet, when the next call comes.
	mu     sync.Mutex
	closed bool
}

var (
	_ imapserver.Session            = (*session)(nil)
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server is shutting down"}
	}
	sess := &session{srv: s, conn: c, remote: c.NetConn().RemoteAddr().String()}
	s.conns[c] = sess
	s.sessionWG.Add(1)
	return sess, nil, nil
}

func (sess *session) Close() error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.closed = true
	sess.unselect()
	if sess.st != nil {
		sess.srv.releaseStore(sess.user)
		sess.st = nil
	}
	s := sess.srv
	s.mu.Lock()
	delete(s.conns, sess.conn)
	s.mu.Unlock()
	s.sessionWG.Done()
	return nil
}

func (sess *session) ctx() context.Context { return context.Background() }

// Login implements imapserver.Session (LOGIN and AUTHENTICATE PLAIN).
func (sess *session) Login(username, password string) error {
	err := sess.srv.users.Verify(username, password)
	if err != nil {
		sess.failures++
		sess.srv.log.Info("login failed", "user", username, "remote", sess.remote, "reason", loginReason(err))
		// Slow down password guessing; drop the connection after 3 tries.
		time.Sleep(time.Duration(sess.failures) * 200 * time.Millisecond)
		if sess.failures >= 3 {
			// BYE after the tagged NO, not before it (a goroutine started
			// now could win the race to the connection).
			bye := func() { _ = sess.conn.Bye("Too many failed logins") } // it closes the connection anyway
			if cc := corkOf(sess.conn.NetConn()); cc != nil {
				cc.afterReply(bye)
			} else {
				go bye()
			}
		}
		return imapserver.ErrAuthFailed
	}
	st, err := sess.srv.openStore(username)
	if err != nil {
		sess.srv.log.Error("open mail store", "user", username, "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Mail store unavailable"}
	}
	sess.user, sess.st = username, st
	sess.srv.log.Info("login", "user", username, "remote", sess.remote)
	return nil
}

func loginReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrBadPassword):
		return "wrong user or password"
	default:
		return err.Error()
	}
}

// AppendLimit implements imapserver.SessionAppendLimit.
func (sess *session) AppendLimit() uint32 { return sess.srv.cfg.AppendLimit }

// Namespace implements imapserver.SessionNamespace.
func (sess *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: maildir.Delim}}}, nil
}

// imapError maps store errors to IMAP responses with response codes.
func imapError(err error) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return err
	}
	var ne *store.NameError
	switch {
	case errors.As(err, &ne):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: capitalize(ne.Error())}
	case errors.Is(err, store.ErrNotFound):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}
	case errors.Is(err, store.ErrExists):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox already exists"}
	case errors.Is(err, store.ErrInbox):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "INBOX cannot be deleted"}
	case errors.Is(err, store.ErrReadOnly):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY", Text: "Mailbox is read-only (EXAMINE)"}
	case errors.Is(err, store.ErrTooBig):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message too big"}
	case errors.Is(err, store.ErrNoMessage):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such message"}
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error: " + capitalize(err.Error())}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Create implements imapserver.Session.
func (sess *session) Create(name string, options *imap.CreateOptions) error {
	if err := sess.srv.enter(); err != nil {
		return err
	}
	defer sess.srv.leave()
	var attrs []store.Attr
	if options != nil {
		for _, a := range options.SpecialUse {
			if !store.Attr(a).IsSpecialUse() {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR", Text: "Unsupported special-use attribute " + string(a)}
			}
			attrs = append(attrs, store.Attr(a))
		}
	}
	name = strings.TrimSuffix(name, string(maildir.Delim))
	return imapError(sess.st.Create(sess.ctx(), name, attrs))
}

// Delete implements imapserver.Session.
func (sess *session) Delete(name string) error {
	if err := sess.srv.enter(); err != nil {
		return err
	}
	defer sess.srv.leave()
	return imapError(sess.st.Delete(sess.ctx(), name))
}

// Rename implements imapserver.Session.
func (sess *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	if err := sess.srv.enter(); err != nil {
		return err
	}
	defer sess.srv.leave()
	return imapError(sess.st.Rename(sess.ctx(), oldName, newName))
}

// Subscribe implements imapserver.Session.
func (sess *session) Subscribe(name string) error {
	return imapError(sess.st.SetSubscribed(name, true))
}

// Unsubscribe implements imapserver.Session.
func (sess *session) Unsubscribe(name string) error {
	return imapError(sess.st.SetSubscribed(name, false))
}

// List implements imapserver.Session (LIST, LSUB, LIST-EXTENDED,
// LIST-STATUS, SPECIAL-USE).
func (sess *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		// RFC 9051 §6.3.9: an empty pattern asks for the delimiter. go-imap
		// drops empty LIST patterns, so it arrives as no pattern at all.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: maildir.Delim, Mailbox: ""})
	}
	all, err := sess.st.List(sess.ctx())
	if err != nil {
		return imapError(err)
	}
	subscribed := map[string]bool{}
	for _, n := range sess.st.Subscribed() {
		subscribed[n] = true
	}
	hasChildren := map[string]bool{}
	for _, m := range all {
		if i := strings.LastIndexByte(m.Name, byte(maildir.Delim)); i > 0 {
			hasChildren[m.Name[:i]] = true
		}
	}
	if options == nil {
		options = &imap.ListOptions{}
	}
	for _, m := range all {
		match := false
		for _, p := range patterns {
			if imapserver.MatchList(m.Name, maildir.Delim, ref, p) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		if options.SelectSubscribed && !subscribed[m.Name] {
			continue
		}
		special := false
		var attrs []imap.MailboxAttr
		for _, a := range m.Attrs {
			if a.IsSpecialUse() {
				special = true
			}
			attrs = append(attrs, imap.MailboxAttr(a))
		}
		if options.SelectSpecialUse && !special {
			continue
		}
		if hasChildren[m.Name] {
			attrs = append(attrs, imap.MailboxAttrHasChildren)
		} else {
			attrs = append(attrs, imap.MailboxAttrHasNoChildren)
		}
		if subscribed[m.Name] && (options.ReturnSubscribed || options.SelectSubscribed) {
			attrs = append(attrs, imap.MailboxAttrSubscribed)
		}
		data := &imap.ListData{Attrs: attrs, Delim: maildir.Delim, Mailbox: m.Name}
		if options.ReturnStatus != nil && !m.Has(store.AttrNoSelect) {
			if st, err := sess.status(m.Name, options.ReturnStatus); err == nil {
				data.Status = st
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// Status implements imapserver.Session. Every item is answered: a
// missing one would break the connection.
func (sess *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	st, err := sess.status(name, options)
	return st, imapError(err)
}

func (sess *session) status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	mb, err := sess.st.OpenMailbox(sess.ctx(), name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = mb.Close() }() // a Maildir mailbox's Close cannot fail
	if err := mb.Refresh(); err != nil {
		return nil, err
	}
	st := mb.State()
	n, zero := uint32(len(st.UIDs)), uint32(0)
	data := &imap.StatusData{Mailbox: name}
	if options.NumMessages {
		data.NumMessages = &n
	}
	if options.NumRecent {
		data.NumRecent = &zero
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		u := st.Unseen
		data.NumUnseen = &u
	}
	if options.NumDeleted {
		d := st.Deleted
		data.NumDeleted = &d
	}
	if options.Size {
		size := st.Size
		data.Size = &size
	}
	if options.AppendLimit {
		l := sess.srv.cfg.AppendLimit
		data.AppendLimit = &l
	}
	if options.DeletedStorage {
		ds := mb.DeletedSize()
		data.DeletedStorage = &ds
	}
	if options.HighestModSeq {
		data.HighestModSeq = st.ModSeq
	}
	return data, nil
}

// Append implements imapserver.Session.
func (sess *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	if err := sess.srv.enter(); err != nil {
		return nil, err
	}
	defer sess.srv.leave()
	if r.Size() > int64(sess.srv.cfg.AppendLimit) {
		return nil, imapError(store.ErrTooBig)
	}
	mb, err := sess.st.OpenMailbox(sess.ctx(), name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox; create it first"}
		}
		return nil, imapError(err)
	}
	defer func() { _ = mb.Close() }() // a Maildir mailbox's Close cannot fail
	var flags []store.Flag
	for _, f := range options.Flags {
		flags = append(flags, store.Flag(f))
	}
	// Never store fewer bytes than announced: a short literal is an error.
	uid, err := mb.Append(sess.ctx(), &exactReader{r: r, left: r.Size()}, store.AppendOptions{Flags: flags, Date: options.Time})
	if err != nil {
		return nil, imapError(err)
	}
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: mb.State().UIDValidity}, nil
}

// exactReader fails unless exactly left bytes are read.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// Select implements imapserver.Session (SELECT and EXAMINE).
func (sess *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.unselect()
	sess.searchRes = nil
	mb, err := sess.st.OpenMailbox(sess.ctx(), name)
	if err != nil {
		return nil, imapError(err)
	}
	if err := mb.Refresh(); err != nil {
		_ = mb.Close() // cannot fail
		return nil, imapError(err)
	}
	st := mb.State()
	sel := &selected{
		mb:       mb,
		readOnly: options != nil && options.ReadOnly,
		view:     st.UIDs,
		seenNext: st.UIDNext,
		modseq:   st.ModSeq,
		nkw:      len(st.Keywords),
	}
	sess.sel = sel
	flags := mailboxFlags(st.Keywords)
	perm := append(append([]imap.Flag(nil), flags...), imap.FlagWildcard)
	if sel.readOnly {
		perm = nil
	}
	data := &imap.SelectData{
		Flags:          flags,
		PermanentFlags: perm,
		NumMessages:    uint32(len(st.UIDs)),
		UIDNext:        imap.UID(st.UIDNext),
		UIDValidity:    st.UIDValidity,
	}
	if uid := mb.FirstUnseen(); uid != 0 {
		data.FirstUnseenSeqNum = sel.seqOf(uid)
	}
	return data, nil
}

func mailboxFlags(keywords []string) []imap.Flag {
	flags := []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}
	for _, k := range keywords {
		flags = append(flags, imap.Flag(k))
	}
	return flags
}

// Unselect implements imapserver.Session.
func (sess *session) Unselect() error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.unselect()
	return nil
}

func (sess *session) unselect() {
	if sess.sel != nil {
		_ = sess.sel.mb.Close() // a Maildir mailbox's Close cannot fail
		sess.sel = nil
	}
}

// Poll implements imapserver.Session: it reports other sessions' (and
// other programs') changes to the selected mailbox.
func (sess *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.sel == nil {
		return nil
	}
	if err := sess.sel.mb.Refresh(); err != nil {
		sess.srv.log.Warn("refresh mailbox", "user", sess.user, "err", err)
	}
	return sess.sel.poll(w, allowExpunge)
}

// Idle implements imapserver.Session. Changes by other sessions wake it
// at once; changes by other programs are noticed within a second.
func (sess *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	refresh := false
	for {
		updated, err := sess.idleStep(w, stop, refresh)
		if updated == nil || err != nil {
			return err
		}
		refresh = false
		select {
		case <-stop:
			return nil
		case <-sess.srv.done:
			return nil
		case <-updated:
		case <-tick.C:
			refresh = true
		}
	}
}

// noChanges is never closed: what Idle waits on without a mailbox.
var noChanges = make(chan struct{})

// idleStep brings an idling client up to date (after picking up other
// programs' changes when refresh is set). It returns the channel closed at
// the mailbox's next change, or nil when IDLE is over or the session is
// closed: then it must not touch the session any more.
func (sess *session) idleStep(w *imapserver.UpdateWriter, stop <-chan struct{}, refresh bool) (<-chan struct{}, error) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	select {
	case <-stop:
		return nil, nil
	default:
	}
	if sess.closed {
		return nil, nil
	}
	if sess.sel == nil {
		return noChanges, nil
	}
	if refresh {
		if err := sess.sel.mb.Refresh(); err != nil {
			sess.srv.log.Warn("refresh mailbox", "user", sess.user, "err", err)
		}
	}
	updated := sess.sel.mb.Updated()
	if err := sess.sel.poll(w, true); err != nil {
		return nil, err
	}
	return updated, nil
}

// selected is the state of the selected mailbox as this client knows it.
type selected struct {
	mb       *maildir.Mailbox
	readOnly bool
	// view is the client's sequence-number map: view[seq-1] is a UID. It
	// may share its array with the mailbox's state (never modified).
	view     []uint32
	seenNext uint32 // UIDNEXT when the view was last brought up to date
	modseq   uint64
	pending  []uint32 // expunged UIDs not yet announced (EXPUNGE was not allowed)
	nkw      int      // keywords announced in FLAGS
}

// seqOf returns the sequence number of uid in the view, or 0.
func (sel *selected) seqOf(uid uint32) uint32 {
	i := sort.Search(len(sel.view), func(i int) bool { return sel.view[i] >= uid })
	if i < len(sel.view) && sel.view[i] == uid {
		return uint32(i + 1)
	}
	return 0
}

func (sel *selected) poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	changes, complete, st := sel.mb.ChangesSince(sel.modseq)
	if st.ModSeq == sel.modseq && (len(sel.pending) == 0 || !allowExpunge) {
		return nil
	}
	expunged := map[uint32]bool{}
	for _, u := range sel.pending {
		expunged[u] = true
	}
	flagged := map[uint32]bool{}
	if complete {
		for _, c := range changes {
			switch {
			case c.Kind == maildir.ChangeExpunge:
				if sel.seqOf(c.UID) != 0 {
					expunged[c.UID] = true
				}
			case c.Source != sel.mb.ID():
				flagged[c.UID] = true
			}
		}
	} else {
		// The change log was trimmed: compare whole states.
		cur := map[uint32]bool{}
		for _, u := range st.UIDs {
			cur[u] = true
		}
		for _, u := range sel.view {
			if !cur[u] {
				expunged[u] = true
			} else {
				flagged[u] = true
			}
		}
	}
	first := sort.Search(len(st.UIDs), func(i int) bool { return st.UIDs[i] >= sel.seenNext })
	added := st.UIDs[first:]

	if len(st.Keywords) != sel.nkw {
		sel.nkw = len(st.Keywords)
		if err := w.WriteMailboxFlags(mailboxFlags(st.Keywords)); err != nil {
			return err
		}
	}
	if allowExpunge && len(expunged) > 0 {
		seqs := make([]uint32, 0, len(expunged))
		for u := range expunged {
			if q := sel.seqOf(u); q != 0 {
				seqs = append(seqs, q)
			}
		}
		// Descending, so each number is valid when sent.
		sort.Slice(seqs, func(i, j int) bool { return seqs[i] > seqs[j] })
		for _, q := range seqs {
			if err := w.WriteExpunge(q); err != nil {
				return err
			}
		}
		expunged = map[uint32]bool{}
		sel.pending = nil
	}
	if len(expunged) == 0 {
		// The client's view now equals the mailbox's state.
		grew := len(added) > 0
		sel.view = st.UIDs
		if grew {
			if err := w.WriteNumMessages(uint32(len(sel.view))); err != nil {
				return err
			}
		}
	} else {
		sel.pending = sel.pending[:0]
		for u := range expunged {
			sel.pending = append(sel.pending, u)
		}
		if len(added) > 0 {
			view := make([]uint32, 0, len(sel.view)+len(added))
			view = append(append(view, sel.view...), added...)
			sel.view = view
			if err := w.WriteNumMessages(uint32(len(sel.view))); err != nil {
				return err
			}
		}
	}
	sel.modseq, sel.seenNext = st.ModSeq, st.UIDNext
	if len(flagged) > 0 {
		uids := make([]uint32, 0, len(flagged))
		for u := range flagged {
			if !expunged[u] && sel.seqOf(u) != 0 {
				uids = append(uids, u)
			}
		}
		sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
		for i, fl := range sel.mb.Flags(uids) {
			if fl == nil {
				continue
			}
			if err := w.WriteMessageFlags(sel.seqOf(uids[i]), imap.UID(uids[i]), imapFlags(fl)); err != nil {
				return err
			}
		}
	}
	return nil
}

func imapFlags(fl []store.Flag) []imap.Flag {
	out := make([]imap.Flag, len(fl))
	for i, f := range fl {
		out[i] = imap.Flag(f)
	}
	return out
}

func storeFlags(fl []imap.Flag) []store.Flag {
	out := make([]store.Flag, 0, len(fl))
	for _, f := range fl {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		out = append(out, store.Flag(f))
	}
	return out
}

// targets resolves a sequence or UID set against the client's view and
// returns the matching sequence numbers and UIDs, ascending.
func (sel *selected) targets(numSet imap.NumSet) (seqs, uids []uint32) {
	n := uint32(len(sel.view))
	add := func(i uint32) { seqs = append(seqs, i+1); uids = append(uids, sel.view[i]) }
	seen := map[uint32]bool{}
	addOnce := func(i uint32) {
		if !seen[i] {
			seen[i] = true
			add(i)
		}
	}
	switch set := numSet.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = n
			}
			if stop == 0 {
				stop = n
			}
			if start > stop {
				start, stop = stop, start
			}
			for q := max(start, 1); q <= stop && q <= n; q++ {
				addOnce(q - 1)
			}
		}
	case imap.UIDSet:
		if n == 0 {
			return nil, nil
		}
		maxUID := sel.view[n-1]
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start == 0 {
				start = maxUID
			}
			if stop == 0 {
				stop = maxUID
			}
			if start > stop {
				start, stop = stop, start
			}
			i := sort.Search(len(sel.view), func(i int) bool { return sel.view[i] >= start })
			for ; i < len(sel.view) && sel.view[i] <= stop; i++ {
				addOnce(uint32(i))
			}
		}
	}
	if len(seqs) > 1 && !sort.SliceIsSorted(seqs, func(i, j int) bool { return seqs[i] < seqs[j] }) {
		idx := make([]int, len(seqs))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return seqs[idx[a]] < seqs[idx[b]] })
		s2, u2 := make([]uint32, len(seqs)), make([]uint32, len(seqs))
		for k, i := range idx {
			s2[k], u2[k] = seqs[i], uids[i]
		}
		seqs, uids = s2, u2
	}
	return seqs, uids
}

// beginWrite starts a command that changes the selected mailbox: it is
// refused on a mailbox opened with EXAMINE and once the server is shutting
// down. On success the caller must call sess.srv.leave.
func (sess *session) beginWrite(sel *selected) error {
	if sel.readOnly {
		return errReadOnly()
	}
	return sess.srv.enter()
}

func errReadOnly() error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY", Text: "Mailbox is read-only (opened with EXAMINE)"}
}

// Expunge implements imapserver.Session (EXPUNGE, UID EXPUNGE, and the
// silent expunge of CLOSE).
func (sess *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	if sel.readOnly && *w == (imapserver.ExpungeWriter{}) {
		return nil // CLOSE after EXAMINE: RFC 9051 §6.4.2, nothing is expunged
	}
	if err := sess.beginWrite(sel); err != nil {
		return err
	}
	defer sess.srv.leave()
	var cands []uint32
	for _, u := range sel.view {
		if uids == nil || uids.Contains(imap.UID(u)) {
			cands = append(cands, u)
		}
	}
	var del []uint32
	for _, m := range sel.mb.Lookup(cands) {
		if m.HasFlag(store.FlagDeleted) {
			del = append(del, uint32(m.UID))
		}
	}
	if len(del) == 0 {
		return nil
	}
	removed, err := sel.mb.ExpungeUIDs(sess.ctx(), del)
	if werr := sel.announceExpunged(removed, w.WriteExpunge); err == nil {
		err = werr
	}
	return imapError(err)
}

// announceExpunged writes EXPUNGE for UIDs this session removed and drops
// them from the view.
func (sel *selected) announceExpunged(removed []uint32, write func(uint32) error) error {
	if len(removed) == 0 {
		return nil
	}
	gone := map[uint32]bool{}
	seqs := make([]uint32, 0, len(removed))
	for _, u := range removed {
		if q := sel.seqOf(u); q != 0 {
			seqs = append(seqs, q)
			gone[u] = true
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] > seqs[j] })
	view := make([]uint32, 0, len(sel.view)-len(gone))
	for _, u := range sel.view {
		if !gone[u] {
			view = append(view, u)
		}
	}
	sel.view = view
	var firstErr error
	for _, q := range seqs {
		if err := write(q); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// Store implements imapserver.Session (STORE and UID STORE).
func (sess *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	if err := sess.beginWrite(sel); err != nil {
		return err
	}
	defer sess.srv.leave()
	seqs, uids := sel.targets(sess.resolveSaved(numSet))
	if len(uids) == 0 {
		return nil
	}
	op := store.FlagsSet
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	}
	for _, f := range flags.Flags {
		if strings.HasPrefix(string(f), `\`) && store.Flag(f).Canonical() == store.Flag(f) && !isSystemFlag(f) {
			return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Unknown system flag " + string(f)}
		}
	}
	msgs, err := sel.mb.UpdateFlags(sess.ctx(), uids, op, storeFlags(flags.Flags))
	if err != nil {
		return imapError(err)
	}
	if flags.Silent {
		return nil
	}
	seqByUID := make(map[uint32]uint32, len(uids))
	for i, u := range uids {
		seqByUID[u] = seqs[i]
	}
	_, isUID := numSet.(imap.UIDSet)
	for _, m := range msgs {
		rw := w.CreateMessage(seqByUID[uint32(m.UID)])
		if isUID {
			rw.WriteUID(imap.UID(m.UID))
		}
		rw.WriteFlags(imapFlags(m.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func isSystemFlag(f imap.Flag) bool {
	switch store.Flag(f).Canonical() {
	case store.FlagSeen, store.FlagAnswered, store.FlagFlagged, store.FlagDeleted, store.FlagDraft:
		return true
	}
	return strings.EqualFold(string(f), `\Recent`)
}

// Copy implements imapserver.Session (COPY and UID COPY).
func (sess *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if err := sess.srv.enter(); err != nil {
		return nil, err
	}
	defer sess.srv.leave()
	sel := sess.sel
	_, uids := sel.targets(sess.resolveSaved(numSet))
	if len(uids) == 0 {
		return nil, nil
	}
	src, dst, err := sel.mb.CopyUIDs(sess.ctx(), uids, dest)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox; create it first"}
		}
		return nil, imapError(err)
	}
	return copyData(sess.st, dest, src, dst), nil
}

func copyData(st *maildir.Store, dest string, src, dst []uint32) *imap.CopyData {
	if len(dst) == 0 {
		return nil
	}
	var validity uint32
	if mb, err := st.OpenMailbox(context.Background(), dest); err == nil {
		validity = mb.State().UIDValidity
		_ = mb.Close() // cannot fail
	}
	data := &imap.CopyData{UIDValidity: validity}
	for i := range dst {
		data.SourceUIDs.AddNum(imap.UID(src[i]))
		data.DestUIDs.AddNum(imap.UID(dst[i]))
	}
	return data
}

// Move implements imapserver.SessionMove (MOVE and UID MOVE, RFC 6851).
func (sess *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	if err := sess.beginWrite(sel); err != nil {
		return err
	}
	defer sess.srv.leave()
	_, uids := sel.targets(sess.resolveSaved(numSet))
	if len(uids) == 0 {
		return nil
	}
	src, dst, err := sel.mb.MoveUIDs(sess.ctx(), uids, dest)
	if len(dst) > 0 {
		if werr := w.WriteCopyData(copyData(sess.st, dest, src, dst)); werr != nil {
			return werr
		}
		if werr := sel.announceExpunged(src, w.WriteExpunge); werr != nil {
			return werr
		}
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox; create it first"}
		}
		return imapError(err)
	}
	return nil
}

// resolveSaved replaces the "$" marker (RFC 5182) by the saved result.
func (sess *session) resolveSaved(numSet imap.NumSet) imap.NumSet {
	if !imap.IsSearchRes(numSet) {
		return numSet
	}
	var set imap.UIDSet
	for _, u := range sess.searchRes {
		set.AddNum(imap.UID(u))
	}
	if len(set) == 0 {
		return imap.UIDSet{}
	}
	return set
}
