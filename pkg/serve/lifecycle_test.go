package serve_test

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/internal/servetest"
)

// mailboxState is what must survive a restart.
type mailboxState struct {
	UIDValidity uint32
	UIDNext     imap.UID
	Messages    map[imap.UID]messageState
}

type messageState struct {
	Flags []string
	Date  time.Time
	Body  []byte
}

func readState(t *testing.T, srv *servetest.Server, mbox string) mailboxState {
	t.Helper()
	c := dial(t, srv)
	sel := mustSelect(t, c, mbox, true)
	st := mailboxState{UIDValidity: sel.UIDValidity, UIDNext: sel.UIDNext, Messages: map[imap.UID]messageState{}}
	for _, m := range fetchAll(t, c, &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}) {
		st.Messages[m.UID] = messageState{Flags: flagSet(m.Flags), Date: m.InternalDate, Body: m.BodySection[0].Bytes}
	}
	servetest.CloseClient(c)
	return st
}

// TestRestartPersistence checks that UIDs, UIDVALIDITY, UIDNEXT, flags,
// keywords, internal dates and bytes survive a graceful restart, with
// fsync on as in production.
func TestRestartPersistence(t *testing.T) {
	t.Parallel()
	srv := servetest.Start(t, servetest.Options{})
	c := dial(t, srv)
	createAll(t, c, "Projects/Réunions")
	boxes := []string{"INBOX", "Projects/Réunions"}
	for _, box := range boxes {
		for i := range 4 {
			raw := simpleMessage(fmt.Sprintf("%s %d", box, i), strings.Repeat("line\r\n", i+1))
			appendMsg(t, c, box, raw, []imap.Flag{imap.FlagSeen, imap.Flag(fmt.Sprintf("$Tag%d", i))}, fixedDate.Add(time.Duration(i)*time.Hour))
		}
		mustSelect(t, c, box, false)
		storeFlags(t, c, imap.SeqSetNum(1), imap.StoreFlagsAdd, true, imap.FlagFlagged, "Persisted")
		storeFlags(t, c, imap.SeqSetNum(2), imap.StoreFlagsDel, true, imap.FlagSeen)
		storeFlags(t, c, imap.SeqSetNum(3), imap.StoreFlagsAdd, true, imap.FlagDeleted)
		// The expunged UID must never be reused.
		if _, err := c.Expunge().Collect(); err != nil {
			t.Fatal(err)
		}
	}
	servetest.CloseClient(c)
	before := map[string]mailboxState{}
	for _, box := range boxes {
		before[box] = readState(t, srv, box)
		if len(before[box].Messages) != 3 {
			t.Fatalf("%s: %d messages before restart, want 3", box, len(before[box].Messages))
		}
	}

	srv.Restart(t)

	for _, box := range boxes {
		after := readState(t, srv, box)
		b := before[box]
		if after.UIDValidity != b.UIDValidity || after.UIDNext != b.UIDNext {
			t.Errorf("%s: UIDVALIDITY/UIDNEXT %d/%d after restart, want %d/%d", box, after.UIDValidity, after.UIDNext, b.UIDValidity, b.UIDNext)
		}
		if !slices.Equal(keysUID(after.Messages), keysUID(b.Messages)) {
			t.Errorf("%s: UIDs %v after restart, want %v", box, keysUID(after.Messages), keysUID(b.Messages))
		}
		for uid, m := range b.Messages {
			a := after.Messages[uid]
			if !slices.Equal(a.Flags, m.Flags) || !a.Date.Equal(m.Date) || !bytes.Equal(a.Body, m.Body) {
				t.Errorf("%s UID %d: after restart %v %v (%d bytes), want %v %v (%d bytes)", box, uid, a.Flags, a.Date, len(a.Body), m.Flags, m.Date, len(m.Body))
			}
		}
	}
	// New messages continue after the old UIDNEXT.
	c = dial(t, srv)
	app := appendMsg(t, c, "INBOX", simpleMessage("after restart", "x"), nil, fixedDate)
	if app.UID != before["INBOX"].UIDNext || app.UIDValidity != before["INBOX"].UIDValidity {
		t.Errorf("APPEND after restart: UID %d validity %d, want %d / %d", app.UID, app.UIDValidity, before["INBOX"].UIDNext, before["INBOX"].UIDValidity)
	}
}

// TestDeliveryWhileStopped checks that a message delivered to new/ while
// the server was stopped is picked up, with a new UID, at the next start.
func TestDeliveryWhileStopped(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	first := appendMsg(t, c, "INBOX", simpleMessage("before", "x"), nil, fixedDate)
	servetest.CloseClient(c)
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	raw := simpleMessage("while stopped", "y")
	deliver(t, srv.MaildirPath(user), raw)
	deliver(t, filepath.Join(srv.MaildirPath(user), ".Archive"), raw)
	srv.Restart(t)
	for _, box := range []string{"INBOX", "Archive"} {
		st := readState(t, srv, box)
		var found bool
		for uid, m := range st.Messages {
			if bytes.Equal(m.Body, raw) {
				found = true
				if box == "INBOX" && uid <= first.UID {
					t.Errorf("delivered message got UID %d, not above %d", uid, first.UID)
				}
				if slices.Contains(m.Flags, `\seen`) {
					t.Errorf("%s: a message delivered to new/ is \\Seen", box)
				}
			}
		}
		if !found {
			t.Errorf("%s: the message delivered while stopped is missing", box)
		}
	}
}

// TestGracefulShutdown checks that connected clients, idle or in IDLE,
// get an untagged BYE when the server shuts down, and that nobody can
// connect afterwards.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	// An authenticated client doing nothing.
	quiet := dialRaw(t, srv.TLSAddr, srv.TLSConfig())
	quiet.ok("LOGIN " + quote(user) + " " + quote(pass))
	// A client in IDLE on the plain port.
	idler := dialRaw(t, srv.Addr, nil)
	idler.ok("LOGIN " + quote(user) + " " + quote(pass))
	idler.ok("SELECT INBOX")
	if _, err := idler.conn.Write([]byte("I1 IDLE\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := idler.readLine(); err != nil || !strings.HasPrefix(line, "+") {
		t.Fatalf("IDLE: %q, %v", line, err)
	}
	// A client that has not logged in yet.
	anon := dialRaw(t, srv.Addr, nil)
	// An imapclient in IDLE.
	c := dial(t, srv)
	mustSelect(t, c, "INBOX", false)
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- srv.Shutdown() }()

	for name, rc := range map[string]*rawClient{"authenticated": quiet, "idle": idler, "not authenticated": anon} {
		var lines []string
		for {
			line, err := rc.readLine()
			if line != "" {
				lines = append(lines, line)
			}
			if err != nil {
				break
			}
		}
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "* BYE ") }) {
			t.Errorf("%s client: got %q before the connection closed, want * BYE", name, lines)
		}
	}
	select {
	case <-c.Closed():
	case <-time.After(waitLong):
		t.Errorf("imapclient in IDLE: connection still open after shutdown")
	}
	_ = idle.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatalf("Shutdown did not return")
	}
	for _, addr := range []string{srv.Addr, srv.TLSAddr} {
		if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			_ = conn.Close()
			t.Errorf("%s still accepts connections after shutdown", addr)
		}
	}
}
