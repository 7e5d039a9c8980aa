package maildir

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imapctl/imapctl/pkg/store"
)

// Changes made by other programs (an MDA delivering to new/, Dovecot or a
// mail client renaming files) are picked up by Refresh.

func flagsOfUID(t *testing.T, mb *Mailbox, uid uint32) []store.Flag {
	t.Helper()
	msgs := mb.Lookup([]uint32{uid})
	if len(msgs) != 1 {
		t.Fatalf("UID %d not found", uid)
	}
	return msgs[0].Flags
}

func TestExternalDeliveryToNew(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	appendIDs(t, mb, "own", 2)
	when := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	plain := testMsg("postfix@example.com", "delivered by Postfix")
	// Postfix: "time.VdevIinode_Mmicro.host", no info.
	writeDelivery(t, root, "new", "1706933106.V801I2a3bM123456.mx", plain, when)
	// Some MDAs deliver with flags already set.
	flagged := testMsg("procmail@example.com", "flagged on delivery")
	writeDelivery(t, root, "new", "1706933107.M1P2.mx,S=99:2,F", flagged, when)
	// Dot files and directories are not messages.
	if err := os.WriteFile(filepath.Join(root, "new", ".hidden"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "new", "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}

	if err := mb.Refresh(); err != nil {
		t.Fatal(err)
	}
	msgs := byMessageID(t, mb)
	if len(msgs) != 4 {
		t.Fatalf("%d messages after the deliveries, want 4", len(msgs))
	}
	p := msgs["<postfix@example.com>"]
	if p.UID != 3 || len(p.Flags) != 0 || !p.Date.Equal(when) || p.Size != int64(len(plain)) {
		t.Errorf("Postfix delivery: %+v, want UID 3, no flags, date %v, size %d", p, when, len(plain))
	}
	f := msgs["<procmail@example.com>"]
	if f.UID != 4 || !slices.Equal(f.Flags, []store.Flag{store.FlagFlagged}) {
		t.Errorf("flagged delivery: %+v, want UID 4 with \\Flagged", f)
	}
	// The size comes from the file, not from a wrong ",S=" in its name.
	if f.Size != int64(len(flagged)) {
		t.Errorf("flagged delivery: size %d, want %d", f.Size, len(flagged))
	}
	if !bytes.Equal(readUID(t, mb, uint32(p.UID)), plain) {
		t.Errorf("content of the delivery differs")
	}
	// Deliveries are moved to cur/ with an info part.
	if ents, _ := os.ReadDir(filepath.Join(root, "new")); len(ents) != 2 {
		t.Errorf("new/ still has %d entries, want the dot file and the directory", len(ents))
	}
	for _, n := range curFiles(t, root) {
		if parseFileName(n).Base == n {
			t.Errorf("cur/%s has no info part", n)
		}
	}
	st, _ := mb.Status(t.Context())
	if st.Messages != 4 || st.UIDNext != 5 || st.Unseen != 4 {
		t.Errorf("status %+v, want 4 messages, UIDNEXT 5, 4 unseen", st)
	}
}

func TestExternalRenameAddsSeen(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	uids := appendIDs(t, mb, "r", 3)
	name := curFileOf(t, mb, uids[1])
	fn := parseFileName(name)
	fn.Bits |= bitSeen | bitAnswered
	if err := os.Rename(filepath.Join(root, "cur", name), filepath.Join(root, "cur", fn.String())); err != nil {
		t.Fatal(err)
	}
	if err := mb.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := flagsOfUID(t, mb, uids[1]); !slices.Equal(got, []store.Flag{store.FlagAnswered, store.FlagSeen}) {
		t.Errorf("flags after an external rename %v, want \\Answered \\Seen", got)
	}
	st, _ := mb.Status(t.Context())
	if st.Unseen != 2 {
		t.Errorf("unseen %d, want 2", st.Unseen)
	}
	changes, complete, _ := mb.ChangesSince(0)
	if !complete || len(changes) == 0 || changes[len(changes)-1].UID != uids[1] || changes[len(changes)-1].Source != 0 {
		t.Errorf("change log %+v, want a flag change of UID %d by another program", changes, uids[1])
	}
	// Our own flag change then works on the renamed file.
	if err := mb.SetFlags(t.Context(), []store.UID{store.UID(uids[1])}, store.FlagsRemove, []store.Flag{store.FlagSeen}); err != nil {
		t.Fatal(err)
	}
	if got := flagsOfUID(t, mb, uids[1]); !slices.Equal(got, []store.Flag{store.FlagAnswered}) {
		t.Errorf("flags %v, want \\Answered", got)
	}
	// And it survives reopening.
	checkClose(t, mb)
	checkClose(t, s)
	s2 := openTestStore(t, root, Options{NoSync: true})
	mb2 := openBox(t, s2, "INBOX")
	if got := flagsOfUID(t, mb2, uids[1]); !slices.Equal(got, []store.Flag{store.FlagAnswered}) {
		t.Errorf("flags after reopening %v, want \\Answered", got)
	}
}

func TestExternalDelete(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	uids := appendIDs(t, mb, "d", 3)
	path := mb.Lookup([]uint32{uids[0]})[0].Path()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := mb.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := uidsOf(infos(t, mb)); !slices.Equal(got, []store.UID{store.UID(uids[1]), store.UID(uids[2])}) {
		t.Errorf("UIDs after an external delete %v, want %v", got, uids[1:])
	}
	changes, _, _ := mb.ChangesSince(0)
	if len(changes) != 1 || changes[0].Kind != ChangeExpunge || changes[0].UID != uids[0] {
		t.Errorf("change log %+v, want the expunge of UID %d", changes, uids[0])
	}
	st, _ := mb.Status(t.Context())
	if st.Messages != 2 || st.UIDNext != 4 {
		t.Errorf("status %+v, want 2 messages and UIDNEXT 4", st)
	}
}

func TestExternalKeywords(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	uids := appendIDs(t, mb, "k", 2)
	// Another program (Dovecot) defines letters and uses them.
	if err := os.WriteFile(filepath.Join(root, keywordsFile), []byte("0 $Important\n1 work\n3 $Forwarded\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeDelivery(t, root, "cur", "1706933106.M1P2.other:2,Sabd", testMsg("kw@example.com", ""), time.Time{})
	name := curFileOf(t, mb, uids[0])
	fn := parseFileName(name)
	fn.Kw |= 1 << 1
	if err := os.Rename(filepath.Join(root, "cur", name), filepath.Join(root, "cur", fn.String())); err != nil {
		t.Fatal(err)
	}
	if err := mb.Refresh(); err != nil {
		t.Fatal(err)
	}
	msgs := byMessageID(t, mb)
	if got, want := msgs["<kw@example.com>"].Flags, []store.Flag{store.FlagSeen, "$Forwarded", "$Important", "work"}; !slices.Equal(got, want) {
		t.Errorf("flags from letters %v, want %v", got, want)
	}
	if got := flagsOfUID(t, mb, uids[0]); !slices.Equal(got, []store.Flag{"work"}) {
		t.Errorf("flags after adding a letter %v, want [work]", got)
	}
	// A keyword set through imapctl reuses the other program's letter and
	// a new one gets a free letter, written to dovecot-keywords.
	if err := mb.SetFlags(t.Context(), []store.UID{store.UID(uids[1])}, store.FlagsAdd, []store.Flag{"$important", "NewOne"}); err != nil {
		t.Fatal(err)
	}
	fn = parseFileName(curFileOf(t, mb, uids[1]))
	if fn.Kw != 1<<0|1<<2 {
		t.Errorf("letters of UID %d: %b, want a and c", uids[1], fn.Kw)
	}
	data, _ := os.ReadFile(filepath.Join(root, keywordsFile))
	if got := parseKeywords(data); got[0] != "$Important" || got[1] != "work" || got[2] != "NewOne" || got[3] != "$Forwarded" {
		t.Errorf("dovecot-keywords after adding a keyword:\n%s", data)
	}
	// Reopening (index replay plus letters) gives the same flags.
	want := infos(t, mb)
	checkClose(t, mb)
	checkClose(t, s)
	s2 := openTestStore(t, root, Options{NoSync: true})
	mb2 := openBox(t, s2, "INBOX")
	if got := infos(t, mb2); !slices.EqualFunc(got, want, func(a, b store.MessageInfo) bool {
		return a.UID == b.UID && slices.Equal(a.Flags, b.Flags)
	}) {
		t.Errorf("after reopening:\n%+v\nwant\n%+v", got, want)
	}
}

// TestExternalSameTick simulates a filesystem with coarse timestamps:
// another program renames a file right after our own change, and the
// directory's mtime does not move. Reading the message must still work.
func TestExternalSameTick(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	uids := appendIDs(t, mb, "tick", 2)
	curDir := filepath.Join(root, "cur")
	st, _ := os.Stat(curDir)
	stamp := st.ModTime()
	name := curFileOf(t, mb, uids[0])
	fn := parseFileName(name)
	fn.Bits |= bitSeen
	if err := os.Rename(filepath.Join(curDir, name), filepath.Join(curDir, fn.String())); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(curDir, stamp, stamp); err != nil {
		t.Fatal(err)
	}

	raw := readUID(t, mb, uids[0])
	if !bytes.Contains(raw, []byte("tick-0@example.com")) {
		t.Errorf("wrong message read")
	}
	if got := flagsOfUID(t, mb, uids[0]); !slices.Equal(got, []store.Flag{store.FlagSeen}) {
		t.Errorf("flags %v after the message was found again, want \\Seen", got)
	}
}

// TestExternalSameTickSetFlags: our flag change meets a file renamed by
// another program within one timestamp tick; neither change is lost.
func TestExternalSameTickSetFlags(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	uids := appendIDs(t, mb, "tick", 3)
	curDir := filepath.Join(root, "cur")
	st, _ := os.Stat(curDir)
	stamp := st.ModTime()
	name := curFileOf(t, mb, uids[1])
	fn := parseFileName(name)
	fn.Bits |= bitSeen
	if err := os.Rename(filepath.Join(curDir, name), filepath.Join(curDir, fn.String())); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(curDir, curFileOf(t, mb, uids[2]))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(curDir, stamp, stamp); err != nil {
		t.Fatal(err)
	}

	got, err := mb.UpdateFlags(t.Context(), uids, store.FlagsAdd, []store.Flag{store.FlagFlagged})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("UpdateFlags returned %d messages, want 2 (one was removed)", len(got))
	}
	if fl := flagsOfUID(t, mb, uids[1]); !slices.Equal(fl, []store.Flag{store.FlagFlagged, store.FlagSeen}) {
		t.Errorf("flags %v, want \\Flagged (ours) and \\Seen (theirs)", fl)
	}
	if n := len(infos(t, mb)); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
	checkClose(t, mb)
	checkClose(t, s)
	s2 := openTestStore(t, root, Options{NoSync: true})
	mb2 := openBox(t, s2, "INBOX")
	if fl := flagsOfUID(t, mb2, uids[1]); !slices.Equal(fl, []store.Flag{store.FlagFlagged, store.FlagSeen}) {
		t.Errorf("flags after reopening %v, want \\Flagged \\Seen", fl)
	}
}
