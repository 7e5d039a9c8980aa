package sync

import (
	"testing"

	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

// TestUnchangedFoldersSkipped: with change marks on both sides, a run
// after one that left a folder pair in step and changed nothing skips
// the pair without listing it; a change on either side (or --delete)
// brings the listing back.
func TestUnchangedFoldersSkipped(t *testing.T) {
	src := &wrapStore{Store: newMaildir(t, ""), t: t, marks: true}
	msgs := testmail.Generate(testmail.Options{Seed: 27, Count: 60})
	seed(t, src.Store, msgs)
	dst := &wrapStore{Store: newMaildir(t, ""), t: t, marks: true}
	opts := Options{StateDir: t.TempDir()}
	listings := func() int64 {
		return src.messages.Load() + src.flagLists.Load() + dst.messages.Load() + dst.flagLists.Load()
	}
	unchanged := func(rep *Report) (n int) {
		for _, f := range rep.Folders {
			if f.Unchanged {
				n++
			}
		}
		return n
	}

	rep := run(t, src, dst, opts) // copies: the target changed, no marks kept
	if rep.Totals.Copied != len(msgs) || unchanged(rep) != 0 {
		t.Fatalf("first run: %+v, %d unchanged", rep.Totals, unchanged(rep))
	}
	untouched := 0 // folders the first run changed nothing in (empty ones): their marks are kept already
	for _, f := range rep.Folders {
		if f.Copied+f.Updated+f.Deleted == 0 {
			untouched++
		}
	}
	if untouched == len(rep.Folders) {
		t.Fatal("the first run copied into no folder")
	}
	before := listings()
	rep = run(t, src, dst, opts) // lists the others, changes nothing: marks kept
	if rep.Totals.Copied != 0 || unchanged(rep) != untouched || listings() == before {
		t.Fatalf("second run: %+v, %d unchanged (want %d), %d listings", rep.Totals, unchanged(rep), untouched, listings()-before)
	}
	before = listings()
	rep = run(t, src, dst, opts)
	if unchanged(rep) != len(rep.Folders) || listings() != before {
		t.Fatalf("third run: %d of %d folders unchanged, %d listings", unchanged(rep), len(rep.Folders), listings()-before)
	}
	for _, f := range rep.Folders {
		if !f.Complete || f.SourceCount != f.TargetCount || f.SourceCount != f.Existing {
			t.Errorf("unchanged folder report %+v", f)
		}
	}
	if rep.Totals.SourceCount != len(msgs) || rep.Totals.TargetCount != len(msgs) {
		t.Errorf("third run totals %+v, want %d on both sides", rep.Totals, len(msgs))
	}

	// A flag changed on the source: that folder is listed and updated.
	mb := openBox(t, src.Store, "INBOX")
	first := infos(t, src.Store, "INBOX")[0].UID
	if err := mb.SetFlags(t.Context(), []store.UID{first}, store.FlagsAdd, []store.Flag{"$changed"}); err != nil {
		t.Fatal(err)
	}
	checkClose(t, mb)
	rep = run(t, src, dst, opts)
	if rep.Totals.Updated != 1 || unchanged(rep) != len(rep.Folders)-1 {
		t.Fatalf("after a flag change: %+v, %d of %d unchanged", rep.Totals, unchanged(rep), len(rep.Folders))
	}
	// A message added on the target: listed again (and, with --delete,
	// removed; --delete never skips).
	appendRaw(t, dst.Store, "INBOX", []byte("Message-ID: <extra@example.com>\r\nSubject: extra\r\n\r\nextra\r\n"))
	rep = run(t, src, dst, opts)
	if unchanged(rep) != len(rep.Folders)-1 {
		t.Errorf("after a target change: %d of %d unchanged", unchanged(rep), len(rep.Folders))
	}
	rep = run(t, src, dst, Options{StateDir: opts.StateDir, Delete: true})
	if rep.Totals.Deleted != 1 || unchanged(rep) != 0 {
		t.Errorf("--delete: %+v, %d unchanged", rep.Totals, unchanged(rep))
	}
	sameSnapshots(t, "after skips", snapshot(t, dst.Store), snapshot(t, src.Store))
}
