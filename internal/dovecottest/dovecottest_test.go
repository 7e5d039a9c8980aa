package dovecottest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func appendMsg(t *testing.T, c *imapclient.Client, mailbox, subject string) imap.UID {
	t.Helper()
	raw := []byte(fmt.Sprintf("From: a@example.com\r\nTo: b@example.com\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n\r\nbody\r\n", subject, strings.ReplaceAll(subject, " ", "-")))
	cmd := c.Append(mailbox, int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %s: %v", mailbox, err)
	}
	return data.UID
}

func TestLoginAppendFetchPlain(t *testing.T) {
	d := Start(t, Options{Users: map[string]string{"alice": "pw-a", "bob": "pw-b"}})
	c, err := imapclient.DialInsecure(d.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Login("alice", "wrong").Wait(); err == nil {
		t.Fatal("LOGIN with a wrong password succeeded")
	}
	if err := c.Login("alice", "pw-a").Wait(); err != nil {
		t.Fatalf("LOGIN: %v\n%s", err, d.Log())
	}
	if err := c.Create("Projects/2024", nil).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	uid := appendMsg(t, c, "INBOX", "hello world")
	appendMsg(t, c, "Projects/2024", "nested")
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("SELECT INBOX: %d messages, want 1", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].UID != uid {
		t.Fatalf("FETCH: %d messages, want UID %d", len(msgs), uid)
	}
	// Dovecot adds \Recent for the first session that sees the message.
	if !hasFlag(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("FETCH FLAGS: %v, want \\Seen", msgs[0].Flags)
	}
	var body []byte
	for _, b := range msgs[0].BodySection {
		body = b.Bytes
	}
	if !bytes.Contains(body, []byte("Subject: hello world")) || int64(len(body)) != msgs[0].RFC822Size {
		t.Fatalf("FETCH BODY[]: %q (RFC822.SIZE %d)", body, msgs[0].RFC822Size)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
		if l.Delim != '/' {
			t.Errorf("LIST %s: delimiter %q, want '/'", l.Mailbox, l.Delim)
		}
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "Projects/2024") || !strings.Contains(got, "INBOX") {
		t.Errorf("LIST: %s", got)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	// The message is an ordinary Maildir file where MailDir says.
	ents, err := os.ReadDir(filepath.Join(d.MailDir("alice"), "cur"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("alice's Maildir cur/: %v, %v", ents, err)
	}
	if _, err := os.Stat(filepath.Join(d.MailDir("alice"), ".Projects.2024", "cur")); err != nil {
		t.Errorf("Maildir++ folder for Projects/2024: %v", err)
	}
}

func TestTLSAndStartTLS(t *testing.T) {
	d := Start(t, Options{SSL: true})
	if d.TLSAddr == "" {
		t.Fatal("no TLS listener")
	}
	opts := &imapclient.Options{TLSConfig: d.ClientTLSConfig()}
	c, err := imapclient.DialTLS(d.TLSAddr, opts)
	if err != nil {
		t.Fatalf("TLS: %v\n%s", err, d.Log())
	}
	if err := c.Login(DefaultUser, DefaultPassword).Wait(); err != nil {
		t.Fatalf("LOGIN over TLS: %v\n%s", err, d.Log())
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	c, err = imapclient.DialStartTLS(d.Addr, opts)
	if err != nil {
		t.Fatalf("STARTTLS: %v\n%s", err, d.Log())
	}
	defer func() { _ = c.Close() }()
	if err := c.Login(DefaultUser, DefaultPassword).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
}

// A Courier-style namespace: "." separator, every folder below INBOX.
func TestCourierNamespace(t *testing.T) {
	d := Start(t, Options{Separator: ".", Prefix: "INBOX."})
	c, err := imapclient.DialInsecure(d.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Login(DefaultUser, DefaultPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("INBOX.Sent", nil).Wait(); err != nil {
		t.Fatalf("CREATE INBOX.Sent: %v", err)
	}
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "INBOX." || ns.Personal[0].Delim != '.' {
		t.Fatalf("NAMESPACE personal: %+v", ns.Personal)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range list {
		if l.Mailbox == "INBOX.Sent" && l.Delim == '.' {
			found = true
		}
	}
	if !found {
		t.Fatalf("LIST: INBOX.Sent missing: %+v", list)
	}
}

// Files written into a Maildir from outside (as root) become visible once
// handed to the mail user, and mail_max_userip_connections is applied.
func TestPreloadedMaildirAndLimits(t *testing.T) {
	d := Start(t, Options{MaxUserIPConnections: 2})
	dir := d.MailDir(DefaultUser)
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	raw := "From: x@example.com\r\nSubject: preloaded\r\n\r\nhi\r\n"
	if err := os.WriteFile(filepath.Join(dir, "cur", "1700000000.M1P1.test,S="+fmt.Sprint(len(raw))+":2,S"), []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Chown(dir); err != nil {
		t.Fatal(err)
	}
	var clients []*imapclient.Client
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := imapclient.DialInsecure(d.Addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		err = c.Login(DefaultUser, DefaultPassword).Wait()
		if i < 2 && err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
		if i == 2 {
			if err == nil {
				t.Fatal("a third connection was accepted with mail_max_userip_connections = 2")
			}
			continue
		}
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatalf("SELECT: %v\n%s", err, d.Log())
		}
		if sel.NumMessages != 1 {
			t.Fatalf("SELECT: %d messages, want the preloaded one", sel.NumMessages)
		}
	}
}

func TestStopIsIdempotentAndCleansUp(t *testing.T) {
	if !Available() {
		t.Skipf("dovecot is not installed: %s", InstallHint)
	}
	d, err := StartProcess(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid := d.PID()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
		t.Errorf("working directory left behind: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		if data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !bytes.Contains(data, []byte(") Z")) {
			t.Errorf("dovecot master %d still running", pid)
		}
	}
}

func TestVersion(t *testing.T) {
	if !Available() {
		t.Skipf("dovecot is not installed: %s", InstallHint)
	}
	v, err := Version()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "2.") {
		t.Errorf("version %q", v)
	}
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}
