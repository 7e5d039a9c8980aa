package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

// TestBatchCopy: a target that takes batches gets them, and the copy is
// exact; with NoBatch, it gets single appends.
func TestBatchCopy(t *testing.T) {
	for _, rich := range []bool{false, true} {
		t.Run(fmt.Sprintf("rich=%v", rich), func(t *testing.T) {
			src := newMaildir(t, "")
			msgs := testmail.Generate(testmail.Options{Seed: 21, Count: 120})
			seed(t, src, msgs)
			dst := &wrapStore{Store: newMaildir(t, ""), t: t, batchMsgs: 8, rich: rich}
			rep := run(t, src, dst, Options{Verify: true, StateDir: t.TempDir()})
			if rep.Totals.Copied != len(msgs) || !*rep.Verified {
				t.Fatalf("totals %+v", rep.Totals)
			}
			single := dst.appends.Load() + dst.sized.Load()
			if dst.batches.Load() < int64(len(msgs)/8) || single > int64(len(msgs)/4) {
				t.Errorf("%d batches and %d single appends for %d messages in batches of 8", dst.batches.Load(), single, len(msgs))
			}
			sameSnapshots(t, "batched copy", snapshot(t, dst.Store), snapshot(t, src))

			dst2 := &wrapStore{Store: newMaildir(t, ""), t: t, batchMsgs: 8, rich: rich}
			run(t, src, dst2, Options{NoBatch: true})
			if dst2.batches.Load() != 0 {
				t.Errorf("NoBatch: %d batches", dst2.batches.Load())
			}
			sameSnapshots(t, "NoBatch copy", snapshot(t, dst2.Store), snapshot(t, src))
		})
	}
}

// TestBatchManyBatches: a worker's batch size stays at the target's limit
// however many batches go through (it once doubled after each until it
// overflowed, and the rest of a big folder went one message at a time).
func TestBatchManyBatches(t *testing.T) {
	src := newMaildir(t, "")
	msgs := testmail.Generate(testmail.Options{Seed: 26, Count: 300, MaxAttachment: 2048, Folders: []string{"INBOX"}})
	seed(t, src, msgs)
	dst := &wrapStore{Store: newMaildir(t, ""), t: t, batchMsgs: 2}
	rep := run(t, src, dst, Options{NoSplit: true})
	if rep.Totals.Copied != len(msgs) {
		t.Fatalf("totals %+v", rep.Totals)
	}
	if single := dst.appends.Load() + dst.sized.Load(); dst.batches.Load() != int64(len(msgs)/2) || single != 0 {
		t.Errorf("%d batches and %d single appends for %d messages in batches of 2", dst.batches.Load(), single, len(msgs))
	}
}

// TestBatchRefused: a batch the target refuses because of one message is
// copied again one message at a time: that message is reported, with the
// target's reason, and every other one arrives.
func TestBatchRefused(t *testing.T) {
	src := newMaildir(t, "")
	msgs := testmail.Generate(testmail.Options{Seed: 22, Count: 80, Folders: []string{"INBOX"}})
	seed(t, src, msgs)
	victim := "<" + msgs[37].MessageID + ">"
	if msgs[37].MessageID == "" {
		t.Fatal("the victim needs a Message-ID")
	}
	dst := &wrapStore{Store: newMaildir(t, ""), t: t, batchMsgs: 10}
	refused := 0
	dst.batchHook = func(raws [][]byte) (bool, error) {
		for _, raw := range raws {
			if messageIDOf(raw) == victim {
				refused++
				return false, &refusal{"NO [LIMIT] one message of the batch is over the limit"}
			}
		}
		return true, nil
	}
	dst.appendHook = func(_ context.Context, _ store.Mailbox, raw []byte, _ store.AppendOptions) (store.UID, bool, error) {
		if messageIDOf(raw) == victim {
			return 0, true, &refusal{"NO [LIMIT] over the limit"}
		}
		return 0, false, nil
	}
	rep, err := Run(t.Context(), src, dst, Options{Verify: true})
	if !errors.Is(err, ErrPartial) {
		t.Fatalf("err = %v, want ErrPartial", err)
	}
	if rep.Totals.Copied != len(msgs)-1 || rep.Totals.Failed != 1 || len(rep.Failures) != 1 ||
		rep.Failures[0].MessageID != victim || !strings.Contains(rep.Failures[0].Reason, "over the limit") {
		t.Fatalf("totals %+v, failures %+v", rep.Totals, rep.Failures)
	}
	if refused != 1 {
		t.Errorf("%d batches refused, want 1 (the rest of a refused batch goes one by one)", refused)
	}
	if n := len(infos(t, dst.Store, "INBOX")); n != len(msgs)-1 {
		t.Errorf("target holds %d messages, want %d", n, len(msgs)-1)
	}
}

// TestBatchReplyLost: batches whose reply is lost, stored or not, are
// looked for on the target: every message ends up there exactly once.
func TestBatchReplyLost(t *testing.T) {
	src := newMaildir(t, "")
	msgs := testmail.Generate(testmail.Options{Seed: 23, Count: 90})
	seed(t, src, msgs)
	dst := &wrapStore{Store: newMaildir(t, ""), t: t, batchMsgs: 6}
	calls, landed, lost := 0, 0, 0
	dst.batchHook = func([][]byte) (bool, error) {
		calls++
		switch calls % 3 {
		case 1:
			landed++
			return true, lostReply{}
		case 2:
			lost++
			return false, fmt.Errorf("append: %w", lostReply{})
		}
		return true, nil
	}
	rep := run(t, src, dst, Options{Parallel: 1, Verify: true, StateDir: t.TempDir()})
	if rep.Totals.Copied != len(msgs) || rep.Totals.Failed != 0 || !*rep.Verified {
		t.Errorf("totals %+v", rep.Totals)
	}
	if landed == 0 || lost == 0 {
		t.Fatalf("landed %d, lost %d: both cases must happen", landed, lost)
	}
	sameSnapshots(t, "batches with lost replies", snapshot(t, dst.Store), snapshot(t, src))
	if rep := run(t, src, dst, Options{StateDir: t.TempDir()}); rep.Totals.Copied != 0 {
		t.Errorf("re-run copied %d", rep.Totals.Copied)
	}
}

// TestBatchBroken: batches that keep breaking the connection shrink, then
// stop; their messages go one at a time, and all arrive.
func TestBatchBroken(t *testing.T) {
	src := newMaildir(t, "")
	msgs := testmail.Generate(testmail.Options{Seed: 24, Count: 100, Folders: []string{"INBOX"}})
	seed(t, src, msgs)
	dst := &wrapStore{Store: newMaildir(t, ""), t: t, batchMsgs: 10}
	dst.batchHook = func([][]byte) (bool, error) {
		return false, fmt.Errorf("connection lost: %w", io.ErrUnexpectedEOF)
	}
	rep := run(t, src, dst, Options{Verify: true})
	if rep.Totals.Copied != len(msgs) || !*rep.Verified {
		t.Errorf("totals %+v", rep.Totals)
	}
	// 1 MiB, 256 KiB, then 64 KiB: the third failure stops batching
	// (fewer when the messages left no longer make a batch).
	if n := dst.batches.Load(); n == 0 || n > 3 {
		t.Errorf("%d batches tried, want 1 to 3", n)
	}
	sameSnapshots(t, "after broken batches", snapshot(t, dst.Store), snapshot(t, src))
}

// TestBatchSourceVanishes: a source message expunged between the listing
// and its turn in a batch ends the batch; it is not copied, nothing is
// reported as failed, and the rest arrive.
func TestBatchSourceVanishes(t *testing.T) {
	src := newMaildir(t, "")
	msgs := testmail.Generate(testmail.Options{Seed: 25, Count: 40, Folders: []string{"INBOX"}})
	seed(t, src, msgs)
	all := infos(t, src, "INBOX")
	gone := all[len(all)/2].UID
	dst := &wrapStore{Store: newMaildir(t, ""), t: t, batchMsgs: 50}
	srcW := &wrapStore{Store: src, t: t}
	var once stdsync.Once
	srcW.openMessageHook = func(mb store.Mailbox, _ store.UID) {
		once.Do(func() {
			if err := mb.Expunge(t.Context(), []store.UID{gone}); err != nil {
				t.Errorf("expunge: %v", err)
			}
		})
	}
	rep := run(t, srcW, dst, Options{})
	if rep.Totals.Copied != len(msgs)-1 || rep.Totals.Failed != 0 {
		t.Errorf("totals %+v", rep.Totals)
	}
	if dst.batches.Load() == 0 {
		t.Error("no batch was tried")
	}
	sameSnapshots(t, "source message vanished", snapshot(t, dst.Store), snapshot(t, src))
}

// TestRecheckWaitsForOtherAppends: two identical messages (same
// Message-ID, same bytes) copied by two workers at once; the first append
// is stored but slow to answer, the second's reply is lost. Looking for
// the second on the target must not take the first's copy (stored, not
// yet claimed) for it: each source message ends up paired with its own
// copy, so a re-run with --delete neither deletes nor copies anything.
func TestRecheckWaitsForOtherAppends(t *testing.T) {
	src := newMaildir(t, "")
	raw := []byte("Message-ID: <twin@example.com>\r\nSubject: twin\r\nFrom: a@example.com\r\n\r\nthe same message, stored twice\r\n")
	appendRaw(t, src, "INBOX", raw)
	appendRaw(t, src, "INBOX", raw)
	dst := &wrapStore{Store: newMaildir(t, ""), t: t}
	var (
		mu    stdsync.Mutex
		calls int
	)
	dst.appendHook = func(ctx context.Context, mb store.Mailbox, raw []byte, opts store.AppendOptions) (store.UID, bool, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		uid, err := mb.Append(ctx, bytes.NewReader(raw), opts)
		if err != nil {
			return 0, true, err
		}
		switch n {
		case 1: // stored; the reply takes a while
			time.Sleep(300 * time.Millisecond)
			return uid, true, nil
		case 2: // stored; the reply is lost
			return 0, true, lostReply{}
		}
		return uid, true, nil
	}
	state := t.TempDir()
	// SplitThreshold 1: one message per range, a worker each.
	rep := run(t, src, dst, Options{StateDir: state, Parallel: 2, SplitThreshold: 1})
	if rep.Totals.Copied != 2 || calls != 2 {
		t.Fatalf("totals %+v after %d appends", rep.Totals, calls)
	}
	// The state pairs each source message with a copy of its own.
	st, err := loadState(state, rep.Account, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fs := st.folders[folderKey("INBOX", "INBOX")]
	if fs == nil || len(fs.pairs) != 2 || fs.pairs[1] == fs.pairs[2] {
		t.Fatalf("state pairs %v: want the two source messages with two different copies", fs)
	}
	rep = run(t, src, dst, Options{StateDir: state, Delete: true, Verify: true})
	if rep.Totals.Copied != 0 || rep.Totals.Deleted != 0 || !*rep.Verified {
		t.Errorf("re-run with --delete: %+v", rep.Totals)
	}
	if n := len(infos(t, dst.Store, "INBOX")); n != 2 {
		t.Errorf("target holds %d copies, want 2", n)
	}
}
