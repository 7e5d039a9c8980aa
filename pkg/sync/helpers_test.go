package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/maildir"
)

func newMaildir(t testing.TB, root string) *maildir.Store {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	s, err := maildir.Open(root, maildir.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkClose(t, s) })
	return s
}

// checkClose closes a store or mailbox and fails the test if that fails:
// the test goes on to look at what it wrote. (Closing twice is fine.)
func checkClose(t testing.TB, c io.Closer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func flagsOf(m testmail.Message) []store.Flag {
	var fs []store.Flag
	for _, f := range m.Flags {
		fs = append(fs, store.Flag(f))
	}
	for _, k := range m.Keywords {
		fs = append(fs, store.Flag(k))
	}
	return fs
}

// seed appends msgs to s, creating their folders.
func seed(t testing.TB, s store.Store, msgs []testmail.Message) {
	t.Helper()
	ctx := context.Background()
	boxes := map[string]store.Mailbox{}
	defer func() {
		for _, mb := range boxes {
			checkClose(t, mb)
		}
	}()
	for _, m := range msgs {
		mb := boxes[m.Folder]
		if mb == nil {
			if err := s.Create(ctx, m.Folder, nil); err != nil && !errors.Is(err, store.ErrExists) {
				t.Fatalf("create %q: %v", m.Folder, err)
			}
			var err error
			if mb, err = s.Open(ctx, m.Folder); err != nil {
				t.Fatal(err)
			}
			boxes[m.Folder] = mb
		}
		if _, err := mb.Append(ctx, bytes.NewReader(m.Raw), store.AppendOptions{Flags: flagsOf(m), Date: m.Date}); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

// appendRaw appends one message to a folder of s.
func appendRaw(t testing.TB, s store.Store, folder string, raw []byte, flags ...store.Flag) store.UID {
	t.Helper()
	mb := openBox(t, s, folder)
	defer checkClose(t, mb)
	uid, err := mb.Append(context.Background(), bytes.NewReader(raw), store.AppendOptions{Flags: flags, Date: testDate})
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

func openBox(t testing.TB, s store.Store, folder string) store.Mailbox {
	t.Helper()
	mb, err := s.Open(context.Background(), folder)
	if err != nil {
		t.Fatalf("open %q: %v", folder, err)
	}
	return mb
}

// infos lists a folder's messages.
func infos(t testing.TB, s store.Store, folder string) []store.MessageInfo {
	t.Helper()
	mb := openBox(t, s, folder)
	defer checkClose(t, mb)
	var out []store.MessageInfo
	if err := mb.Messages(context.Background(), 1, func(m store.MessageInfo) error { out = append(out, m); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshot describes every message of every folder of s: content hash,
// flags, internal date (with zone offset); sorted, so that two equal
// snapshots hold the same multiset of messages.
func snapshot(t testing.TB, s store.Store) map[string][]string {
	t.Helper()
	ctx := context.Background()
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, info := range list {
		if info.Has(store.AttrNoSelect) {
			continue
		}
		mb := openBox(t, s, info.Name)
		var recs []string
		err := mb.Messages(ctx, 1, func(m store.MessageInfo) error {
			rc, size, err := mb.OpenMessage(ctx, m.UID)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, rc)
			_ = rc.Close() // read only
			if err != nil {
				return err
			}
			if n != size || n != m.Size {
				return fmt.Errorf("UID %d: read %d bytes, size %d, listed %d", m.UID, n, size, m.Size)
			}
			_, off := m.Date.Zone()
			recs = append(recs, fmt.Sprintf("%x flags=[%s] date=%d zone=%+d size=%d", h.Sum(nil)[:8], flagKey(m.Flags), m.Date.Unix(), off, m.Size))
			return nil
		})
		checkClose(t, mb)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(recs)
		if len(recs) > 0 {
			out[info.Name] = recs
		}
	}
	return out
}

// withoutZones drops the internal dates' zones from a snapshot, for stores
// that keep the instant only.
func withoutZones(s map[string][]string) map[string][]string {
	re := regexp.MustCompile(` zone=\S+`)
	out := map[string][]string{}
	for f, recs := range s {
		for _, r := range recs {
			out[f] = append(out[f], re.ReplaceAllString(r, ""))
		}
	}
	return out
}

// selectableFolders returns the number of folders of s that can hold
// messages.
func selectableFolders(t testing.TB, s store.Store) int {
	t.Helper()
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range list {
		if !m.Has(store.AttrNoSelect) {
			n++
		}
	}
	return n
}

// testDate is the internal date of messages appended by appendRaw.
var testDate = time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("", 2*3600))

func sameSnapshots(t testing.TB, what string, got, want map[string][]string) {
	t.Helper()
	for f, w := range want {
		g := got[f]
		if strings.Join(g, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s: folder %q differs:\n got %d messages\n%s\nwant %d\n%s", what, f, len(g), strings.Join(g, "\n"), len(w), strings.Join(w, "\n"))
		}
	}
	for f := range got {
		if _, ok := want[f]; !ok {
			t.Errorf("%s: unexpected folder %q with %d messages", what, f, len(got[f]))
		}
	}
}

func run(t testing.TB, src, dst store.Store, opts Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), src, dst, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func totalMessages(msgs []testmail.Message) (n int, bytes int64) {
	for _, m := range msgs {
		bytes += int64(len(m.Raw))
	}
	return len(msgs), bytes
}

// wrapStore decorates a store for tests: it can present the names of a
// '/'-delimited store under a personal-namespace prefix with '.' as
// delimiter (Courier style), offer store.FlagLister and
// store.HeaderOpener, refuse messages, lose APPEND replies, and count
// calls.
type wrapStore struct {
	store.Store
	prefix  string // with courier, "INBOX."
	courier bool
	rich    bool // mailboxes implement FlagLister, HeaderOpener and AppendSize
	noUIDs  bool // Append returns UID 0, as without UIDPLUS

	// appendHook, if set, is called for every Append with the message's
	// bytes; it returns handled=true when it did the append (or refused it).
	appendHook func(ctx context.Context, mb store.Mailbox, raw []byte, opts store.AppendOptions) (uid store.UID, handled bool, err error)

	// batchMsgs, when > 1, makes mailboxes take batches of up to that
	// many messages (store.BatchAppender), all or nothing as MULTIAPPEND.
	// batchHook, if set, sees each batch first: it says whether to store
	// the batch, and the error to return (after storing, if it does).
	batchMsgs int
	// marks, when set, gives mailboxes a change mark (store.ChangeMarker)
	// computed from their status and every message's flags.
	marks bool
	// openMessageHook, if set, is called before every OpenMessage.
	openMessageHook func(mb store.Mailbox, uid store.UID)
	batchHook       func(raws [][]byte) (storeIt bool, err error)
	batches         atomic.Int64

	// bumpAfter, when > 0, makes every mailbox handle opened after the
	// bumpAfter-th report a UIDVALIDITY one higher.
	bumpAfter int64

	t          testing.TB
	openSeq    atomic.Int64
	opens      stdsync.Map // name → *atomic.Int64
	messages   atomic.Int64
	flagLists  atomic.Int64
	appends    atomic.Int64
	sized      atomic.Int64
	headerOpen atomic.Int64
}

func (s *wrapStore) outer(inner string) string {
	if !s.courier || inner == "INBOX" {
		return inner
	}
	return s.prefix + strings.ReplaceAll(inner, "/", ".")
}

func (s *wrapStore) inner(outer string) string {
	if !s.courier || strings.EqualFold(outer, "INBOX") {
		return outer
	}
	return strings.ReplaceAll(strings.TrimPrefix(outer, s.prefix), ".", "/")
}

func (s *wrapStore) Delimiter() rune {
	if s.courier {
		return '.'
	}
	return s.Store.Delimiter()
}

func (s *wrapStore) PersonalPrefix() string { return s.prefix }

func (s *wrapStore) List(ctx context.Context) ([]store.MailboxInfo, error) {
	l, err := s.Store.List(ctx)
	for i := range l {
		l[i].Name = s.outer(l[i].Name)
		l[i].Delim = s.Delimiter()
	}
	return l, err
}

func (s *wrapStore) Create(ctx context.Context, name string, attrs []store.Attr) error {
	return s.Store.Create(ctx, s.inner(name), attrs)
}

func (s *wrapStore) Open(ctx context.Context, name string) (store.Mailbox, error) {
	n, _ := s.opens.LoadOrStore(name, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	mb, err := s.Store.Open(ctx, s.inner(name))
	if err != nil {
		return nil, err
	}
	w := &wrapMailbox{Mailbox: mb, s: s, name: name, seq: s.openSeq.Add(1)}
	switch {
	case s.rich && s.batchMsgs > 1:
		return &richBatchMailbox{richMailbox{w}}, nil
	case s.rich:
		return &richMailbox{w}, nil
	case s.batchMsgs > 1:
		return &batchMailbox{w}, nil
	}
	return w, nil
}

func (s *wrapStore) openCount(name string) int64 {
	n, ok := s.opens.Load(name)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

type wrapMailbox struct {
	store.Mailbox
	s    *wrapStore
	name string
	seq  int64
}

func (m *wrapMailbox) Name() string { return m.name }

func (m *wrapMailbox) Status(ctx context.Context) (store.Status, error) {
	st, err := m.Mailbox.Status(ctx)
	if m.s.bumpAfter > 0 && m.seq > m.s.bumpAfter {
		st.UIDValidity++
	}
	return st, err
}

// ChangeMark is UIDVALIDITY, UIDNEXT, the count and every message's UID
// and flags as the mailbox is now (read around the wrapper's counters).
func (m *wrapMailbox) ChangeMark() string {
	if !m.s.marks {
		return ""
	}
	st, err := m.Mailbox.Status(context.Background())
	if err != nil {
		m.s.t.Errorf("ChangeMark: %v", err)
		return ""
	}
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "%d/%d/%d", st.UIDValidity, st.UIDNext, st.Messages)
	err = m.Mailbox.Messages(context.Background(), 1, func(info store.MessageInfo) error {
		_, _ = fmt.Fprintf(h, "|%d:%v", info.UID, info.Flags)
		return nil
	})
	if err != nil {
		m.s.t.Errorf("ChangeMark: %v", err)
		return ""
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func (m *wrapMailbox) OpenMessage(ctx context.Context, uid store.UID) (io.ReadCloser, int64, error) {
	if h := m.s.openMessageHook; h != nil {
		h(m.Mailbox, uid)
	}
	return m.Mailbox.OpenMessage(ctx, uid)
}

func (m *wrapMailbox) Messages(ctx context.Context, from store.UID, fn func(store.MessageInfo) error) error {
	m.s.messages.Add(1)
	return m.Mailbox.Messages(ctx, from, fn)
}

func (m *wrapMailbox) Append(ctx context.Context, r io.Reader, opts store.AppendOptions) (store.UID, error) {
	m.s.appends.Add(1)
	raw, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	if sz, ok := r.(interface{ Size() int64 }); !ok || sz.Size() != int64(len(raw)) {
		m.s.t.Errorf("Append reader does not announce its size %d", len(raw))
	}
	return m.appendRaw(ctx, raw, opts)
}

func (m *wrapMailbox) appendRaw(ctx context.Context, raw []byte, opts store.AppendOptions) (store.UID, error) {
	uid, handled, err := store.UID(0), false, error(nil)
	if m.s.appendHook != nil {
		uid, handled, err = m.s.appendHook(ctx, m.Mailbox, raw, opts)
	}
	if !handled {
		uid, err = m.Mailbox.Append(ctx, bytes.NewReader(raw), opts)
	}
	if m.s.noUIDs {
		uid = 0
	}
	return uid, err
}

func (m *richMailbox) AppendSize(ctx context.Context, r io.Reader, size int64, opts store.AppendOptions) (store.UID, error) {
	m.s.sized.Add(1)
	raw, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	if int64(len(raw)) != size {
		m.s.t.Errorf("AppendSize: size %d, %d bytes", size, len(raw))
	}
	return m.appendRaw(ctx, raw, opts)
}

type richMailbox struct{ *wrapMailbox }

func (m *richMailbox) MessageFlags(ctx context.Context, from store.UID, fn func(store.MessageInfo) error) error {
	m.s.flagLists.Add(1)
	return m.Mailbox.Messages(ctx, from, func(info store.MessageInfo) error {
		info.MessageID = ""
		return fn(info)
	})
}

func (m *richMailbox) OpenHeader(ctx context.Context, uid store.UID) (io.ReadCloser, error) {
	m.s.headerOpen.Add(1)
	rc, _, err := m.Mailbox.OpenMessage(ctx, uid)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }() // read only
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		data = data[:i+4]
	} else if i := bytes.Index(data, []byte("\n\n")); i >= 0 {
		data = data[:i+2]
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// batchMailbox takes batches of appends, all or nothing.
type batchMailbox struct{ *wrapMailbox }

type richBatchMailbox struct{ richMailbox }

func (m *richBatchMailbox) BatchLimits() (int, int64) {
	return (&batchMailbox{m.wrapMailbox}).BatchLimits()
}

func (m *richBatchMailbox) AppendBatch(ctx context.Context, items []store.BatchItem) ([]store.UID, error) {
	return (&batchMailbox{m.wrapMailbox}).AppendBatch(ctx, items)
}

func (m *batchMailbox) BatchLimits() (int, int64) { return m.s.batchMsgs, 1 << 20 }

func (m *batchMailbox) AppendBatch(ctx context.Context, items []store.BatchItem) ([]store.UID, error) {
	m.s.batches.Add(1)
	var (
		raws    [][]byte
		openErr error
	)
	for _, it := range items {
		rc, size, err := it.Open(ctx)
		if err != nil {
			openErr = err
			break
		}
		raw, err := io.ReadAll(rc)
		_ = rc.Close() // read only
		if err != nil {
			return nil, err
		}
		if int64(len(raw)) != size {
			m.s.t.Errorf("AppendBatch: item of size %d has %d bytes", size, len(raw))
		}
		raws = append(raws, raw)
	}
	if len(raws) == 0 {
		return nil, openErr
	}
	storeIt, err := true, error(nil)
	if m.s.batchHook != nil {
		storeIt, err = m.s.batchHook(raws)
	}
	var uids []store.UID
	if storeIt {
		for i, raw := range raws {
			uid, aerr := m.Mailbox.Append(ctx, bytes.NewReader(raw), items[i].Opts)
			if aerr != nil {
				return uids, aerr
			}
			uids = append(uids, uid)
		}
	}
	if err != nil {
		return nil, err
	}
	return uids, openErr
}

// messageIDOf returns the Message-ID header of raw, "" if none.
func messageIDOf(raw []byte) string {
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			return ""
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Message-ID") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// refusal is an error a target gives for one message: permanent.
type refusal struct{ reason string }

func (e *refusal) Error() string   { return e.reason }
func (e *refusal) Permanent() bool { return true }

// lostReply is the error of an APPEND whose reply never came.
type lostReply struct{}

func (lostReply) Error() string   { return "connection lost while waiting for the APPEND reply" }
func (lostReply) Uncertain() bool { return true }
