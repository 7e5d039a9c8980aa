package remote

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/internal/dovecottest"
	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

// startDovecot starts a private Dovecot with the given users (password
// "pw-" + name), skipping when Dovecot is not installed.
func startDovecot(t *testing.T, opts dovecottest.Options, users ...string) *dovecottest.Dovecot {
	t.Helper()
	if !dovecottest.Available() {
		t.Skipf("dovecot is not installed: %s", dovecottest.InstallHint)
	}
	opts.Users = map[string]string{}
	for _, u := range users {
		opts.Users[u] = "pw-" + u
	}
	return dovecottest.Start(t, opts)
}

// dialDovecot connects to Dovecot as user through url ("" means plain
// IMAP on its listener).
func dialDovecot(t testing.TB, d *dovecottest.Dovecot, user, url string, mutate func(*Config)) *Store {
	t.Helper()
	if url == "" {
		url = "imap://" + user + "@" + d.Addr + "?tls=none"
	}
	cfg := Config{URL: url, Password: "pw-" + user, Timeout: 10 * time.Second, Logger: testLogger(),
		Retry: RetryPolicy{BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond}}
	if d.CertPEM != nil {
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(d.CertPEM)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	st, err := Dial(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Dial(%s): %v", cfg.URL, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// batchItems makes batch items of msgs; opened counts the Opens.
func batchItems(msgs []testmail.Message, opened *int) []store.BatchItem {
	items := make([]store.BatchItem, len(msgs))
	for i, m := range msgs {
		var fl []store.Flag
		for _, f := range append(slices.Clone(m.Flags), m.Keywords...) {
			fl = append(fl, store.Flag(f))
		}
		items[i] = store.BatchItem{
			Opts: store.AppendOptions{Flags: fl, Date: m.Date},
			Open: func(context.Context) (io.ReadCloser, int64, error) {
				if opened != nil {
					*opened++
				}
				return io.NopCloser(bytes.NewReader(m.Raw)), int64(len(m.Raw)), nil
			},
		}
	}
	return items
}

// crlfCorpus is the testmail corpus without bare-LF messages (Dovecot
// stores those with CRLF, which the byte comparison here does not want).
func crlfCorpus(seed int64, n int) []testmail.Message {
	var out []testmail.Message
	for _, m := range testmail.Generate(testmail.Options{Seed: seed, Count: n * 2, MaxAttachment: 20 << 10}) {
		if m.Kind != testmail.KindBareLF && len(out) < n {
			out = append(out, m)
		}
	}
	return out
}

// checkStored checks that mb holds exactly msgs, in order, with the UIDs
// given, byte for byte, with their flags, keywords and internal dates.
func checkStored(t *testing.T, mb *Mailbox, msgs []testmail.Message, uids []store.UID) {
	t.Helper()
	infos := listAll(t, mb)
	if len(infos) != len(msgs) {
		t.Fatalf("%s holds %d messages, want %d", mb.Name(), len(infos), len(msgs))
	}
	for i, info := range infos {
		m := msgs[i]
		if uids != nil && info.UID != uids[i] {
			t.Errorf("message %d: UID %d, AppendBatch said %d", i, info.UID, uids[i])
		}
		want := store.SortFlags(func() []store.Flag {
			var fl []store.Flag
			for _, f := range append(slices.Clone(m.Flags), m.Keywords...) {
				fl = append(fl, store.Flag(f))
			}
			return fl
		}())
		if !slices.Equal(info.Flags, want) {
			t.Errorf("message %d: flags %v, want %v", i, info.Flags, want)
		}
		if !info.Date.Equal(m.Date) {
			t.Errorf("message %d: date %v, want %v", i, info.Date, m.Date)
		}
		if got := readAll(t, mb, info.UID); !bytes.Equal(got, m.Raw) {
			t.Errorf("message %d: %d bytes differ from the %d appended", i, len(got), len(m.Raw))
		}
	}
}

// TestAppendBatchDovecot stores batches with MULTIAPPEND into Dovecot,
// over plain IMAP, STARTTLS and implicit TLS, into INBOX and folders with
// non-ASCII names and '&', with go-imap commands between the batches on
// the same connection: every message arrives exact, with the UIDs
// AppendBatch reports.
func TestAppendBatchDovecot(t *testing.T) {
	d := startDovecot(t, dovecottest.Options{SSL: true}, "plain", "starttls", "tls")
	msgs := crlfCorpus(3, 60)
	for _, c := range []struct{ user, url string }{
		{"plain", ""},
		{"starttls", "imap://starttls@" + d.Addr},
		{"tls", "imaps://tls@" + d.TLSAddr},
	} {
		t.Run(c.user, func(t *testing.T) {
			st := dialDovecot(t, d, c.user, c.url, nil)
			for _, name := range []string{"INBOX", "Réunions/日本語", "Q&A"} {
				if name != "INBOX" {
					if err := st.Create(t.Context(), name, nil); err != nil {
						t.Fatalf("Create(%q): %v", name, err)
					}
				}
				mb := openBox(t, st, name)
				if n, _ := mb.BatchLimits(); n < 2 {
					t.Fatalf("BatchLimits: %d messages; Dovecot offers MULTIAPPEND", n)
				}
				var uids []store.UID
				for i := 0; i < len(msgs); i += 25 {
					part := msgs[i:min(i+25, len(msgs))]
					got, err := mb.AppendBatch(t.Context(), batchItems(part, nil))
					if err != nil {
						t.Fatalf("AppendBatch(%d messages) into %q: %v", len(part), name, err)
					}
					if len(got) != len(part) {
						t.Fatalf("AppendBatch returned %d UIDs for %d messages", len(got), len(part))
					}
					uids = append(uids, got...)
					// go-imap's client goes on on the same connection.
					st, err := mb.Status(t.Context())
					if err != nil || st.Messages != uint32(len(uids)) {
						t.Fatalf("Status after a batch: %+v, %v; want %d messages", st, err, len(uids))
					}
				}
				for i := 1; i < len(uids); i++ {
					if uids[i] <= uids[i-1] || uids[i] == 0 {
						t.Fatalf("UIDs not ascending: %v", uids)
					}
				}
				checkStored(t, mb, msgs, uids)
				if err := mb.SetFlags(t.Context(), uids[:1], store.FlagsAdd, []store.Flag{"$batch"}); err != nil {
					t.Fatalf("SetFlags after the batches: %v", err)
				}
			}
		})
	}
}

// TestAppendBatchSyncLiterals: a server without LITERAL+ gets
// synchronising literals, one go-ahead per message; one without
// MULTIAPPEND gets one APPEND per message.
func TestAppendBatchSyncLiterals(t *testing.T) {
	for _, c := range []struct {
		name, caps string
		batches    bool
	}{
		{"no LITERAL+", "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE MULTIAPPEND UIDPLUS NAMESPACE", true},
		{"LITERAL- only", "IMAP4rev1 SASL-IR ID ENABLE IDLE MULTIAPPEND UIDPLUS LITERAL- NAMESPACE", true},
		{"no MULTIAPPEND", "IMAP4rev1 SASL-IR ID ENABLE IDLE UIDPLUS LITERAL+ NAMESPACE", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := startDovecot(t, dovecottest.Options{ExtraConfig: "imap_capability = " + c.caps}, "u")
			st := dialDovecot(t, d, "u", "", nil)
			mb := openBox(t, st, "INBOX")
			if n, _ := mb.BatchLimits(); (n > 1) != c.batches {
				t.Fatalf("BatchLimits: %d messages with capabilities %q", n, c.caps)
			}
			msgs := crlfCorpus(4, 12)
			uids, err := mb.AppendBatch(t.Context(), batchItems(msgs, nil))
			if err != nil || len(uids) != len(msgs) {
				t.Fatalf("AppendBatch: %d UIDs, %v", len(uids), err)
			}
			checkStored(t, mb, msgs, uids)
		})
	}
}

// TestAppendBatchOpenFails: an item whose Open fails ends the batch
// before it; the messages before it are stored, and the error is Open's.
func TestAppendBatchOpenFails(t *testing.T) {
	d := startDovecot(t, dovecottest.Options{}, "u")
	st := dialDovecot(t, d, "u", "", nil)
	mb := openBox(t, st, "INBOX")
	msgs := crlfCorpus(5, 6)
	boom := errors.New("source went away")
	for _, at := range []int{3, 0} {
		items := batchItems(msgs, nil)
		items[at].Open = func(context.Context) (io.ReadCloser, int64, error) { return nil, 0, boom }
		uids, err := mb.AppendBatch(t.Context(), items)
		if !errors.Is(err, boom) {
			t.Fatalf("failing item %d: err %v, want Open's", at, err)
		}
		if len(uids) != at {
			t.Fatalf("failing item %d: %d UIDs, want %d", at, len(uids), at)
		}
	}
	// The first call stored 3, the second none; the connection still works.
	checkStored(t, mb, msgs[:3], nil)
}

// TestAppendBatchRefused: NO for the whole command stores nothing, and
// says why (the mailbox was deleted behind the open Mailbox).
func TestAppendBatchRefused(t *testing.T) {
	d := startDovecot(t, dovecottest.Options{}, "u")
	st := dialDovecot(t, d, "u", "", nil)
	if err := st.Create(t.Context(), "Gone", nil); err != nil {
		t.Fatal(err)
	}
	mb := openBox(t, st, "Gone")
	other := dialDovecot(t, d, "u", "", nil)
	if err := other.Delete(t.Context(), "Gone"); err != nil {
		t.Fatal(err)
	}
	uids, err := mb.AppendBatch(t.Context(), batchItems(crlfCorpus(6, 4), nil))
	if err == nil || len(uids) != 0 {
		t.Fatalf("AppendBatch into a deleted mailbox: %d UIDs, %v", len(uids), err)
	}
	if isUnc := errors.As(err, new(*AppendUncertainError)); isUnc {
		t.Fatalf("a refusal reported as uncertain: %v", err)
	}
	t.Logf("refused: %v", err)
}

// TestAppendBatchCut: a connection cut in the middle of a batch stores
// nothing. Whether AppendBatch can tell depends on where the cut is
// noticed: while writing (the error says nothing was stored) or only when
// reading the reply, once the whole command sat in the socket's buffers
// (then it is uncertain). Either way, no UID is returned, and the Mailbox
// reconnects: the next batch goes through.
func TestAppendBatchCut(t *testing.T) {
	d := startDovecot(t, dovecottest.Options{}, "u")
	p := newFaultProxy(t, d.Addr)
	st := dialDovecot(t, d, "u", "", func(c *Config) {
		c.URL = "imap://u@" + p.addr() + "?tls=none"
		c.Retry = faultRetry
	})
	mb := openBox(t, st, "INBOX")
	msgs := crlfCorpus(7, 40)
	var total int64
	for _, m := range msgs {
		total += int64(len(m.Raw))
	}
	// Cut every connection after half the batch (the budget counts from
	// the next connection): the batch is sent twice, and fails.
	p.cutAfter.Store(total / 2)
	p.cutAll()
	uids, err := mb.AppendBatch(t.Context(), batchItems(msgs, nil))
	if err == nil || len(uids) != 0 {
		t.Fatalf("AppendBatch through a cut of %d bytes in %d: %d UIDs, %v", total/2, total, len(uids), err)
	}
	t.Logf("cut mid-batch: %v (uncertain: %v)", err, errors.As(err, new(*AppendUncertainError)))
	p.cutAfter.Store(0)
	direct := dialDovecot(t, d, "u", "", nil)
	if n := len(listAll(t, openBox(t, direct, "INBOX"))); n != 0 {
		t.Fatalf("%d messages stored by a batch that was cut", n)
	}
	uids, err = mb.AppendBatch(t.Context(), batchItems(msgs, nil))
	if err != nil {
		t.Fatalf("AppendBatch after the cut: %v", err)
	}
	checkStored(t, mb, msgs, uids)
}

// TestAppendBatchReplyLost: when the connection dies after the batch was
// sent, before its reply, the outcome is uncertain, and the messages may
// well be there (here they are).
func TestAppendBatchReplyLost(t *testing.T) {
	d := startDovecot(t, dovecottest.Options{}, "u")
	p := newFaultProxy(t, d.Addr)
	st := dialDovecot(t, d, "u", "", func(c *Config) {
		c.URL = "imap://u@" + p.addr() + "?tls=none"
		c.Timeout = time.Second
		c.Retry = faultRetry
	})
	mb := openBox(t, st, "INBOX")
	msgs := crlfCorpus(8, 10)
	p.muteWhenClientSends(" APPEND INBOX ")
	uids, err := mb.AppendBatch(t.Context(), batchItems(msgs, nil))
	var ue *AppendUncertainError
	if !errors.As(err, &ue) || !ue.Uncertain() || len(uids) != 0 {
		t.Fatalf("reply lost: %d UIDs, %v; want an uncertain error", len(uids), err)
	}
	if ue.Messages != len(msgs) || !strings.Contains(err.Error(), fmt.Sprintf("%d messages", len(msgs))) {
		t.Errorf("uncertain error %q: want %d messages", err, len(msgs))
	}
	direct := dialDovecot(t, d, "u", "", nil)
	checkStored(t, openBox(t, direct, "INBOX"), msgs, nil)
}

func TestParseAppendUID(t *testing.T) {
	for _, c := range []struct {
		in       string
		validity uint32
		uids     []uint32
		bad      bool
	}{
		{in: "38505 3955", validity: 38505, uids: []uint32{3955}},
		{in: "38505 3955:3958", validity: 38505, uids: []uint32{3955, 3956, 3957, 3958}},
		{in: "1 7,9:10,12", validity: 1, uids: []uint32{7, 9, 10, 12}},
		{in: "1 10:8", validity: 1, uids: []uint32{10, 9, 8}},
		{in: "1 4294967295", validity: 1, uids: []uint32{4294967295}},
		{in: "0 5", bad: true},
		{in: "38505", bad: true},
		{in: "x 5", bad: true},
		{in: "1 0", bad: true},
		{in: "1 5:", bad: true},
		{in: "1 1:4294967295", bad: true}, // no batch is that large
		{in: "1 *", bad: true},
		{in: "1 ", bad: true},
	} {
		v, uids, err := parseAppendUID(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("parseAppendUID(%q) = %d %v, want an error", c.in, v, uids)
			}
			continue
		}
		var got []uint32
		for _, u := range uids {
			got = append(got, uint32(u))
		}
		if err != nil || v != c.validity || !slices.Equal(got, c.uids) {
			t.Errorf("parseAppendUID(%q) = %d %v %v, want %d %v", c.in, v, got, err, c.validity, c.uids)
		}
	}
}

func TestParseRespText(t *testing.T) {
	for _, c := range []struct{ in, code, args, text string }{
		{"[APPENDUID 1 2:3] Append completed.", "APPENDUID", "1 2:3", "Append completed."},
		{"[TRYCREATE] Mailbox doesn't exist: X", "TRYCREATE", "", "Mailbox doesn't exist: X"},
		{"Append completed.", "", "", "Append completed."},
		{"[unterminated", "", "", "[unterminated"},
		{"", "", "", ""},
	} {
		code, args, text := parseRespText(c.in)
		if code != c.code || args != c.args || text != c.text {
			t.Errorf("parseRespText(%q) = %q %q %q, want %q %q %q", c.in, code, args, text, c.code, c.args, c.text)
		}
	}
}

func TestLiteralAtEnd(t *testing.T) {
	for _, c := range []struct {
		in string
		n  int64
		ok bool
	}{
		{"* 1 FETCH (BODY[] {12}\r\n", 12, true},
		{"* 1 FETCH (BODY[] {0}\r\n", 0, true},
		{"* OK {x}\r\n", 0, false},
		{"* OK fine\r\n", 0, false},
		{"* OK }\r\n", 0, false},
		{"* OK {-1}\r\n", 0, false},
	} {
		n, ok := literalAtEnd([]byte(c.in))
		if n != c.n || ok != c.ok {
			t.Errorf("literalAtEnd(%q) = %d %v, want %d %v", c.in, n, ok, c.n, c.ok)
		}
	}
}

func FuzzParseAppendUID(f *testing.F) {
	for _, s := range []string{"38505 3955", "1 7,9:10,12", "1 10:8", "0 5", "1 1:4294967295", "1 ,", "1 :"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, uids, err := parseAppendUID(s)
		if err != nil {
			return
		}
		if v == 0 || len(uids) == 0 {
			t.Fatalf("parseAppendUID(%q) = %d %v without error", s, v, uids)
		}
		for _, u := range uids {
			if u == 0 {
				t.Fatalf("parseAppendUID(%q): UID 0", s)
			}
		}
	})
}

func FuzzRespLine(f *testing.F) {
	for _, s := range []string{"[APPENDUID 1 2:3] ok", "[TRYCREATE] no", "text", "[", "]", "[a b c] d",
		"* 3 FETCH {5}\r\n", "{99999999999999999999}\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		code, args, text := parseRespText(s)
		if strings.ContainsRune(code, ']') || strings.ContainsRune(args, ']') {
			t.Fatalf("parseRespText(%q) = %q %q %q", s, code, args, text)
		}
		if n, ok := literalAtEnd([]byte(s)); ok && n < 0 {
			t.Fatalf("literalAtEnd(%q) = %d", s, n)
		}
	})
}

func TestAppendMailbox(t *testing.T) {
	for _, c := range []struct {
		name string
		utf8 bool
		want string
	}{
		{"INBOX", false, "INBOX"},
		{"inbox", true, "INBOX"},
		{"Réunions", false, `"R&AOk-unions"`},
		{"Réunions", true, `"Réunions"`},
		{"Q&A", false, `"Q&-A"`},
		{"Q&A", true, `"Q&-A"`},
		{`a"b\c`, false, `"a\"b\\c"`},
		{"Archive/2019", false, `"Archive/2019"`},
	} {
		if got := string(appendMailbox(nil, c.name, c.utf8)); got != c.want {
			t.Errorf("appendMailbox(%q, utf8=%v) = %s, want %s", c.name, c.utf8, got, c.want)
		}
	}
}

func TestAppendAnnouncement(t *testing.T) {
	date := time.Date(2024, 3, 5, 7, 8, 9, 0, time.FixedZone("", -(4*3600+30*60)))
	for _, c := range []struct {
		flags []imap.Flag
		date  time.Time
		size  int64
		sync  bool
		want  string
	}{
		{[]imap.Flag{`\Seen`, "$Forwarded"}, date, 1234, false, ` (\Seen $Forwarded) "05-Mar-2024 07:08:09 -0430" {1234+}` + "\r\n"},
		{nil, time.Time{}, 0, true, ` () {0}` + "\r\n"},
	} {
		if got := string(appendAnnouncement(nil, c.flags, c.date, c.size, c.sync)); got != c.want {
			t.Errorf("appendAnnouncement = %q, want %q", got, c.want)
		}
	}
}
