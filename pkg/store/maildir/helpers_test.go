package maildir

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapctl/imapctl/pkg/store"
)

// openTestStore opens a store at root and closes it when the test ends.
func openTestStore(t testing.TB, root string, opts Options) *Store {
	t.Helper()
	s, err := Open(root, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	t.Cleanup(func() { checkClose(t, s) })
	return s
}

// checkClose closes c and fails the test if that fails: a test that
// closes a store to open it again relies on it. (Closing twice is fine.)
func checkClose(t testing.TB, c io.Closer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func openBox(t testing.TB, s *Store, name string) *Mailbox {
	t.Helper()
	mb, err := s.OpenMailbox(t.Context(), name)
	if err != nil {
		t.Fatalf("OpenMailbox(%q): %v", name, err)
	}
	t.Cleanup(func() { checkClose(t, mb) })
	return mb
}

// testMsg returns a small message with the given Message-ID (none when "").
func testMsg(id string, body string) []byte {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: test\r\n")
	if id != "" {
		fmt.Fprintf(&b, "Message-ID: <%s>\r\n", id)
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	b.WriteString("\r\n")
	return b.Bytes()
}

var testDate = time.Date(2021, 3, 4, 5, 6, 7, 0, time.FixedZone("+0200", 2*3600))

func appendMsg(t testing.TB, mb *Mailbox, raw []byte, flags ...store.Flag) uint32 {
	t.Helper()
	uid, err := mb.Append(t.Context(), bytes.NewReader(raw), store.AppendOptions{Flags: flags, Date: testDate})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return uint32(uid)
}

// appendIDs appends one message per id and returns their UIDs.
func appendIDs(t testing.TB, mb *Mailbox, prefix string, n int) []uint32 {
	t.Helper()
	uids := make([]uint32, n)
	for i := range uids {
		uids[i] = appendMsg(t, mb, testMsg(fmt.Sprintf("%s-%d@example.com", prefix, i), fmt.Sprintf("body %d", i)))
	}
	return uids
}

func infos(t testing.TB, mb *Mailbox) []store.MessageInfo {
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

// byMessageID maps Message-IDs to the messages carrying them; it fails the
// test when one Message-ID is carried twice.
func byMessageID(t testing.TB, mb *Mailbox) map[string]store.MessageInfo {
	t.Helper()
	out := map[string]store.MessageInfo{}
	for _, mi := range infos(t, mb) {
		if prev, dup := out[mi.MessageID]; dup {
			t.Errorf("Message-ID %s is carried by UIDs %d and %d", mi.MessageID, prev.UID, mi.UID)
		}
		out[mi.MessageID] = mi
	}
	return out
}

func readUID(t testing.TB, mb *Mailbox, uid uint32) []byte {
	t.Helper()
	rc, _, err := mb.OpenMessage(t.Context(), store.UID(uid))
	if err != nil {
		t.Fatalf("OpenMessage(%d): %v", uid, err)
	}
	defer checkClose(t, rc)
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func curFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// curFileOf returns the name in cur/ of the message with the given UID.
func curFileOf(t testing.TB, mb *Mailbox, uid uint32) string {
	t.Helper()
	msgs := mb.Lookup([]uint32{uid})
	if len(msgs) != 1 {
		t.Fatalf("UID %d not found", uid)
	}
	return filepath.Base(msgs[0].Path())
}

// writeDelivery writes a message file the way an MDA does (tmp/, then a
// rename into sub) and returns its path.
func writeDelivery(t testing.TB, dir, sub, name string, raw []byte, mtime time.Time) string {
	t.Helper()
	tmp := filepath.Join(dir, "tmp", name)
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	final := filepath.Join(dir, sub, name)
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	return final
}

// logBuffer collects a logger's output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logBuffer) has(level, substr string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, "level="+level) && strings.Contains(line, substr) {
			return true
		}
	}
	return false
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func crc32c(p []byte) uint32 { return crc32.Checksum(p, crcTable) }
