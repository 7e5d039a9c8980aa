package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

// faultRetry retries quickly, and often enough for connections that are
// cut every few kilobytes (progress resets the count).
var faultRetry = RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}

// plainURL returns a plaintext URL for addr (the test server and proxies
// are on loopback).
func plainURL(addr string) string { return "imap://alice@" + addr + "?tls=none" }

// dialVia connects through addr (a proxy) with fault-friendly settings.
func dialVia(t testing.TB, srv *servetest.Server, url string, timeout time.Duration) *Store {
	t.Helper()
	return dialTest(t, srv, func(c *Config) {
		c.URL = url
		c.Timeout = timeout
		c.Retry = faultRetry
	})
}

func openBox(t testing.TB, st *Store, name string) *Mailbox {
	t.Helper()
	mb, err := st.OpenMailbox(t.Context(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() { _ = mb.Close() })
	return mb
}

// populate appends msgs to INBOX over a direct connection and returns the
// listing.
func populate(t testing.TB, srv *servetest.Server, msgs []testmail.Message) []store.MessageInfo {
	t.Helper()
	st := dialTest(t, srv, func(c *Config) { c.URL = plainURL(srv.Addr) })
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	for _, m := range msgs {
		var fl []store.Flag
		for _, f := range append(slices.Clone(m.Flags), m.Keywords...) {
			fl = append(fl, store.Flag(f))
		}
		if _, err := mb.Append(t.Context(), bytes.NewReader(m.Raw), store.AppendOptions{Flags: fl, Date: m.Date}); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	return listAll(t, mb)
}

func listAll(t testing.TB, mb *Mailbox) []store.MessageInfo {
	t.Helper()
	var out []store.MessageInfo
	if err := mb.Messages(t.Context(), 1, func(mi store.MessageInfo) error {
		out = append(out, mi)
		return nil
	}); err != nil {
		t.Fatalf("Messages: %v", err)
	}
	return out
}

func sameInfos(t *testing.T, what string, got, want []store.MessageInfo, withID bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !withID {
			w.MessageID = ""
		}
		if g.UID != w.UID || !slices.Equal(g.Flags, w.Flags) || !g.Date.Equal(w.Date) || g.Size != w.Size || g.MessageID != w.MessageID {
			t.Fatalf("%s: message %d is %+v, want %+v", what, i, g, w)
		}
	}
}

func readAll(t testing.TB, mb *Mailbox, uid store.UID) []byte {
	t.Helper()
	rc, size, err := mb.OpenMessage(t.Context(), uid)
	if err != nil {
		t.Fatalf("OpenMessage(%d): %v", uid, err)
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read UID %d: %v", uid, err)
	}
	if int64(len(b)) != size {
		t.Fatalf("UID %d: read %d bytes, size %d", uid, len(b), size)
	}
	return b
}

// TestFaultMessagesCut lists 500 messages over connections that are cut
// after every 16 KiB: the listing resumes each time where it stopped.
func TestFaultMessagesCut(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	want := populate(t, srv, testmail.Generate(testmail.Options{Seed: 7, Count: 500, MaxAttachment: 2048}))
	p := newFaultProxy(t, srv.Addr)
	p.cutAfter.Store(16 << 10)
	st := dialVia(t, srv, plainURL(p.addr()), 10*time.Second)
	defer func() { _ = st.Close() }()
	st.batch = 64 // several pipelined FETCH commands per round
	mb := openBox(t, st, "INBOX")
	sameInfos(t, "Messages", listAll(t, mb), want, true)
	var flags []store.MessageInfo
	if err := mb.MessageFlags(t.Context(), want[100].UID, func(mi store.MessageInfo) error {
		flags = append(flags, mi)
		return nil
	}); err != nil {
		t.Fatalf("MessageFlags: %v", err)
	}
	sameInfos(t, "MessageFlags", flags, want[100:], false)
	if p.cuts.Load() < 5 {
		t.Errorf("only %d cuts: the test did not exercise reconnection", p.cuts.Load())
	}
	t.Logf("%d connections, %d cuts", p.accepted.Load(), p.cuts.Load())
}

// TestFaultLargeMessagesCut streams large messages over TLS connections
// that are cut after every 64 KiB: each read resumes at the right byte.
func TestFaultLargeMessagesCut(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	var msgs []testmail.Message
	for i, n := range []int{100 << 10, 700 << 10, 2 << 20} {
		msgs = append(msgs, testmail.BigAttachment(int64(i+1), n))
	}
	infos := populate(t, srv, msgs)
	p := newFaultProxy(t, srv.TLSAddr)
	p.cutAfter.Store(64 << 10)
	st := dialVia(t, srv, "imaps://alice@"+p.addr(), 10*time.Second)
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	for i, mi := range infos {
		got := readAll(t, mb, mi.UID)
		if !bytes.Equal(got, msgs[i].Raw) {
			t.Errorf("UID %d: %d bytes read differ from the %d appended", mi.UID, len(got), len(msgs[i].Raw))
		}
	}
	// A stream closed early leaves the mailbox usable.
	rc, _, err := mb.OpenMessage(t.Context(), infos[2].UID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc, 1000); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("early Close: %v", err)
	}
	if got := readAll(t, mb, infos[0].UID); !bytes.Equal(got, msgs[0].Raw) {
		t.Errorf("read after an early Close differs")
	}
	if p.cuts.Load() < 10 {
		t.Errorf("only %d cuts", p.cuts.Load())
	}
	t.Logf("%d connections, %d cuts", p.accepted.Load(), p.cuts.Load())
}

// TestFaultAppendReplyLost: when the server's reply to APPEND never
// comes, Append reports an uncertain outcome and does not append again.
func TestFaultAppendReplyLost(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	p := newFaultProxy(t, srv.Addr)
	st := dialVia(t, srv, plainURL(p.addr()), 500*time.Millisecond)
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	direct := dialTest(t, srv, func(c *Config) { c.URL = plainURL(srv.Addr) })
	defer func() { _ = direct.Close() }()
	dmb := openBox(t, direct, "INBOX")
	count := func(id string) int {
		n := 0
		for _, mi := range listAll(t, dmb) {
			if mi.MessageID == "<"+id+">" {
				n++
			}
		}
		return n
	}

	// A small message goes out whole with LITERAL+; the reply is lost.
	small := testmail.Corpus()[0]
	if len(small.Raw) > 4096 {
		t.Fatalf("message %d bytes, want a small one", len(small.Raw))
	}
	p.muteWhenClientSends("APPEND")
	_, err := mb.Append(t.Context(), bytes.NewReader(small.Raw), store.AppendOptions{})
	var ue *AppendUncertainError
	if !errors.As(err, &ue) {
		t.Fatalf("Append with its reply lost: %v, want *AppendUncertainError", err)
	}
	if Retryable(err) {
		t.Errorf("Retryable(%v) = true", err)
	}
	if n := count(small.MessageID); n != 1 {
		t.Errorf("the message is stored %d times, want once (the server got it)", n)
	}

	// A large message waits for the server's "+" before it is sent; that
	// is lost, so nothing was stored and Append sends it again.
	big := testmail.BigAttachment(9, 20<<10)
	p.muteWhenClientSends("APPEND")
	uid, err := mb.Append(t.Context(), bytes.NewReader(big.Raw), store.AppendOptions{})
	if err != nil {
		t.Fatalf("Append with the continuation lost: %v", err)
	}
	if n := count(big.MessageID); n != 1 {
		t.Errorf("the message is stored %d times, want once", n)
	}
	if got := readAll(t, mb, uid); !bytes.Equal(got, big.Raw) {
		t.Errorf("UID %d holds other bytes", uid)
	}
}

// TestFaultAppendCut appends through connections cut every 16 KiB: every
// Append succeeds or says its outcome is uncertain, and no message is ever
// stored twice.
func TestFaultAppendCut(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	p := newFaultProxy(t, srv.Addr)
	p.cutAfter.Store(16 << 10)
	st := dialVia(t, srv, plainURL(p.addr()), 5*time.Second)
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	msgs := testmail.Generate(testmail.Options{Seed: 11, Count: 100, MaxAttachment: 8 << 10})
	ok := map[string]store.UID{}
	uncertain := map[string]bool{}
	for _, m := range msgs {
		if m.MessageID == "" || ok[m.MessageID] != 0 || uncertain[m.MessageID] {
			continue // identity needed below
		}
		uid, err := mb.Append(t.Context(), bytes.NewReader(m.Raw), store.AppendOptions{Date: m.Date})
		var ue *AppendUncertainError
		switch {
		case err == nil:
			ok[m.MessageID] = uid
		case errors.As(err, &ue):
			uncertain[m.MessageID] = true
		default:
			t.Fatalf("Append: %v", err)
		}
	}
	direct := dialTest(t, srv, func(c *Config) { c.URL = plainURL(srv.Addr) })
	defer func() { _ = direct.Close() }()
	seen := map[string]int{}
	for _, mi := range listAll(t, openBox(t, direct, "INBOX")) {
		id := mi.MessageID[1 : len(mi.MessageID)-1]
		seen[id]++
		if uid, isOK := ok[id]; isOK && uid != mi.UID {
			t.Errorf("%s stored as UID %d, Append said %d", id, mi.UID, uid)
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s stored %d times", id, n)
		}
		if !uncertain[id] && ok[id] == 0 {
			t.Errorf("%s stored, but Append neither succeeded nor was uncertain", id)
		}
	}
	for id := range ok {
		if seen[id] != 1 {
			t.Errorf("%s: Append succeeded, stored %d times", id, seen[id])
		}
	}
	t.Logf("%d appended, %d uncertain, %d cuts", len(ok), len(uncertain), p.cuts.Load())
	if p.cuts.Load() < 10 {
		t.Errorf("only %d cuts", p.cuts.Load())
	}
}

// TestFaultServerRestart restarts the server (new ports) in the middle of
// a listing: the store reconnects and every operation goes on.
func TestFaultServerRestart(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	msgs := testmail.Generate(testmail.Options{Seed: 5, Count: 60, MaxAttachment: 2048})
	want := populate(t, srv, msgs)
	p := newFaultProxy(t, srv.Addr)
	st := dialVia(t, srv, plainURL(p.addr()), 5*time.Second)
	defer func() { _ = st.Close() }()
	st.batch = 10
	mb := openBox(t, st, "INBOX")
	var got []store.MessageInfo
	err := mb.Messages(t.Context(), 1, func(mi store.MessageInfo) error {
		got = append(got, mi)
		if len(got) == 25 {
			srv.Restart(t)
			p.setTarget(srv.Addr)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Messages across a restart: %v", err)
	}
	sameInfos(t, "Messages across a restart", got, want, true)

	// The store's control connection and the mailbox's come back.
	srv.Restart(t)
	p.setTarget(srv.Addr)
	if got := readAll(t, mb, want[3].UID); !bytes.Equal(got, msgs[3].Raw) {
		t.Errorf("message read after a restart differs")
	}
	srv.Restart(t)
	p.setTarget(srv.Addr)
	if _, err := st.List(t.Context()); err != nil {
		t.Errorf("List after a restart: %v", err)
	}
	uid, err := mb.Append(t.Context(), bytes.NewReader(msgs[0].Raw), store.AppendOptions{})
	if err != nil {
		t.Fatalf("Append after a restart: %v", err)
	}
	stat, err := mb.Status(t.Context())
	if err != nil {
		t.Fatalf("Status after a restart: %v", err)
	}
	if stat.Messages != uint32(len(msgs)+1) || stat.UIDNext <= uid {
		t.Errorf("Status after a restart: %+v", stat)
	}
	if err := mb.SetFlags(t.Context(), []store.UID{uid}, store.FlagsAdd, []store.Flag{"$Restarted"}); err != nil {
		t.Errorf("SetFlags after a restart: %v", err)
	}
}

// TestFaultStalledServer: a server that stops answering in the middle of
// a command trips the watchdog; the command runs again on a new
// connection.
func TestFaultStalledServer(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	want := populate(t, srv, testmail.Generate(testmail.Options{Seed: 3, Count: 20, MaxAttachment: 1024}))
	p := newFaultProxy(t, srv.Addr)
	st := dialVia(t, srv, plainURL(p.addr()), 300*time.Millisecond)
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	p.muteWhenClientSends("UID FETCH")
	sameInfos(t, "Messages with a stall", listAll(t, mb), want, true)
	p.muteWhenClientSends("BODY.PEEK[]")
	readAll(t, mb, want[0].UID)
	p.muteWhenClientSends("STATUS")
	if _, err := mb.Status(t.Context()); err != nil {
		t.Errorf("Status with a stall: %v", err)
	}
}

// TestStreamCancel: cancelling the context of an open stream fails its
// reads; the mailbox works afterwards.
func TestStreamCancel(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	msgs := []testmail.Message{testmail.BigAttachment(1, 1<<20)}
	infos := populate(t, srv, msgs)
	st := dialTest(t, srv, nil)
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	ctx, cancel := context.WithCancel(t.Context())
	rc, _, err := mb.OpenMessage(ctx, infos[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc, 10000); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}
	if got := readAll(t, mb, infos[0].UID); !bytes.Equal(got, msgs[0].Raw) {
		t.Errorf("read after a cancelled stream differs")
	}
}

// TestUIDValidityChange: a mailbox deleted and created again while open
// has a new UIDVALIDITY; the open Mailbox notices when it reconnects.
func TestUIDValidityChange(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	p := newFaultProxy(t, srv.Addr)
	st := dialVia(t, srv, plainURL(p.addr()), 5*time.Second)
	defer func() { _ = st.Close() }()
	if err := st.Create(t.Context(), "Box", nil); err != nil {
		t.Fatal(err)
	}
	mb := openBox(t, st, "Box")
	if _, err := mb.Append(t.Context(), bytes.NewReader(testmail.Corpus()[0].Raw), store.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	old := mb.UIDValidity()
	direct := dialTest(t, srv, func(c *Config) { c.URL = plainURL(srv.Addr) })
	defer func() { _ = direct.Close() }()
	for i := 0; ; i++ {
		if err := direct.Delete(t.Context(), "Box"); err != nil {
			t.Fatal(err)
		}
		if err := direct.Create(t.Context(), "Box", nil); err != nil {
			t.Fatal(err)
		}
		dmb := openBox(t, direct, "Box")
		if dmb.UIDValidity() != old {
			break
		}
		if i == 3 {
			t.Skip("the server reuses UIDVALIDITY for a re-created mailbox")
		}
	}
	p.cutAll()
	err := mb.Messages(t.Context(), 1, func(store.MessageInfo) error { return nil })
	var ve *store.UIDValidityError
	if !errors.As(err, &ve) || ve.Old != old {
		t.Fatalf("Messages after the mailbox was re-created: %v, want *store.UIDValidityError", err)
	}
	if Retryable(err) {
		t.Errorf("Retryable(%v) = true", err)
	}
	if _, err := mb.Status(t.Context()); !errors.As(err, &ve) {
		t.Errorf("Status: %v, want *store.UIDValidityError", err)
	}
}

// TestMoveWithoutMOVE checks the COPY + STORE + UID EXPUNGE fallback: only
// the moved messages leave the source, even when others are \Deleted.
func TestMoveWithoutMOVE(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	msgs := testmail.Generate(testmail.Options{Seed: 2, Count: 8, MaxAttachment: 1024})
	infos := populate(t, srv, msgs)
	st := dialTest(t, srv, func(c *Config) { c.URL = plainURL(srv.Addr) })
	defer func() { _ = st.Close() }()
	// Pretend the server lacks MOVE (and IMAP4rev2, which implies it).
	delete(st.caps, imap.CapMove)
	delete(st.caps, imap.CapIMAP4rev2)
	if !st.caps.Has(imap.CapUIDPlus) {
		t.Fatal("test server lacks UIDPLUS")
	}
	if err := st.Create(t.Context(), "Dest", nil); err != nil {
		t.Fatal(err)
	}
	mb := openBox(t, st, "INBOX")
	keep := infos[0].UID
	if err := mb.SetFlags(t.Context(), []store.UID{keep}, store.FlagsAdd, []store.Flag{store.FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	pick := []store.UID{infos[2].UID, infos[5].UID, infos[7].UID + 100}
	src, dst, err := mb.Move(t.Context(), pick, "Dest")
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	if !slices.Equal(src, pick[:2]) || len(dst) != 2 {
		t.Errorf("Move returned %v -> %v", src, dst)
	}
	left := listAll(t, mb)
	if len(left) != len(infos)-2 {
		t.Errorf("%d messages left in the source, want %d", len(left), len(infos)-2)
	}
	if left[0].UID != keep || !left[0].HasFlag(store.FlagDeleted) {
		t.Errorf("a \\Deleted message outside the move was expunged")
	}
	dmb := openBox(t, st, "Dest")
	for i, d := range dst {
		if got := readAll(t, dmb, d); !bytes.Equal(got, msgs[[]int{2, 5}[i]].Raw) {
			t.Errorf("moved message %d differs", d)
		}
	}
	// Expunge too leaves other \Deleted messages alone.
	if err := mb.Expunge(t.Context(), []store.UID{infos[1].UID}); err != nil {
		t.Fatal(err)
	}
	if left := listAll(t, mb); len(left) != len(infos)-3 || left[0].UID != keep {
		t.Errorf("Expunge of one message: %d left, first %d", len(left), left[0].UID)
	}

}
