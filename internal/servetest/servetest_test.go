package servetest_test

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/internal/servetest"
)

func TestDialModes(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	for _, mode := range []servetest.Mode{servetest.ImplicitTLS, servetest.StartTLS, servetest.Plain} {
		t.Run(mode.String(), func(t *testing.T) {
			c := srv.Dial(t, mode, servetest.DefaultUser, servetest.DefaultPassword, nil)
			// imapclient updates its state just after Wait returns: let
			// one more command complete first.
			if err := c.Noop().Wait(); err != nil {
				t.Fatal(err)
			}
			if c.State() != imap.ConnStateAuthenticated {
				t.Fatalf("state after login = %v, want authenticated", c.State())
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatalf("SELECT INBOX: %v", err)
			}
		})
	}
}

func TestUsersAndMaildir(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{
		NoSync: true,
		Users:  map[string]string{"bob": "secret-1", "carol": "secret-2"},
	})
	srv.DialTLS(t, "bob", "secret-1")
	srv.DialTLS(t, "carol", "secret-2")
	for _, u := range []string{"bob", "carol"} {
		if st, err := os.Stat(filepath.Join(srv.MaildirPath(u), "cur")); err != nil || !st.IsDir() {
			t.Errorf("Maildir of %s: %v", u, err)
		}
	}
	c, err := srv.Connect(t, servetest.ImplicitTLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Login(servetest.DefaultUser, servetest.DefaultPassword).Wait()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("login as a user that was not provisioned: %v, want NO [AUTHENTICATIONFAILED]", err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	c := srv.DialTLS(t, servetest.DefaultUser, servetest.DefaultPassword)
	if err := c.Create("Kept", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	oldAddr, oldDir := srv.TLSAddr, srv.DataDir
	srv.Restart(t)
	if srv.DataDir != oldDir {
		t.Fatalf("DataDir changed from %s to %s", oldDir, srv.DataDir)
	}
	if srv.TLSAddr == "" || srv.Addr == "" {
		t.Fatalf("no addresses after restart")
	}
	t.Logf("TLS address %s -> %s", oldAddr, srv.TLSAddr)
	c = srv.DialStartTLS(t, servetest.DefaultUser, servetest.DefaultPassword)
	if _, err := c.Status("Kept", &imap.StatusOptions{NumMessages: true}).Wait(); err != nil {
		t.Fatalf("STATUS Kept after restart: %v", err)
	}
}

func TestReuseDataDir(t *testing.T) {
	dir := t.TempDir()
	first := servetest.Start(t, servetest.Options{NoSync: true, DataDir: dir})
	c := first.DialPlain(t, servetest.DefaultUser, servetest.DefaultPassword)
	if err := c.Create("FromFirst", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	servetest.CloseClient(c)
	if err := first.Shutdown(); err != nil {
		t.Fatal(err)
	}
	second := servetest.Start(t, servetest.Options{NoSync: true, DataDir: dir})
	c = second.DialTLS(t, servetest.DefaultUser, servetest.DefaultPassword)
	if _, err := c.Select("FromFirst", nil).Wait(); err != nil {
		t.Fatalf("SELECT FromFirst on the second server: %v", err)
	}
}

// TestCertificateIsVerified checks that clients really verify the server's
// certificate: for both names it is valid for, and not for another name or
// without the server's root.
func TestCertificateIsVerified(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	for _, tc := range []struct {
		name string
		conf *tls.Config
		ok   bool
	}{
		{"127.0.0.1", &tls.Config{RootCAs: srv.RootCAs, ServerName: "127.0.0.1"}, true},
		{"localhost", &tls.Config{RootCAs: srv.RootCAs, ServerName: "localhost"}, true},
		{"other name", &tls.Config{RootCAs: srv.RootCAs, ServerName: "mail.example.com"}, false},
		{"system roots", &tls.Config{ServerName: "127.0.0.1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []servetest.Mode{servetest.ImplicitTLS, servetest.StartTLS} {
				c, err := srv.Connect(t, mode, &imapclient.Options{TLSConfig: tc.conf})
				if tc.ok && err != nil {
					t.Errorf("%v: %v", mode, err)
				}
				if !tc.ok && err == nil {
					t.Errorf("%v: connected without a valid certificate", mode)
					servetest.CloseClient(c)
				}
			}
		})
	}
}
