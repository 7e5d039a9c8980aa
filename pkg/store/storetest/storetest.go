// Package storetest is the conformance suite of the store.Store and
// store.Mailbox contracts. Every implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := maildir.Open(t.TempDir(), maildir.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite uses only the interfaces (plus the optional store.Mover) and
// the messages of internal/testmail, so it runs unchanged against a Maildir
// on disk and against a remote IMAP account.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

// Run runs the conformance suite. newStore must return a store holding no
// mailbox but INBOX, and INBOX empty; it is called once per subtest, and
// the store is closed when the subtest ends (register any other cleanup
// with t.Cleanup). Mailbox names in the suite use '/' as the hierarchy
// separator and are translated to the store's Delimiter. Messages must
// come back byte for byte, bare-LF line endings included, and internal
// dates as the same instant at second precision (the zone may differ).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ListIncludesInbox", testListIncludesInbox},
		{"CreateSpecialUse", testCreateSpecialUse},
		{"CreateNested", testCreateNested},
		{"CreateExists", testCreateExists},
		{"DeleteInbox", testDeleteInbox},
		{"DeleteNotFound", testDeleteNotFound},
		{"Delete", testDelete},
		{"DeleteRecreateNoStaleUIDs", testDeleteRecreate},
		{"Rename", testRename},
		{"RenameErrors", testRenameErrors},
		{"OpenNotFound", testOpenNotFound},
		{"Status", testStatus},
		{"AppendCorpus", testAppendCorpus},
		{"AppendBatch", testAppendBatch},
		{"AppendLineEndings", testAppendLineEndings},
		{"AppendDateZero", testAppendDateZero},
		{"AppendDateInstant", testAppendDateInstant},
		{"AppendIgnoresRecent", testAppendIgnoresRecent},
		{"FlagsSorted", testFlagsSorted},
		{"MessagesFrom", testMessagesFrom},
		{"MessagesStopsOnError", testMessagesStopsOnError},
		{"OpenMessage", testOpenMessage},
		{"UnknownUID", testUnknownUID},
		{"SetFlags", testSetFlags},
		{"Expunge", testExpunge},
		{"ExpungeLastKeepsUIDNext", testExpungeLastKeepsUIDNext},
		{"Copy", testCopy},
		{"CopyNotFound", testCopyNotFound},
		{"Move", testMove},
		{"NonASCIIAndDeepNames", testNonASCIIAndDeepNames},
		{"MessageIDs", testMessageIDs},
		{"Reopen", testReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// mboxName translates a '/'-separated name to the store's delimiter.
func mboxName(s store.Store, name string) string {
	return strings.ReplaceAll(name, "/", string(s.Delimiter()))
}

func create(t *testing.T, s store.Store, name string, attrs ...store.Attr) string {
	t.Helper()
	name = mboxName(s, name)
	if err := s.Create(t.Context(), name, attrs); err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	return name
}

func open(t *testing.T, s store.Store, name string) store.Mailbox {
	t.Helper()
	mb, err := s.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() { closeMailbox(t, mb) })
	return mb
}

// closeMailbox closes mb and fails the test if Close fails. The cleanup of
// open closes again a mailbox the test closed itself, which must not fail
// either.
func closeMailbox(t *testing.T, mb store.Mailbox) {
	t.Helper()
	name := mb.Name()
	if err := mb.Close(); err != nil {
		t.Errorf("Close(%q): %v", name, err)
	}
}

// createOpen creates a mailbox (unless it is INBOX) and opens it.
func createOpen(t *testing.T, s store.Store, name string) store.Mailbox {
	t.Helper()
	if !strings.EqualFold(name, "INBOX") {
		name = create(t, s, name)
	}
	return open(t, s, name)
}

func list(t *testing.T, s store.Store) map[string]store.MailboxInfo {
	t.Helper()
	infos, err := s.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	out := make(map[string]store.MailboxInfo, len(infos))
	for _, mi := range infos {
		if _, dup := out[mi.Name]; dup {
			t.Errorf("List returns %q twice", mi.Name)
		}
		out[mi.Name] = mi
	}
	return out
}

// flagsOf returns a test message's flags and keywords as store flags.
func flagsOf(m testmail.Message) []store.Flag {
	var fl []store.Flag
	for _, f := range m.Flags {
		fl = append(fl, store.Flag(f))
	}
	for _, k := range m.Keywords {
		fl = append(fl, store.Flag(k))
	}
	return fl
}

func appendMsg(t *testing.T, mb store.Mailbox, m testmail.Message) store.UID {
	t.Helper()
	uid, err := mb.Append(t.Context(), bytes.NewReader(m.Raw), store.AppendOptions{Flags: flagsOf(m), Date: m.Date})
	if err != nil {
		t.Fatalf("Append to %q: %v", mb.Name(), err)
	}
	if uid == 0 {
		t.Fatalf("Append to %q returned UID 0", mb.Name())
	}
	return uid
}

// appendN appends the first n corpus messages (all of them when n <= 0)
// to mb, whatever their folder, and returns them with their UIDs.
func appendN(t *testing.T, mb store.Mailbox, n int) ([]testmail.Message, []store.UID) {
	t.Helper()
	msgs := testmail.Corpus()
	if n > 0 && n < len(msgs) {
		msgs = msgs[:n]
	}
	uids := make([]store.UID, len(msgs))
	for i, m := range msgs {
		uids[i] = appendMsg(t, mb, m)
		if i > 0 && uids[i] <= uids[i-1] {
			t.Fatalf("Append returned UID %d after %d: not ascending", uids[i], uids[i-1])
		}
	}
	return msgs, uids
}

func all(t *testing.T, mb store.Mailbox) []store.MessageInfo {
	t.Helper()
	return from(t, mb, 1)
}

func from(t *testing.T, mb store.Mailbox, uid store.UID) []store.MessageInfo {
	t.Helper()
	var out []store.MessageInfo
	err := mb.Messages(t.Context(), uid, func(mi store.MessageInfo) error {
		out = append(out, mi)
		return nil
	})
	if err != nil {
		t.Fatalf("Messages(%q, %d): %v", mb.Name(), uid, err)
	}
	for i := 1; i < len(out); i++ {
		if out[i].UID <= out[i-1].UID {
			t.Fatalf("Messages(%q): UID %d after %d: not ascending", mb.Name(), out[i].UID, out[i-1].UID)
		}
	}
	return out
}

func byUID(t *testing.T, mb store.Mailbox) map[store.UID]store.MessageInfo {
	t.Helper()
	out := map[store.UID]store.MessageInfo{}
	for _, mi := range all(t, mb) {
		out[mi.UID] = mi
	}
	return out
}

func read(t *testing.T, mb store.Mailbox, uid store.UID) []byte {
	t.Helper()
	rc, size, err := mb.OpenMessage(t.Context(), uid)
	if err != nil {
		t.Fatalf("OpenMessage(%q, %d): %v", mb.Name(), uid, err)
	}
	defer func() {
		if err := rc.Close(); err != nil {
			t.Errorf("close UID %d of %q: %v", uid, mb.Name(), err)
		}
	}()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read UID %d of %q: %v", uid, mb.Name(), err)
	}
	if size != int64(len(data)) {
		t.Errorf("OpenMessage(%q, %d): size %d, read %d bytes", mb.Name(), uid, size, len(data))
	}
	return data
}

func status(t *testing.T, mb store.Mailbox) store.Status {
	t.Helper()
	st, err := mb.Status(t.Context())
	if err != nil {
		t.Fatalf("Status(%q): %v", mb.Name(), err)
	}
	return st
}

// flagSet normalizes flags for comparison: system flags canonical,
// keywords case-folded (IMAP keywords are case-insensitive), no \Recent.
func flagSet(flags []store.Flag) []string {
	var out []string
	for _, f := range store.SortFlags(flags) {
		if f.IsSystem() {
			out = append(out, string(f))
		} else {
			out = append(out, strings.ToLower(string(f)))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sameFlags(got, want []store.Flag) bool {
	return slices.Equal(flagSet(got), flagSet(want))
}

// checkInfo compares a message's metadata with what was appended.
func checkInfo(t *testing.T, what string, got store.MessageInfo, want testmail.Message) {
	t.Helper()
	if !sameFlags(got.Flags, flagsOf(want)) {
		t.Errorf("%s: flags %v, want %v", what, got.Flags, flagsOf(want))
	}
	if !got.Date.Equal(want.Date) {
		t.Errorf("%s: internal date %v, want %v (same instant)", what, got.Date, want.Date)
	}
	if got.Size != int64(len(want.Raw)) {
		t.Errorf("%s: size %d, want %d", what, got.Size, len(want.Raw))
	}
	wantID := ""
	if want.MessageID != "" {
		wantID = "<" + want.MessageID + ">"
	}
	if got.MessageID != wantID {
		t.Errorf("%s: Message-ID %q, want %q", what, got.MessageID, wantID)
	}
}

func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s: content differs at byte %d (got %d bytes, want %d)", what, i, len(got), len(want))
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

func testListIncludesInbox(t *testing.T, s store.Store) {
	infos, err := s.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	n := 0
	for _, mi := range infos {
		if mi.Name == "INBOX" {
			n++
			if mi.Has(store.AttrNoSelect) {
				t.Errorf("INBOX listed as \\Noselect")
			}
		}
		if mi.Delim != s.Delimiter() {
			t.Errorf("List: %q has delimiter %q, store says %q", mi.Name, mi.Delim, s.Delimiter())
		}
	}
	if n != 1 {
		t.Errorf("List names INBOX %d times, want once: %v", n, infos)
	}
	mb := open(t, s, "INBOX")
	if mb.Name() != "INBOX" {
		t.Errorf("Name() = %q, want INBOX", mb.Name())
	}
	// INBOX is case-insensitive (RFC 9051 §5.1).
	mb2 := open(t, s, "inbox")
	appendMsg(t, mb2, testmail.Corpus()[0])
	if st := status(t, mb); st.Messages != 1 {
		t.Errorf("message appended through \"inbox\" not in INBOX: %d messages", st.Messages)
	}
}

func testCreateSpecialUse(t *testing.T, s store.Store) {
	cases := []struct {
		name string
		attr store.Attr
	}{
		{"Sent Items", store.AttrSent},
		{"Bin", store.AttrTrash},
		{"Spam", store.AttrJunk},
		{"Entwürfe", store.AttrDrafts},
		{"Archive", store.AttrArchive},
	}
	for _, c := range cases {
		create(t, s, c.name, c.attr)
	}
	plain := create(t, s, "Plain")
	got := list(t, s)
	for _, c := range cases {
		mi, ok := got[c.name]
		if !ok {
			t.Errorf("List misses %q", c.name)
			continue
		}
		if !mi.Has(c.attr) {
			t.Errorf("List: %q has attributes %v, want %s", c.name, mi.Attrs, c.attr)
		}
		if mi.Has(store.AttrNoSelect) {
			t.Errorf("List: %q is \\Noselect", c.name)
		}
	}
	for _, a := range got[plain].Attrs {
		if a.IsSpecialUse() {
			t.Errorf("List: %q created without attributes has %v", plain, got[plain].Attrs)
		}
	}
}

func testCreateNested(t *testing.T, s store.Store) {
	child := create(t, s, "Parent/Child/Grandchild")
	got := list(t, s)
	for _, n := range []string{"Parent", "Parent/Child", "Parent/Child/Grandchild"} {
		if _, ok := got[mboxName(s, n)]; !ok {
			t.Errorf("List misses %q after creating %q", mboxName(s, n), child)
		}
	}
	if got[child].Has(store.AttrNoSelect) {
		t.Errorf("%q is \\Noselect", child)
	}
	mb := open(t, s, child)
	if mb.Name() != child {
		t.Errorf("Name() = %q, want %q", mb.Name(), child)
	}
	appendMsg(t, mb, testmail.Corpus()[0])
	// A sibling below an existing parent.
	sib := create(t, s, "Parent/Sibling")
	if _, ok := list(t, s)[sib]; !ok {
		t.Errorf("List misses %q", sib)
	}
}

func testCreateExists(t *testing.T, s store.Store) {
	name := create(t, s, "Twice")
	wantErr(t, "Create existing", s.Create(t.Context(), name, nil), store.ErrExists)
	wantErr(t, "Create INBOX", s.Create(t.Context(), "INBOX", nil), store.ErrExists)
	nested := create(t, s, "A/B")
	wantErr(t, "Create existing nested", s.Create(t.Context(), nested, nil), store.ErrExists)
}

func testDeleteInbox(t *testing.T, s store.Store) {
	wantErr(t, "Delete INBOX", s.Delete(t.Context(), "INBOX"), store.ErrInbox)
	wantErr(t, "Delete inbox", s.Delete(t.Context(), "inbox"), store.ErrInbox)
	if _, ok := list(t, s)["INBOX"]; !ok {
		t.Errorf("INBOX gone after a refused Delete")
	}
}

func testDeleteNotFound(t *testing.T, s store.Store) {
	wantErr(t, "Delete missing", s.Delete(t.Context(), "No Such Mailbox"), store.ErrNotFound)
}

func testDelete(t *testing.T, s store.Store) {
	name := create(t, s, "Doomed")
	mb := open(t, s, name)
	appendN(t, mb, 3)
	closeMailbox(t, mb)
	if err := s.Delete(t.Context(), name); err != nil {
		t.Fatalf("Delete(%q): %v", name, err)
	}
	if _, ok := list(t, s)[name]; ok {
		t.Errorf("List still has %q after Delete", name)
	}
	_, err := s.Open(t.Context(), name)
	wantErr(t, "Open deleted", err, store.ErrNotFound)
	wantErr(t, "Delete twice", s.Delete(t.Context(), name), store.ErrNotFound)
}

// testDeleteRecreate checks RFC 9051 §2.3.1.1: a mailbox deleted and
// created again under the same name must not show new messages under old
// UIDs with the old UIDVALIDITY.
func testDeleteRecreate(t *testing.T, s store.Store) {
	msgs := testmail.Corpus()
	name := create(t, s, "Phoenix")
	mb := open(t, s, name)
	uid1 := appendMsg(t, mb, msgs[0])
	st1 := status(t, mb)
	closeMailbox(t, mb)
	if err := s.Delete(t.Context(), name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	create(t, s, name)
	mb = open(t, s, name)
	if st := status(t, mb); st.Messages != 0 {
		t.Errorf("re-created %q has %d messages, want 0", name, st.Messages)
	}
	uid2 := appendMsg(t, mb, msgs[1])
	st2 := status(t, mb)
	if st2.UIDValidity == st1.UIDValidity && uid2 <= uid1 {
		t.Errorf("re-created %q reuses UID %d under the same UIDVALIDITY %d", name, uid2, st2.UIDValidity)
	}
}

func testRename(t *testing.T, s store.Store) {
	msgs := testmail.Corpus()
	old := create(t, s, "Old")
	oldChild := create(t, s, "Old/Child")
	mb := open(t, s, old)
	appendMsg(t, mb, msgs[0])
	appendMsg(t, mb, msgs[1])
	closeMailbox(t, mb)
	cb := open(t, s, oldChild)
	appendMsg(t, cb, msgs[2])
	closeMailbox(t, cb)

	renamed := mboxName(s, "New Name")
	if err := s.Rename(t.Context(), old, renamed); err != nil {
		t.Fatalf("Rename(%q, %q): %v", old, renamed, err)
	}
	got := list(t, s)
	for _, n := range []string{old, oldChild} {
		if mi, ok := got[n]; ok && !mi.Has(store.AttrNoSelect) {
			t.Errorf("List still has %q after Rename", n)
		}
	}
	newChild := mboxName(s, "New Name/Child")
	for _, n := range []string{renamed, newChild} {
		if _, ok := got[n]; !ok {
			t.Errorf("List misses %q after Rename", n)
		}
	}
	mb = open(t, s, renamed)
	infos := all(t, mb)
	if len(infos) != 2 {
		t.Fatalf("%q has %d messages after Rename, want 2", renamed, len(infos))
	}
	for i, mi := range infos {
		checkInfo(t, fmt.Sprintf("renamed message %d", i), mi, msgs[i])
		checkBytes(t, fmt.Sprintf("renamed message %d", i), read(t, mb, mi.UID), msgs[i].Raw)
	}
	cb = open(t, s, newChild)
	if infos := all(t, cb); len(infos) != 1 {
		t.Errorf("child %q has %d messages after Rename, want 1", newChild, len(infos))
	} else {
		checkBytes(t, "renamed child's message", read(t, cb, infos[0].UID), msgs[2].Raw)
	}
	_, err := s.Open(t.Context(), old)
	wantErr(t, "Open old name", err, store.ErrNotFound)
}

func testRenameErrors(t *testing.T, s store.Store) {
	a := create(t, s, "A")
	b := create(t, s, "B")
	wantErr(t, "Rename onto existing", s.Rename(t.Context(), a, b), store.ErrExists)
	wantErr(t, "Rename missing", s.Rename(t.Context(), mboxName(s, "Missing"), mboxName(s, "Other")), store.ErrNotFound)
	if got := list(t, s); got[a].Name == "" || got[b].Name == "" {
		t.Errorf("a failed Rename changed the mailboxes: %v", got)
	}
}

func testOpenNotFound(t *testing.T, s store.Store) {
	_, err := s.Open(t.Context(), "No Such Mailbox")
	wantErr(t, "Open missing", err, store.ErrNotFound)
}

func testStatus(t *testing.T, s store.Store) {
	mb := createOpen(t, s, "Counted")
	st0 := status(t, mb)
	if st0.UIDValidity == 0 {
		t.Errorf("UIDVALIDITY is 0")
	}
	if st0.UIDNext == 0 {
		t.Errorf("UIDNEXT is 0")
	}
	if st0.Messages != 0 || st0.Unseen != 0 || st0.Deleted != 0 || st0.Size != 0 {
		t.Errorf("empty mailbox: status %+v", st0)
	}
	msgs := testmail.Corpus()[:20]
	prev := st0.UIDNext
	var want store.Status
	for _, m := range msgs {
		uid := appendMsg(t, mb, m)
		if uid < prev {
			t.Errorf("Append returned UID %d below the previous UIDNEXT %d", uid, prev)
		}
		st := status(t, mb)
		if st.UIDNext <= uid {
			t.Errorf("UIDNEXT %d not above the new UID %d", st.UIDNext, uid)
		}
		if st.UIDValidity != st0.UIDValidity {
			t.Errorf("UIDVALIDITY changed from %d to %d", st0.UIDValidity, st.UIDValidity)
		}
		prev = st.UIDNext
		want.Messages++
		fl := flagsOf(m)
		if !slices.Contains(fl, store.FlagSeen) {
			want.Unseen++
		}
		if slices.Contains(fl, store.FlagDeleted) {
			want.Deleted++
		}
		want.Size += int64(len(m.Raw))
	}
	st := status(t, mb)
	if st.Messages != want.Messages || st.Unseen != want.Unseen || st.Deleted != want.Deleted || st.Size != want.Size {
		t.Errorf("status %+v, want messages %d unseen %d deleted %d size %d",
			st, want.Messages, want.Unseen, want.Deleted, want.Size)
	}
}

func testAppendCorpus(t *testing.T, s store.Store) {
	msgs := testmail.Corpus()
	boxes := map[string]store.Mailbox{}
	type placed struct {
		m   testmail.Message
		uid store.UID
	}
	got := map[string][]placed{}
	for _, m := range msgs {
		name := mboxName(s, m.Folder)
		mb := boxes[name]
		if mb == nil {
			mb = createOpen(t, s, name)
			boxes[name] = mb
		}
		uid := appendMsg(t, mb, m)
		if p := got[name]; len(p) > 0 && uid <= p[len(p)-1].uid {
			t.Errorf("%q: Append returned UID %d after %d", name, uid, p[len(p)-1].uid)
		}
		got[name] = append(got[name], placed{m, uid})
	}
	for name, ps := range got {
		mb := boxes[name]
		infos := byUID(t, mb)
		if len(infos) != len(ps) {
			t.Errorf("%q holds %d messages, want %d", name, len(infos), len(ps))
		}
		for _, p := range ps {
			what := fmt.Sprintf("%q UID %d (%s)", name, p.uid, p.m.Kind)
			mi, ok := infos[p.uid]
			if !ok {
				t.Errorf("%s: missing", what)
				continue
			}
			checkInfo(t, what, mi, p.m)
			checkBytes(t, what, read(t, mb, p.uid), p.m.Raw)
		}
	}
}

// testAppendBatch checks store.BatchAppender, when the mailbox has it:
// items stored in order with their flags, dates and bytes, the UIDs
// returned are theirs (or 0), and an item whose Open fails ends the batch
// there, with the items before it stored and Open's error returned.
func testAppendBatch(t *testing.T, s store.Store) {
	mb := createOpen(t, s, "INBOX")
	ba, ok := mb.(store.BatchAppender)
	if !ok {
		t.Skip("the mailbox does not implement store.BatchAppender")
	}
	if n, bytes := ba.BatchLimits(); n < 0 || bytes < 0 || (n > 0 && bytes == 0) {
		t.Errorf("BatchLimits() = %d, %d", n, bytes)
	}
	var msgs []testmail.Message
	for _, m := range testmail.Corpus() {
		if m.Kind != testmail.KindBareLF && len(msgs) < 8 {
			msgs = append(msgs, m)
		}
	}
	opened := 0
	items := make([]store.BatchItem, len(msgs))
	for i, m := range msgs {
		items[i] = store.BatchItem{
			Opts: store.AppendOptions{Flags: flagsOf(m), Date: m.Date},
			Open: func(context.Context) (io.ReadCloser, int64, error) {
				opened++
				return io.NopCloser(bytes.NewReader(m.Raw)), int64(len(m.Raw)), nil
			},
		}
	}
	boom := errors.New("source gone")
	broken := slices.Clone(items)
	broken[5].Open = func(context.Context) (io.ReadCloser, int64, error) { return nil, 0, boom }
	uids, err := ba.AppendBatch(t.Context(), broken)
	if !errors.Is(err, boom) || len(uids) != 5 {
		t.Fatalf("AppendBatch with item 5 failing: %d UIDs, %v; want 5 and its error", len(uids), err)
	}
	more, err := ba.AppendBatch(t.Context(), items[5:])
	if err != nil || len(more) != 3 {
		t.Fatalf("AppendBatch of the rest: %d UIDs, %v", len(more), err)
	}
	uids = append(uids, more...)
	if opened != 8 {
		t.Errorf("%d items opened, want 8 (each once)", opened)
	}
	list := all(t, mb)
	if len(list) != len(msgs) {
		t.Fatalf("%d messages stored, want %d", len(list), len(msgs))
	}
	for i, mi := range list {
		what := fmt.Sprintf("batch item %d (%s)", i, msgs[i].Kind)
		if uids[i] != 0 && uids[i] != mi.UID {
			t.Errorf("%s: stored as UID %d, AppendBatch said %d", what, mi.UID, uids[i])
		}
		checkInfo(t, what, mi, msgs[i])
		checkBytes(t, what, read(t, mb, mi.UID), msgs[i].Raw)
	}
}

func testAppendLineEndings(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	cases := map[string][]byte{
		"crlf":      []byte("From: a@example.com\r\nSubject: crlf\r\n\r\nline one\r\nline two\r\n"),
		"bare-lf":   []byte("From: a@example.com\nSubject: lf\n\nline one\nline two\n"),
		"mixed":     []byte("From: a@example.com\r\nSubject: mixed\n\r\nline one\nline two\r\n\r\n"),
		"no-eol":    []byte("From: a@example.com\r\nSubject: no final newline\r\n\r\nlast line"),
		"binary":    append([]byte("From: a@example.com\r\nSubject: 8-bit\r\n\r\n"), 0xe6, 0x97, 0xa5, 0xff, '\r', '\n'),
		"bare-cr":   []byte("From: a@example.com\r\nSubject: cr\r\n\r\nodd\rline\r\n"),
		"long-line": append([]byte("From: a@example.com\r\n\r\n"), bytes.Repeat([]byte("x"), 20000)...),
	}
	for _, m := range testmail.Corpus() {
		if m.Kind == testmail.KindBareLF {
			cases["corpus-"+m.Kind] = m.Raw
			break
		}
	}
	date := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, raw := range cases {
		uid, err := mb.Append(t.Context(), bytes.NewReader(raw), store.AppendOptions{Date: date})
		if err != nil {
			t.Fatalf("Append %s: %v", name, err)
		}
		checkBytes(t, name, read(t, mb, uid), raw)
		infos := byUID(t, mb)
		if infos[uid].Size != int64(len(raw)) {
			t.Errorf("%s: size %d, want %d", name, infos[uid].Size, len(raw))
		}
	}
}

func testAppendDateZero(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	before := time.Now().Add(-time.Minute)
	uid, err := mb.Append(t.Context(), bytes.NewReader(testmail.Corpus()[0].Raw), store.AppendOptions{})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	after := time.Now().Add(time.Minute)
	d := byUID(t, mb)[uid].Date
	if d.Before(before) || d.After(after) {
		t.Errorf("Append with a zero date stored %v, want about now", d)
	}
}

func testAppendDateInstant(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	raw := testmail.Corpus()[0].Raw
	// The same instant in several zones; sub-second parts are dropped.
	base := time.Date(2019, 11, 3, 1, 30, 15, 0, time.UTC)
	for i, z := range testmail.Zones() {
		d := base.Add(time.Duration(i) * time.Hour).In(z)
		uid, err := mb.Append(t.Context(), bytes.NewReader(raw), store.AppendOptions{Date: d.Add(400 * time.Millisecond)})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		got := byUID(t, mb)[uid].Date
		if !got.Equal(d) {
			t.Errorf("date %v (zone %s): stored %v, want the same instant at second precision", d, z, got)
		}
	}
}

func testAppendIgnoresRecent(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	uid, err := mb.Append(t.Context(), bytes.NewReader(testmail.Corpus()[0].Raw),
		store.AppendOptions{Flags: []store.Flag{`\Recent`, store.FlagSeen}})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if fl := byUID(t, mb)[uid].Flags; !sameFlags(fl, []store.Flag{store.FlagSeen}) {
		t.Errorf("flags %v, want [\\Seen]", fl)
	}
}

func testFlagsSorted(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	flags := []store.Flag{"zeta", store.FlagSeen, "$Alpha", store.FlagAnswered, "mid", store.FlagDraft}
	uid, err := mb.Append(t.Context(), bytes.NewReader(testmail.Corpus()[0].Raw), store.AppendOptions{Flags: flags})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	// Keywords first met in another order on a later message.
	uid2, err := mb.Append(t.Context(), bytes.NewReader(testmail.Corpus()[1].Raw),
		store.AppendOptions{Flags: []store.Flag{"mid", "$Alpha", "beta"}})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	infos := byUID(t, mb)
	for _, u := range []store.UID{uid, uid2} {
		got := infos[u].Flags
		if want := store.SortFlags(got); !slices.Equal(got, want) {
			t.Errorf("UID %d: flags %v not sorted (want %v)", u, got, want)
		}
	}
	if !sameFlags(infos[uid].Flags, flags) {
		t.Errorf("flags %v, want %v", infos[uid].Flags, flags)
	}
}

func testMessagesFrom(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	_, uids := appendN(t, mb, 10)
	for _, start := range []store.UID{0, 1, uids[0], uids[3], uids[3] + 1, uids[9], uids[9] + 1, uids[9] + 1000} {
		var want []store.UID
		for _, u := range uids {
			if u >= start {
				want = append(want, u)
			}
		}
		var got []store.UID
		for _, mi := range from(t, mb, start) {
			got = append(got, mi.UID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Messages from %d: %v, want %v", start, got, want)
		}
	}
}

func testMessagesStopsOnError(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	appendN(t, mb, 5)
	stop := errors.New("stop here")
	calls := 0
	err := mb.Messages(t.Context(), 1, func(store.MessageInfo) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("Messages returned %v, want the callback's error", err)
	}
	if calls != 2 {
		t.Errorf("Messages called fn %d times after it failed on call 2", calls)
	}
}

func testOpenMessage(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	msgs, uids := appendN(t, mb, 0)
	for i, u := range uids {
		checkBytes(t, fmt.Sprintf("UID %d (%s)", u, msgs[i].Kind), read(t, mb, u), msgs[i].Raw)
	}
	// Reading one message twice gives the same bytes.
	checkBytes(t, "second read", read(t, mb, uids[2]), msgs[2].Raw)
}

func testUnknownUID(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	_, uids := appendN(t, mb, 3)
	for _, u := range []store.UID{uids[2] + 1, uids[2] + 1000, 4000000000} {
		rc, _, err := mb.OpenMessage(t.Context(), u)
		if err == nil {
			_ = rc.Close() // it should not have opened
		}
		wantErr(t, fmt.Sprintf("OpenMessage(%d)", u), err, store.ErrNoMessage)
	}
	// Unknown UIDs are ignored by SetFlags and Expunge.
	if err := mb.SetFlags(t.Context(), []store.UID{uids[2] + 5}, store.FlagsAdd, []store.Flag{store.FlagSeen}); err != nil {
		t.Errorf("SetFlags on an unknown UID: %v", err)
	}
	if err := mb.Expunge(t.Context(), []store.UID{uids[2] + 5}); err != nil {
		t.Errorf("Expunge of an unknown UID: %v", err)
	}
	if n := len(all(t, mb)); n != 3 {
		t.Errorf("%d messages after operations on unknown UIDs, want 3", n)
	}
}

func testSetFlags(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	var raw []testmail.Message
	for _, m := range testmail.Corpus() {
		if len(m.Flags) == 0 && len(m.Keywords) == 0 {
			raw = append(raw, m)
		}
	}
	if len(raw) < 3 {
		t.Fatalf("corpus has %d messages without flags, need 3", len(raw))
	}
	var uids []store.UID
	for _, m := range raw[:3] {
		uids = append(uids, appendMsg(t, mb, m))
	}
	a, b, c := uids[0], uids[1], uids[2]
	ctx := t.Context()
	check := func(step string, want map[store.UID][]store.Flag) {
		t.Helper()
		infos := byUID(t, mb)
		for u, w := range want {
			if !sameFlags(infos[u].Flags, w) {
				t.Errorf("%s: UID %d has %v, want %v", step, u, infos[u].Flags, w)
			}
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("SetFlags: %v", err)
		}
	}
	must(mb.SetFlags(ctx, []store.UID{a, b}, store.FlagsAdd, []store.Flag{store.FlagSeen, "$Label1"}))
	check("add", map[store.UID][]store.Flag{a: {store.FlagSeen, "$Label1"}, b: {store.FlagSeen, "$Label1"}, c: nil})

	must(mb.SetFlags(ctx, []store.UID{a}, store.FlagsAdd, []store.Flag{store.FlagFlagged, "project-x"}))
	check("add more", map[store.UID][]store.Flag{a: {store.FlagSeen, store.FlagFlagged, "$Label1", "project-x"}})

	must(mb.SetFlags(ctx, []store.UID{a, b}, store.FlagsRemove, []store.Flag{store.FlagSeen, "$label1"}))
	check("remove", map[store.UID][]store.Flag{a: {store.FlagFlagged, "project-x"}, b: nil, c: nil})

	must(mb.SetFlags(ctx, []store.UID{b, c}, store.FlagsSet, []store.Flag{store.FlagAnswered, store.FlagDraft, "$Forwarded"}))
	check("set", map[store.UID][]store.Flag{a: {store.FlagFlagged, "project-x"},
		b: {store.FlagAnswered, store.FlagDraft, "$Forwarded"}, c: {store.FlagAnswered, store.FlagDraft, "$Forwarded"}})

	must(mb.SetFlags(ctx, []store.UID{c}, store.FlagsSet, nil))
	check("set empty", map[store.UID][]store.Flag{c: nil})

	// System flags in any case.
	must(mb.SetFlags(ctx, []store.UID{c}, store.FlagsAdd, []store.Flag{`\SEEN`, `\deleted`}))
	check("case", map[store.UID][]store.Flag{c: {store.FlagSeen, store.FlagDeleted}})

	st := status(t, mb)
	if st.Unseen != 2 || st.Deleted != 1 {
		t.Errorf("status after flag changes: unseen %d deleted %d, want 2 and 1", st.Unseen, st.Deleted)
	}
	// Flag changes leave the content alone.
	for i, u := range uids {
		checkBytes(t, fmt.Sprintf("UID %d after flag changes", u), read(t, mb, u), raw[i].Raw)
	}
}

func testExpunge(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	msgs, uids := appendN(t, mb, 10)
	gone := []store.UID{uids[1], uids[4], uids[5], uids[9]}
	if err := mb.Expunge(t.Context(), gone); err != nil {
		t.Fatalf("Expunge: %v", err)
	}
	infos := byUID(t, mb)
	if len(infos) != 6 {
		t.Errorf("%d messages after expunging 4 of 10", len(infos))
	}
	for i, u := range uids {
		_, present := infos[u]
		if slices.Contains(gone, u) {
			if present {
				t.Errorf("UID %d still listed after Expunge", u)
			}
			rc, _, err := mb.OpenMessage(t.Context(), u)
			if err == nil {
				_ = rc.Close() // it should not have opened
			}
			wantErr(t, fmt.Sprintf("OpenMessage(%d) after Expunge", u), err, store.ErrNoMessage)
			continue
		}
		if !present {
			t.Errorf("UID %d lost by an Expunge of other messages", u)
			continue
		}
		checkInfo(t, fmt.Sprintf("UID %d", u), infos[u], msgs[i])
		checkBytes(t, fmt.Sprintf("UID %d", u), read(t, mb, u), msgs[i].Raw)
	}
	st := status(t, mb)
	if st.Messages != 6 {
		t.Errorf("Status: %d messages, want 6", st.Messages)
	}
	// Expunging again is harmless.
	if err := mb.Expunge(t.Context(), gone); err != nil {
		t.Errorf("second Expunge: %v", err)
	}
	// UIDs are never reused.
	uid := appendMsg(t, mb, msgs[0])
	if uid <= uids[9] {
		t.Errorf("Append after Expunge returned UID %d, not above the expunged %d", uid, uids[9])
	}
}

func testExpungeLastKeepsUIDNext(t *testing.T, s store.Store) {
	mb := createOpen(t, s, "Emptied")
	_, uids := appendN(t, mb, 4)
	before := status(t, mb)
	if err := mb.Expunge(t.Context(), uids); err != nil {
		t.Fatalf("Expunge: %v", err)
	}
	after := status(t, mb)
	if after.Messages != 0 || after.Size != 0 || after.Unseen != 0 {
		t.Errorf("status after expunging everything: %+v", after)
	}
	if after.UIDNext < before.UIDNext {
		t.Errorf("UIDNEXT went back from %d to %d", before.UIDNext, after.UIDNext)
	}
	closeMailbox(t, mb)
	mb = open(t, s, mboxName(s, "Emptied"))
	st := status(t, mb)
	if st.UIDValidity == before.UIDValidity && st.UIDNext < before.UIDNext {
		t.Errorf("after reopening, UIDNEXT went back from %d to %d", before.UIDNext, st.UIDNext)
	}
	uid := appendMsg(t, mb, testmail.Corpus()[0])
	if st.UIDValidity == before.UIDValidity && uid <= uids[3] {
		t.Errorf("new message got UID %d, reusing an expunged UID (last %d)", uid, uids[3])
	}
}

func testCopy(t *testing.T, s store.Store) {
	src := open(t, s, "INBOX")
	dest := create(t, s, "Copies")
	msgs, uids := appendN(t, src, 8)
	dst := open(t, s, dest)
	pre := appendMsg(t, dst, msgs[7]) // the target is not empty

	pick := []store.UID{uids[6], uids[1], uids[3], uids[6] + 1000}
	srcUIDs, dstUIDs, err := src.Copy(t.Context(), pick, dest)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if len(srcUIDs) != 3 || len(dstUIDs) != 3 {
		t.Fatalf("Copy returned %v -> %v, want three pairs (the unknown UID skipped)", srcUIDs, dstUIDs)
	}
	if got, want := slices.Sorted(slices.Values(srcUIDs)), []store.UID{uids[1], uids[3], uids[6]}; !slices.Equal(got, want) {
		t.Errorf("Copy source UIDs %v, want %v", srcUIDs, want)
	}
	idx := map[store.UID]int{}
	for i, u := range uids {
		idx[u] = i
	}
	infos := byUID(t, dst)
	seen := map[store.UID]bool{}
	for k := range srcUIDs {
		d := dstUIDs[k]
		if d <= pre || seen[d] {
			t.Errorf("Copy: new UID %d not fresh (target had %d)", d, pre)
		}
		seen[d] = true
		m := msgs[idx[srcUIDs[k]]]
		what := fmt.Sprintf("copy of UID %d as %d", srcUIDs[k], d)
		mi, ok := infos[d]
		if !ok {
			t.Errorf("%s: missing in %q", what, dest)
			continue
		}
		checkInfo(t, what, mi, m)
		checkBytes(t, what, read(t, dst, d), m.Raw)
	}
	if len(infos) != 4 {
		t.Errorf("%q holds %d messages, want 4", dest, len(infos))
	}
	// The source is unchanged.
	sinfos := byUID(t, src)
	if len(sinfos) != 8 {
		t.Errorf("source holds %d messages after Copy, want 8", len(sinfos))
	}
	for i, u := range uids {
		checkInfo(t, fmt.Sprintf("source UID %d after Copy", u), sinfos[u], msgs[i])
	}
	// Changing the copy leaves the original alone.
	if err := dst.SetFlags(t.Context(), []store.UID{dstUIDs[0]}, store.FlagsSet, []store.Flag{"copied"}); err != nil {
		t.Fatalf("SetFlags: %v", err)
	}
	if err := dst.Expunge(t.Context(), []store.UID{dstUIDs[1]}); err != nil {
		t.Fatalf("Expunge: %v", err)
	}
	sinfos = byUID(t, src)
	checkInfo(t, "original of a changed copy", sinfos[srcUIDs[0]], msgs[idx[srcUIDs[0]]])
	checkBytes(t, "original of an expunged copy", read(t, src, srcUIDs[1]), msgs[idx[srcUIDs[1]]].Raw)
}

func testCopyNotFound(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	_, uids := appendN(t, mb, 2)
	_, _, err := mb.Copy(t.Context(), uids, mboxName(s, "Nowhere"))
	wantErr(t, "Copy to a missing mailbox", err, store.ErrNotFound)
	if n := len(all(t, mb)); n != 2 {
		t.Errorf("source has %d messages after a failed Copy, want 2", n)
	}
}

func testMove(t *testing.T, s store.Store) {
	src := open(t, s, "INBOX")
	mv, ok := src.(store.Mover)
	if !ok {
		t.Skip("the store's mailboxes do not implement store.Mover")
	}
	dest := create(t, s, "Moved")
	msgs, uids := appendN(t, src, 10)
	pick := []store.UID{uids[2], uids[5], uids[8], uids[9] + 77}
	srcUIDs, dstUIDs, err := mv.Move(t.Context(), pick, dest)
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	if len(srcUIDs) != 3 || len(dstUIDs) != 3 {
		t.Fatalf("Move returned %v -> %v, want three pairs", srcUIDs, dstUIDs)
	}
	idx := map[store.UID]int{}
	for i, u := range uids {
		idx[u] = i
	}
	sinfos := byUID(t, src)
	if len(sinfos) != 7 {
		t.Errorf("source holds %d messages after moving 3 of 10", len(sinfos))
	}
	dst := open(t, s, dest)
	dinfos := byUID(t, dst)
	if len(dinfos) != 3 {
		t.Errorf("target holds %d messages, want 3", len(dinfos))
	}
	for k, su := range srcUIDs {
		if _, still := sinfos[su]; still {
			t.Errorf("UID %d still in the source after Move", su)
		}
		m := msgs[idx[su]]
		what := fmt.Sprintf("UID %d moved as %d", su, dstUIDs[k])
		mi, ok := dinfos[dstUIDs[k]]
		if !ok {
			t.Errorf("%s: missing in the target", what)
			continue
		}
		checkInfo(t, what, mi, m)
		checkBytes(t, what, read(t, dst, dstUIDs[k]), m.Raw)
	}
	_, _, err = mv.Move(t.Context(), []store.UID{uids[0]}, mboxName(s, "Nowhere"))
	wantErr(t, "Move to a missing mailbox", err, store.ErrNotFound)
	if _, ok := byUID(t, src)[uids[0]]; !ok {
		t.Errorf("a failed Move lost UID %d", uids[0])
	}
}

func testNonASCIIAndDeepNames(t *testing.T, s store.Store) {
	names := []string{
		"Réunions",
		"日本語",
		"日本語/子",
		"Projects/2024/Q1/Reports/Final",
		"Team Notes",
		"Q&A",
		"&Ampersand&-",
		"Привет мир",
		"emoji 📬",
		"A/B/C/D/E/F/G/H/I/J/K/L",
	}
	msgs := testmail.Corpus()
	var created []string
	for i, n := range names {
		name := mboxName(s, n)
		if _, ok := list(t, s)[name]; !ok {
			create(t, s, n)
		}
		created = append(created, name)
		mb := open(t, s, name)
		if mb.Name() != name {
			t.Errorf("Name() = %q, want %q", mb.Name(), name)
		}
		appendMsg(t, mb, msgs[i])
		closeMailbox(t, mb)
	}
	got := list(t, s)
	for i, name := range created {
		if _, ok := got[name]; !ok {
			t.Errorf("List misses %q", name)
			continue
		}
		mb := open(t, s, name)
		infos := all(t, mb)
		if len(infos) != 1 {
			t.Errorf("%q holds %d messages, want 1", name, len(infos))
			continue
		}
		checkBytes(t, name, read(t, mb, infos[0].UID), msgs[i].Raw)
	}
	// Renaming keeps non-ASCII names intact.
	from, to := mboxName(s, "日本語"), mboxName(s, "Ελληνικά")
	if err := s.Rename(t.Context(), from, to); err != nil {
		t.Fatalf("Rename(%q, %q): %v", from, to, err)
	}
	got = list(t, s)
	for _, n := range []string{to, mboxName(s, "Ελληνικά/子")} {
		if _, ok := got[n]; !ok {
			t.Errorf("List misses %q after Rename", n)
		}
	}
}

func testMessageIDs(t *testing.T, s store.Store) {
	mb := open(t, s, "INBOX")
	var none, dup []testmail.Message
	for _, m := range testmail.Corpus() {
		switch m.Kind {
		case testmail.KindNoMessageID:
			none = append(none, m)
		case testmail.KindDupMessageID:
			dup = append(dup, m)
		}
	}
	if len(none) == 0 || len(dup) < 2 || dup[0].MessageID != dup[1].MessageID {
		t.Fatalf("corpus lacks the Message-ID cases")
	}
	u0 := appendMsg(t, mb, none[0])
	u1 := appendMsg(t, mb, dup[0])
	u2 := appendMsg(t, mb, dup[1])
	if u1 == u2 {
		t.Fatalf("two messages sharing a Message-ID got one UID %d", u1)
	}
	infos := byUID(t, mb)
	checkInfo(t, "message without Message-ID", infos[u0], none[0])
	checkInfo(t, "first of a shared Message-ID", infos[u1], dup[0])
	checkInfo(t, "second of a shared Message-ID", infos[u2], dup[1])
	checkBytes(t, "first of a shared Message-ID", read(t, mb, u1), dup[0].Raw)
	checkBytes(t, "second of a shared Message-ID", read(t, mb, u2), dup[1].Raw)
}

func testReopen(t *testing.T, s store.Store) {
	name := create(t, s, "Reopened")
	mb := open(t, s, name)
	msgs, uids := appendN(t, mb, 6)
	if err := mb.SetFlags(t.Context(), uids[:2], store.FlagsAdd, []store.Flag{store.FlagAnswered}); err != nil {
		t.Fatalf("SetFlags: %v", err)
	}
	if err := mb.Expunge(t.Context(), uids[2:3]); err != nil {
		t.Fatalf("Expunge: %v", err)
	}
	st := status(t, mb)
	want := all(t, mb)
	if err := mb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// A second handle sees the same messages under the same UIDs.
	mb = open(t, s, name)
	if got := status(t, mb); got.UIDValidity != st.UIDValidity || got.UIDNext != st.UIDNext || got.Messages != st.Messages {
		t.Errorf("status after reopening %+v, want %+v", got, st)
	}
	got := all(t, mb)
	if len(got) != len(want) {
		t.Fatalf("%d messages after reopening, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].UID != want[i].UID || !sameFlags(got[i].Flags, want[i].Flags) || !got[i].Date.Equal(want[i].Date) {
			t.Errorf("after reopening: %+v, want %+v", got[i], want[i])
		}
	}
	checkBytes(t, "after reopening", read(t, mb, uids[5]), msgs[5].Raw)
	// Two handles on one mailbox see each other's changes.
	other := open(t, s, name)
	uid := appendMsg(t, other, msgs[0])
	if _, ok := byUID(t, mb)[uid]; !ok {
		t.Errorf("message appended through a second handle not seen by the first")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := mb.Append(ctx, bytes.NewReader(msgs[0].Raw), store.AppendOptions{}); err == nil {
		t.Errorf("Append with a cancelled context succeeded")
	}
	if n := len(all(t, mb)); n != len(want)+1 {
		t.Errorf("%d messages after a cancelled Append, want %d", n, len(want)+1)
	}
}
