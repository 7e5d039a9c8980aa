package serve_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
)

const (
	user = servetest.DefaultUser
	pass = servetest.DefaultPassword
	// waitLong bounds every wait for something the server should do soon;
	// tests never assert on how fast it happens.
	waitLong = 20 * time.Second
)

// fixedDate is an internal date with a zone other than UTC and the local one.
var fixedDate = time.Date(2021, 3, 4, 5, 6, 7, 0, time.FixedZone("", 2*3600))

// startServer starts a test server without fsync (durability is tested
// by the restart tests, which do not depend on fsync either).
func startServer(t *testing.T) *servetest.Server {
	t.Helper()
	return servetest.Start(t, servetest.Options{NoSync: true})
}

// dial returns a logged-in client over implicit TLS.
func dial(t *testing.T, srv *servetest.Server) *imapclient.Client {
	t.Helper()
	return srv.DialTLS(t, user, pass)
}

// responseCode returns the response code of an IMAP error, or "".
func responseCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

// wantNo fails unless err is a NO response (with code, if code is not "").
func wantNo(t *testing.T, what string, err error, code imap.ResponseCode) {
	t.Helper()
	_ = wantNoResp(t, what, err, code)
}

// wantNoResp is wantNo returning the response, to look at its text.
func wantNoResp(t *testing.T, what string, err error, code imap.ResponseCode) *imap.Error {
	t.Helper()
	var ie *imap.Error
	if !errors.As(err, &ie) {
		t.Fatalf("%s: got %v, want a NO response", what, err)
	}
	if ie.Type != imap.StatusResponseTypeNo {
		t.Fatalf("%s: got %s %v, want NO", what, ie.Type, err)
	}
	if code != "" && ie.Code != code {
		t.Fatalf("%s: got NO [%s] %q, want NO [%s]", what, ie.Code, ie.Text, code)
	}
	return ie
}

// appendMsg APPENDs raw to mbox and returns the APPENDUID data.
func appendMsg(t testing.TB, c *imapclient.Client, mbox string, raw []byte, flags []imap.Flag, date time.Time) *imap.AppendData {
	t.Helper()
	cmd := c.Append(mbox, int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: date})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatalf("APPEND to %q: write: %v", mbox, err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("APPEND to %q: close: %v", mbox, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %q: %v", mbox, err)
	}
	if data.UID == 0 || data.UIDValidity == 0 {
		t.Fatalf("APPEND to %q: no APPENDUID (%+v)", mbox, data)
	}
	return data
}

// mustSelect selects (or examines) mbox.
func mustSelect(t testing.TB, c *imapclient.Client, mbox string, readOnly bool) *imap.SelectData {
	t.Helper()
	data, err := c.Select(mbox, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		t.Fatalf("SELECT %q (read-only %v): %v", mbox, readOnly, err)
	}
	return data
}

// fetchAll UID FETCHes every message of the selected mailbox with opts
// (UID is always requested) and checks that none was lost.
func fetchAll(t testing.TB, c *imapclient.Client, opts *imap.FetchOptions) []*imapclient.FetchMessageBuffer {
	t.Helper()
	o := *opts
	o.UID = true
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &o).Collect()
	if err != nil {
		t.Fatalf("FETCH 1:*: %v", err)
	}
	if mb := c.Mailbox(); mb != nil && uint32(len(msgs)) != mb.NumMessages {
		t.Fatalf("FETCH 1:* returned %d messages, the mailbox has %d", len(msgs), mb.NumMessages)
	}
	return msgs
}

// fetchUIDs UID FETCHes the given UIDs and returns them by UID, failing
// if any is missing.
func fetchUIDs(t testing.TB, c *imapclient.Client, uids []imap.UID, opts *imap.FetchOptions) map[imap.UID]*imapclient.FetchMessageBuffer {
	t.Helper()
	o := *opts
	o.UID = true
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &o).Collect()
	if err != nil {
		t.Fatalf("UID FETCH %v: %v", uids, err)
	}
	out := map[imap.UID]*imapclient.FetchMessageBuffer{}
	for _, m := range msgs {
		out[m.UID] = m
	}
	for _, u := range uids {
		if out[u] == nil {
			t.Fatalf("UID FETCH: UID %d missing from the reply (%d messages for %d UIDs)", u, len(msgs), len(uids))
		}
	}
	return out
}

// searchUIDs runs UID SEARCH and returns the UIDs found.
func searchUIDs(t testing.TB, c *imapclient.Client, criteria *imap.SearchCriteria) []imap.UID {
	t.Helper()
	data, err := c.UIDSearch(criteria, nil).Wait()
	if err != nil {
		t.Fatalf("UID SEARCH: %v", err)
	}
	return data.AllUIDs()
}

// corpusFlags returns the IMAP flags (system flags and keywords) of m.
func corpusFlags(m testmail.Message) []imap.Flag {
	var out []imap.Flag
	for _, f := range m.Flags {
		out = append(out, imap.Flag(f))
	}
	for _, k := range m.Keywords {
		out = append(out, imap.Flag(k))
	}
	return out
}

// flagSet normalizes a flag list for comparison: lower case, sorted,
// without \Recent.
func flagSet(flags []imap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		out = append(out, strings.ToLower(string(f)))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

// createAll creates mailboxes, accepting ones that already exist.
func createAll(t testing.TB, c *imapclient.Client, names ...string) {
	t.Helper()
	for _, name := range names {
		if name == "INBOX" {
			continue
		}
		if err := c.Create(name, nil).Wait(); err != nil && responseCode(err) != imap.ResponseCodeAlreadyExists {
			t.Fatalf("CREATE %q: %v", name, err)
		}
	}
}

// loaded is a corpus message as appended to the server.
type loaded struct {
	testmail.Message
	Index       int
	UID         imap.UID
	UIDValidity uint32
}

// loadCorpus appends every corpus message to its folder (creating the
// folders) and returns them with their UIDs.
func loadCorpus(t testing.TB, c *imapclient.Client) []loaded {
	t.Helper()
	corpus := testmail.Corpus()
	createAll(t, c, testmail.Folders()...)
	out := make([]loaded, len(corpus))
	for i, m := range corpus {
		data := appendMsg(t, c, m.Folder, m.Raw, corpusFlags(m), m.Date)
		out[i] = loaded{Message: m, Index: i, UID: data.UID, UIDValidity: data.UIDValidity}
	}
	return out
}

// loadCorpusInto appends every corpus message, in order, to the single
// mailbox mbox (created first), so message i gets sequence number i+1.
func loadCorpusInto(t testing.TB, c *imapclient.Client, mbox string) []loaded {
	t.Helper()
	createAll(t, c, mbox)
	corpus := testmail.Corpus()
	out := make([]loaded, len(corpus))
	for i, m := range corpus {
		data := appendMsg(t, c, mbox, m.Raw, corpusFlags(m), m.Date)
		out[i] = loaded{Message: m, Index: i, UID: data.UID, UIDValidity: data.UIDValidity}
	}
	return out
}

// simpleMessage returns a small CRLF message with a unique subject.
func simpleMessage(subject, body string) []byte {
	return []byte("From: Test Sender <sender@example.com>\r\n" +
		"To: alice@example.org\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.com>\r\n" +
		"\r\n" + body + "\r\n")
}

// events records unilateral data received by a client, for tests of
// updates sent to other sessions.
type events struct {
	mu       sync.Mutex
	exists   []uint32
	expunges []uint32
	fetches  []fetchEvent
	changed  chan struct{}
}

type fetchEvent struct {
	Seq   uint32
	UID   imap.UID
	Flags []imap.Flag
}

func newEvents() *events { return &events{changed: make(chan struct{}, 1)} }

// options returns client options whose unilateral data handler records
// into e.
func (e *events) options() *imapclient.Options {
	return &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				e.record(func() { e.exists = append(e.exists, *d.NumMessages) })
			}
		},
		Expunge: func(seq uint32) {
			e.record(func() { e.expunges = append(e.expunges, seq) })
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err != nil {
				return
			}
			e.record(func() { e.fetches = append(e.fetches, fetchEvent{buf.SeqNum, buf.UID, buf.Flags}) })
		},
	}}
}

func (e *events) record(f func()) {
	e.mu.Lock()
	f()
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// snapshot returns copies of what was recorded.
func (e *events) snapshot() (exists, expunges []uint32, fetches []fetchEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.exists), slices.Clone(e.expunges), slices.Clone(e.fetches)
}

// reset forgets what was recorded.
func (e *events) reset() {
	e.mu.Lock()
	e.exists, e.expunges, e.fetches = nil, nil, nil
	e.mu.Unlock()
}

// waitFor waits until cond holds for what was recorded, or fails after
// waitLong.
func (e *events) waitFor(t *testing.T, what string, cond func(exists, expunges []uint32, fetches []fetchEvent) bool) {
	t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	for {
		if cond(e.snapshot()) {
			return
		}
		select {
		case <-e.changed:
		case <-deadline.C:
			ex, exp, f := e.snapshot()
			t.Fatalf("timed out waiting for %s; got EXISTS %v, EXPUNGE %v, FETCH %+v", what, ex, exp, f)
		}
	}
}

// rawClient speaks IMAP line by line, for what imapclient cannot send or
// hides: raw responses, STATUS RECENT, SEARCH RETURN (SAVE), names with
// control characters, untagged BYE.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

// dialRaw connects to addr (with TLS when tlsConf is not nil) and reads
// the greeting.
func dialRaw(t testing.TB, addr string, tlsConf *tls.Config) *rawClient {
	t.Helper()
	var (
		conn net.Conn
		err  error
	)
	d := &net.Dialer{Timeout: 10 * time.Second}
	if tlsConf != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, tlsConf)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	rc := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	greeting, err := rc.readLine()
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	if !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting = %q", greeting)
	}
	return rc
}

// readLine reads one response line, with any literals it contains
// inlined, without the final CRLF.
func (rc *rawClient) readLine() (string, error) {
	_ = rc.conn.SetReadDeadline(time.Now().Add(waitLong))
	var b strings.Builder
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return b.String() + line, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		b.WriteString(line)
		// A line ending in {n} announces a literal of n bytes.
		if strings.HasSuffix(line, "}") {
			if i := strings.LastIndexByte(line, '{'); i >= 0 {
				if n, err := strconv.Atoi(strings.TrimSuffix(line[i+1:len(line)-1], "+")); err == nil {
					lit := make([]byte, n)
					if _, err := io.ReadFull(rc.r, lit); err != nil {
						return b.String(), err
					}
					b.Write(lit)
					continue
				}
			}
		}
		return b.String(), nil
	}
}

// cmd sends one command (without tag and CRLF; it may contain LITERAL+
// literals) and returns the untagged responses and the tagged one.
func (rc *rawClient) cmd(command string) (untagged []string, tagged string) {
	rc.t.Helper()
	rc.tag++
	tag := fmt.Sprintf("R%d", rc.tag)
	_ = rc.conn.SetWriteDeadline(time.Now().Add(waitLong))
	if _, err := io.WriteString(rc.conn, tag+" "+command+"\r\n"); err != nil {
		rc.t.Fatalf("send %q: %v", command, err)
	}
	for {
		line, err := rc.readLine()
		if err != nil {
			rc.t.Fatalf("response to %q: %v (after %q)", command, err, untagged)
		}
		if strings.HasPrefix(line, tag+" ") {
			return untagged, strings.TrimPrefix(line, tag+" ")
		}
		untagged = append(untagged, line)
	}
}

// ok runs cmd and fails unless the tagged response is OK.
func (rc *rawClient) ok(command string) []string {
	rc.t.Helper()
	untagged, tagged := rc.cmd(command)
	if !strings.HasPrefix(tagged, "OK") {
		rc.t.Fatalf("%q: %s", command, tagged)
	}
	return untagged
}

// quote returns s as an IMAP quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// uidList returns the UIDs of loaded messages that satisfy keep.
func uidList(msgs []loaded, keep func(loaded) bool) []imap.UID {
	var out []imap.UID
	for _, m := range msgs {
		if keep(m) {
			out = append(out, m.UID)
		}
	}
	return out
}
