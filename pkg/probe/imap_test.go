package probe

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// scriptedIMAP is a hand-written IMAP server for behaviour the real server
// does not have (ID, PREAUTH, BYE, odd capabilities). It speaks implicit TLS
// when cfg is set. respond returns the lines to send for a command (tagged
// lines use the {TAG} placeholder); the STARTTLS command upgrades the
// connection when starttls is set.
func scriptedIMAP(t *testing.T, cfg *tls.Config, starttls *tls.Config, greeting string, respond func(cmd string, secure bool) []string) int {
	t.Helper()
	return rawServer(t, func(c net.Conn) {
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if cfg != nil {
			tc := tls.Server(c, cfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			c = tc
		}
		if greeting == "" {
			_, _ = io.Copy(io.Discard, c)
			return
		}
		_, _ = io.WriteString(c, greeting+"\r\n")
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, cmd, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			if strings.EqualFold(cmd, "STARTTLS") && starttls != nil {
				_, _ = io.WriteString(c, tag+" OK begin TLS\r\n")
				tc := tls.Server(c, starttls)
				if err := tc.Handshake(); err != nil {
					return
				}
				c = tc
				br = bufio.NewReader(c)
				continue
			}
			var out []string
			if strings.EqualFold(cmd, "LOGOUT") {
				out = []string{"* BYE bye", "{TAG} OK done"}
			} else {
				_, secure := c.(*tls.Conn)
				out = respond(cmd, secure)
			}
			for _, l := range out {
				_, _ = io.WriteString(c, strings.ReplaceAll(l, "{TAG}", tag)+"\r\n")
			}
			if strings.EqualFold(cmd, "LOGOUT") {
				return
			}
		}
	})
}

func TestIMAPConversation(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	cfg := serverTLS(cert)
	caps := func(c string) func(string, bool) []string {
		return func(cmd string, _ bool) []string {
			switch strings.ToUpper(cmd) {
			case "CAPABILITY":
				return []string{"* CAPABILITY " + c, "{TAG} OK done"}
			case "ID NIL":
				return []string{`* ID ("name" "Dove\"cot" "version" {3}`, `2.3 "vendor" NIL)`, "{TAG} OK ID done"}
			}
			return []string{"{TAG} BAD unknown command"}
		}
	}
	run := func(t *testing.T, port int, scheme string) *Report {
		return runProbe(t, e.opts(fmt.Sprintf("%s://mail.test:%d", scheme, port)))
	}

	t.Run("ID with a literal", func(t *testing.T) {
		port := scriptedIMAP(t, cfg, nil, "* OK ready", caps("IMAP4rev1 ID AUTH=PLAIN AUTH=XOAUTH2"))
		r := run(t, port, "imaps")
		f := want(t, r, "imap.id", Info)
		if f.Detail != `name=Dove"cot version=2.3 vendor=` {
			t.Errorf("ID detail %q", f.Detail)
		}
		m := want(t, r, "imap.auth.mechanisms", Info)
		if !strings.Contains(m.Title, "AUTH=XOAUTH2") {
			t.Errorf("mechanisms %q", m.Title)
		}
	})
	t.Run("PREAUTH", func(t *testing.T) {
		port := scriptedIMAP(t, cfg, nil, "* PREAUTH welcome back", caps("IMAP4rev1"))
		r := run(t, port, "imaps")
		want(t, r, "imap.greeting.preauth", Warn)
	})
	t.Run("BYE", func(t *testing.T) {
		port := scriptedIMAP(t, cfg, nil, "* BYE too many connections", caps("IMAP4rev1"))
		r := run(t, port, "imaps")
		want(t, r, "imap.greeting.bye", Error)
	})
	t.Run("not a greeting", func(t *testing.T) {
		port := scriptedIMAP(t, cfg, nil, "+OK POP3 server ready", caps("IMAP4rev1"))
		r := run(t, port, "imaps")
		want(t, r, "imap.greeting.invalid", Error)
	})
	t.Run("no greeting after TLS", func(t *testing.T) {
		port := scriptedIMAP(t, cfg, nil, "", nil)
		o := e.opts(fmt.Sprintf("imaps://mail.test:%d", port))
		o.Timeout = 2 * time.Second // the greeting wait is half of it
		r := runProbe(t, o)
		want(t, r, "imap.greeting.timeout", Error)
		want(t, r, "ports.open", OK)
	})
	t.Run("no way to log in", func(t *testing.T) {
		port := scriptedIMAP(t, cfg, nil, "* OK ready", caps("IMAP4rev1 LOGINDISABLED"))
		r := run(t, port, "imaps")
		want(t, r, "imap.auth.unavailable", Warn)
	})
	t.Run("not IMAP4rev1", func(t *testing.T) {
		port := scriptedIMAP(t, cfg, nil, "* OK ready", caps("AUTH=PLAIN"))
		r := run(t, port, "imaps")
		want(t, r, "imap.capability.invalid", Warn)
	})
	t.Run("CAPABILITY fails", func(t *testing.T) {
		port := scriptedIMAP(t, cfg, nil, "* OK ready", func(string, bool) []string { return []string{"{TAG} BAD no"} })
		r := run(t, port, "imaps")
		want(t, r, "imap.capability.failed", Error)
	})
	t.Run("STARTTLS refused", func(t *testing.T) {
		port := scriptedIMAP(t, nil, nil, "* OK ready", func(cmd string, _ bool) []string {
			switch strings.ToUpper(cmd) {
			case "CAPABILITY":
				return []string{"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED", "{TAG} OK done"}
			case "STARTTLS":
				return []string{"{TAG} NO TLS is broken today"}
			}
			return []string{"{TAG} BAD unknown"}
		})
		r := run(t, port, "imap")
		f := want(t, r, "imap.starttls.failed", Error)
		if !strings.Contains(f.Detail, "TLS is broken today") {
			t.Errorf("detail %q", f.Detail)
		}
		wantNone(t, r, "tls.handshake.ok", "tls.handshake.failed", "tls.version.tls13.accepted")
	})
	t.Run("STARTTLS with scripted TLS upgrade", func(t *testing.T) {
		after := caps("IMAP4rev1 AUTH=PLAIN ID")
		port := scriptedIMAP(t, nil, cfg, "* OK ready", func(cmd string, secure bool) []string {
			if !secure && strings.EqualFold(cmd, "CAPABILITY") {
				return []string{"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED", "{TAG} OK done"}
			}
			return after(cmd, secure)
		})
		r := run(t, port, "imap")
		want(t, r, "imap.logindisabled", OK)
		want(t, r, "imap.starttls.ok", OK)
		want(t, r, "imap.id", Info)
		want(t, r, "tls.handshake.ok", OK)
	})
}

func TestIMAPWire(t *testing.T) {
	t.Run("readLine with literals", func(t *testing.T) {
		in := "* ID (\"name\" {5}\r\nab\"cd \"x\" {0}\r\n)\r\na OK\r\n"
		c1, c2 := net.Pipe()
		go func() { _, _ = io.WriteString(c2, in); _ = c2.Close() }()
		ic := newIMAPConn(c1)
		line, err := ic.readLine()
		if err != nil {
			t.Fatal(err)
		}
		if line != `* ID ("name" "ab\"cd" "x" "")` {
			t.Errorf("line %q", line)
		}
		pairs, err := parseID(strings.TrimPrefix(line, "* ID "))
		if err != nil || len(pairs) != 2 || pairs[0] != [2]string{"name", `ab"cd`} || pairs[1] != [2]string{"x", ""} {
			t.Errorf("parseID = %v, %v", pairs, err)
		}
		if l, _ := ic.readLine(); l != "a OK" {
			t.Errorf("next line %q", l)
		}
	})
	t.Run("line too long", func(t *testing.T) {
		c1, c2 := net.Pipe()
		go func() {
			_, _ = io.WriteString(c2, "* "+strings.Repeat("x", maxIMAPLine+10)+"\r\n")
			_ = c2.Close()
		}()
		if _, err := newIMAPConn(c1).readLine(); err == nil {
			t.Error("no error for an overlong line")
		}
		_ = c1.Close()
	})
	for _, tc := range []struct {
		in   string
		n    int
		isLi bool
	}{{"x {12}", 12, true}, {"x {12+}", 12, true}, {"x {}", 0, false}, {"x {a}", 0, false}, {"x", 0, false}} {
		n, ok := literalSize(tc.in)
		if n != tc.n || ok != tc.isLi {
			t.Errorf("literalSize(%q) = %d, %v", tc.in, n, ok)
		}
	}
	for in, want := range map[string]string{
		"[CAPABILITY IMAP4rev1 STARTTLS] hi": "IMAP4rev1 STARTTLS",
		"[capability IMAP4rev2] hi":          "IMAP4rev2",
		"[ALERT] hi":                         "",
		"hello":                              "",
	} {
		if got := strings.Join(capsFromCode(in), " "); got != want {
			t.Errorf("capsFromCode(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := parseID(`("a")`); err == nil {
		t.Error("odd ID list accepted")
	}
	if _, err := parseID(`("a" "b`); err == nil {
		t.Error("unterminated ID list accepted")
	}
	if p, err := parseID("nil"); err != nil || p != nil {
		t.Errorf("parseID(nil) = %v, %v", p, err)
	}
}
