package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
)

var passwordLine = regexp.MustCompile(`(?m)^\s+password\s+\S+$`)

// TestZeroConfig starts 'imapctl serve' with no flags but the ports: it
// makes its data directory under $XDG_DATA_HOME, shows the demo user's
// password once, and that password works; a second start shows none.
func TestZeroConfig(t *testing.T) {
	home := t.TempDir()
	xdg := filepath.Join(home, "xdg-data")
	env := childEnv("HOME="+home, "XDG_DATA_HOME="+xdg)
	ports := []string{"--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"}
	want := filepath.Join(xdg, "imapctl")

	s := startServer(t, env, ports...)
	if s.Data != want {
		t.Errorf("data directory %q, want %q", s.Data, want)
	}
	if s.CertFile != filepath.Join(want, "tls", "cert.pem") {
		t.Errorf("certificate %q, want one in %s/tls", s.CertFile, want)
	}
	for _, f := range []string{"users.json", "tls/cert.pem", "tls/key.pem"} {
		if _, err := os.Stat(filepath.Join(want, f)); err != nil {
			t.Errorf("%s after the first start: %v", f, err)
		}
	}
	if st, err := os.Stat(filepath.Join(want, "tls", "key.pem")); err == nil && st.Mode().Perm()&0o077 != 0 {
		t.Errorf("tls/key.pem has mode %v: readable by others", st.Mode().Perm())
	}
	pass := s.Password
	if pass == "" {
		t.Fatalf("no demo password in the banner:\n%s", s.Output())
	}
	if n := len(passwordLine.FindAllString(s.Output(), -1)); n != 1 {
		t.Errorf("the banner has %d password lines, want 1:\n%s", n, s.Output())
	}
	if !strings.Contains(s.Output(), `user "demo"`) {
		t.Errorf("the banner does not name the demo user:\n%s", s.Output())
	}
	if out := s.Stdout(); out != "" {
		t.Errorf("serve wrote to stdout (the banner belongs on stderr): %q", out)
	}
	if users, err := os.ReadFile(filepath.Join(want, "users.json")); err != nil {
		t.Error(err)
	} else if strings.Contains(string(users), pass) {
		t.Errorf("users.json contains the demo password")
	}

	c := dialTLS(t, s, "demo", pass)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT INBOX as demo: %v", err)
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
	}
	for _, n := range []string{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} {
		if !slices.Contains(names, n) {
			t.Errorf("LIST for demo: no %s in %q", n, names)
		}
	}
	_ = c.Close()
	wrong, err := imapclient.DialTLS(s.TLS, &imapclient.Options{TLSConfig: tlsConfig(t, s.CertFile, "127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Login("demo", pass+"x").Wait(); err == nil {
		t.Errorf("LOGIN with a wrong demo password succeeded")
	}
	_ = wrong.Close()
	s.stop(syscall.SIGINT)

	// Second start on the same directory: no new user, no password shown,
	// the same certificate, and the first password still works.
	cert1, _ := os.ReadFile(s.CertFile)
	s2 := startServer(t, env, ports...)
	if s2.Data != want {
		t.Errorf("second start: data directory %q, want %q", s2.Data, want)
	}
	if s2.Password != "" || passwordLine.MatchString(s2.Output()) || strings.Contains(s2.Output(), pass) {
		t.Errorf("the second start shows a password:\n%s", s2.Output())
	}
	if cert2, _ := os.ReadFile(s2.CertFile); string(cert1) != string(cert2) {
		t.Errorf("the second start made a new certificate")
	}
	c2 := dialTLS(t, s2, "demo", pass)
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT INBOX after restart: %v", err)
	}
	_ = c2.Close()
	s2.stop(syscall.SIGTERM)

	out, _, code := runCLI(t, "", "user", "list", "--data", want, "--json")
	if code != 0 || !strings.Contains(out, `"name": "demo"`) {
		t.Errorf("user list after zero-config start: exit %d\n%s", code, out)
	}
}

// TestZeroConfigHome: without XDG_DATA_HOME the data directory is
// ~/.local/share/imapctl.
func TestZeroConfigHome(t *testing.T) {
	home := t.TempDir()
	env := childEnv("HOME="+home, "XDG_DATA_HOME=")
	s := startServer(t, env, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0")
	if want := filepath.Join(home, ".local", "share", "imapctl"); s.Data != want {
		t.Errorf("data directory %q, want %q", s.Data, want)
	}
	if s.Password == "" {
		t.Errorf("no demo password on the first start:\n%s", s.Output())
	}
	s.stop(syscall.SIGTERM)
}
