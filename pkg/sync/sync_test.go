package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/maildir"
)

// corpusPair returns a source holding testmail.Corpus(), an empty target
// and options with a state directory.
func corpusPair(t *testing.T) (src, dst *maildir.Store, opts Options) {
	t.Helper()
	src, dst = newMaildir(t, ""), newMaildir(t, "")
	seed(t, src, testmail.Corpus())
	return src, dst, Options{Account: "a→b", StateDir: t.TempDir()}
}

func TestSyncCorpus(t *testing.T) {
	src, dst, opts := corpusPair(t)
	opts.Verify = true
	want := snapshot(t, src)
	n, bytes := totalMessages(testmail.Corpus())

	rep := run(t, src, dst, opts)
	sameSnapshots(t, "first run", snapshot(t, dst), want)
	if rep.Totals.Copied != n || rep.Totals.Bytes != bytes || rep.Totals.Failed != 0 || rep.Totals.SourceCount != n || rep.Totals.TargetCount != n {
		t.Errorf("totals = %+v, want %d messages, %d bytes copied", rep.Totals, n, bytes)
	}
	if rep.Verified == nil || !*rep.Verified || len(rep.Missing) > 0 {
		t.Errorf("verified = %v, missing %v", rep.Verified, rep.Missing)
	}
	if n := selectableFolders(t, src); len(rep.Folders) != n {
		t.Errorf("%d folders in the report, want %d", len(rep.Folders), n)
	}
	for _, f := range rep.Folders {
		if !f.Complete || f.Error != "" || f.SourceCount != f.TargetCount || f.Verified == nil || !*f.Verified {
			t.Errorf("folder %+v", f)
		}
	}
	// Special-use attributes guessed from the names are given to the new
	// target folders.
	list, err := dst.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]store.Attr{}
	for _, m := range list {
		attrs[m.Name] = m.Attrs
	}
	for name, a := range map[string]store.Attr{"Sent": store.AttrSent, "Drafts": store.AttrDrafts, "Trash": store.AttrTrash, "Junk": store.AttrJunk, "Archive": store.AttrArchive} {
		if !slices.Contains(attrs[name], a) {
			t.Errorf("target %q has attributes %v, want %s", name, attrs[name], a)
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("report is not JSON-serialisable: %v", err)
	}

	// A re-run copies nothing, with or without the state.
	for _, o := range []Options{opts, {}} {
		rep = run(t, src, dst, o)
		if c := rep.Totals; c.Copied != 0 || c.Updated != 0 || c.Deleted != 0 || c.Existing != n {
			t.Errorf("re-run (state %q): totals %+v", o.StateDir, c)
		}
	}
	sameSnapshots(t, "re-runs", snapshot(t, dst), want)
}

func TestRerunReadsNoHeaders(t *testing.T) {
	inner := newMaildir(t, "")
	seed(t, inner, testmail.Generate(testmail.Options{Seed: 3, Count: 120}))
	src := &wrapStore{Store: inner, rich: true, t: t}
	dst := &wrapStore{Store: newMaildir(t, ""), rich: true, t: t}
	opts := Options{Account: "x", StateDir: t.TempDir()}
	run(t, src, dst, opts)

	src.messages.Store(0)
	dst.messages.Store(0)
	src.headerOpen.Store(0)
	dst.headerOpen.Store(0)
	rep := run(t, src, dst, opts)
	if rep.Totals.Copied != 0 || rep.Totals.Existing != 120 {
		t.Errorf("re-run totals %+v", rep.Totals)
	}
	if n := src.messages.Load() + dst.messages.Load() + src.headerOpen.Load() + dst.headerOpen.Load(); n != 0 {
		t.Errorf("an unchanged re-run with state read Message-IDs or headers %d times", n)
	}
	if src.flagLists.Load() == 0 || dst.flagLists.Load() == 0 {
		t.Error("FlagLister not used")
	}
	if dst.sized.Load() != 120 || dst.appends.Load() != 0 {
		t.Errorf("%d AppendSize and %d Append calls, want AppendSize only", dst.sized.Load(), dst.appends.Load())
	}

	// One new message: headers are read for it, not for the rest.
	m := testmail.Single(testmail.Options{Seed: 4}, 0)
	appendRaw(t, inner, "INBOX", m.Raw)
	rep = run(t, src, dst, opts)
	if rep.Totals.Copied != 1 {
		t.Errorf("new message: totals %+v", rep.Totals)
	}

	// A state that lags behind (a crash before the save): the unknown
	// messages on both sides get their Message-IDs from a second listing
	// that starts at the first unknown UID, and nothing is copied twice.
	ents, _ := os.ReadDir(opts.StateDir)
	file := filepath.Join(opts.StateDir, ents[0].Name())
	old, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range testmail.Generate(testmail.Options{Seed: 6, Count: 5, Folders: []string{"INBOX"}}) {
		appendRaw(t, inner, "INBOX", m.Raw)
	}
	run(t, src, dst, opts)
	if err := os.WriteFile(file, old, 0o600); err != nil {
		t.Fatal(err)
	}
	src.messages.Store(0)
	rep = run(t, src, dst, opts)
	if rep.Totals.Copied != 0 || src.messages.Load() == 0 {
		t.Errorf("stale state: totals %+v, %d Message-ID listings", rep.Totals, src.messages.Load())
	}
	sameSnapshots(t, "stale state", snapshot(t, dst.Store), snapshot(t, inner))
}

// TestNoUIDs copies into a target that does not tell the new UIDs (no
// UIDPLUS): the state cannot pair them, identity does.
func TestNoUIDs(t *testing.T) {
	src := newMaildir(t, "")
	seed(t, src, testmail.Corpus())
	dst := &wrapStore{Store: newMaildir(t, ""), rich: true, noUIDs: true, t: t}
	opts := Options{StateDir: t.TempDir()}
	run(t, src, dst, opts)
	for i := 0; i < 2; i++ {
		if rep := run(t, src, dst, opts); rep.Totals.Copied != 0 || rep.Totals.Existing != len(testmail.Corpus()) {
			t.Errorf("re-run %d: %+v", i, rep.Totals)
		}
	}
	sameSnapshots(t, "no UIDs", snapshot(t, dst.Store), snapshot(t, src))
}

func TestFlagChangesPropagate(t *testing.T) {
	src, dst, opts := corpusPair(t)
	run(t, src, dst, opts)

	mb := openBox(t, src, "INBOX")
	var uids []store.UID // two messages, then one with flags
	for _, m := range infos(t, src, "INBOX") {
		if len(uids) < 2 || (len(uids) == 2 && len(m.Flags) > 0) {
			uids = append(uids, m.UID)
		}
	}
	ctx := t.Context()
	if err := mb.SetFlags(ctx, uids[:2], store.FlagsAdd, []store.Flag{store.FlagAnswered, "$label9"}); err != nil {
		t.Fatal(err)
	}
	if err := mb.SetFlags(ctx, uids[2:], store.FlagsSet, nil); err != nil {
		t.Fatal(err)
	}
	checkClose(t, mb)
	// Changed on the target behind our back: the source wins.
	tmsgs := infos(t, dst, "Sent")
	tb := openBox(t, dst, "Sent")
	if err := tb.SetFlags(ctx, []store.UID{tmsgs[0].UID}, store.FlagsAdd, []store.Flag{store.FlagFlagged, "other"}); err != nil {
		t.Fatal(err)
	}
	checkClose(t, tb)

	rep := run(t, src, dst, opts)
	if rep.Totals.Updated != 4 || rep.Totals.Copied != 0 {
		t.Errorf("totals %+v, want 4 updated", rep.Totals)
	}
	sameSnapshots(t, "after flag changes", snapshot(t, dst), snapshot(t, src))
	// Without state too.
	mb = openBox(t, src, "INBOX")
	if err := mb.SetFlags(ctx, uids[:1], store.FlagsRemove, []store.Flag{"$label9"}); err != nil {
		t.Fatal(err)
	}
	checkClose(t, mb)
	rep = run(t, src, dst, Options{})
	if rep.Totals.Updated != 1 {
		t.Errorf("without state: totals %+v, want 1 updated", rep.Totals)
	}
	sameSnapshots(t, "after flag changes without state", snapshot(t, dst), snapshot(t, src))
}

func TestNewMessagesAndDelete(t *testing.T) {
	src, dst, opts := corpusPair(t)
	run(t, src, dst, opts)
	ctx := t.Context()

	extra := testmail.Generate(testmail.Options{Seed: 9, Count: 3, Folders: []string{"INBOX", "Archive/2019"}})
	seed(t, src, extra)
	rep := run(t, src, dst, opts)
	if rep.Totals.Copied != 3 {
		t.Errorf("new messages: totals %+v, want 3 copied", rep.Totals)
	}
	sameSnapshots(t, "new messages", snapshot(t, dst), snapshot(t, src))

	// Two messages deleted on the source, one message only on the target.
	msgs := infos(t, src, "INBOX")
	mb := openBox(t, src, "INBOX")
	if err := mb.Expunge(ctx, []store.UID{msgs[0].UID, msgs[3].UID}); err != nil {
		t.Fatal(err)
	}
	checkClose(t, mb)
	own := testmail.Single(testmail.Options{Seed: 10}, 1)
	appendRaw(t, dst, "INBOX", own.Raw)

	rep = run(t, src, dst, opts)
	if rep.Totals.Deleted != 0 || rep.Totals.Copied != 0 {
		t.Errorf("without --delete: totals %+v", rep.Totals)
	}
	if got, want := len(infos(t, dst, "INBOX")), len(msgs)+1; got != want {
		t.Errorf("without --delete the target has %d messages, want %d", got, want)
	}
	opts.Delete = true
	rep = run(t, src, dst, opts)
	if rep.Totals.Deleted != 3 || rep.Totals.Copied != 0 {
		t.Errorf("with --delete: totals %+v, want 3 deleted", rep.Totals)
	}
	sameSnapshots(t, "after --delete", snapshot(t, dst), snapshot(t, src))

	// --delete without state: the mirror is the same.
	appendRaw(t, dst, "Sent", own.Raw)
	rep = run(t, src, dst, Options{Delete: true})
	if rep.Totals.Deleted != 1 {
		t.Errorf("--delete without state: totals %+v, want 1 deleted", rep.Totals)
	}
	sameSnapshots(t, "after --delete without state", snapshot(t, dst), snapshot(t, src))
}

func TestDryRun(t *testing.T) {
	src, dst, opts := corpusPair(t)
	n, bytes := totalMessages(testmail.Corpus())
	opts.DryRun = true
	var started []string
	opts.Progress.FolderStart = func(f FolderMap, _ int, _ int64) { started = append(started, f.Target) }
	opts.Parallel = 1
	rep := run(t, src, dst, opts)
	if !rep.DryRun || rep.Totals.Copied != n || rep.Totals.Bytes != bytes || rep.Totals.TargetCount != n {
		t.Errorf("dry run totals %+v, want %d messages, %d bytes", rep.Totals, n, bytes)
	}
	if len(started) != selectableFolders(t, src) {
		t.Errorf("FolderStart for %v", started)
	}
	for _, f := range rep.Folders {
		if f.Target != "INBOX" && !f.Create {
			t.Errorf("%q: Create not planned", f.Target)
		}
	}
	list, _ := dst.List(t.Context())
	if len(list) != 1 || len(infos(t, dst, "INBOX")) != 0 {
		t.Errorf("dry run changed the target: %v", list)
	}
	if ents, _ := os.ReadDir(opts.StateDir); len(ents) != 0 {
		t.Errorf("dry run wrote state: %v", ents)
	}

	// After a real run and some changes, the dry run counts them.
	opts.DryRun = false
	run(t, src, dst, opts)
	msgs := infos(t, src, "INBOX")
	mb := openBox(t, src, "INBOX")
	if err := mb.SetFlags(t.Context(), []store.UID{msgs[1].UID}, store.FlagsAdd, []store.Flag{"$dry"}); err != nil {
		t.Fatal(err)
	}
	if err := mb.Expunge(t.Context(), []store.UID{msgs[2].UID}); err != nil {
		t.Fatal(err)
	}
	checkClose(t, mb)
	extra := testmail.Single(testmail.Options{Seed: 11}, 0)
	appendRaw(t, src, "INBOX", extra.Raw)
	before := snapshot(t, dst)
	opts.DryRun, opts.Delete = true, true
	rep = run(t, src, dst, opts)
	if c := rep.Totals; c.Copied != 1 || c.Bytes != int64(len(extra.Raw)) || c.Updated != 1 || c.Deleted != 1 {
		t.Errorf("dry run after changes: %+v", c)
	}
	sameSnapshots(t, "dry run", snapshot(t, dst), before)
}

func TestSharedMessageIDs(t *testing.T) {
	src, dst := newMaildir(t, ""), newMaildir(t, "")
	corpus := testmail.Corpus()
	var dups int
	for _, m := range corpus {
		if m.Kind == testmail.KindDupMessageID {
			dups++
		}
	}
	if dups < 2 {
		t.Fatal("corpus has no shared Message-ID")
	}
	seed(t, src, corpus)
	// Same Message-ID, same size, different content; and the same message
	// twice.
	a := "Message-ID: <same@example.org>\r\nSubject: one\r\n\r\nbody A\r\n"
	b := "Message-ID: <same@example.org>\r\nSubject: two\r\n\r\nbody B\r\n"
	appendRaw(t, src, "INBOX", []byte(a))
	appendRaw(t, src, "INBOX", []byte(b))
	appendRaw(t, src, "INBOX", []byte(a))
	want := snapshot(t, src)

	for _, opts := range []Options{{}, {StateDir: t.TempDir()}} {
		run(t, src, dst, opts)
		sameSnapshots(t, "first run", snapshot(t, dst), want)
		rep := run(t, src, dst, opts)
		if rep.Totals.Copied != 0 {
			t.Errorf("re-run copied %d", rep.Totals.Copied)
		}
		sameSnapshots(t, "re-run", snapshot(t, dst), want)
	}
	// Half there already: the rest is copied.
	dst2 := newMaildir(t, "")
	appendRaw(t, dst2, "INBOX", []byte(a))
	rep := run(t, src, dst2, Options{})
	for _, f := range rep.Folders {
		if f.Source == "INBOX" && f.Existing != 1 {
			t.Errorf("INBOX report %+v, want 1 existing", f)
		}
	}
	sameSnapshots(t, "partly there", snapshot(t, dst2), want)
}

func TestNoMessageIDMatchedByHeader(t *testing.T) {
	inner := newMaildir(t, "")
	var none []testmail.Message
	for _, m := range testmail.Generate(testmail.Options{Seed: 5, Count: 80}) {
		if m.MessageID == "" {
			none = append(none, m)
		}
	}
	if len(none) < 3 {
		t.Fatalf("only %d messages without Message-ID", len(none))
	}
	seed(t, inner, none)
	want := snapshot(t, inner)
	// The source hashes headers read through OpenMessage, the target
	// through HeaderOpener.
	dst := &wrapStore{Store: newMaildir(t, ""), rich: true, t: t}
	run(t, inner, dst, Options{})
	rep := run(t, inner, dst, Options{})
	if rep.Totals.Copied != 0 || rep.Totals.Existing != len(none) {
		t.Errorf("re-run: %+v", rep.Totals)
	}
	if dst.headerOpen.Load() == 0 {
		t.Error("HeaderOpener not used")
	}
	sameSnapshots(t, "re-run", snapshot(t, dst.Store), want)
}

func TestStateLost(t *testing.T) {
	src, dst, opts := corpusPair(t)
	run(t, src, dst, opts)
	if err := os.RemoveAll(opts.StateDir); err != nil {
		t.Fatal(err)
	}
	rep := run(t, src, dst, opts)
	if rep.Totals.Copied != 0 || rep.Totals.Existing != len(testmail.Corpus()) {
		t.Errorf("after losing the state: %+v", rep.Totals)
	}
	// A damaged state file is a lost state.
	ents, _ := os.ReadDir(opts.StateDir)
	if len(ents) != 1 {
		t.Fatalf("state directory holds %v", ents)
	}
	if err := os.WriteFile(filepath.Join(opts.StateDir, ents[0].Name()), []byte(`{"version":1,"folders":[{`), 0o600); err != nil {
		t.Fatal(err)
	}
	rep = run(t, src, dst, opts)
	if rep.Totals.Copied != 0 {
		t.Errorf("after damaging the state: %+v", rep.Totals)
	}
	sameSnapshots(t, "state lost", snapshot(t, dst), snapshot(t, src))
}

func TestUIDValidityChange(t *testing.T) {
	src, dst, opts := corpusPair(t)
	run(t, src, dst, opts)
	root := dst.Root()
	status := func(s store.Store, name string) store.Status {
		mb := openBox(t, s, name)
		defer checkClose(t, mb)
		st, err := mb.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := status(dst, "Sent")
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, ".Sent", "imapctl.index")); err != nil {
		t.Fatal(err)
	}
	dst = newMaildir(t, root)
	after := status(dst, "Sent")
	if after.UIDValidity == before.UIDValidity {
		t.Fatal("UIDVALIDITY did not change")
	}
	rep := run(t, src, dst, opts)
	if rep.Totals.Copied != 0 || rep.Totals.Existing != len(testmail.Corpus()) {
		t.Errorf("after a UIDVALIDITY change: %+v", rep.Totals)
	}
	// (The rebuilt index knows the instants of internal dates, not their
	// zones.)
	sameSnapshots(t, "UIDVALIDITY change", withoutZones(snapshot(t, dst)), withoutZones(snapshot(t, src)))
	// The state now holds the new UIDVALIDITY: a flag change propagates.
	mb := openBox(t, src, "Sent")
	u := infos(t, src, "Sent")[0].UID
	if err := mb.SetFlags(t.Context(), []store.UID{u}, store.FlagsAdd, []store.Flag{"$after"}); err != nil {
		t.Fatal(err)
	}
	checkClose(t, mb)
	if rep := run(t, src, dst, opts); rep.Totals.Updated != 1 {
		t.Errorf("flag change after UIDVALIDITY change: %+v", rep.Totals)
	}
}

// TestUIDValidityChangeDuringRun changes the target's UIDVALIDITY while a
// split copy is running: the helper that sees it stops the folder, the
// state of the folder is dropped, and the next run matches by identity.
func TestUIDValidityChangeDuringRun(t *testing.T) {
	src := newMaildir(t, "")
	seed(t, src, testmail.Generate(testmail.Options{Seed: 13, Count: 200, MaxAttachment: 1024, Folders: []string{"INBOX"}}))
	dst := &wrapStore{Store: newMaildir(t, ""), bumpAfter: 1, t: t}
	opts := Options{StateDir: t.TempDir(), SplitThreshold: 20, Parallel: 3}
	rep, err := Run(t.Context(), src, dst, opts)
	if !errors.Is(err, ErrPartial) {
		t.Fatalf("err = %v", err)
	}
	if f := rep.Folders[0]; f.Complete || !strings.Contains(f.Error, "UIDVALIDITY changed") {
		t.Fatalf("folder %+v", f)
	}
	first := rep.Totals.Copied
	rep = run(t, src, dst, opts)
	if rep.Totals.Existing != first || rep.Totals.Copied != 200-first {
		t.Errorf("re-run after %d copied: %+v", first, rep.Totals)
	}
	sameSnapshots(t, "UIDVALIDITY change during a run", snapshot(t, dst.Store), snapshot(t, src))
}

func TestTargetRefusesMessage(t *testing.T) {
	src := newMaildir(t, "")
	corpus := testmail.Corpus()
	seed(t, src, corpus)
	var victim testmail.Message
	for _, m := range corpus {
		if m.MessageID != "" && m.Kind == testmail.KindAttachment {
			victim = m
			break
		}
	}
	bigID := "<" + corpus[0].MessageID + ">"
	dst := &wrapStore{Store: newMaildir(t, ""), t: t}
	dst.appendHook = func(_ context.Context, _ store.Mailbox, raw []byte, _ store.AppendOptions) (store.UID, bool, error) {
		switch messageIDOf(raw) {
		case "<" + victim.MessageID + ">":
			return 0, true, &refusal{"NO [LIMIT] message rejected by policy"}
		case bigID:
			return 0, true, fmt.Errorf("append: %w", store.ErrTooBig)
		}
		return 0, false, nil
	}
	opts := Options{StateDir: t.TempDir(), Verify: true}
	rep, err := Run(t.Context(), src, dst, opts)
	if !errors.Is(err, ErrPartial) || !errors.Is(err, ErrUnverified) {
		t.Fatalf("err = %v, want ErrPartial and ErrUnverified", err)
	}
	if rep.Totals.Failed != 2 || rep.Totals.Copied != len(corpus)-2 || len(rep.Failures) != 2 {
		t.Fatalf("totals %+v, failures %v", rep.Totals, rep.Failures)
	}
	reasons := rep.Failures[0].Reason + " | " + rep.Failures[1].Reason
	if !strings.Contains(reasons, "NO [LIMIT] message rejected by policy") || !strings.Contains(reasons, store.ErrTooBig.Error()) {
		t.Errorf("failure reasons %q", reasons)
	}
	if len(rep.Missing) != 2 || !rep.Partial() {
		t.Errorf("missing %v", rep.Missing)
	}
	for _, f := range rep.Failures {
		if f.MessageID != bigID && f.MessageID != "<"+victim.MessageID+">" {
			t.Errorf("failure %+v", f)
		}
	}
	// The re-run tries them again (and fails again), copying nothing else.
	rep, err = Run(t.Context(), src, dst, opts)
	if !errors.Is(err, ErrPartial) || rep.Totals.Copied != 0 || rep.Totals.Failed != 2 {
		t.Errorf("re-run: err %v, totals %+v", err, rep.Totals)
	}
	// Once the target accepts them, they arrive.
	dst.appendHook = nil
	rep = run(t, src, dst, opts)
	if rep.Totals.Copied != 2 || !*rep.Verified {
		t.Errorf("accepted: %+v", rep.Totals)
	}
}

func TestTooManyFailuresStopFolder(t *testing.T) {
	src := newMaildir(t, "")
	seed(t, src, testmail.Generate(testmail.Options{Seed: 2, Count: 40, Folders: []string{"INBOX"}}))
	dst := &wrapStore{Store: newMaildir(t, ""), t: t}
	dst.appendHook = func(context.Context, store.Mailbox, []byte, store.AppendOptions) (store.UID, bool, error) {
		return 0, true, errors.New("something odd")
	}
	rep, err := Run(t.Context(), src, dst, Options{})
	if !errors.Is(err, ErrPartial) {
		t.Fatalf("err = %v", err)
	}
	f := rep.Folders[0]
	if f.Complete || f.Failed != maxConsecutiveFailures || !strings.Contains(f.Error, "in a row") {
		t.Errorf("folder %+v", f)
	}
}

func TestCancelThenRerun(t *testing.T) {
	src, dst, opts := corpusPair(t)
	ctx, cancel := context.WithCancel(t.Context())
	copied := 0
	opts.Parallel = 1
	opts.Progress.Copied = func(string, int64) {
		if copied++; copied == 12 {
			cancel()
		}
	}
	rep, err := Run(ctx, src, dst, opts)
	if !errors.Is(err, context.Canceled) || !rep.Interrupted {
		t.Fatalf("err = %v, interrupted %v", err, rep.Interrupted)
	}
	if rep.Totals.Copied != 12 {
		t.Errorf("copied %d before stopping, want 12", rep.Totals.Copied)
	}
	incomplete := 0
	for _, f := range rep.Folders {
		if !f.Complete {
			incomplete++
			if f.Error != "" {
				t.Errorf("interrupted folder with error %q", f.Error)
			}
		}
	}
	if incomplete == 0 {
		t.Error("every folder complete after cancellation")
	}
	if rep.Partial() {
		t.Error("an interrupted run is not partial")
	}
	opts.Progress.Copied = nil
	rep = run(t, src, dst, opts)
	if rep.Totals.Copied != len(testmail.Corpus())-12 {
		t.Errorf("re-run copied %d", rep.Totals.Copied)
	}
	sameSnapshots(t, "after cancel and re-run", snapshot(t, dst), snapshot(t, src))
}

// TestStaleState is a crash between APPENDs and the state's save: the
// state knows less than the target holds.
func TestStaleState(t *testing.T) {
	src, dst, opts := corpusPair(t)
	ctx, cancel := context.WithCancel(t.Context())
	var n atomic.Int64
	opts.Parallel = 2
	opts.Progress.Copied = func(string, int64) {
		if n.Add(1) == 10 {
			cancel()
		}
	}
	if _, err := Run(ctx, src, dst, opts); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(opts.StateDir)
	file := filepath.Join(opts.StateDir, ents[0].Name())
	old, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	opts.Progress.Copied = nil
	run(t, src, dst, opts)
	if err := os.WriteFile(file, old, 0o600); err != nil {
		t.Fatal(err)
	}
	rep := run(t, src, dst, opts)
	if rep.Totals.Copied != 0 {
		t.Errorf("stale state: copied %d", rep.Totals.Copied)
	}
	sameSnapshots(t, "stale state", snapshot(t, dst), snapshot(t, src))
}

func TestVerifyDetectsMissing(t *testing.T) {
	src, dst, opts := corpusPair(t)
	run(t, src, dst, opts)
	ctx := t.Context()
	msgs := infos(t, dst, "INBOX")
	mb := openBox(t, dst, "INBOX")
	if err := mb.Expunge(ctx, []store.UID{msgs[1].UID}); err != nil {
		t.Fatal(err)
	}
	if err := mb.SetFlags(ctx, []store.UID{msgs[2].UID}, store.FlagsAdd, []store.Flag{"$behind"}); err != nil {
		t.Fatal(err)
	}
	checkClose(t, mb)
	// Verify alone (a dry run): the two problems are found.
	opts.Verify, opts.DryRun = true, true
	rep, err := Run(ctx, src, dst, opts)
	if !errors.Is(err, ErrUnverified) || rep.Verified == nil || *rep.Verified {
		t.Fatalf("err %v, verified %v", err, rep.Verified)
	}
	problems := map[string]int{}
	for _, m := range rep.Missing {
		problems[m.Problem]++
		if m.Folder != "INBOX" {
			t.Errorf("missing %+v", m)
		}
		if m.Problem == "flags differ" && (m.TargetUID != msgs[2].UID || !slices.Contains(m.TargetFlags, "$behind")) {
			t.Errorf("flags differ: %+v", m)
		}
		if m.Problem == "missing" && (m.Size != msgs[1].Size || m.MessageID != normalizeMessageID(msgs[1].MessageID)) {
			t.Errorf("missing: %+v, want %+v", m, msgs[1])
		}
	}
	if problems["missing"] != 1 || problems["flags differ"] != 1 || len(rep.Missing) != 2 {
		t.Errorf("missing = %+v", rep.Missing)
	}
	// A real run repairs both.
	opts.DryRun = false
	rep = run(t, src, dst, opts)
	if rep.Totals.Copied != 1 || rep.Totals.Updated != 1 || !*rep.Verified {
		t.Errorf("repair: %+v verified %v", rep.Totals, *rep.Verified)
	}
}

func TestSplitBigFolder(t *testing.T) {
	src := newMaildir(t, "")
	msgs := testmail.Generate(testmail.Options{Seed: 7, Count: 400, MaxAttachment: 2048, Folders: []string{"INBOX", "Small"}})
	seed(t, src, msgs)
	dst := &wrapStore{Store: newMaildir(t, ""), t: t}
	opts := Options{StateDir: t.TempDir(), SplitThreshold: 40, Parallel: 4, Verify: true}
	rep := run(t, src, dst, opts)
	if rep.Totals.Copied != len(msgs) || !*rep.Verified {
		t.Errorf("totals %+v", rep.Totals)
	}
	if n := dst.openCount("INBOX"); n < 3 {
		t.Errorf("INBOX opened %d times on the target: no helper joined", n)
	}
	sameSnapshots(t, "split", snapshot(t, dst.Store), snapshot(t, src))
	if rep := run(t, src, dst, opts); rep.Totals.Copied != 0 {
		t.Errorf("re-run copied %d", rep.Totals.Copied)
	}

	// Cancelled in the middle of a split copy, then resumed.
	dst2 := newMaildir(t, "")
	ctx, cancel := context.WithCancel(t.Context())
	var n atomic.Int64
	opts.Progress.Copied = func(string, int64) {
		if n.Add(1) == 150 {
			cancel()
		}
	}
	opts.StateDir = t.TempDir()
	if _, err := Run(ctx, src, dst2, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	opts.Progress.Copied = nil
	run(t, src, dst2, opts)
	sameSnapshots(t, "split, cancelled and resumed", snapshot(t, dst2), snapshot(t, src))
}

func TestUncertainAppend(t *testing.T) {
	src := newMaildir(t, "")
	msgs := testmail.Generate(testmail.Options{Seed: 8, Count: 60})
	seed(t, src, msgs)
	dst := &wrapStore{Store: newMaildir(t, ""), t: t}
	var calls int
	var lost, landed int
	dst.appendHook = func(ctx context.Context, mb store.Mailbox, raw []byte, opts store.AppendOptions) (store.UID, bool, error) {
		calls++
		switch calls % 7 {
		case 3: // stored, but the reply was lost
			if _, err := mb.Append(ctx, strings.NewReader(string(raw)), opts); err != nil {
				return 0, true, err
			}
			landed++
			return 0, true, lostReply{}
		case 5: // lost before it was stored
			lost++
			return 0, true, fmt.Errorf("append: %w", lostReply{})
		}
		return 0, false, nil
	}
	rep := run(t, src, dst, Options{Parallel: 1, Verify: true})
	if rep.Totals.Copied != len(msgs) || rep.Totals.Failed != 0 || !*rep.Verified {
		t.Errorf("totals %+v", rep.Totals)
	}
	if lost == 0 || landed == 0 {
		t.Fatalf("lost %d, landed %d: the test did not exercise both cases", lost, landed)
	}
	sameSnapshots(t, "uncertain appends", snapshot(t, dst.Store), snapshot(t, src))
}

// TestCourier synchronises from a store that names folders like Courier
// ("INBOX." prefix, '.' delimiter) to one like Dovecot, and back.
func TestCourier(t *testing.T) {
	plain := newMaildir(t, "")
	seed(t, plain, testmail.Corpus())
	want := snapshot(t, plain)

	courierInner := newMaildir(t, "")
	courier := &wrapStore{Store: courierInner, courier: true, prefix: "INBOX.", rich: true, t: t}
	rep := run(t, plain, courier, Options{})
	for _, f := range rep.Folders {
		wantTarget := "INBOX"
		if f.Source != "INBOX" {
			wantTarget = "INBOX." + strings.ReplaceAll(f.Source, "/", ".")
		}
		if f.Target != wantTarget {
			t.Errorf("%q → %q, want %q", f.Source, f.Target, wantTarget)
		}
	}
	sameSnapshots(t, "to Courier", snapshot(t, courierInner), want)

	back := newMaildir(t, "")
	rep = run(t, courier, back, Options{})
	for _, f := range rep.Folders {
		if f.Target != courier.inner(f.Source) {
			t.Errorf("%q → %q", f.Source, f.Target)
		}
	}
	sameSnapshots(t, "from Courier", snapshot(t, back), want)
	if rep := run(t, courier, back, Options{}); rep.Totals.Copied != 0 {
		t.Errorf("re-run copied %d", rep.Totals.Copied)
	}
}

func TestIncludeExcludeRun(t *testing.T) {
	src, dst, _ := corpusPair(t)
	rep := run(t, src, dst, Options{Exclude: []string{"Archive*", "日本語*"}, Maps: mustMap(t, `Q&A=FAQ`)})
	got := map[string]bool{}
	for _, f := range rep.Folders {
		got[f.Target] = true
	}
	if got["Archive"] || got["Archive/2019"] || got["日本語"] || !got["FAQ"] || got["Q&A"] {
		t.Errorf("targets %v", got)
	}
	if len(rep.Skipped) != 4 {
		t.Errorf("skipped %v", rep.Skipped)
	}
	if len(infos(t, dst, "FAQ")) != len(infos(t, src, "Q&A")) {
		t.Error("mapped folder not copied")
	}
}

func TestStateFileFormat(t *testing.T) {
	src, dst, opts := corpusPair(t)
	run(t, src, dst, opts)
	ents, _ := os.ReadDir(opts.StateDir)
	if len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".json") || !strings.HasPrefix(ents[0].Name(), "a_b-") {
		t.Fatalf("state directory holds %v", ents)
	}
	data, err := os.ReadFile(filepath.Join(opts.StateDir, ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Account != "a→b" || f.Version != stateVersion || len(f.Folders) != selectableFolders(t, src) {
		t.Errorf("state %+v", f)
	}
	for _, ff := range f.Folders {
		// Copies are made in UID order into an empty folder: one run each.
		if len(ff.Pairs) > 1 {
			t.Errorf("%s: pairs %v", ff.Source, ff.Pairs)
		}
	}
	// Another account's state is separate.
	opts.Account = "c→d"
	if rep := run(t, src, dst, opts); rep.Totals.Copied != 0 {
		t.Errorf("other account copied %d", rep.Totals.Copied)
	}
	if ents, _ := os.ReadDir(opts.StateDir); len(ents) != 2 {
		t.Errorf("state directory holds %v", ents)
	}
}
