package maildir

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imapctl/imapctl/pkg/store"
)

func TestParallelAppend(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	const workers, each = 8, 40
	var wg sync.WaitGroup
	got := make([][]uint32, workers)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker has its own handle, as IMAP sessions do.
			mb, err := s.OpenMailbox(t.Context(), "INBOX")
			if err != nil {
				errs <- err
				return
			}
			defer checkClose(t, mb)
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("w%d-%d@example.com", w, i)
				uid, err := mb.Append(t.Context(), bytesReader(testMsg(id, id)), store.AppendOptions{Flags: []store.Flag{store.Flag(fmt.Sprintf("worker%d", w))}})
				if err != nil {
					errs <- err
					return
				}
				got[w] = append(got[w], uint32(uid))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for w, uids := range got {
		if !slices.IsSorted(uids) {
			t.Errorf("worker %d got UIDs out of order: %v", w, uids)
		}
		for _, u := range uids {
			if seen[u] {
				t.Errorf("UID %d handed out twice", u)
			}
			seen[u] = true
		}
	}
	check := func(mb *Mailbox) {
		t.Helper()
		msgs := byMessageID(t, mb)
		if len(msgs) != workers*each {
			t.Errorf("%d messages, want %d", len(msgs), workers*each)
		}
		for w := range got {
			for i, u := range got[w] {
				mi := msgs[fmt.Sprintf("<w%d-%d@example.com>", w, i)]
				if uint32(mi.UID) != u || !mi.HasFlag(store.Flag(fmt.Sprintf("worker%d", w))) {
					t.Errorf("w%d-%d: %+v, want UID %d with its keyword", w, i, mi, u)
				}
			}
		}
		if st, _ := mb.Status(t.Context()); st.UIDNext != workers*each+1 {
			t.Errorf("UIDNEXT %d, want %d", st.UIDNext, workers*each+1)
		}
	}
	check(openBox(t, s, "INBOX"))
	checkClose(t, s)
	check(openBox(t, openTestStore(t, root, Options{NoSync: true}), "INBOX"))
}

// TestConcurrentMoveNoDeadlock moves messages A->B and B->A at the same
// time, many times over.
func TestConcurrentMoveNoDeadlock(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	for _, n := range []string{"A", "B"} {
		if err := s.Create(t.Context(), n, nil); err != nil {
			t.Fatal(err)
		}
	}
	appendIDs(t, openBox(t, s, "A"), "a", 30)
	appendIDs(t, openBox(t, s, "B"), "b", 30)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, dir := range [][2]string{{"A", "B"}, {"B", "A"}, {"A", "B"}, {"B", "A"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 40 && ctx.Err() == nil; round++ {
				mb, err := s.OpenMailbox(ctx, dir[0])
				if err != nil {
					errs <- err
					return
				}
				var uids []uint32
				for _, mi := range mb.Lookup(mb.State().UIDs) {
					uids = append(uids, uint32(mi.UID))
					if len(uids) == 3 {
						break
					}
				}
				if _, _, err := mb.MoveUIDs(ctx, uids, dir[1]); err != nil {
					errs <- err
				}
				// Copies and flag changes in between, for the race detector.
				if len(uids) > 0 {
					if _, err := mb.UpdateFlags(ctx, uids[:1], store.FlagsAdd, []store.Flag{store.FlagSeen}); err != nil {
						t.Errorf("UpdateFlags: %v", err)
					}
				}
				checkClose(t, mb)
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("concurrent moves did not finish: deadlock?")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every message is in exactly one mailbox, also after reopening.
	for pass := 0; pass < 2; pass++ {
		count := map[string]int{}
		for _, n := range []string{"A", "B"} {
			mb := openBox(t, s, n)
			for id := range byMessageID(t, mb) {
				count[id]++
			}
			checkClose(t, mb)
		}
		if len(count) != 60 {
			t.Errorf("pass %d: %d distinct messages, want 60", pass, len(count))
		}
		for id, c := range count {
			if c != 1 {
				t.Errorf("pass %d: %s in %d mailboxes", pass, id, c)
			}
		}
		checkClose(t, s)
		s = openTestStore(t, root, Options{NoSync: true})
	}
}

// TestConcurrentMixed runs appends, flag changes, expunges, copies,
// listing and reading on one mailbox at once (for the race detector).
func TestConcurrentMixed(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true, KeepLoaded: -1})
	if err := s.Create(t.Context(), "Other", nil); err != nil {
		t.Fatal(err)
	}
	appendIDs(t, openBox(t, s, "INBOX"), "base", 20)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	work := []func(mb *Mailbox, i int) error{
		func(mb *Mailbox, i int) error {
			_, err := mb.Append(ctx, bytesReader(testMsg(fmt.Sprintf("mix%d@example.com", i), "x")), store.AppendOptions{})
			return err
		},
		func(mb *Mailbox, i int) error {
			_, err := mb.UpdateFlags(ctx, mb.State().UIDs, store.FlagsAdd, []store.Flag{store.Flag(fmt.Sprintf("k%d", i%5))})
			return err
		},
		func(mb *Mailbox, i int) error {
			uids := mb.State().UIDs
			if len(uids) < 10 {
				return nil
			}
			_, err := mb.ExpungeUIDs(ctx, uids[:1])
			return err
		},
		func(mb *Mailbox, i int) error {
			_, _, err := mb.CopyUIDs(ctx, mb.State().UIDs[:2], "Other")
			return err
		},
		func(mb *Mailbox, i int) error {
			for _, m := range mb.Lookup(mb.State().UIDs) {
				f, err := mb.OpenFile(m)
				if err != nil {
					continue // expunged meanwhile
				}
				_ = f.Close() // read only
			}
			_, err := mb.Status(ctx)
			return err
		},
		func(mb *Mailbox, i int) error {
			_, err := s.List(ctx)
			return err
		},
	}
	errs := make(chan error, len(work))
	for k, fn := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25 && ctx.Err() == nil; i++ {
				mb, err := s.OpenMailbox(ctx, "INBOX")
				if err != nil {
					errs <- err
					return
				}
				if err := fn(mb, i); err != nil {
					errs <- fmt.Errorf("worker %d: %w", k, err)
					checkClose(t, mb)
					return
				}
				checkClose(t, mb)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ctx.Err() != nil {
		t.Fatal("workers did not finish in time")
	}
	mb := openBox(t, s, "INBOX")
	want := infos(t, mb)
	checkClose(t, s)
	mb2 := openBox(t, openTestStore(t, root, Options{NoSync: true}), "INBOX")
	if got := infos(t, mb2); !slices.EqualFunc(got, want, func(a, b store.MessageInfo) bool {
		return a.UID == b.UID && slices.Equal(a.Flags, b.Flags) && a.MessageID == b.MessageID
	}) {
		t.Errorf("state after reopening differs:\n%v\nwant\n%v", uidsOf(got), uidsOf(want))
	}
}
