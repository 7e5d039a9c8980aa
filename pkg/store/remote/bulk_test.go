package remote

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

// TestReadMessages reads many messages with one FETCH: each existing one
// once, exact; unknown UIDs are skipped; fn's error ends the call.
func TestReadMessages(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	msgs := testmail.Generate(testmail.Options{Seed: 31, Count: 40, MaxAttachment: 16 << 10})
	infos := populate(t, srv, msgs)
	st := dialTest(t, srv, nil)
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	var uids []store.UID
	for _, mi := range infos {
		uids = append(uids, mi.UID)
	}
	uids = append(uids, infos[len(infos)-1].UID+100) // does not exist
	got := readMessages(t, mb, uids)
	if len(got) != len(infos) {
		t.Fatalf("%d messages read, want %d", len(got), len(infos))
	}
	for i, mi := range infos {
		if !bytes.Equal(got[mi.UID], msgs[i].Raw) {
			t.Errorf("UID %d: %d bytes, differ from the %d stored", mi.UID, len(got[mi.UID]), len(msgs[i].Raw))
		}
	}
	stop := errors.New("enough")
	calls := 0
	err := mb.ReadMessages(t.Context(), uids, func(store.UID, []byte) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("fn failing: err %v after %d calls, want its error after 1", err, calls)
	}
	// The connection is still usable.
	if b := readAll(t, mb, infos[0].UID); !bytes.Equal(b, msgs[0].Raw) {
		t.Error("OpenMessage after ReadMessages: wrong bytes")
	}
}

// TestReadMessagesCut reads through connections cut every 64 KiB: every
// message is passed once, exact.
func TestReadMessagesCut(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	msgs := testmail.Generate(testmail.Options{Seed: 32, Count: 60, MaxAttachment: 64 << 10})
	infos := populate(t, srv, msgs)
	p := newFaultProxy(t, srv.Addr)
	st := dialVia(t, srv, plainURL(p.addr()), 5*time.Second)
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	var uids []store.UID
	var total int
	for i, mi := range infos {
		uids = append(uids, mi.UID)
		total += len(msgs[i].Raw)
	}
	p.cutAfter.Store(64 << 10)
	p.cutAll()
	got := readMessages(t, mb, uids)
	for i, mi := range infos {
		if !bytes.Equal(got[mi.UID], msgs[i].Raw) {
			t.Errorf("UID %d: %d bytes, differ from the %d stored", mi.UID, len(got[mi.UID]), len(msgs[i].Raw))
		}
	}
	t.Logf("%d bytes, %d cuts", total, p.cuts.Load())
	if p.cuts.Load() < int64(total/(64<<10)/2) || p.cuts.Load() < 6 {
		t.Errorf("only %d cuts for %d bytes", p.cuts.Load(), total)
	}
}

// readMessages returns what ReadMessages passes, checking that no UID is
// passed twice.
func readMessages(t *testing.T, mb *Mailbox, uids []store.UID) map[store.UID][]byte {
	t.Helper()
	got := map[store.UID][]byte{}
	err := mb.ReadMessages(t.Context(), uids, func(uid store.UID, data []byte) error {
		if _, dup := got[uid]; dup {
			t.Errorf("UID %d passed twice", uid)
		}
		got[uid] = data
		return nil
	})
	if err != nil {
		t.Fatalf("ReadMessages: %v", err)
	}
	return got
}
