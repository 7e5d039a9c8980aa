package probe

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestSTARTTLS(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})

	t.Run("with LOGINDISABLED", func(t *testing.T) {
		addr := startIMAP(t, imapConfig{TLS: serverTLS(cert)})
		r := runProbe(t, e.opts(fmt.Sprintf("imap://mail.test:%d", portOf(t, addr))))
		wantNoProblems(t, r)
		want(t, r, "ports.open", OK)
		want(t, r, "imap.starttls.ok", OK)
		want(t, r, "imap.logindisabled", OK)
		pre := want(t, r, "imap.capability.pre-tls", Info)
		for _, c := range []string{"STARTTLS", "LOGINDISABLED"} {
			if !strings.Contains(pre.Detail, c) {
				t.Errorf("pre-TLS capabilities %q lack %s", pre.Detail, c)
			}
		}
		post := want(t, r, "imap.capability", Info)
		if strings.Contains(post.Detail, "LOGINDISABLED") || !strings.Contains(post.Detail, "AUTH=PLAIN") {
			t.Errorf("capabilities after STARTTLS = %q", post.Detail)
		}
		// The TLS checks run through STARTTLS.
		for _, id := range []string{"tls.handshake.ok", "tls.cert.trusted", "tls.version.tls10.rejected", "tls.version.tls13.accepted", "tls.cipher.weak.rejected"} {
			f := want(t, r, id, OK)
			if !strings.HasPrefix(f.Endpoint, "imap://") {
				t.Errorf("%s endpoint = %q, want imap://", id, f.Endpoint)
			}
		}
		wantNone(t, r, "imap.cleartext-login", "tls.check.incomplete")
	})

	t.Run("without LOGINDISABLED", func(t *testing.T) {
		addr := startIMAP(t, imapConfig{TLS: serverTLS(cert), InsecureAuth: true})
		r := runProbe(t, e.opts(fmt.Sprintf("imap://mail.test:%d", portOf(t, addr))))
		want(t, r, "imap.starttls.ok", OK)
		f := want(t, r, "imap.cleartext-login", Warn)
		if !strings.Contains(f.Detail, "AUTH=PLAIN") {
			t.Errorf("detail %q does not name AUTH=PLAIN", f.Detail)
		}
		wantNone(t, r, "imap.logindisabled")
		if got := ExitCode(r, Warn); got != 1 {
			t.Errorf("ExitCode(warn) = %d, want 1", got)
		}
	})

	t.Run("no STARTTLS at all", func(t *testing.T) {
		port := noSTARTTLSIMAP(t)
		r := runProbe(t, e.opts(fmt.Sprintf("imap://mail.test:%d", port)))
		want(t, r, "imap.starttls.missing", Error)
		want(t, r, "imap.cleartext-login", Error)
		wantNone(t, r, "tls.handshake.ok", "tls.handshake.failed", "tls.version.tls13.accepted")
	})
}

func TestPortFailures(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	// Cases where nothing ever answers wait for a part of the timeout:
	// keep it short. The others must have time to do real work.
	short := func(target string, silent bool) Options {
		o := e.opts(target)
		o.Timeout = 4 * time.Second
		if silent {
			o.Timeout = time.Second
		}
		return o
	}
	tests := []struct {
		name   string
		scheme string
		port   func(t testing.TB) int
		want   string
	}{
		{"refused 993", "imaps", closedPort, "ports.refused"},
		{"refused 143", "imap", closedPort, "ports.refused"},
		{"silent 993", "imaps", silentServer, "ports.silent"},
		{"silent 143", "imap", silentServer, "ports.silent"},
		{"not accepting", "imaps", notAcceptingPort, "ports.timeout"},
		{"reset", "imap", func(t testing.TB) int {
			return rawServer(t, func(c net.Conn) {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				_ = c.Close()
			})
		}, "ports.reset"},
		{"closed", "imap", func(t testing.TB) int {
			return rawServer(t, func(c net.Conn) {
				_, _ = io.Copy(io.Discard, io.LimitReader(c, 0))
				_ = c.(*net.TCPConn).CloseWrite()
				time.Sleep(200 * time.Millisecond)
				_ = c.Close()
			})
		}, "ports.closed"},
		{"plaintext on TLS port", "imaps", func(t testing.TB) int {
			return portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(cert)}))
		}, "ports.plaintext-on-tls-port"},
		{"TLS on plaintext port", "imap", func(t testing.TB) int {
			return portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true}))
		}, "ports.tls-on-plaintext-port"},
		{"not IMAP", "imap", func(t testing.TB) int {
			return rawServer(t, func(c net.Conn) {
				_, _ = io.WriteString(c, "220 smtp.test ESMTP ready\r\n")
				_, _ = bufio.NewReader(c).ReadString('\n')
				_ = c.Close()
			})
		}, "ports.not-imap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := tc.port(t)
			silent := tc.want == "ports.silent" || tc.want == "ports.timeout"
			r := runProbe(t, short(fmt.Sprintf("%s://mail.test:%d", tc.scheme, port), silent))
			want(t, r, tc.want, Error)
			wantNone(t, r, "ports.open", "tls.handshake.ok", "imap.greeting.ok")
			if got := ExitCode(r, Error); got != 1 {
				t.Errorf("ExitCode(error) = %d, want 1", got)
			}
		})
	}
}

func TestHostTargetPorts(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	implicit := portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true}))
	starttls := portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(cert)}))
	closed := closedPort(t)

	t.Run("closed STARTTLS port next to a working implicit port", func(t *testing.T) {
		o := e.opts("mail.test")
		o.ImplicitTLSPorts = []int{implicit}
		o.StartTLSPorts = []int{closed}
		r := runProbe(t, o)
		if r.Kind != "host" {
			t.Errorf("kind = %q, want host", r.Kind)
		}
		f := want(t, r, "ports.refused", Info)
		if f.Endpoint != fmt.Sprintf("imap://mail.test:%d", closed) {
			t.Errorf("refused endpoint = %q", f.Endpoint)
		}
		want(t, r, "ports.open", OK)
		wantNoProblems(t, r)
	})

	t.Run("extra ports are detected", func(t *testing.T) {
		o := e.opts("mail.test")
		o.Ports = []int{implicit, starttls}
		r := runProbe(t, o)
		var modes []string
		for _, ep := range r.Endpoints {
			modes = append(modes, fmt.Sprintf("%d/%s/%s", ep.Port, ep.TLS, ep.Source))
		}
		wantModes := map[string]bool{
			fmt.Sprintf("%d/implicit/port", implicit): true,
			fmt.Sprintf("%d/starttls/port", starttls): true,
		}
		for _, m := range modes {
			delete(wantModes, m)
		}
		if len(wantModes) != 0 {
			t.Errorf("endpoints %v, missing %v", modes, wantModes)
		}
		want(t, r, "imap.starttls.ok", OK)
		wantNoProblems(t, r)
	})

	t.Run("nothing works", func(t *testing.T) {
		o := e.opts("mail.test")
		o.ImplicitTLSPorts = []int{closed}
		o.StartTLSPorts = []int{closed}
		r := runProbe(t, o)
		if fs := find(r, "ports.refused"); len(fs) != 2 || fs[0].Severity != Error || fs[1].Severity != Error {
			t.Errorf("ports.refused findings = %+v, want two errors", fs)
		}
	})
}

func TestIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		_ = ln.Close()
	}
	e := newEnv(t, "mail.test. A 127.0.0.1", "mail.test. AAAA ::1")
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	port := portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true, IPv6: true}))
	o := e.opts("mail.test")
	o.ImplicitTLSPorts = []int{port}
	r := runProbe(t, o)
	opens := find(r, "ports.open")
	if len(opens) != 2 {
		t.Fatalf("ports.open on %d addresses, want 2", len(opens))
	}
	if opens[0].Address != fmt.Sprintf("127.0.0.1:%d", port) || opens[1].Address != fmt.Sprintf("[::1]:%d", port) {
		t.Errorf("addresses %q, %q", opens[0].Address, opens[1].Address)
	}
	wantNone(t, r, "dns.addr.no-ipv6")
	want(t, r, "tls.handshake.ok", OK)
}

func TestIPLiteralTarget(t *testing.T) {
	e := newEnv(t, "1.0.0.127.in-addr.arpa. PTR localhost.test.", "localhost.test. A 127.0.0.1")
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"127.0.0.1"}})
	port := portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true}))
	r := runProbe(t, e.opts(fmt.Sprintf("imaps://127.0.0.1:%d", port)))
	want(t, r, "tls.cert.hostname-ok", OK)
	want(t, r, "dns.ptr.ok", OK)
	wantNone(t, r, "dns.addr.found", "dns.tlsa.none", "tls.sni.same")
	wantNoProblems(t, r)
}

func TestSlowGreeting(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	port := rawServer(t, func(c net.Conn) {
		defer func() { _ = c.Close() }()
		time.Sleep(400 * time.Millisecond) // longer than the sniff wait below
		_, _ = io.WriteString(c, "* OK slow server ready\r\n")
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch strings.ToUpper(cmd) {
			case "CAPABILITY":
				_, _ = io.WriteString(c, "* CAPABILITY IMAP4rev1 LOGINDISABLED\r\n"+tag+" OK done\r\n")
			case "LOGOUT":
				_, _ = io.WriteString(c, "* BYE\r\n"+tag+" OK bye\r\n")
				return
			default:
				_, _ = io.WriteString(c, tag+" BAD what\r\n")
			}
		}
	})
	o := e.opts(fmt.Sprintf("imap://mail.test:%d", port))
	o.Timeout = 2 * time.Second // sniff wait 200 ms
	r := runProbe(t, o)
	want(t, r, "ports.open", OK)
	want(t, r, "imap.greeting.ok", OK)
	want(t, r, "imap.starttls.missing", Error)
	want(t, r, "imap.logindisabled", OK)
}
