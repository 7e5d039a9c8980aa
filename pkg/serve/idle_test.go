package serve_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/internal/servetest"
)

var deliverySeq atomic.Int64

// deliver drops a message into a Maildir folder's new/ the way a local
// delivery agent does: written to tmp/, then renamed into new/.
func deliver(t *testing.T, folderDir string, raw []byte) {
	t.Helper()
	name := fmt.Sprintf("1700000000.M%dP%d.testhost", deliverySeq.Add(1), os.Getpid())
	tmp := filepath.Join(folderDir, "tmp", name)
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(folderDir, "new", name)); err != nil {
		t.Fatal(err)
	}
}

// TestIdleUpdates checks that a session in IDLE hears of other sessions'
// APPEND, STORE and EXPUNGE, and of messages delivered to new/ by another
// program; and that such a delivery also shows on NOOP.
func TestIdleUpdates(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ev := newEvents()
	a := srv.Dial(t, servetest.ImplicitTLS, user, pass, ev.options())
	b := dial(t, srv)
	appendMsg(t, b, "INBOX", simpleMessage("first", "x"), nil, fixedDate)
	appendMsg(t, b, "INBOX", simpleMessage("second", "y"), nil, fixedDate)
	if n := mustSelect(t, a, "INBOX", false).NumMessages; n != 2 {
		t.Fatalf("INBOX has %d messages, want 2", n)
	}
	idle, err := a.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}

	// APPEND by another session: EXISTS.
	appendMsg(t, b, "INBOX", simpleMessage("third", "z"), nil, fixedDate)
	ev.waitFor(t, "EXISTS 3", func(exists, _ []uint32, _ []fetchEvent) bool { return slices.Contains(exists, 3) })

	// STORE by another session: FETCH with the new flags.
	mustSelect(t, b, "INBOX", false)
	storeFlags(t, b, imap.SeqSetNum(1), imap.StoreFlagsAdd, true, imap.FlagFlagged, "$Work")
	ev.waitFor(t, "FETCH 1 (FLAGS (\\Flagged $Work))", func(_, _ []uint32, fetches []fetchEvent) bool {
		for _, f := range fetches {
			if f.Seq == 1 && hasFlag(f.Flags, imap.FlagFlagged) && hasFlag(f.Flags, "$Work") {
				return true
			}
		}
		return false
	})

	// EXPUNGE by another session: EXPUNGE.
	storeFlags(t, b, imap.SeqSetNum(2), imap.StoreFlagsAdd, true, imap.FlagDeleted)
	if _, err := b.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "EXPUNGE 2", func(_, expunges []uint32, _ []fetchEvent) bool { return slices.Equal(expunges, []uint32{2}) })

	// A delivery to new/ by another program: EXISTS (now 2 + 1).
	delivered := simpleMessage("delivered while idle", "local delivery")
	deliver(t, srv.MaildirPath(user), delivered)
	ev.waitFor(t, "EXISTS 3 after the delivery", func(exists, expunges []uint32, _ []fetchEvent) bool {
		return len(exists) >= 2 && exists[len(exists)-1] == 3
	})

	if err := idle.Close(); err != nil {
		t.Fatalf("DONE: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}

	// Outside IDLE, a delivery shows on NOOP.
	ev.reset()
	deliver(t, srv.MaildirPath(user), simpleMessage("delivered before NOOP", "x"))
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if exists, _, _ := ev.snapshot(); !slices.Equal(exists, []uint32{4}) {
		t.Errorf("NOOP after a delivery: EXISTS %v, want [4]", exists)
	}
	// The delivered messages are readable and the view is consistent.
	msgs := fetchAll(t, a, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if len(msgs) != 4 || string(msgs[2].BodySection[0].Bytes) != string(delivered) {
		t.Errorf("after deliveries: %d messages, third = %q", len(msgs), msgs[min(2, len(msgs)-1)].BodySection[0].Bytes)
	}
	// A delivery to another folder's new/ shows in STATUS.
	createAll(t, b, "Lists")
	deliver(t, filepath.Join(srv.MaildirPath(user), ".Lists"), simpleMessage("list mail", "x"))
	st, err := b.Status("Lists", &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
	if err != nil || *st.NumMessages != 1 || *st.NumUnseen != 1 {
		t.Errorf("STATUS Lists after a delivery: %+v, %v", st, err)
	}
}

// TestUpdatesAreMerged checks that a quiet session is told about 3,000
// APPENDs by another session with one EXISTS, not 3,000.
func TestUpdatesAreMerged(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ev := newEvents()
	a := srv.Dial(t, servetest.Plain, user, pass, ev.options())
	mustSelect(t, a, "INBOX", false)
	b := srv.DialPlain(t, user, pass)

	const n = 3000
	raw := simpleMessage("bulk", "bulk message")
	const window = 128
	var pending []*imapclient.AppendCommand
	wait := func(cmds []*imapclient.AppendCommand) {
		for _, cmd := range cmds {
			if _, err := cmd.Wait(); err != nil {
				t.Fatalf("APPEND: %v", err)
			}
		}
	}
	for i := range n {
		cmd := b.Append("INBOX", int64(len(raw)), nil)
		if _, err := cmd.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		pending = append(pending, cmd)
		if len(pending) == window || i == n-1 {
			wait(pending)
			pending = pending[:0]
		}
	}

	if err := a.Noop().Wait(); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	exists, expunges, fetches := ev.snapshot()
	if count := len(exists); !slices.Equal(exists, []uint32{n}) {
		if len(exists) > 5 {
			exists = append(exists[:5:5], exists[len(exists)-1])
		}
		t.Errorf("NOOP after %d APPENDs: %d EXISTS responses (%v), want one EXISTS %d", n, count, exists, n)
	}
	if len(expunges) != 0 || len(fetches) != 0 {
		t.Errorf("NOOP after APPENDs: unexpected EXPUNGE %v / FETCH %d", expunges, len(fetches))
	}
	if got := a.Mailbox().NumMessages; got != n {
		t.Errorf("client's message count %d, want %d", got, n)
	}
	// The next NOOP has nothing to say.
	ev.reset()
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if exists, _, _ := ev.snapshot(); len(exists) != 0 {
		t.Errorf("second NOOP: EXISTS %v", exists)
	}
}

// TestIdleEndsBadly ends IDLE in the ways go-imap does not wait for the
// session's Idle to return: the client goes away, or ends IDLE with
// something other than DONE and goes on with other commands.
func TestIdleEndsBadly(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	b := srv.DialPlain(t, user, pass)
	appendMsg(t, b, "INBOX", simpleMessage("present", "x"), nil, fixedDate)

	for i := range 10 {
		rc := dialRaw(t, srv.Addr, nil)
		rc.ok("LOGIN " + quote(user) + " " + quote(pass))
		rc.ok("SELECT INBOX")
		if _, err := rc.conn.Write([]byte("I IDLE\r\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := rc.readLine(); err != nil || !strings.HasPrefix(line, "+") {
			t.Fatalf("IDLE: %q, %v", line, err)
		}
		// A change to report while the connection goes away.
		appendMsg(t, b, "INBOX", simpleMessage(fmt.Sprintf("while leaving %d", i), "x"), nil, fixedDate)
		_ = rc.conn.Close() // the client goes away abruptly
	}

	rc := dialRaw(t, srv.Addr, nil)
	rc.ok("LOGIN " + quote(user) + " " + quote(pass))
	rc.ok("SELECT INBOX")
	for range 5 {
		if _, err := rc.conn.Write([]byte("I IDLE\r\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := rc.readLine(); err != nil || !strings.HasPrefix(line, "+") {
			t.Fatalf("IDLE: %q, %v", line, err)
		}
		// Not "DONE": go-imap ends IDLE with BAD and reads the next command.
		if _, err := rc.conn.Write([]byte("done\r\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := rc.readLine(); err != nil || !strings.HasPrefix(line, "I ") {
			t.Fatalf("IDLE ended with \"done\": %q, %v", line, err)
		}
		rc.ok("SELECT Archive")
		rc.ok("SELECT INBOX")
	}
	if untagged := rc.ok("UID SEARCH ALL"); len(untagged) != 1 {
		t.Fatalf("UID SEARCH ALL: %q", untagged)
	}
	// The server is still healthy.
	c := dial(t, srv)
	if n := mustSelect(t, c, "INBOX", false).NumMessages; n != 11 {
		t.Errorf("INBOX has %d messages, want 11", n)
	}
}

// TestIdleWithoutMailbox checks IDLE in the authenticated state: nothing
// to report, and DONE ends it.
func TestIdleWithoutMailbox(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	appendMsg(t, dial(t, srv), "INBOX", simpleMessage("while idle", "x"), nil, fixedDate)
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	if n := mustSelect(t, c, "INBOX", false).NumMessages; n != 1 {
		t.Errorf("INBOX: %d messages, want 1", n)
	}
}

// TestExternalChanges checks changes made to the Maildir by another
// program while a session has the mailbox selected: a flag change in a
// file name shows as FETCH, a removed file as EXPUNGE.
func TestExternalChanges(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ev := newEvents()
	a := srv.Dial(t, servetest.ImplicitTLS, user, pass, ev.options())
	b := dial(t, srv)
	seedBox(t, b, "Ext", 3)
	mustSelect(t, a, "Ext", false)
	cur := filepath.Join(srv.MaildirPath(user), ".Ext", "cur")
	files, err := os.ReadDir(cur)
	if err != nil || len(files) != 3 {
		t.Fatalf("cur/: %d files, %v", len(files), err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name()
	}
	slices.Sort(names) // by base name: delivery order

	idle, err := a.Idle()
	if err != nil {
		t.Fatal(err)
	}
	// Another program flags the first message (Maildir info "F", "S").
	base, _, _ := strings.Cut(names[0], ":2,")
	if err := os.Rename(filepath.Join(cur, names[0]), filepath.Join(cur, base+":2,FS")); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "FETCH 1 (FLAGS (\\Flagged \\Seen))", func(_, _ []uint32, fetches []fetchEvent) bool {
		for _, f := range fetches {
			if f.Seq == 1 && hasFlag(f.Flags, imap.FlagFlagged) && hasFlag(f.Flags, imap.FlagSeen) {
				return true
			}
		}
		return false
	})
	// Another program removes the second message.
	if err := os.Remove(filepath.Join(cur, names[1])); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "EXPUNGE 2", func(_, expunges []uint32, _ []fetchEvent) bool { return slices.Equal(expunges, []uint32{2}) })
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	msgs := fetchAll(t, a, &imap.FetchOptions{Flags: true})
	if len(msgs) != 2 || !slices.Equal(flagSet(msgs[0].Flags), []string{`\flagged`, `\seen`}) {
		t.Errorf("after external changes: %d messages, first flags %v", len(msgs), msgs[0].Flags)
	}
}

// TestOwnAppendShowsUp checks that a session sees the messages it APPENDs
// or COPYs to its selected mailbox by the next command at the latest.
func TestOwnAppendShowsUp(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ev := newEvents()
	c := srv.Dial(t, servetest.ImplicitTLS, user, pass, ev.options())
	mustSelect(t, c, "INBOX", false)
	appendMsg(t, c, "INBOX", simpleMessage("own", "x"), nil, fixedDate)
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if exists, _, _ := ev.snapshot(); !slices.Equal(exists, []uint32{1}) {
		t.Errorf("after own APPEND and NOOP: EXISTS %v, want [1]", exists)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "INBOX").Wait(); err != nil {
		t.Fatal(err)
	}
	msgs := fetchAll(t, c, &imap.FetchOptions{})
	if len(msgs) != 2 {
		t.Errorf("after own COPY: FETCH 1:* returned %d messages, want 2", len(msgs))
	}
}
