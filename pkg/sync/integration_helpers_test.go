package sync_test

// Helpers of the integration tests (integration_test.go): they load mail
// into real IMAP servers and read back what a migration left there with
// go-imap's client directly, independently of pkg/store/remote, so that a
// bug in the remote store cannot hide itself.

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store/remote"
	"github.com/imapctl/imapctl/pkg/sync"
)

// integrationRetry retries quickly: the servers are on loopback, and the
// fault tests cut connections all the time (progress resets the count).
var integrationRetry = remote.RetryPolicy{MaxAttempts: 10, BaseDelay: 2 * time.Millisecond, MaxDelay: 50 * time.Millisecond}

// integrationStore dials an account for the engine. roots nil with an
// imap://...?tls=none URL is plaintext on loopback.
func integrationStore(t testing.TB, url, pass string, roots *x509.CertPool) *remote.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := remote.Dial(ctx, remote.Config{URL: url, Password: pass, RootCAs: roots,
		Timeout: 30 * time.Second, Retry: integrationRetry})
	if err != nil {
		t.Fatalf("remote.Dial(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = st.Close() }) // it logs out: nothing is left to check
	return st
}

// integrationRun runs the engine with a deadline, so that a hang fails
// the test instead of blocking it (never a timing assertion).
func integrationRun(t testing.TB, src, dst *remote.Store, opts sync.Options) (*sync.Report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := sync.Run(ctx, src, dst, opts)
	if rep == nil && err == nil {
		t.Fatal("sync.Run returned neither a report nor an error")
	}
	return rep, err
}

// integrationMustRun runs the engine and requires success.
func integrationMustRun(t testing.TB, src, dst *remote.Store, opts sync.Options) *sync.Report {
	t.Helper()
	rep, err := integrationRun(t, src, dst, opts)
	if err != nil {
		if rep != nil {
			for _, f := range rep.Failures {
				t.Logf("failure: %+v", f)
			}
			for _, f := range rep.Folders {
				if f.Error != "" {
					t.Logf("folder %q: %s", f.Source, f.Error)
				}
			}
		}
		t.Fatalf("sync.Run: %v", err)
	}
	return rep
}

// integrationCounts checks a report's totals.
func integrationCounts(t testing.TB, what string, rep *sync.Report, copied, updated, deleted int) {
	t.Helper()
	c := rep.Totals
	if c.Copied != copied || c.Updated != updated || c.Deleted != deleted || c.Failed != 0 {
		t.Errorf("%s: copied %d, updated %d, deleted %d, failed %d; want %d, %d, %d, 0",
			what, c.Copied, c.Updated, c.Deleted, c.Failed, copied, updated, deleted)
	}
	for _, f := range rep.Folders {
		if !f.Complete || f.Error != "" {
			t.Errorf("%s: folder %q -> %q not complete: %s", what, f.Source, f.Target, f.Error)
		}
	}
}

// integrationAccount is an account on a server of the test, reached in
// plaintext on loopback.
type integrationAccount struct {
	Addr       string
	User, Pass string
}

func serveAccount(s *servetest.Server, user, pass string) integrationAccount {
	return integrationAccount{Addr: s.Addr, User: user, Pass: pass}
}

// dial logs in with go-imap's client.
func (a integrationAccount) dial(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(a.Addr, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", a.Addr, err)
	}
	t.Cleanup(func() { servetest.CloseClient(c) })
	if err := c.Login(a.User, a.Pass).Wait(); err != nil {
		t.Fatalf("login as %s on %s: %v", a.User, a.Addr, err)
	}
	return c
}

// integrationNS is how a server spells names: personal-namespace prefix
// and hierarchy delimiter.
type integrationNS struct {
	prefix string
	delim  rune
}

func namespaceOf(t testing.TB, c *imapclient.Client) integrationNS {
	t.Helper()
	var ns integrationNS
	list, err := c.List("", "", nil).Collect()
	if err != nil || len(list) == 0 {
		t.Fatalf(`LIST "" "": %v`, err)
	}
	ns.delim = list[0].Delim
	if c.Caps().Has(imap.CapNamespace) {
		data, err := c.Namespace().Wait()
		if err != nil {
			t.Fatalf("NAMESPACE: %v", err)
		}
		if len(data.Personal) > 0 {
			ns.prefix = data.Personal[0].Prefix
		}
	}
	return ns
}

// server returns the server's name of a canonical folder name ('/'
// between levels, no prefix).
func (ns integrationNS) server(canon string) string {
	if canon == "INBOX" {
		return canon
	}
	return ns.prefix + strings.ReplaceAll(canon, "/", string(ns.delim))
}

// canonical is the inverse of server.
func (ns integrationNS) canonical(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if p := ns.prefix; p != "" && len(name) > len(p) && strings.EqualFold(name[:len(p)], p) {
		name = name[len(p):]
	}
	return strings.ReplaceAll(name, string(ns.delim), "/")
}

// flagsOf returns a corpus message's flags and keywords.
func flagsOf(m testmail.Message) []imap.Flag {
	var fl []imap.Flag
	for _, f := range m.Flags {
		fl = append(fl, imap.Flag(f))
	}
	for _, k := range m.Keywords {
		fl = append(fl, imap.Flag(k))
	}
	return fl
}

// integrationLoad creates the messages' folders (canonical names) and
// appends the messages with their flags, keywords and internal dates.
func integrationLoad(t testing.TB, a integrationAccount, msgs []testmail.Message) {
	t.Helper()
	c := a.dial(t)
	ns := namespaceOf(t, c)
	made := map[string]bool{"INBOX": true}
	for _, m := range msgs {
		if !made[m.Folder] {
			integrationCreate(t, c, ns.server(m.Folder), nil)
			made[m.Folder] = true
		}
		integrationAppend(t, c, ns.server(m.Folder), m.Raw, flagsOf(m), m.Date)
	}
}

// integrationCreate creates a folder; one that exists already is fine.
func integrationCreate(t testing.TB, c *imapclient.Client, name string, use []imap.MailboxAttr) {
	t.Helper()
	var opts *imap.CreateOptions
	if use != nil {
		opts = &imap.CreateOptions{SpecialUse: use}
	}
	err := c.Create(name, opts).Wait()
	if err == nil {
		return
	}
	list, lerr := c.List("", name, nil).Collect()
	if lerr == nil && len(list) == 1 && !hasAttr(list[0].Attrs, imap.MailboxAttrNonExistent) && !hasAttr(list[0].Attrs, imap.MailboxAttrNoSelect) {
		return
	}
	t.Fatalf("CREATE %q: %v", name, err)
}

func integrationAppend(t testing.TB, c *imapclient.Client, mailbox string, raw []byte, flags []imap.Flag, date time.Time) imap.UID {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: date})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatalf("APPEND to %q: %v", mailbox, err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("APPEND to %q: %v", mailbox, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %q: %v", mailbox, err)
	}
	return data.UID
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// integrationMsg is a message as read back from a server.
type integrationMsg struct {
	Folder    string // canonical
	UID       imap.UID
	Flags     []string // sorted, \Recent dropped, system flags canonical
	Date      time.Time
	Size      int64
	Sum       [32]byte // SHA-256 of BODY[]
	MessageID string   // without <>, "" when none
}

// integrationMailbox is one folder of a dump.
type integrationMailbox struct {
	Name  string // as the server spells it
	Attrs []imap.MailboxAttr
	Msgs  []integrationMsg
}

// integrationDump reads every message of every selectable folder of an
// account: BODY.PEEK[], FLAGS, INTERNALDATE and RFC822.SIZE, by canonical
// folder name.
func integrationDump(t testing.TB, a integrationAccount) map[string]*integrationMailbox {
	t.Helper()
	c := a.dial(t)
	defer servetest.CloseClient(c)
	ns := namespaceOf(t, c)
	var lopts *imap.ListOptions
	if c.Caps().Has(imap.CapSpecialUse) && c.Caps().Has(imap.CapListExtended) {
		lopts = &imap.ListOptions{ReturnSpecialUse: true}
	}
	list, err := c.List("", "*", lopts).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	out := map[string]*integrationMailbox{}
	for _, l := range list {
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		canon := ns.canonical(l.Mailbox)
		mb := &integrationMailbox{Name: l.Mailbox, Attrs: l.Attrs}
		if _, dup := out[canon]; dup {
			t.Fatalf("%s: two folders are %q", a.User, canon)
		}
		out[canon] = mb
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("EXAMINE %q: %v", l.Mailbox, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatalf("FETCH in %q: %v", l.Mailbox, err)
		}
		if len(msgs) != int(sel.NumMessages) {
			t.Fatalf("FETCH 1:* in %q: %d messages, EXAMINE said %d", l.Mailbox, len(msgs), sel.NumMessages)
		}
		for _, m := range msgs {
			var body []byte
			for _, b := range m.BodySection {
				body = b.Bytes
			}
			if int64(len(body)) != m.RFC822Size {
				t.Errorf("%q UID %d: BODY[] has %d bytes, RFC822.SIZE %d", l.Mailbox, m.UID, len(body), m.RFC822Size)
			}
			mb.Msgs = append(mb.Msgs, integrationMsg{Folder: canon, UID: m.UID, Flags: normFlags(m.Flags),
				Date: m.InternalDate, Size: m.RFC822Size, Sum: sha256.Sum256(body), MessageID: headerMessageID(body)})
		}
	}
	return out
}

func normFlags(in []imap.Flag) []string {
	var out []string
	for _, f := range in {
		s := string(f)
		if strings.HasPrefix(s, `\`) {
			if strings.EqualFold(s, `\Recent`) {
				continue
			}
			s = `\` + strings.ToUpper(s[1:2]) + strings.ToLower(s[2:])
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// headerMessageID returns the Message-ID of a message without <>.
func headerMessageID(raw []byte) string {
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			return "" // end of the header
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, "Message-ID") {
			return strings.Trim(strings.TrimSpace(v), "<>")
		}
	}
	return ""
}

// record is a message's comparable description; zones says whether the
// internal date's time zone counts or only the instant.
func (m integrationMsg) record(zones bool) string {
	date := fmt.Sprint(m.Date.Unix())
	if zones {
		date = m.Date.Format(time.RFC3339)
	}
	return fmt.Sprintf("%x size=%d flags=[%s] date=%s id=%s", m.Sum[:8], m.Size, strings.Join(m.Flags, " "), date, m.MessageID)
}

// corpusRecords describes messages as a server should hold them, by
// canonical folder.
func corpusRecords(msgs []testmail.Message, zones bool) map[string][]string {
	out := map[string][]string{}
	for _, m := range msgs {
		var fl []string
		for _, f := range flagsOf(m) {
			fl = append(fl, string(f))
		}
		sort.Strings(fl)
		im := integrationMsg{Flags: fl, Date: m.Date, Size: int64(len(m.Raw)), Sum: sha256.Sum256(m.Raw), MessageID: m.MessageID}
		out[m.Folder] = append(out[m.Folder], im.record(zones))
	}
	for _, recs := range out {
		sort.Strings(recs)
	}
	return out
}

// dumpRecords describes a dump by canonical folder, with each folder
// renamed by rename (nil: unchanged); folders without messages are left
// out.
func dumpRecords(d map[string]*integrationMailbox, zones bool, rename func(string) string) map[string][]string {
	out := map[string][]string{}
	for name, mb := range d {
		if rename != nil {
			name = rename(name)
		}
		for _, m := range mb.Msgs {
			out[name] = append(out[name], m.record(zones))
		}
	}
	for _, recs := range out {
		sort.Strings(recs)
	}
	return out
}

// sameRecords requires got and want to hold the same messages in the
// same folders.
func sameRecords(t testing.TB, what string, got, want map[string][]string) {
	t.Helper()
	names := map[string]bool{}
	for f := range got {
		names[f] = true
	}
	for f := range want {
		names[f] = true
	}
	sorted := make([]string, 0, len(names))
	for f := range names {
		sorted = append(sorted, f)
	}
	sort.Strings(sorted)
	for _, f := range sorted {
		g, w := got[f], want[f]
		if strings.Join(g, "\n") == strings.Join(w, "\n") {
			continue
		}
		t.Errorf("%s: folder %q differs: got %d messages, want %d\n%s", what, f, len(g), len(w), recordDiff(g, w))
	}
}

// recordDiff lists the records only one side has.
func recordDiff(got, want []string) string {
	n := map[string]int{}
	for _, r := range got {
		n[r]++
	}
	for _, r := range want {
		n[r]--
	}
	var b strings.Builder
	keys := make([]string, 0, len(n))
	for r := range n {
		keys = append(keys, r)
	}
	sort.Strings(keys)
	for _, r := range keys {
		switch c := n[r]; {
		case c > 0:
			fmt.Fprintf(&b, "\t+%d %s\n", c, r)
		case c < 0:
			fmt.Fprintf(&b, "\t%d %s\n", c, r)
		}
	}
	return b.String()
}

// identityCounts counts a dump's messages by Message-ID (or, without one,
// by content hash) and size.
func identityCounts(d map[string]*integrationMailbox) map[string]int {
	out := map[string]int{}
	for _, mb := range d {
		for _, m := range mb.Msgs {
			out[identityKey(m.MessageID, m.Sum, m.Size)]++
		}
	}
	return out
}

// corpusCounts is identityCounts for the messages of a corpus.
func corpusCounts(msgs []testmail.Message) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[identityKey(m.MessageID, sha256.Sum256(m.Raw), int64(len(m.Raw)))]++
	}
	return out
}

func identityKey(messageID string, sum [32]byte, size int64) string {
	if messageID == "" {
		return fmt.Sprintf("sha256:%x size=%d", sum, size)
	}
	return fmt.Sprintf("<%s> size=%d", messageID, size)
}

// exactlyOnce requires the target to hold each message of want exactly
// as many times as want says (counted by Message-ID and size), and
// nothing else.
func exactlyOnce(t testing.TB, what string, got, want map[string]int) {
	t.Helper()
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %s is on the target %d times, want %d", what, k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s is on the target %d times but not on the source", what, k, n)
		}
	}
}

// total returns the number of messages of a dump.
func total(d map[string]*integrationMailbox) int {
	n := 0
	for _, mb := range d {
		n += len(mb.Msgs)
	}
	return n
}

// findMsg returns the first message of folder (canonical) that pred
// accepts.
func findMsg(t testing.TB, d map[string]*integrationMailbox, folder string, pred func(integrationMsg) bool) integrationMsg {
	t.Helper()
	mb := d[folder]
	if mb == nil {
		t.Fatalf("no folder %q", folder)
	}
	for _, m := range mb.Msgs {
		if pred(m) {
			return m
		}
	}
	t.Fatalf("no such message in %q", folder)
	return integrationMsg{}
}

// integrationStoreFlags changes the flags of one message by UID.
func integrationStoreFlags(t testing.TB, a integrationAccount, folder string, uid imap.UID, op imap.StoreFlagsOp, flags ...imap.Flag) {
	t.Helper()
	c := a.dial(t)
	defer servetest.CloseClient(c)
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatalf("SELECT %q: %v", folder, err)
	}
	if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
		t.Fatalf("UID STORE %d in %q: %v", uid, folder, err)
	}
}

// integrationExpunge removes one message by UID (UID EXPUNGE, RFC 4315),
// leaving other \Deleted messages alone.
func integrationExpunge(t testing.TB, a integrationAccount, folder string, uid imap.UID) {
	t.Helper()
	c := a.dial(t)
	defer servetest.CloseClient(c)
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatalf("SELECT %q: %v", folder, err)
	}
	if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatalf("UID STORE %d in %q: %v", uid, folder, err)
	}
	if _, err := c.UIDExpunge(imap.UIDSetNum(uid)).Collect(); err != nil {
		t.Fatalf("UID EXPUNGE %d in %q: %v", uid, folder, err)
	}
}

// plainMessage builds a small message.
func plainMessage(messageID, subject, body string) []byte {
	var b strings.Builder
	b.WriteString("From: Test Sender <sender@example.org>\r\nTo: alex@example.com\r\n")
	fmt.Fprintf(&b, "Subject: %s\r\nDate: Tue, 04 Mar 2025 10:11:12 +0100\r\n", subject)
	if messageID != "" {
		fmt.Fprintf(&b, "Message-ID: <%s>\r\n", messageID)
	}
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", body)
	return []byte(b.String())
}

// logCounter is a slog.Handler that counts records by message.
type logCounter struct {
	mu stdsync.Mutex
	n  map[string]int
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCounter) WithGroup(string) slog.Handler            { return h }

func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[r.Message]++
	return nil
}

func (h *logCounter) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[msg]
}
