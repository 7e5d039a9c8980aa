package serve_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/internal/servetest"
)

func TestAppendLimits(t *testing.T) {
	t.Parallel()
	srv := servetest.Start(t, servetest.Options{NoSync: true, AppendLimit: 5000})
	c := dial(t, srv)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if limit, ok := caps.AppendLimit(); !ok || limit == nil || *limit != 5000 {
		t.Errorf("APPENDLIMIT in %v, want 5000", caps)
	}
	// Exactly at the limit is fine; one byte more is TOOBIG. (Both are
	// synchronizing literals: with a non-synchronizing one, go-imap refuses
	// it without reading it and loses track of the command stream.)
	raw := simpleMessage("at the limit", "")
	raw = append(raw[:len(raw)-2], strings.Repeat("x", 5000-len(raw))+"\r\n"...)
	if len(raw) != 5000 {
		t.Fatalf("test message is %d bytes", len(raw))
	}
	appendMsg(t, c, "INBOX", raw, nil, fixedDate)
	cmd := c.Append("INBOX", 5001, nil)
	// The server refuses the literal: the outcome is in Wait.
	_, _ = cmd.Write(append(raw, 'y'))
	_ = cmd.Close()
	_, err = cmd.Wait()
	wantNo(t, "APPEND over APPENDLIMIT", err, imap.ResponseCodeTooBig)
	// imapclient gives up its connection after a refused literal.
	c = dial(t, srv)
	// A missing mailbox asks the client to create it.
	cmd = c.Append("Missing", int64(len(raw)), nil)
	_, _ = cmd.Write(raw) // the outcome is in Wait
	_ = cmd.Close()
	_, err = cmd.Wait()
	wantNo(t, "APPEND to a missing mailbox", err, imap.ResponseCodeTryCreate)
	// \Recent cannot be set by APPEND; other flags are kept.
	app := appendMsg(t, c, "INBOX", simpleMessage("recent", "x"), []imap.Flag{`\Recent`, imap.FlagDraft}, fixedDate)
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 2 {
		t.Fatalf("STATUS after APPENDs: %+v, %v", st, err)
	}
	mustSelect(t, c, "INBOX", true)
	got := fetchUIDs(t, c, []imap.UID{app.UID}, &imap.FetchOptions{Flags: true})
	if f := flagSet(got[app.UID].Flags); !slices.Equal(f, []string{`\draft`}) {
		t.Errorf("flags after APPEND (\\Recent \\Draft): %v", f)
	}
}

// TestStaleView checks a session whose view still holds a message another
// session expunged: commands on the old sequence numbers must not fail,
// and the EXPUNGE is announced when allowed, keeping numbers consistent.
func TestStaleView(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ev := newEvents()
	a := srv.Dial(t, servetest.ImplicitTLS, user, pass, ev.options())
	b := dial(t, srv)
	uids, raws := seedBox(t, b, "Shared", 4)
	mustSelect(t, a, "Shared", false)
	mustSelect(t, b, "Shared", false)
	storeFlags(t, b, imap.SeqSetNum(2), imap.StoreFlagsAdd, true, imap.FlagDeleted)
	if _, err := b.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}

	// FETCH, STORE and SEARCH may not send EXPUNGE: A still numbers 4
	// messages and must get no data for the expunged one.
	msgs, err := a.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 4}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatalf("FETCH 1:4 with a message expunged elsewhere: %v", err)
	}
	for _, m := range msgs {
		if m.UID == uids[1] {
			t.Errorf("FETCH returned the expunged message")
		} else if string(m.BodySection[0].Bytes) != string(raws[m.UID]) {
			t.Errorf("FETCH seq %d returned UID %d with other bytes", m.SeqNum, m.UID)
		}
		if want := slices.Index(uids, m.UID) + 1; int(m.SeqNum) != want {
			t.Errorf("FETCH: UID %d as sequence number %d, want %d (numbers must not shift before EXPUNGE)", m.UID, m.SeqNum, want)
		}
	}
	if _, expunges, _ := ev.snapshot(); len(expunges) != 0 {
		t.Errorf("EXPUNGE sent during FETCH")
	}
	if _, err := a.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$Seen3"}}, nil).Collect(); err != nil {
		t.Fatalf("STORE 3 with a stale view: %v", err)
	}
	if got := searchUIDs(t, a, &imap.SearchCriteria{Flag: []imap.Flag{"$Seen3"}}); !slices.Equal(got, []imap.UID{uids[2]}) {
		t.Errorf("STORE 3 in the stale view flagged %v, want UID %d", got, uids[2])
	}
	// NOOP may: EXPUNGE 2, and the numbers shift.
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, expunges, _ := ev.snapshot(); !slices.Equal(expunges, []uint32{2}) {
		t.Errorf("NOOP: EXPUNGE %v, want [2]", expunges)
	}
	got := fetchAll(t, a, &imap.FetchOptions{})
	if len(got) != 3 || got[1].UID != uids[2] || got[1].SeqNum != 2 {
		t.Errorf("after NOOP: %d messages, seq 2 is UID %d", len(got), got[min(1, len(got)-1)].UID)
	}
}

// TestConcurrentSessions has several sessions change one mailbox at once
// while another watches in IDLE; in the end every session must agree with
// STATUS on what the mailbox holds.
func TestConcurrentSessions(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	setup := dial(t, srv)
	createAll(t, setup, "Busy")
	ev := newEvents()
	watcher := srv.Dial(t, servetest.Plain, user, pass, ev.options())
	mustSelect(t, watcher, "Busy", false)
	idle, err := watcher.Idle()
	if err != nil {
		t.Fatal(err)
	}

	const workers, rounds = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		c := srv.DialPlain(t, user, pass)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				raw := simpleMessage(fmt.Sprintf("worker %d round %d", w, r), "x")
				cmd := c.Append("Busy", int64(len(raw)), nil)
				_, _ = cmd.Write(raw) // a failure shows in Wait
				_ = cmd.Close()
				if _, err := cmd.Wait(); err != nil {
					errs <- fmt.Errorf("worker %d: APPEND: %w", w, err)
					return
				}
				if _, err := c.Select("Busy", nil).Wait(); err != nil {
					errs <- fmt.Errorf("worker %d: SELECT: %w", w, err)
					return
				}
				// Flag and expunge some of everybody's messages.
				if _, err := c.Store(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.Flag(fmt.Sprintf("$W%d", w))}}, nil).Collect(); err != nil {
					errs <- fmt.Errorf("worker %d: STORE: %w", w, err)
					return
				}
				if r%3 == 2 {
					if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
						errs <- fmt.Errorf("worker %d: STORE \\Deleted: %w", w, err)
						return
					}
					if _, err := c.Expunge().Collect(); err != nil {
						errs <- fmt.Errorf("worker %d: EXPUNGE: %w", w, err)
						return
					}
				}
				if _, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, UID: true}).Collect(); err != nil {
					errs <- fmt.Errorf("worker %d: FETCH: %w", w, err)
					return
				}
			}
			if err := c.Noop().Wait(); err != nil {
				errs <- fmt.Errorf("worker %d: NOOP: %w", w, err)
				return
			}
			if n := c.Mailbox().NumMessages; n == 0 {
				errs <- fmt.Errorf("worker %d: empty view", w)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	st, err := setup.Status("Busy", &imap.StatusOptions{NumMessages: true, NumDeleted: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	want := *st.NumMessages
	if want == 0 || want > workers*rounds {
		t.Fatalf("STATUS MESSAGES %d", want)
	}
	// The watcher's view, kept up to date by IDLE, has the same count.
	ev.waitFor(t, fmt.Sprintf("the watcher to reach %d messages", want), func([]uint32, []uint32, []fetchEvent) bool {
		return watcher.Mailbox().NumMessages == want
	})
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	msgs := fetchAll(t, watcher, &imap.FetchOptions{Flags: true})
	if uint32(len(msgs)) != want {
		t.Fatalf("watcher FETCH 1:* returned %d messages, STATUS says %d", len(msgs), want)
	}
	for i, m := range msgs {
		if m.SeqNum != uint32(i+1) {
			t.Errorf("watcher: message %d has sequence number %d", i+1, m.SeqNum)
		}
		if i > 0 && m.UID <= msgs[i-1].UID {
			t.Errorf("watcher: UIDs not ascending at %d", i+1)
		}
	}
}
