package sync_test

// Integration tests of the engine over real IMAP: two in-process 'imapctl
// serve' instances, a private Dovecot with a Courier-style namespace, and
// TCP proxies that cut connections. Mail is loaded and checked with
// go-imap's client directly (integration_helpers_test.go); the engine
// talks to the servers through pkg/store/remote.

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/internal/dovecottest"
	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store/remote"
	"github.com/imapctl/imapctl/pkg/sync"
)

// TestIntegrationServeToServe migrates the corpus (every folder, among
// them non-ASCII and deep ones; flags, keywords, internal dates;
// messages without Message-ID and pairs sharing one) from one 'imapctl
// serve' to another over TLS, and then follows the source through flag
// changes, a new message and expunges.
func TestIntegrationServeToServe(t *testing.T) {
	t.Parallel()
	const alicePW, bobPW = "src-secret-1", "dst-secret-2"
	srcSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: map[string]string{"alice": alicePW}})
	dstSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: map[string]string{"bob": bobPW}})
	srcAcct, dstAcct := serveAccount(srcSrv, "alice", alicePW), serveAccount(dstSrv, "bob", bobPW)

	corpus := testmail.Corpus()
	integrationLoad(t, srcAcct, corpus)
	srcDump := integrationDump(t, srcAcct)
	// The source holds the corpus exactly: the baseline every later
	// comparison rests on.
	sameRecords(t, "source after loading", dumpRecords(srcDump, true, nil), corpusRecords(corpus, true))
	if t.Failed() {
		t.FailNow()
	}

	src := integrationStore(t, "imaps://alice@"+srcSrv.TLSAddr, alicePW, srcSrv.RootCAs)
	dst := integrationStore(t, "imaps://bob@"+dstSrv.TLSAddr, bobPW, dstSrv.RootCAs)
	opts := sync.Options{Account: "alice->bob", StateDir: t.TempDir(), Parallel: 4}

	// compare checks that the target holds what the source holds, byte
	// for byte, with the same flags, keywords and internal dates (time
	// zone included).
	compare := func(what string) (srcDump, dstDump map[string]*integrationMailbox) {
		t.Helper()
		srcDump, dstDump = integrationDump(t, srcAcct), integrationDump(t, dstAcct)
		sameRecords(t, what, dumpRecords(dstDump, true, nil), dumpRecords(srcDump, true, nil))
		for name := range srcDump {
			if dstDump[name] == nil {
				t.Errorf("%s: folder %q is not on the target", what, name)
			}
		}
		return srcDump, dstDump
	}

	rep := integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "first run", rep, len(corpus), 0, 0)
	// Every selectable source folder, the parents the server created for
	// the deep ones among them.
	if len(rep.Folders) != len(srcDump) {
		t.Errorf("first run: %d folders, want the source's %d", len(rep.Folders), len(srcDump))
	}
	for _, f := range rep.Folders {
		if f.Target != f.Source {
			t.Errorf("folder %q went to %q (via %s), want the same name", f.Source, f.Target, f.Via)
		}
	}
	_, dstDump := compare("after the first run")
	if mb := dstDump["Sent"]; mb == nil || !hasAttr(mb.Attrs, imap.MailboxAttrSent) {
		t.Errorf("target's Sent lost its \\Sent attribute: %+v", mb)
	}

	// Two different messages with one Message-ID both arrived, and so did
	// every message without one.
	var dupID string
	noID := 0
	for _, m := range corpus {
		if m.Kind == testmail.KindDupMessageID && dupID == "" {
			dupID = m.MessageID
		}
		if m.MessageID == "" {
			noID++
		}
	}
	countID := func(d map[string]*integrationMailbox, id string) (n int, sums map[[32]byte]bool) {
		sums = map[[32]byte]bool{}
		for _, mb := range d {
			for _, m := range mb.Msgs {
				if m.MessageID == id {
					n++
					sums[m.Sum] = true
				}
			}
		}
		return n, sums
	}
	if n, sums := countID(dstDump, dupID); n != 2 || len(sums) != 2 {
		t.Errorf("Message-ID <%s> shared by two messages: %d on the target with %d distinct contents, want 2 and 2", dupID, n, len(sums))
	}
	if n, _ := countID(dstDump, ""); noID == 0 || n != noID {
		t.Errorf("messages without Message-ID on the target: %d, want %d", n, noID)
	}

	// A re-run copies nothing, with the state...
	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "re-run", rep, 0, 0, 0)
	if rep.Totals.Existing != len(corpus) {
		t.Errorf("re-run: %d messages existing, want %d", rep.Totals.Existing, len(corpus))
	}
	// ...and without it, matching every message by identity: the
	// messages without Message-ID (header hash) and those sharing one are
	// not copied again.
	noState := opts
	noState.StateDir = ""
	rep = integrationMustRun(t, src, dst, noState)
	integrationCounts(t, "re-run without state", rep, 0, 0, 0)
	_, dstDump = compare("after the re-runs")
	if n, _ := countID(dstDump, ""); n != noID {
		t.Errorf("after a re-run without state: %d messages without Message-ID on the target, want %d", n, noID)
	}

	// Flag changes on the source propagate: keywords added in a
	// non-ASCII folder, every flag removed in INBOX.
	srcDump = integrationDump(t, srcAcct)
	reu := findMsg(t, srcDump, "Réunions", func(integrationMsg) bool { return true })
	integrationStoreFlags(t, srcAcct, "Réunions", reu.UID, imap.StoreFlagsAdd, imap.FlagAnswered, "$Label7", "project-y")
	inb := findMsg(t, srcDump, "INBOX", func(m integrationMsg) bool { return len(m.Flags) > 1 })
	integrationStoreFlags(t, srcAcct, "INBOX", inb.UID, imap.StoreFlagsSet)
	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "after flag changes", rep, 0, 2, 0)
	compare("after flag changes")

	// A new source message, in a deep non-ASCII folder, is copied.
	newRaw := plainMessage("new-1@integration.test", "a new message", "new on the source")
	integrationAppend(t, srcAcct.dial(t), "日本語/子", newRaw, []imap.Flag{imap.FlagFlagged, "$Important"}, reu.Date)
	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "after a new message", rep, 1, 0, 0)
	compare("after a new message")

	// Expunged on the source: kept on the target without Delete...
	srcDump = integrationDump(t, srcAcct)
	deep := findMsg(t, srcDump, "Projects/2024/Q1/Reports/Final", func(integrationMsg) bool { return true })
	gone := findMsg(t, srcDump, "INBOX", func(m integrationMsg) bool { return m.MessageID != "" })
	integrationExpunge(t, srcAcct, "Projects/2024/Q1/Reports/Final", deep.UID)
	integrationExpunge(t, srcAcct, "INBOX", gone.UID)
	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "after expunges, without Delete", rep, 0, 0, 0)
	srcDump, dstDump = integrationDump(t, srcAcct), integrationDump(t, dstAcct)
	if total(dstDump) != total(srcDump)+2 {
		t.Errorf("without Delete: %d messages on the target, want %d (source) + 2", total(dstDump), total(srcDump))
	}
	for _, m := range []integrationMsg{deep, gone} {
		found := false
		for _, d := range dstDump[m.Folder].Msgs {
			found = found || d.Sum == m.Sum
		}
		if !found {
			t.Errorf("without Delete: the message expunged from %q was removed from the target", m.Folder)
		}
	}
	// ...and removed with it.
	del := opts
	del.Delete = true
	rep = integrationMustRun(t, src, dst, del)
	integrationCounts(t, "with Delete", rep, 0, 0, 2)
	compare("after Delete")
	rep = integrationMustRun(t, src, dst, del)
	integrationCounts(t, "with Delete, again", rep, 0, 0, 0)
}

// TestIntegrationSpecialUse checks that a source folder that is the sent
// folder by name only ("Sent Items", no attribute), or by attribute under
// another name, lands in the target's \Sent folder "Sent" rather than in
// a new folder, its subfolders below it.
func TestIntegrationSpecialUse(t *testing.T) {
	t.Parallel()
	users := map[string]string{"carol": "pw-carol", "dave": "pw-dave"}
	srcSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: users})
	dstSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: users})

	msgs := testmail.Generate(testmail.Options{Seed: 3, Count: 9, MaxAttachment: 2048})
	cases := []struct {
		user string
		// sent is the source's sent folder, created with use; the
		// default "Sent" (with \Sent) is deleted first.
		sent string
		use  []imap.MailboxAttr
		via  string
	}{
		{"carol", "Sent Items", nil, "special-use"},
		{"dave", "Versandt", []imap.MailboxAttr{imap.MailboxAttrSent}, "special-use"},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			srcAcct, dstAcct := serveAccount(srcSrv, tc.user, users[tc.user]), serveAccount(dstSrv, tc.user, users[tc.user])
			c := srcAcct.dial(t)
			if err := c.Delete("Sent").Wait(); err != nil {
				t.Fatalf("DELETE Sent: %v", err)
			}
			integrationCreate(t, c, tc.sent, tc.use)
			// Three messages in the sent folder, three in a subfolder of
			// it, three in INBOX.
			for i := range msgs {
				folder := []string{tc.sent, tc.sent + "/2019", "INBOX"}[i%3]
				msgs[i].Folder = folder
			}
			integrationLoad(t, srcAcct, msgs)

			src := integrationStore(t, "imap://"+tc.user+"@"+srcSrv.Addr+"?tls=none", users[tc.user], nil)
			dst := integrationStore(t, "imap://"+tc.user+"@"+dstSrv.Addr+"?tls=none", users[tc.user], nil)
			opts := sync.Options{Account: tc.user, StateDir: t.TempDir()}
			rep := integrationMustRun(t, src, dst, opts)
			integrationCounts(t, "migration", rep, len(msgs), 0, 0)
			want := map[string][2]string{ // source → target, via
				tc.sent:           {"Sent", tc.via},
				tc.sent + "/2019": {"Sent/2019", "parent"},
				"INBOX":           {"INBOX", "name"},
			}
			for _, f := range rep.Folders {
				w, ok := want[f.Source]
				if !ok {
					continue
				}
				delete(want, f.Source)
				if f.Target != w[0] || f.Via != w[1] {
					t.Errorf("folder %q went to %q via %q, want %q via %q", f.Source, f.Target, f.Via, w[0], w[1])
				}
			}
			if len(want) > 0 {
				t.Errorf("folders missing from the report: %v", want)
			}
			rename := func(name string) string {
				if name == tc.sent || strings.HasPrefix(name, tc.sent+"/") {
					return "Sent" + strings.TrimPrefix(name, tc.sent)
				}
				return name
			}
			dstDump := integrationDump(t, dstAcct)
			sameRecords(t, "target", dumpRecords(dstDump, true, nil), dumpRecords(integrationDump(t, srcAcct), true, rename))
			if _, ok := dstDump[tc.sent]; ok {
				t.Errorf("the target got a folder %q besides Sent", tc.sent)
			}
			if mb := dstDump["Sent"]; mb == nil || !hasAttr(mb.Attrs, imap.MailboxAttrSent) {
				t.Errorf("the target's Sent lost its \\Sent attribute: %+v", mb)
			}
			rep = integrationMustRun(t, src, dst, opts)
			integrationCounts(t, "re-run", rep, 0, 0, 0)
		})
	}
}

// TestIntegrationTargetRefuses migrates to a target whose APPENDLIMIT is
// smaller than one message: that message is reported with the server's
// reason, the others are copied, and the run ends as partial.
func TestIntegrationTargetRefuses(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	srcSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: map[string]string{"erin": "pw-erin"}})
	dstSrv := servetest.Start(t, servetest.Options{NoSync: true, AppendLimit: limit, Users: map[string]string{"erin": "pw-erin", "frank": "pw-frank"}})
	srcAcct, dstAcct := serveAccount(srcSrv, "erin", "pw-erin"), serveAccount(dstSrv, "erin", "pw-erin")

	msgs := testmail.Generate(testmail.Options{Seed: 5, Count: 12, MaxAttachment: 4096})
	big := testmail.BigAttachment(5, 900<<10) // about 1.2 MiB once encoded
	big.Folder = msgs[3].Folder
	msgs = slices.Insert(msgs, 6, big)
	if len(big.Raw) <= limit {
		t.Fatalf("the big message has %d bytes, not above the limit", len(big.Raw))
	}
	integrationLoad(t, srcAcct, msgs)

	src := integrationStore(t, "imap://erin@"+srcSrv.Addr+"?tls=none", "pw-erin", nil)
	dst := integrationStore(t, "imap://erin@"+dstSrv.Addr+"?tls=none", "pw-erin", nil)
	opts := sync.Options{Account: "erin", StateDir: t.TempDir()}
	for run := 1; run <= 2; run++ {
		rep, err := integrationRun(t, src, dst, opts)
		if !errors.Is(err, sync.ErrPartial) {
			t.Fatalf("run %d: error %v, want ErrPartial", run, err)
		}
		if len(rep.Failures) != 1 {
			t.Fatalf("run %d: failures %+v, want the big message only", run, rep.Failures)
		}
		f := rep.Failures[0]
		if f.MessageID != "<"+big.MessageID+">" || f.Size != int64(len(big.Raw)) || f.Folder != big.Folder {
			t.Errorf("run %d: failure %+v, want <%s> in %q, %d bytes", run, f, big.MessageID, big.Folder, len(big.Raw))
		}
		// The server's reason: its limit, and "too big".
		if !strings.Contains(strings.ToLower(f.Reason), "too big") || !strings.Contains(f.Reason, fmt.Sprint(limit)) {
			t.Errorf("run %d: reason %q does not give the server's limit", run, f.Reason)
		}
		wantCopied := len(msgs) - 1
		if run == 2 {
			wantCopied = 0
		}
		if rep.Totals.Copied != wantCopied || rep.Totals.Failed != 1 {
			t.Errorf("run %d: copied %d, failed %d; want %d, 1", run, rep.Totals.Copied, rep.Totals.Failed, wantCopied)
		}
		for _, fr := range rep.Folders {
			if !fr.Complete || fr.Error != "" {
				t.Errorf("run %d: folder %q did not run to its end: %s", run, fr.Source, fr.Error)
			}
		}
	}
	want := append(append([]testmail.Message(nil), msgs[:6]...), msgs[7:]...)
	sameRecords(t, "target", dumpRecords(integrationDump(t, dstAcct), true, nil), corpusRecords(want, true))

	// The same, with the APPENDLIMIT capability hidden from the engine:
	// the message goes out and the server itself answers NO [TOOBIG].
	p := startProxy(t, dstSrv.Addr, proxyFaults{rewrite: maskCapability("APPENDLIMIT")})
	dst2 := integrationStore(t, "imap://frank@"+p.addr()+"?tls=none", "pw-frank", nil)
	if _, ok := dst2.Caps().AppendLimit(); ok {
		t.Fatal("the proxy did not hide APPENDLIMIT")
	}
	rep, err := integrationRun(t, src, dst2, sync.Options{Account: "erin->frank"})
	if !errors.Is(err, sync.ErrPartial) {
		t.Fatalf("without APPENDLIMIT: error %v, want ErrPartial", err)
	}
	if len(rep.Failures) != 1 || rep.Failures[0].MessageID != "<"+big.MessageID+">" {
		t.Fatalf("without APPENDLIMIT: failures %+v, want the big message only", rep.Failures)
	}
	if r := rep.Failures[0].Reason; !strings.Contains(r, "TOOBIG") || !strings.Contains(r, fmt.Sprint(limit)) {
		t.Errorf("without APPENDLIMIT: reason %q, want the server's NO [TOOBIG] and its limit", r)
	}
	if rep.Totals.Copied != len(msgs)-1 {
		t.Errorf("without APPENDLIMIT: copied %d, want %d", rep.Totals.Copied, len(msgs)-1)
	}
	sameRecords(t, "target without APPENDLIMIT", dumpRecords(integrationDump(t, serveAccount(dstSrv, "frank", "pw-frank")), true, nil), corpusRecords(want, true))
}

// faultCorpus is the corpus plus three messages of 1.1, 2.9 and 4.9 MiB.
func faultCorpus() []testmail.Message {
	msgs := testmail.Corpus()
	for i, n := range []int{800 << 10, 2 << 20, 3500 << 10} {
		m := testmail.BigAttachment(int64(20+i), n)
		m.Folder = []string{"INBOX", "Archive/2019", "日本語/子"}[i]
		msgs = append(msgs, m)
	}
	return msgs
}

// TestIntegrationFaultySource migrates through a proxy that cuts every
// connection to the source after 200 KiB, for ever: listings and message
// streams resume, and the target ends with every message exactly once.
func TestIntegrationFaultySource(t *testing.T) {
	t.Parallel()
	users := map[string]string{"alice": "pw-a"}
	srcSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: users})
	dstSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: users})
	srcAcct, dstAcct := serveAccount(srcSrv, "alice", "pw-a"), serveAccount(dstSrv, "alice", "pw-a")
	msgs := faultCorpus()
	integrationLoad(t, srcAcct, msgs)

	p := startProxy(t, srcSrv.Addr, proxyFaults{budget: every(200 << 10)})
	src := integrationStore(t, "imap://alice@"+p.addr()+"?tls=none", "pw-a", nil)
	dst := integrationStore(t, "imap://alice@"+dstSrv.Addr+"?tls=none", "pw-a", nil)
	opts := sync.Options{Account: "faulty-source", StateDir: t.TempDir(), Parallel: 3}
	rep := integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "through the cutting proxy", rep, len(msgs), 0, 0)
	if c := p.cuts.Load(); c < 30 {
		t.Errorf("the proxy cut only %d connections; the test does not test much", c)
	}
	t.Logf("%d connections, %d cut", p.accepted.Load(), p.cuts.Load())
	srcDump, dstDump := integrationDump(t, srcAcct), integrationDump(t, dstAcct)
	exactlyOnce(t, "target", identityCounts(dstDump), identityCounts(srcDump))
	sameRecords(t, "target", dumpRecords(dstDump, true, nil), corpusRecords(msgs, true))

	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "re-run through the cutting proxy", rep, 0, 0, 0)
}

// TestIntegrationFaultyTarget migrates through a proxy that cuts every
// connection to the target after a budget, for ever. An APPEND cannot
// resume in the middle of a message, so one bigger than every budget
// could never arrive: every other connection is cut after 16 KiB, the
// others a little above the biggest message (4.7 MiB), which all go to
// INBOX so that long connections get cut too. Folders are copied one at
// a time, so that after a cut the next connection is a long one (with
// several folders at once, a message could meet short ones only).
func TestIntegrationFaultyTarget(t *testing.T) {
	t.Parallel()
	users := map[string]string{"alice": "pw-a"}
	srcSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: users})
	dstSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: users})
	srcAcct, dstAcct := serveAccount(srcSrv, "alice", "pw-a"), serveAccount(dstSrv, "alice", "pw-a")
	msgs, budget := faultTargetCorpus()
	integrationLoad(t, srcAcct, msgs)

	p := startProxy(t, dstSrv.Addr, proxyFaults{budget: budget})
	src := integrationStore(t, "imap://alice@"+srcSrv.Addr+"?tls=none", "pw-a", nil)
	dst := integrationStore(t, "imap://alice@"+p.addr()+"?tls=none", "pw-a", nil)
	logs := &logCounter{}
	opts := sync.Options{Account: "faulty-target", StateDir: t.TempDir(), Parallel: 1, Logger: slog.New(logs)}
	rep := integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "through the cutting proxy", rep, len(msgs), 0, 0)
	resent, lost := logs.count("connection broke while copying a message; sending it again"), logs.count("append reply lost and message not on the target; appending again")
	t.Logf("%d connections, %d cut; %d messages sent again after a cut, %d after a lost reply", p.accepted.Load(), p.cuts.Load(), resent, lost)
	if p.cuts.Load() < 4 || resent+lost < 3 {
		t.Errorf("the proxy cut only %d connections and %d messages were sent again: the test does not test much", p.cuts.Load(), resent+lost)
	}
	srcDump, dstDump := integrationDump(t, srcAcct), integrationDump(t, dstAcct)
	exactlyOnce(t, "target", identityCounts(dstDump), identityCounts(srcDump))
	sameRecords(t, "target", dumpRecords(dstDump, true, nil), corpusRecords(msgs, true))

	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "re-run through the cutting proxy", rep, 0, 0, 0)
}

// TestIntegrationDovecotCourier migrates between a private Dovecot with a
// Courier-style namespace (separator ".", every folder below "INBOX.")
// and 'imapctl serve' ('/', no prefix), both ways: names are mapped
// ("INBOX.Projects.2024" and "Projects/2024", "INBOX.Sent" and "Sent" by
// special use), messages arrive byte for byte with their flags, keywords
// and internal dates, and re-runs copy nothing.
//
// Dovecot serves a message stored with bare LF line endings with CRLF
// (and a size to match): what it holds is the corpus with those
// converted, whichever way it got there, and the engine must still pair
// them with their originals.
func TestIntegrationDovecotCourier(t *testing.T) {
	t.Parallel()
	dc := dovecottest.Start(t, dovecottest.Options{
		Users: map[string]string{"alice": "pw-dc-alice", "carol": "pw-dc-carol", "erin": "pw-dc-erin",
			"frank": "pw-dc-frank"},
		Separator: ".",
		Prefix:    "INBOX.",
		// Merged into the namespace section dovecottest writes.
		ExtraConfig: "namespace inbox {\n  mailbox Sent {\n    special_use = \\Sent\n  }\n}",
	})
	srv := servetest.Start(t, servetest.Options{NoSync: true, Users: map[string]string{"bob": "pw-bob", "dave": "pw-dave"}})
	dcAlice := integrationAccount{Addr: dc.Addr, User: "alice", Pass: "pw-dc-alice"}
	dcCarol := integrationAccount{Addr: dc.Addr, User: "carol", Pass: "pw-dc-carol"}
	dcErin := integrationAccount{Addr: dc.Addr, User: "erin", Pass: "pw-dc-erin"}
	bob, dave := serveAccount(srv, "bob", "pw-bob"), serveAccount(srv, "dave", "pw-dave")

	corpus := testmail.Generate(testmail.Options{Seed: 1, Folders: append(testmail.Folders(), "Projects/2024")})
	converted := withCRLF(corpus)
	bareLF := 0
	for _, m := range corpus {
		if m.Kind == testmail.KindBareLF {
			bareLF++
		}
	}
	if bareLF == 0 {
		t.Fatal("the corpus has no bare-LF message")
	}
	integrationLoad(t, dcAlice, corpus)
	// Dovecot keeps a Maildir's internal dates as file times: the instant,
	// not the zone.
	dcDump := integrationDump(t, dcAlice)
	sameRecords(t, "Dovecot after loading", dumpRecords(dcDump, false, nil), corpusRecords(converted, false))
	if mb := dcDump["Projects/2024"]; mb == nil || mb.Name != "INBOX.Projects.2024" {
		t.Fatalf("Dovecot's folder for Projects/2024: %+v, want INBOX.Projects.2024", mb)
	}
	if mb := dcDump["Sent"]; mb == nil || mb.Name != "INBOX.Sent" || !hasAttr(mb.Attrs, imap.MailboxAttrSent) {
		t.Fatalf("Dovecot's sent folder: %+v, want INBOX.Sent with \\Sent", mb)
	}
	if t.Failed() {
		t.FailNow()
	}

	dovecot := func(user, pass string) *remote.Store {
		return integrationStore(t, "imap://"+user+"@"+dc.Addr+"?tls=none", pass, nil)
	}
	serve := func(user, pass string) *remote.Store {
		return integrationStore(t, "imaps://"+user+"@"+srv.TLSAddr, pass, srv.RootCAs)
	}

	// migrate runs a migration and checks the report's folder mapping
	// (source → target), the target's messages, and that re-runs, with
	// the state and without (then verifying), copy nothing.
	migrate := func(what string, src, dst *remote.Store, dstAcct integrationAccount, folders map[string]string, want []testmail.Message) {
		t.Helper()
		opts := sync.Options{Account: what, StateDir: t.TempDir()}
		rep := integrationMustRun(t, src, dst, opts)
		integrationCounts(t, what, rep, len(corpus), 0, 0)
		for _, f := range rep.Folders {
			if w, ok := folders[f.Source]; ok {
				delete(folders, f.Source)
				if f.Target != w {
					t.Errorf("%s: %q went to %q (via %s), want %q", what, f.Source, f.Target, f.Via, w)
				}
			}
		}
		for s, w := range folders {
			t.Errorf("%s: no folder %q (to go to %q) in the report", what, s, w)
		}
		dstDump := integrationDump(t, dstAcct)
		sameRecords(t, what, dumpRecords(dstDump, false, nil), corpusRecords(want, false))
		exactlyOnce(t, what, identityCounts(dstDump), corpusCounts(want))

		rep = integrationMustRun(t, src, dst, opts)
		integrationCounts(t, what+": re-run", rep, 0, 0, 0)
		opts.StateDir, opts.Verify = "", true
		rep = integrationMustRun(t, src, dst, opts)
		integrationCounts(t, what+": re-run without state", rep, 0, 0, 0)
		if rep.Verified == nil || !*rep.Verified {
			t.Errorf("%s: verification failed: %+v", what, rep.Missing)
		}
	}

	migrate("Dovecot to serve", dovecot("alice", "pw-dc-alice"), serve("bob", "pw-bob"), bob, map[string]string{
		"INBOX": "INBOX", "INBOX.Sent": "Sent", "INBOX.Projects.2024": "Projects/2024",
		"INBOX.Projects.2024.Q1.Reports.Final": "Projects/2024/Q1/Reports/Final", "INBOX.日本語.子": "日本語/子",
	}, converted)
	migrate("serve to Dovecot", serve("bob", "pw-bob"), dovecot("carol", "pw-dc-carol"), dcCarol, map[string]string{
		"INBOX": "INBOX", "Sent": "INBOX.Sent", "Projects/2024": "INBOX.Projects.2024",
		"Projects/2024/Q1/Reports/Final": "INBOX.Projects.2024.Q1.Reports.Final", "Q&A": "INBOX.Q&A",
	}, converted)

	// The corpus as generated, bare LF included, from serve to Dovecot.
	integrationLoad(t, dave, corpus)
	sameRecords(t, "serve after loading", dumpRecords(integrationDump(t, dave), true, nil), corpusRecords(corpus, true))
	migrate("serve (bare LF) to Dovecot", serve("dave", "pw-dave"), dovecot("erin", "pw-dc-erin"), dcErin,
		map[string]string{"Sent": "INBOX.Sent", "Réunions": "INBOX.Réunions"}, converted)

	// Again, with every APPEND reply lost: each message is stored, and
	// must be found on the target (with its line endings converted)
	// rather than appended again.
	p := startProxy(t, dc.Addr, proxyFaults{dropReply: "APPENDUID"})
	dcFrank := integrationAccount{Addr: dc.Addr, User: "frank", Pass: "pw-dc-frank"}
	lossy := integrationStore(t, "imap://frank@"+p.addr()+"?tls=none", "pw-dc-frank", nil)
	migrate("serve (bare LF) to Dovecot, APPEND replies lost", serve("dave", "pw-dave"), lossy, dcFrank, nil, converted)
	// Dovecot takes MULTIAPPEND: one APPEND command (and one lost reply)
	// per folder here, whose messages are all looked for on the target.
	folders := map[string]bool{}
	for _, m := range corpus {
		folders[m.Folder] = true
	}
	if p.cuts.Load() < int64(len(folders)) {
		t.Errorf("only %d APPEND replies were lost, want at least one per folder (%d)", p.cuts.Load(), len(folders))
	}
}

// withCRLF returns msgs with the bare-LF messages given CRLF line
// endings, as Dovecot stores and serves them.
func withCRLF(msgs []testmail.Message) []testmail.Message {
	out := make([]testmail.Message, len(msgs))
	for i, m := range msgs {
		out[i] = m
		if m.Kind == testmail.KindBareLF {
			out[i].Raw = toCRLF(m.Raw)
		}
	}
	return out
}

// faultTargetCorpus is faultCorpus with the messages over 1 MiB in INBOX
// (so that long connections get cut too), and a proxy budget that cuts
// every other connection after 16 KiB and the others a little above the
// biggest message, so that every message can get through.
func faultTargetCorpus() ([]testmail.Message, func(n int64) int64) {
	msgs := faultCorpus()
	var biggest int64
	for i := range msgs {
		if len(msgs[i].Raw) > 1<<20 {
			msgs[i].Folder = "INBOX"
		}
		biggest = max(biggest, int64(len(msgs[i].Raw)))
	}
	return msgs, func(n int64) int64 {
		if n%2 == 0 {
			return biggest + 64<<10
		}
		return 16 << 10
	}
}

// toCRLF returns raw with every bare LF made CRLF.
func toCRLF(raw []byte) []byte {
	var b bytes.Buffer
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(c)
	}
	return b.Bytes()
}

// TestIntegrationFaultyDovecotTarget is TestIntegrationFaultyTarget with a
// real Dovecot as the target, which takes MULTIAPPEND: batches are cut,
// their replies lost, they shrink and stop, and still every message ends
// up on the target exactly once, and a re-run copies nothing.
func TestIntegrationFaultyDovecotTarget(t *testing.T) {
	t.Parallel()
	if !dovecottest.Available() {
		t.Skipf("dovecot is not installed: %s", dovecottest.InstallHint)
	}
	dc := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw-dc"}})
	srcSrv := servetest.Start(t, servetest.Options{NoSync: true, Users: map[string]string{"alice": "pw-a"}})
	srcAcct := serveAccount(srcSrv, "alice", "pw-a")
	dstAcct := integrationAccount{Addr: dc.Addr, User: "alice", Pass: "pw-dc"}
	msgs, budget := faultTargetCorpus()
	integrationLoad(t, srcAcct, msgs)
	converted := withCRLF(msgs)

	p := startProxy(t, dc.Addr, proxyFaults{budget: budget})
	src := integrationStore(t, "imap://alice@"+srcSrv.Addr+"?tls=none", "pw-a", nil)
	dst := integrationStore(t, "imap://alice@"+p.addr()+"?tls=none", "pw-dc", nil)
	logs := &logCounter{}
	opts := sync.Options{Account: "faulty-dovecot", StateDir: t.TempDir(), Parallel: 1, Logger: slog.New(logs)}
	rep := integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "through the cutting proxy", rep, len(msgs), 0, 0)
	batchLost := logs.count("the reply to a batch of appends was lost; looking for its messages on the target")
	batchStopped := logs.count("batch append stopped; appending one message at a time")
	resent, lost := logs.count("connection broke while copying a message; sending it again"), logs.count("append reply lost and message not on the target; appending again")
	t.Logf("%d connections, %d cut; batches: %d replies lost, %d stopped; single messages: %d sent again after a cut, %d after a lost reply",
		p.accepted.Load(), p.cuts.Load(), batchLost, batchStopped, resent, lost)
	if p.cuts.Load() < 4 || batchLost+batchStopped < 1 {
		t.Errorf("the proxy cut only %d connections and %d batches failed: the test does not test much", p.cuts.Load(), batchLost+batchStopped)
	}
	dstDump := integrationDump(t, dstAcct)
	exactlyOnce(t, "target", identityCounts(dstDump), corpusCounts(converted))
	sameRecords(t, "target", dumpRecords(dstDump, false, nil), corpusRecords(converted, false))

	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "re-run through the cutting proxy", rep, 0, 0, 0)
}

// TestIntegrationDovecotUnchanged migrates between two accounts of a real
// Dovecot, which offers CONDSTORE: once a run has found a folder pair in
// step, the next skips it without listing (its report says unchanged); a
// flag changed on the source brings that one folder back.
func TestIntegrationDovecotUnchanged(t *testing.T) {
	t.Parallel()
	if !dovecottest.Available() {
		t.Skipf("dovecot is not installed: %s", dovecottest.InstallHint)
	}
	dc := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"src": "pw-s", "dst": "pw-d"}})
	srcAcct := integrationAccount{Addr: dc.Addr, User: "src", Pass: "pw-s"}
	dstAcct := integrationAccount{Addr: dc.Addr, User: "dst", Pass: "pw-d"}
	integrationLoad(t, srcAcct, testmail.Generate(testmail.Options{Seed: 5, Count: 80}))
	src := integrationStore(t, "imap://src@"+dc.Addr+"?tls=none", "pw-s", nil)
	dst := integrationStore(t, "imap://dst@"+dc.Addr+"?tls=none", "pw-d", nil)
	opts := sync.Options{Account: "unchanged", StateDir: t.TempDir()}
	unchanged := func(rep *sync.Report) (n int) {
		for _, f := range rep.Folders {
			if f.Unchanged {
				n++
			}
		}
		return n
	}
	rep := integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "first run", rep, 80, 0, 0)
	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "second run", rep, 0, 0, 0)
	if unchanged(rep) == len(rep.Folders) {
		t.Errorf("second run: every folder unchanged, but the first copied into them")
	}
	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "third run", rep, 0, 0, 0)
	if unchanged(rep) != len(rep.Folders) || rep.Totals.SourceCount != 80 || rep.Totals.TargetCount != 80 {
		t.Fatalf("third run: %d of %d folders unchanged, totals %+v", unchanged(rep), len(rep.Folders), rep.Totals)
	}

	first := integrationDump(t, srcAcct)["INBOX"].Msgs[0]
	integrationStoreFlags(t, srcAcct, "INBOX", first.UID, imap.StoreFlagsAdd, "$changed")
	rep = integrationMustRun(t, src, dst, opts)
	integrationCounts(t, "after a flag change", rep, 0, 1, 0)
	if unchanged(rep) != len(rep.Folders)-1 {
		t.Errorf("after a flag change: %d of %d folders unchanged, want all but INBOX", unchanged(rep), len(rep.Folders))
	}
	sameRecords(t, "target", dumpRecords(integrationDump(t, dstAcct), false, nil), dumpRecords(integrationDump(t, srcAcct), false, nil))
}
