package serve_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// listAll returns LIST "" "*" (with options) by mailbox name.
func listAll(t *testing.T, c *imapclient.Client, opts *imap.ListOptions) map[string]*imap.ListData {
	t.Helper()
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	out := map[string]*imap.ListData{}
	for _, l := range list {
		if _, dup := out[l.Mailbox]; dup {
			t.Errorf("LIST: %q listed twice", l.Mailbox)
		}
		out[l.Mailbox] = l
	}
	return out
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

func TestDefaultMailboxes(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	want := map[string]imap.MailboxAttr{
		"INBOX":   "",
		"Sent":    imap.MailboxAttrSent,
		"Drafts":  imap.MailboxAttrDrafts,
		"Trash":   imap.MailboxAttrTrash,
		"Junk":    imap.MailboxAttrJunk,
		"Archive": imap.MailboxAttrArchive,
	}
	all := listAll(t, c, &imap.ListOptions{ReturnSpecialUse: true})
	for name, attr := range want {
		l := all[name]
		if l == nil {
			t.Errorf("LIST: %s missing (got %v)", name, keys(all))
			continue
		}
		if l.Delim != '/' {
			t.Errorf("LIST %s: delimiter %q, want '/'", name, l.Delim)
		}
		if attr != "" && !hasAttr(l.Attrs, attr) {
			t.Errorf("LIST %s: attributes %v, want %s", name, l.Attrs, attr)
		}
	}
	if len(all) != len(want) {
		t.Errorf("LIST of a new user: %v, want exactly %v", keys(all), keys(want))
	}
	// LIST (SPECIAL-USE) selects only the special-use mailboxes.
	special := listAll(t, c, &imap.ListOptions{SelectSpecialUse: true})
	if got := keys(special); !slices.Equal(got, []string{"Archive", "Drafts", "Junk", "Sent", "Trash"}) {
		t.Errorf("LIST (SPECIAL-USE): %v", got)
	}
	// Every default mailbox is subscribed.
	subscribed := listAll(t, c, &imap.ListOptions{SelectSubscribed: true})
	if got := keys(subscribed); len(got) != len(want) {
		t.Errorf("LIST (SUBSCRIBED): %v, want %v", got, keys(want))
	}
	// The empty pattern returns the hierarchy delimiter.
	list, err := c.List("", "", nil).Collect()
	if err != nil || len(list) != 1 || list[0].Delim != '/' {
		t.Errorf(`LIST "" "": %+v, %v`, list, err)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestBadMailboxNames checks that names that could escape the Maildir or
// that Maildir++ cannot represent are refused with NO and a reason.
func TestBadMailboxNames(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	tests := []struct {
		name, mbox string
		wantReason string
	}{
		{"parent", "../x", "'.'"},
		{"parent inside", "a/../b", "'.'"},
		{"hidden", ".hidden", "'.'"},
		{"dot", "a.b", "'.'"},
		// imapclient sends non-ASCII in modified UTF-7 ("&AIU-"), which
		// go-imap's server decodes before the name reaches the session.
		{"C1 control", "bad\u0085name", "control character"},
		{"C1 control 2", "bad\u009fname", "control character"},
		{"absolute", "/etc", "absolute"},
		{"empty level", "a//b", "empty hierarchy level"},
		{"wildcard", "a*b", "wildcard"},
		{"backslash", `a\b`, "backslash"},
		{"too deep", strings.Repeat("d/", 40) + "d", "too deep"},
		{"too long", strings.Repeat("x", 300), "too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ie := wantNoResp(t, "CREATE "+tc.name, c.Create(tc.mbox, nil).Wait(), "")
			if !strings.Contains(ie.Text, tc.wantReason) {
				t.Errorf("CREATE %q: %q does not explain (want %q in the text)", tc.mbox, ie.Text, tc.wantReason)
			}
			if ie.Code == imap.ResponseCodeServerBug {
				t.Errorf("CREATE %q: NO [SERVERBUG] for a client mistake", tc.mbox)
			}
			if _, err := c.Select(tc.mbox, nil).Wait(); err == nil {
				t.Errorf("SELECT %q succeeded", tc.mbox)
			}
			wantNo(t, "DELETE "+tc.name, c.Delete(tc.mbox).Wait(), "")
			wantNo(t, "RENAME to "+tc.name, c.Rename("Trash", tc.mbox, nil).Wait(), "")
			wantNo(t, "APPEND to "+tc.name, func() error {
				cmd := c.Append(tc.mbox, 3, nil)
				_, _ = cmd.Write([]byte("x\r\n")) // the outcome is in Wait
				_ = cmd.Close()
				_, err := cmd.Wait()
				return err
			}(), "")
		})
	}

	// Raw ASCII control characters, DEL and NUL are refused by go-imap's
	// command decoder (its modified UTF-7 decoder) before the session sees
	// the name: the answer is NO [SERVERBUG] "Internal server error", and
	// after a literal go-imap loses track of the command stream and closes
	// the connection. Both are go-imap's behaviour; what is checked here
	// is that the command is refused and nothing is created.
	for _, arg := range []string{
		quote("raw\x01name"), quote("raw\x1bname"), quote("raw\x7fname"), quote("raw\x00name"),
		"{8+}\r\nraw\x00name", "{8+}\r\nraw\x01name",
	} {
		rc := dialRaw(t, srv.TLSAddr, srv.TLSConfig())
		rc.ok("LOGIN " + quote(user) + " " + quote(pass))
		if _, tagged := rc.cmd("CREATE " + arg); !strings.HasPrefix(tagged, "NO ") && !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("CREATE %q: %q, want NO or BAD", arg, tagged)
		}
	}

	// Nothing was created, inside the Maildir or next to it.
	if got := keys(listAll(t, c, nil)); len(got) != 6 {
		t.Errorf("LIST after refused CREATEs: %v", got)
	}
	for _, p := range []string{
		filepath.Join(srv.DataDir, "mail", "x"),
		filepath.Join(srv.DataDir, "x"),
		filepath.Join(srv.MaildirPath(user), "b"),
		filepath.Join(srv.MaildirPath(user), ".b"),
		filepath.Join(srv.MaildirPath(user), ".hidden"),
		filepath.Join(srv.MaildirPath(user), "..x"),
	} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists after refused CREATEs", p)
		}
	}
	ents, err := os.ReadDir(srv.MaildirPath(user))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) != 5 {
		t.Errorf("mailbox directories after refused CREATEs: %v, want the 5 default folders", dirs)
	}
}

func TestCreateRenameDelete(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)

	for _, name := range []string{"Réunions", "日本語/子", "Q&A", "Team Notes", "Projects/2024/Q1"} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %q: %v", name, err)
		}
	}
	wantNo(t, "CREATE existing", c.Create("Réunions", nil).Wait(), imap.ResponseCodeAlreadyExists)
	// A trailing delimiter is allowed (RFC 9051 §6.3.4).
	if err := c.Create("Trailing/", nil).Wait(); err != nil {
		t.Fatalf("CREATE Trailing/: %v", err)
	}
	// CREATE with a special-use attribute (CREATE-SPECIAL-USE).
	if err := c.Create("Old Mail", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrArchive}}).Wait(); err != nil {
		t.Fatalf("CREATE (USE (\\Archive)): %v", err)
	}

	all := listAll(t, c, &imap.ListOptions{ReturnSpecialUse: true})
	for _, name := range []string{"Réunions", "日本語", "日本語/子", "Q&A", "Team Notes", "Projects", "Projects/2024", "Projects/2024/Q1", "Trailing", "Old Mail"} {
		if all[name] == nil {
			t.Errorf("LIST: %q missing (got %v)", name, keys(all))
		}
	}
	if l := all["日本語"]; l != nil && !hasAttr(l.Attrs, imap.MailboxAttrHasChildren) {
		t.Errorf("LIST 日本語: %v, want \\HasChildren", l.Attrs)
	}
	if l := all["日本語/子"]; l != nil && !hasAttr(l.Attrs, imap.MailboxAttrHasNoChildren) {
		t.Errorf("LIST 日本語/子: %v, want \\HasNoChildren", l.Attrs)
	}
	if l := all["Old Mail"]; l != nil && !hasAttr(l.Attrs, imap.MailboxAttrArchive) {
		t.Errorf("LIST Old Mail: %v, want \\Archive", l.Attrs)
	}
	// LIST with a pattern.
	list, err := c.List("", "日本語/%", nil).Collect()
	if err != nil || len(list) != 1 || list[0].Mailbox != "日本語/子" {
		t.Errorf(`LIST "" "日本語/%%": %+v, %v`, list, err)
	}

	// Messages survive a RENAME, and children move with their parent.
	raw := simpleMessage("kept across rename", "body")
	appendMsg(t, c, "日本語/子", raw, nil, fixedDate)
	if err := c.Rename("日本語", "Nihongo/日本語", nil).Wait(); err != nil {
		t.Fatalf("RENAME 日本語: %v", err)
	}
	all = listAll(t, c, nil)
	if all["日本語"] != nil || all["日本語/子"] != nil || all["Nihongo/日本語/子"] == nil {
		t.Fatalf("LIST after RENAME: %v", keys(all))
	}
	mustSelect(t, c, "Nihongo/日本語/子", false)
	msgs := fetchAll(t, c, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if len(msgs) != 1 || string(msgs[0].BodySection[0].Bytes) != string(raw) {
		t.Fatalf("message after RENAME: %+v", msgs)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	wantNo(t, "RENAME missing", c.Rename("Missing", "Other", nil).Wait(), imap.ResponseCodeNonExistent)
	wantNo(t, "RENAME onto existing", c.Rename("Q&A", "Réunions", nil).Wait(), imap.ResponseCodeAlreadyExists)
	wantNo(t, "RENAME into itself", c.Rename("Réunions", "Réunions/Sub", nil).Wait(), "")

	// DELETE.
	for _, name := range []string{"Réunions", "Q&A", "Nihongo/日本語/子"} {
		if err := c.Delete(name).Wait(); err != nil {
			t.Fatalf("DELETE %q: %v", name, err)
		}
	}
	wantNo(t, "DELETE missing", c.Delete("Réunions").Wait(), imap.ResponseCodeNonExistent)
	wantNo(t, "DELETE INBOX", c.Delete("INBOX").Wait(), "")
	all = listAll(t, c, nil)
	for _, gone := range []string{"Réunions", "Q&A", "Nihongo/日本語/子"} {
		if all[gone] != nil {
			t.Errorf("LIST after DELETE: %q still listed", gone)
		}
	}
	if _, err := c.Select("Réunions", nil).Wait(); err == nil {
		t.Errorf("SELECT of a deleted mailbox succeeded")
	}

	// Deleting a parent keeps its children; it stays as a \Noselect level.
	createAll(t, c, "Level/Leaf")
	if err := c.Delete("Level").Wait(); err != nil {
		t.Fatalf("DELETE Level: %v", err)
	}
	all = listAll(t, c, &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}})
	if l := all["Level"]; l == nil || !hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || !hasAttr(l.Attrs, imap.MailboxAttrHasChildren) {
		t.Errorf("LIST Level after DELETE: %+v, want \\Noselect \\HasChildren", l)
	} else if l.Status != nil {
		t.Errorf("LIST RETURN (STATUS) gave a status for \\Noselect Level")
	}
	if all["Level/Leaf"] == nil {
		t.Errorf("LIST: Level/Leaf lost with its parent")
	}
	if _, err := c.Select("Level", nil).Wait(); err == nil {
		t.Errorf("SELECT of a \\Noselect level succeeded")
	}

	// Subscriptions.
	if err := c.Subscribe("Level/Leaf").Wait(); err != nil {
		t.Fatal(err)
	}
	if subs := listAll(t, c, &imap.ListOptions{SelectSubscribed: true}); subs["Level/Leaf"] == nil {
		t.Errorf("LIST (SUBSCRIBED) after SUBSCRIBE: %v", keys(subs))
	}
	if err := c.Unsubscribe("Level/Leaf").Wait(); err != nil {
		t.Fatal(err)
	}
	if subs := listAll(t, c, &imap.ListOptions{SelectSubscribed: true}); subs["Level/Leaf"] != nil {
		t.Errorf("LIST (SUBSCRIBED) after UNSUBSCRIBE: %v", keys(subs))
	}
	// A special-use attribute that does not exist is refused.
	wantNo(t, "CREATE (USE (\\Bogus))", c.Create("Bogus", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{"\\Bogus"}}).Wait(), "USEATTR")
	// NAMESPACE: one personal namespace with "/".
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' || ns.Personal[0].Prefix != "" {
		t.Errorf("NAMESPACE: %+v, %v", ns, err)
	}
}

// TestUTF8Names checks mailbox names on the wire: modified UTF-7 for
// IMAP4rev1 clients, UTF-8 after ENABLE UTF8=ACCEPT.
func TestUTF8Names(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	rc := dialRaw(t, srv.TLSAddr, srv.TLSConfig())
	rc.ok("LOGIN " + quote(user) + " " + quote(pass))
	rc.ok(`CREATE "Caf&AOk-/&ZeVnLIqe-"`)
	list := strings.Join(rc.ok(`LIST "" "Caf*"`), "\n")
	if !strings.Contains(list, "Caf&AOk-/&ZeVnLIqe-") {
		t.Errorf("LIST in modified UTF-7: %q", list)
	}
	rc.ok("ENABLE UTF8=ACCEPT")
	list = strings.Join(rc.ok(`LIST "" "Caf*"`), "\n")
	if !strings.Contains(list, "Café/日本語") {
		t.Errorf("LIST after ENABLE UTF8=ACCEPT: %q", list)
	}
	rc.ok(`SELECT "Café/日本語"`)
	c := dial(t, srv)
	if _, err := c.Status("Café/日本語", &imap.StatusOptions{NumMessages: true}).Wait(); err != nil {
		t.Errorf("STATUS Café/日本語 from imapclient: %v", err)
	}
}

// TestRenameInbox checks RFC 9051 §6.3.6: renaming INBOX moves its
// messages to the new mailbox and leaves INBOX empty.
func TestRenameInbox(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	var raws [][]byte
	for i := range 3 {
		raw := simpleMessage("inbox message "+string(rune('a'+i)), "text")
		raws = append(raws, raw)
		appendMsg(t, c, "INBOX", raw, []imap.Flag{imap.FlagSeen, "$Label1"}, fixedDate)
	}
	if err := c.Rename("INBOX", "Old Inbox", nil).Wait(); err != nil {
		t.Fatalf("RENAME INBOX: %v", err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 0 {
		t.Fatalf("STATUS INBOX after RENAME: %+v, %v", st, err)
	}
	mustSelect(t, c, "Old Inbox", false)
	msgs := fetchAll(t, c, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if len(msgs) != len(raws) {
		t.Fatalf("Old Inbox has %d messages, want %d", len(msgs), len(raws))
	}
	for i, m := range msgs {
		if string(m.BodySection[0].Bytes) != string(raws[i]) {
			t.Errorf("message %d changed by RENAME INBOX", i+1)
		}
		if got := flagSet(m.Flags); !slices.Equal(got, []string{"$label1", `\seen`}) {
			t.Errorf("message %d flags after RENAME INBOX: %v", i+1, got)
		}
	}
	// INBOX still works.
	appendMsg(t, c, "INBOX", simpleMessage("new", "x"), nil, fixedDate)
}

// statusItems asks for every STATUS item imapclient can send.
var statusItems = &imap.StatusOptions{
	NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true,
	NumDeleted: true, Size: true, AppendLimit: true, DeletedStorage: true,
}

func TestStatus(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	createAll(t, c, "Counted")
	var size, deletedSize int64
	var last *imap.AppendData
	flags := [][]imap.Flag{{imap.FlagSeen}, nil, {imap.FlagDeleted}, {imap.FlagSeen, imap.FlagDeleted}, {"$Label"}}
	for i, fl := range flags {
		raw := simpleMessage("status "+string(rune('a'+i)), strings.Repeat("x", 100*i))
		size += int64(len(raw))
		if hasFlag(fl, imap.FlagDeleted) {
			deletedSize += int64(len(raw))
		}
		last = appendMsg(t, c, "Counted", raw, fl, fixedDate)
	}
	st, err := c.Status("Counted", statusItems).Wait()
	if err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	check := func(name string, got *uint32, want uint32) {
		t.Helper()
		if got == nil {
			t.Errorf("STATUS %s missing", name)
		} else if *got != want {
			t.Errorf("STATUS %s = %d, want %d", name, *got, want)
		}
	}
	check("MESSAGES", st.NumMessages, 5)
	check("UNSEEN", st.NumUnseen, 3)
	check("DELETED", st.NumDeleted, 2)
	check("APPENDLIMIT", st.AppendLimit, 100<<20)
	if st.UIDNext != last.UID+1 {
		t.Errorf("STATUS UIDNEXT = %d, want %d", st.UIDNext, last.UID+1)
	}
	if st.UIDValidity != last.UIDValidity {
		t.Errorf("STATUS UIDVALIDITY = %d, want %d", st.UIDValidity, last.UIDValidity)
	}
	if st.Size == nil || *st.Size != size {
		t.Errorf("STATUS SIZE = %v, want %d", st.Size, size)
	}
	if st.DeletedStorage == nil || *st.DeletedStorage != deletedSize {
		t.Errorf("STATUS DELETED-STORAGE = %v, want %d", st.DeletedStorage, deletedSize)
	}
	wantNo(t, "STATUS of a missing mailbox", func() error {
		_, err := c.Status("Missing", statusItems).Wait()
		return err
	}(), imap.ResponseCodeNonExistent)

	// IMAP4rev1 STATUS with RECENT, over a raw connection (imapclient
	// cannot ask for RECENT): every item must be answered.
	rc := dialRaw(t, srv.TLSAddr, srv.TLSConfig())
	rc.ok("LOGIN " + quote(user) + " " + quote(pass))
	untagged := rc.ok("STATUS Counted (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE)")
	if len(untagged) != 1 || !strings.HasPrefix(untagged[0], "* STATUS ") {
		t.Fatalf("STATUS (raw): %q", untagged)
	}
	for _, item := range []string{"MESSAGES 5", "RECENT 0", "UIDNEXT ", "UIDVALIDITY ", "UNSEEN 3", "DELETED 2", "SIZE "} {
		if !strings.Contains(untagged[0], item) {
			t.Errorf("STATUS (raw) %q: %q missing", untagged[0], item)
		}
	}
	// The same with IMAP4rev2 enabled, where RECENT no longer exists.
	rc.ok("ENABLE IMAP4rev2")
	untagged = rc.ok("STATUS Counted (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE)")
	if len(untagged) != 1 || !strings.Contains(untagged[0], "DELETED 2") {
		t.Fatalf("STATUS (raw, IMAP4rev2): %q", untagged)
	}
}

func TestListStatus(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	createAll(t, c, "Parent/Child")
	appendMsg(t, c, "Parent/Child", simpleMessage("one", "x"), nil, fixedDate)
	appendMsg(t, c, "Parent/Child", simpleMessage("two", "y"), []imap.Flag{imap.FlagSeen}, fixedDate)
	appendMsg(t, c, "INBOX", simpleMessage("three", "z"), nil, fixedDate)

	all := listAll(t, c, &imap.ListOptions{ReturnStatus: statusItems})
	want := map[string]uint32{"INBOX": 1, "Parent/Child": 2, "Parent": 0, "Sent": 0, "Drafts": 0, "Trash": 0, "Junk": 0, "Archive": 0}
	for name, n := range want {
		l := all[name]
		if l == nil {
			t.Errorf("LIST RETURN (STATUS): %q missing", name)
			continue
		}
		st := l.Status
		if st == nil || st.NumMessages == nil || st.NumUnseen == nil || st.NumDeleted == nil || st.Size == nil || st.UIDNext == 0 || st.UIDValidity == 0 {
			t.Errorf("LIST RETURN (STATUS) %q: incomplete status %+v", name, st)
			continue
		}
		if *st.NumMessages != n {
			t.Errorf("LIST RETURN (STATUS) %q: MESSAGES %d, want %d", name, *st.NumMessages, n)
		}
	}
	if st := all["Parent/Child"].Status; st != nil && st.NumUnseen != nil && *st.NumUnseen != 1 {
		t.Errorf("Parent/Child UNSEEN = %d, want 1", *st.NumUnseen)
	}
}
