package maildir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imapctl/imapctl/pkg/store"
)

func listNames(t *testing.T, s *Store) []string {
	t.Helper()
	infos, err := s.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mi := range infos {
		out = append(out, mi.Name)
	}
	return out
}

func TestLayoutOnDisk(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	for _, n := range []string{"日本語/子", "Q&A", "Sent"} {
		if err := s.Create(t.Context(), n, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{".&ZeVnLIqe-", ".&ZeVnLIqe-.&W1A-", ".Q&-A", ".Sent"} {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if st, err := os.Stat(filepath.Join(root, dir, sub)); err != nil || !st.IsDir() {
				t.Errorf("%s/%s missing: %v", dir, sub, err)
			}
		}
		if _, err := os.Stat(filepath.Join(root, dir, "maildirfolder")); err != nil {
			t.Errorf("%s/maildirfolder missing: %v", dir, err)
		}
	}
	// Folders made by another program (Dovecot) are listed; other
	// directories are not.
	for _, dir := range []string{".Dovecot&AOk-", ".NoCur", "notafolder"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, ".Dovecot&AOk-", sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"INBOX", "Dovecoté", "Q&A", "Sent", "日本語", "日本語/子"}
	if got := listNames(t, s); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}

func TestRenameInbox(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	inbox := openBox(t, s, "INBOX")
	appendIDs(t, inbox, "in", 3)
	if err := s.Rename(t.Context(), "INBOX", "Old Mail"); err != nil {
		t.Fatal(err)
	}
	if st, _ := inbox.Status(t.Context()); st.Messages != 0 {
		t.Errorf("INBOX has %d messages after being renamed, want 0", st.Messages)
	}
	old := openBox(t, s, "Old Mail")
	if n := len(byMessageID(t, old)); n != 3 {
		t.Errorf("Old Mail has %d messages, want 3", n)
	}
	if got := listNames(t, s); !slices.Equal(got, []string{"INBOX", "Old Mail"}) {
		t.Errorf("List = %q", got)
	}
}

func TestRenameOpenMailbox(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	if err := s.Create(t.Context(), "A/B", []store.Attr{store.AttrArchive}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed("A/B", true); err != nil {
		t.Fatal(err)
	}
	mb := openBox(t, s, "A/B")
	appendIDs(t, mb, "x", 2)
	if err := s.Rename(t.Context(), "A", "C/D"); err != nil {
		t.Fatal(err)
	}
	if got := listNames(t, s); !slices.Equal(got, []string{"INBOX", "C", "C/D", "C/D/B"}) {
		t.Errorf("List = %q", got)
	}
	// The open handle follows the rename.
	if mb.Name() != "C/D/B" {
		t.Errorf("Name() = %q after the rename", mb.Name())
	}
	appendMsg(t, mb, testMsg("after@x", ""))
	infos, _ := s.List(t.Context())
	for _, mi := range infos {
		if mi.Name == "C/D/B" && !mi.Has(store.AttrArchive) {
			t.Errorf("special-use attribute lost in the rename: %v", mi.Attrs)
		}
	}
	checkClose(t, s)
	s2 := openTestStore(t, root, Options{NoSync: true})
	if n := len(byMessageID(t, openBox(t, s2, "C/D/B"))); n != 3 {
		t.Errorf("%d messages after the rename, want 3", n)
	}
	if err := s2.Rename(t.Context(), "C/D", "C/D/E"); err == nil {
		t.Errorf("renaming a mailbox into itself succeeded")
	}
}

func TestDeleteOpenMailbox(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	if err := s.Create(t.Context(), "Gone/Child", []store.Attr{store.AttrTrash}); err != nil {
		t.Fatal(err)
	}
	mb := openBox(t, s, "Gone")
	appendIDs(t, mb, "g", 2)
	if err := s.Delete(t.Context(), "Gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Append(t.Context(), bytesReader(testMsg("late@x", "")), store.AppendOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Append to a deleted mailbox: %v, want ErrNotFound", err)
	}
	if err := mb.SetFlags(t.Context(), []store.UID{1}, store.FlagsAdd, []store.Flag{store.FlagSeen}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetFlags in a deleted mailbox: %v, want ErrNotFound", err)
	}
	// The child stays; the parent is a level of hierarchy only.
	infos, _ := s.List(t.Context())
	if len(infos) != 3 || infos[1].Name != "Gone" || !infos[1].Has(store.AttrNoSelect) || infos[2].Name != "Gone/Child" {
		t.Errorf("List = %+v", infos)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %d leftovers of the delete", len(ents))
	}
	// Created again, it is empty.
	if err := s.Create(t.Context(), "Gone", nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := openBox(t, s, "Gone").Status(t.Context()); st.Messages != 0 {
		t.Errorf("re-created mailbox has %d messages", st.Messages)
	}
}

func TestCopyWithinMailbox(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	uids := appendIDs(t, mb, "c", 2)
	if err := mb.SetFlags(t.Context(), []store.UID{store.UID(uids[0])}, store.FlagsAdd, []store.Flag{store.FlagFlagged, "kw"}); err != nil {
		t.Fatal(err)
	}
	src, dst, err := mb.CopyUIDs(t.Context(), uids, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(src, uids) || !slices.Equal(dst, []uint32{3, 4}) {
		t.Errorf("CopyUIDs = %v, %v", src, dst)
	}
	got := mb.Lookup([]uint32{1, 3})
	if len(got) != 2 || !slices.Equal(got[0].Flags, got[1].Flags) || got[0].MessageID != got[1].MessageID {
		t.Errorf("copy differs from the original: %+v", got)
	}
	if _, _, err := mb.MoveUIDs(t.Context(), uids, "INBOX"); err == nil {
		t.Errorf("moving into the same mailbox succeeded")
	}
}

// TestManyKeywords: keywords beyond the 26 dovecot-keywords letters live
// in the index only and survive reopening.
func TestManyKeywords(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	var kws []store.Flag
	for i := 0; i < 30; i++ {
		kws = append(kws, store.Flag(fmt.Sprintf("kw%02d", i)))
	}
	uid := appendMsg(t, mb, testMsg("many@x", ""), kws...)
	other := appendMsg(t, mb, testMsg("few@x", ""), "kw29", store.FlagSeen)
	want := store.SortFlags(kws)
	if got := flagsOfLookup(t, mb, uid); !slices.Equal(got, want) {
		t.Errorf("flags %v, want %v", got, want)
	}
	fn := parseFileName(curFileOf(t, mb, uid))
	if fn.Kw != 1<<26-1 {
		t.Errorf("letters %b, want all 26", fn.Kw)
	}
	checkClose(t, mb)
	checkClose(t, s)
	s2 := openTestStore(t, root, Options{NoSync: true})
	mb2 := openBox(t, s2, "INBOX")
	if got := flagsOfLookup(t, mb2, uid); !slices.Equal(got, want) {
		t.Errorf("flags after reopening %v, want %v", got, want)
	}
	if got := flagsOfLookup(t, mb2, other); !slices.Equal(got, []store.Flag{store.FlagSeen, "kw29"}) {
		t.Errorf("flags after reopening %v", got)
	}
	// Removing a letterless keyword keeps the others.
	if err := mb2.SetFlags(t.Context(), []store.UID{store.UID(uid)}, store.FlagsRemove, []store.Flag{"kw28", "kw00"}); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(f store.Flag) bool { return f == "kw28" || f == "kw00" })
	if got := flagsOfLookup(t, mb2, uid); !slices.Equal(got, want) {
		t.Errorf("flags after removing two %v, want %v", got, want)
	}
}

func flagsOfLookup(t *testing.T, mb *Mailbox, uid uint32) []store.Flag {
	t.Helper()
	m := mb.Lookup([]uint32{uid})
	if len(m) != 1 {
		t.Fatalf("UID %d not found", uid)
	}
	return m[0].Flags
}

func TestSubscriptions(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	for _, n := range []string{"b", "a", "b"} {
		if err := s.SetSubscribed(n, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSubscribed("inbox", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed("a", false); err != nil {
		t.Fatal(err)
	}
	if got := s.Subscribed(); !slices.Equal(got, []string{"INBOX", "b"}) {
		t.Errorf("Subscribed = %q", got)
	}
	if err := s.SetSubscribed("bad.name", true); err == nil {
		t.Errorf("subscribing an invalid name succeeded")
	}
	checkClose(t, s)
	if got := openTestStore(t, root, Options{NoSync: true}).Subscribed(); !slices.Equal(got, []string{"INBOX", "b"}) {
		t.Errorf("Subscribed after reopening = %q", got)
	}
}

func TestDamagedMetaFile(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, metaFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	s := openTestStore(t, root, Options{NoSync: true, Logger: logs.logger()})
	if !logs.has("WARN", "damaged") {
		t.Errorf("no warning about the damaged metadata; log:\n%s", logs.String())
	}
	if err := s.Create(t.Context(), "Sent", []store.Attr{store.AttrSent}); err != nil {
		t.Fatal(err)
	}
}
