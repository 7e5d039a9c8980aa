package serve_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/imapctl/imapctl/internal/servetest"
)

// TestLoginPolicy checks who may authenticate on which kind of connection.
func TestLoginPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts servetest.Options
		mode servetest.Mode
		// wantRefused: LOGINDISABLED is advertised and LOGIN gets NO
		// [PRIVACYREQUIRED].
		wantRefused bool
	}{
		{"implicit TLS", servetest.Options{LoopbackIsRemote: true}, servetest.ImplicitTLS, false},
		{"STARTTLS", servetest.Options{LoopbackIsRemote: true}, servetest.StartTLS, false},
		{"plaintext remote", servetest.Options{LoopbackIsRemote: true}, servetest.Plain, true},
		{"plaintext remote with InsecureAuth", servetest.Options{LoopbackIsRemote: true, InsecureAuth: true}, servetest.Plain, false},
		{"plaintext loopback", servetest.Options{}, servetest.Plain, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.NoSync = true
			srv := servetest.Start(t, tc.opts)
			c, err := srv.Connect(t, tc.mode, nil)
			if err != nil {
				t.Fatal(err)
			}
			caps, err := c.Capability().Wait()
			if err != nil {
				t.Fatalf("CAPABILITY: %v", err)
			}
			if got := caps.Has(imap.CapLoginDisabled); got != tc.wantRefused {
				t.Errorf("LOGINDISABLED advertised = %v, want %v (caps %v)", got, tc.wantRefused, caps)
			}
			if got := caps.Has(imap.AuthCap(sasl.Plain)); got == tc.wantRefused {
				t.Errorf("AUTH=PLAIN advertised = %v, want %v (caps %v)", got, !tc.wantRefused, caps)
			}
			err = c.Login(user, pass).Wait()
			if tc.wantRefused {
				wantNo(t, "LOGIN without TLS", err, imap.ResponseCodePrivacyRequired)
				if c.State() != imap.ConnStateNotAuthenticated {
					t.Fatalf("state after refused LOGIN = %v", c.State())
				}
				return
			}
			if err != nil {
				t.Fatalf("LOGIN: %v", err)
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatalf("SELECT INBOX after login: %v", err)
			}
		})
	}
}

// TestPlainAuthenticateRefusedWithoutTLS checks that AUTHENTICATE is
// refused like LOGIN on a plaintext connection from a remote address, and
// that STARTTLS on the same connection then allows it.
func TestPlainAuthenticateRefusedWithoutTLS(t *testing.T) {
	t.Parallel()
	srv := servetest.Start(t, servetest.Options{NoSync: true, LoopbackIsRemote: true})
	rc := dialRaw(t, srv.Addr, nil)
	_, tagged := rc.cmd("AUTHENTICATE PLAIN " + plainIR(user, pass))
	if !strings.HasPrefix(tagged, "NO [PRIVACYREQUIRED]") {
		t.Fatalf("AUTHENTICATE PLAIN without TLS: %q, want NO [PRIVACYREQUIRED]", tagged)
	}
	_, tagged = rc.cmd("LOGIN " + quote(user) + " " + quote(pass))
	if !strings.HasPrefix(tagged, "NO [PRIVACYREQUIRED]") {
		t.Fatalf("LOGIN without TLS: %q, want NO [PRIVACYREQUIRED]", tagged)
	}
	// STARTTLS on the same connection, verified against the server's
	// certificate, then LOGIN works.
	rc.ok("STARTTLS")
	tc := tls.Client(rc.conn, srv.TLSConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake after STARTTLS: %v", err)
	}
	rc.conn, rc.r = tc, bufio.NewReader(tc)
	caps := strings.Join(rc.ok("CAPABILITY"), " ")
	if strings.Contains(caps, "LOGINDISABLED") || !strings.Contains(caps, "AUTH=PLAIN") || strings.Contains(caps, "STARTTLS") {
		t.Errorf("capabilities after STARTTLS: %q", caps)
	}
	rc.ok("AUTHENTICATE PLAIN " + plainIR(user, pass))
	rc.ok("SELECT INBOX")
}

// plainIR is the SASL PLAIN initial response for user and pass.
func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, tc := range []struct{ name, user, pass string }{
		{"wrong password", user, "not-the-password"},
		{"unknown user", "mallory", pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := srv.Connect(t, servetest.ImplicitTLS, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantNo(t, "LOGIN", c.Login(tc.user, tc.pass).Wait(), imap.ResponseCodeAuthenticationFailed)
			if c.State() != imap.ConnStateNotAuthenticated {
				t.Fatalf("state after failed LOGIN = %v", c.State())
			}
			// The same connection may still log in with the right password.
			if err := c.Login(user, pass).Wait(); err != nil {
				t.Fatalf("LOGIN after a failure: %v", err)
			}
		})
	}
	t.Run("three failures", func(t *testing.T) {
		rc := dialRaw(t, srv.TLSAddr, srv.TLSConfig())
		for i := range 3 {
			_, tagged := rc.cmd("LOGIN " + quote(user) + " " + quote(fmt.Sprintf("wrong-%d", i)))
			if !strings.HasPrefix(tagged, "NO [AUTHENTICATIONFAILED]") {
				t.Fatalf("LOGIN %d: %q", i+1, tagged)
			}
		}
		// The server says BYE and closes the connection.
		var lines []string
		for {
			line, err := rc.readLine()
			if line != "" {
				lines = append(lines, line)
			}
			if err != nil {
				break
			}
		}
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "* BYE") {
			t.Errorf("after 3 failed logins: %q, want * BYE and the connection closed", lines)
		}
	})
	t.Run("AUTHENTICATE PLAIN", func(t *testing.T) {
		c, err := srv.Connect(t, servetest.ImplicitTLS, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Authenticate(sasl.NewPlainClient("", user, "wrong"))
		wantNo(t, "AUTHENTICATE PLAIN", err, imap.ResponseCodeAuthenticationFailed)
	})
}

// TestCapabilities checks what is advertised before and after login.
func TestCapabilities(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c, err := srv.Connect(t, servetest.ImplicitTLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapIMAP4rev2, imap.CapSASLIR, imap.AuthCap(sasl.Plain)} {
		if !before.Has(want) {
			t.Errorf("before login over TLS: %s missing from %v", want, before)
		}
	}
	for _, unwanted := range []imap.Cap{imap.CapLoginDisabled, imap.CapStartTLS} {
		if before.Has(unwanted) {
			t.Errorf("before login over TLS: %s advertised", unwanted)
		}
	}
	// SASL-IR: AUTHENTICATE PLAIN with an initial response.
	if err := c.Authenticate(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	after, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{
		imap.CapIdle, imap.CapUIDPlus, imap.CapMove, imap.CapSpecialUse, imap.CapNamespace,
		imap.CapUnselect, imap.CapLiteralPlus, imap.CapEnable, imap.CapStatusSize, imap.CapChildren,
		imap.CapListStatus, imap.CapIMAP4rev2,
	} {
		if !after.Has(want) {
			t.Errorf("after login: %s missing from %v", want, after)
		}
	}
	if limit, ok := after.AppendLimit(); !ok || limit == nil || *limit == 0 {
		t.Errorf("after login: no APPENDLIMIT=n in %v", after)
	}
	for _, unwanted := range []imap.Cap{imap.AuthCap(sasl.Plain), imap.CapLoginDisabled} {
		if after.Has(unwanted) {
			t.Errorf("after login: %s still advertised", unwanted)
		}
	}

	// STARTTLS is offered on the plain port only.
	plain, err := srv.Connect(t, servetest.Plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	caps, err := plain.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(imap.CapStartTLS) {
		t.Errorf("plain port: STARTTLS missing from %v", caps)
	}
}

// TestProtocolVersions runs the same session with an IMAP4rev1 client and
// with one that enables IMAP4rev2.
func TestProtocolVersions(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, rev2 := range []bool{false, true} {
		name := "IMAP4rev1"
		if rev2 {
			name = "IMAP4rev2"
		}
		t.Run(name, func(t *testing.T) {
			c := dial(t, srv)
			if rev2 {
				data, err := c.Enable(imap.CapIMAP4rev2).Wait()
				if err != nil {
					t.Fatalf("ENABLE IMAP4rev2: %v", err)
				}
				if !data.Caps.Has(imap.CapIMAP4rev2) {
					t.Fatalf("ENABLE IMAP4rev2: enabled %v", data.Caps)
				}
			}
			box := "Box " + name
			createAll(t, c, box)
			raw := simpleMessage("hello "+name, "budget line")
			app := appendMsg(t, c, box, raw, []imap.Flag{imap.FlagFlagged}, fixedDate)
			sel := mustSelect(t, c, box, false)
			if sel.NumMessages != 1 || sel.UIDValidity != app.UIDValidity {
				t.Fatalf("SELECT: %+v, want 1 message, UIDVALIDITY %d", sel, app.UIDValidity)
			}
			msgs := fetchAll(t, c, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
			if len(msgs) != 1 || string(msgs[0].BodySection[0].Bytes) != string(raw) || !hasFlag(msgs[0].Flags, imap.FlagFlagged) {
				t.Fatalf("FETCH: %+v", msgs)
			}
			if got := searchUIDs(t, c, &imap.SearchCriteria{Body: []string{"budget"}}); len(got) != 1 || got[0] != app.UID {
				t.Fatalf("UID SEARCH BODY budget = %v, want [%d]", got, app.UID)
			}
			st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
			if err != nil || st.NumMessages == nil {
				t.Fatalf("STATUS INBOX: %+v, %v", st, err)
			}
			if err := c.Unselect().Wait(); err != nil {
				t.Fatalf("UNSELECT: %v", err)
			}
			if err := c.Logout().Wait(); err != nil {
				t.Fatalf("LOGOUT: %v", err)
			}
		})
	}
}
