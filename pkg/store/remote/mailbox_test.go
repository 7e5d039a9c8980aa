package remote

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

// onlyReader hides everything but Read, so that the size is unknown.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestAppendUnknownSize(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	st := dialTest(t, srv, nil)
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	for _, n := range []int{10 << 10, 3 << 20} {
		m := testmail.BigAttachment(int64(n), n)
		uid, err := mb.Append(t.Context(), onlyReader{bytes.NewReader(m.Raw)}, store.AppendOptions{Flags: []store.Flag{"$Big"}})
		if err != nil {
			t.Fatalf("Append of %d bytes: %v", len(m.Raw), err)
		}
		if got := readAll(t, mb, uid); !bytes.Equal(got, m.Raw) {
			t.Errorf("UID %d: read back %d bytes, want %d", uid, len(got), len(m.Raw))
		}
		// From a file: the size comes from Stat, nothing is spooled.
		f := filepath.Join(t.TempDir(), "msg")
		if err := os.WriteFile(f, m.Raw, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		uid, err = mb.Append(t.Context(), fh, store.AppendOptions{})
		_ = fh.Close() // read only
		if err != nil {
			t.Fatalf("Append from a file: %v", err)
		}
		if got := readAll(t, mb, uid); !bytes.Equal(got, m.Raw) {
			t.Errorf("UID %d (from a file) differs", uid)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "imapctl-append-*")); len(left) > 0 {
		t.Errorf("spool files left behind: %v", left)
	}
}

func TestAppendSourceFails(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	st := dialTest(t, srv, nil)
	defer func() { _ = st.Close() }()
	mb := openBox(t, st, "INBOX")
	m := testmail.BigAttachment(1, 50<<10)
	// Shorter than announced.
	_, err := mb.AppendSize(t.Context(), onlyReader{bytes.NewReader(m.Raw[:1000])}, int64(len(m.Raw)), store.AppendOptions{})
	if err == nil || !strings.Contains(err.Error(), "ended before") {
		t.Errorf("AppendSize of a short reader: %v", err)
	}
	// A failing reader: its error comes back, and nothing is stored.
	boom := errors.New("disk on fire")
	_, err = mb.AppendSize(t.Context(), io.MultiReader(bytes.NewReader(m.Raw[:9000]), iotest.ErrReader(boom)), int64(len(m.Raw)), store.AppendOptions{})
	if !errors.Is(err, boom) {
		t.Errorf("AppendSize of a failing reader: %v, want %v", err, boom)
	}
	var ue *AppendUncertainError
	if errors.As(err, &ue) {
		t.Errorf("a source failure is reported as uncertain: %v", err)
	}
	// Invalid keywords are refused before anything is sent.
	_, err = mb.Append(t.Context(), bytes.NewReader(m.Raw), store.AppendOptions{Flags: []store.Flag{"two words"}})
	if !errors.Is(err, ErrInvalidFlag) {
		t.Errorf("Append with an invalid keyword: %v", err)
	}
	if n := len(listAll(t, mb)); n != 0 {
		t.Errorf("%d messages stored by failed appends", n)
	}
	// The mailbox still works.
	uid, err := mb.Append(t.Context(), bytes.NewReader(m.Raw), store.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, mb, uid); !bytes.Equal(got, m.Raw) {
		t.Errorf("message differs")
	}
}

// TestMessagesConcurrentExpunge: messages expunged by another client
// between the UID SEARCH and their FETCH are skipped.
func TestMessagesConcurrentExpunge(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	infos := populate(t, srv, testmail.Generate(testmail.Options{Seed: 4, Count: 30, MaxAttachment: 1024}))
	st := dialTest(t, srv, nil)
	defer func() { _ = st.Close() }()
	st.batch = 5
	mb := openBox(t, st, "INBOX")
	other := openBox(t, st, "INBOX")
	var got []store.UID
	err := mb.Messages(t.Context(), 1, func(mi store.MessageInfo) error {
		got = append(got, mi.UID)
		if len(got) == 3 {
			// Gone before the second round of FETCH commands.
			doomed := []store.UID{infos[25].UID, infos[27].UID}
			if err := other.Expunge(t.Context(), doomed); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	if len(got) != len(infos)-2 {
		t.Errorf("%d messages listed, want %d", len(got), len(infos)-2)
	}
	for _, u := range got {
		if u == infos[25].UID || u == infos[27].UID {
			t.Errorf("expunged UID %d listed", u)
		}
	}
}

// TestLoggerRedacts: the debug log shows the protocol without secrets.
func TestLoggerRedacts(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	for _, auth := range []string{"plain", "login"} {
		var buf syncBuffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		st := dialTest(t, srv, func(c *Config) {
			c.URL = "imaps://alice@" + srv.TLSAddr + "?auth=" + auth
			c.Logger = log
		})
		roundTrip(t, st)
		_ = st.Close()
		out := buf.String()
		if strings.Contains(out, servetest.DefaultPassword) && !strings.Contains(out, "user=alice") {
			t.Errorf("auth=%s: the log contains the password:\n%s", auth, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, `"`+servetest.DefaultPassword+`"`) || strings.Contains(line, " "+servetest.DefaultPassword) {
				t.Errorf("auth=%s: password in %q", auth, line)
			}
		}
		if !strings.Contains(out, "[redacted]") || !strings.Contains(out, "SELECT INBOX") {
			t.Errorf("auth=%s: the log lacks the protocol lines:\n%s", auth, out)
		}
		if strings.Contains(out, "Return-Path") {
			t.Errorf("auth=%s: the log contains message data", auth)
		}
	}
}
