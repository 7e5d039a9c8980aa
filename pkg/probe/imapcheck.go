package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// checkIMAP holds one IMAP conversation with the endpoint: greeting,
// CAPABILITY before and after TLS, STARTTLS, ID and LOGOUT. It never logs
// in: whether cleartext login would be accepted is inferred from the
// capabilities (LOGINDISABLED, RFC 9051 §6.2.3 and §7.2.2).
func (p *prober) checkIMAP(ctx context.Context, ep *endpoint, mode tlsMode, ap netip.AddrPort) {
	epURL := ep.url(mode)
	addr := ap.String()
	add := func(f Finding) { p.add(f.with(epURL, addr)) }

	conn, _, stop, err := p.dial(ctx, ap)
	if err != nil {
		add(finding("imap.greeting.failed", Error, "could not connect for the IMAP conversation").detail("%v", err))
		return
	}
	defer stop()
	_ = conn.SetDeadline(deadline(ctx, p.respWait))
	if mode == modeImplicit {
		tc := tls.Client(conn, p.tlsConfig(ep.host))
		if err := tc.HandshakeContext(ctx); err != nil {
			add(finding("imap.not-run", Skipped, "IMAP not examined: the TLS handshake failed (see tls.handshake.failed)").detail("%v", err))
			return
		}
		conn = tc
	}
	ic := newIMAPConn(conn)

	// Greeting (RFC 9051 §7.1).
	start := time.Now()
	line, err := ic.readLine()
	took := time.Since(start)
	if err != nil {
		switch {
		case isTimeout(err):
			add(finding("imap.greeting.timeout", Error, "the server sent no IMAP greeting").detail("%v", err).took(took))
		case errors.Is(err, io.EOF):
			add(finding("imap.greeting.failed", Error, "the server closed the connection before greeting").took(took))
		default:
			add(finding("imap.greeting.failed", Error, "reading the IMAP greeting failed").detail("%v", err).took(took))
		}
		return
	}
	status, text, ok := parseGreeting(line)
	greet := oneLine(line, 200)
	switch {
	case !ok:
		add(finding("imap.greeting.invalid", Error, "the server's first line is not an IMAP greeting").detail("%q", greet).took(took))
		return
	case status == "BYE":
		add(finding("imap.greeting.bye", Error, "the server refuses the connection (BYE greeting)").detail("%s", greet).took(took))
		return
	case status == "PREAUTH":
		sev := Warn
		why := "the connection is authenticated without credentials"
		if mode != modeImplicit {
			sev = Error
			why += ", in cleartext, so STARTTLS is impossible"
		}
		add(finding("imap.greeting.preauth", sev, "the server greets with PREAUTH: "+why).detail("%s", greet).took(took))
	default:
		add(finding("imap.greeting.ok", OK, "the server greets with OK").detail("%s", greet).took(took))
	}
	caps := capsFromCode(text)

	_ = conn.SetDeadline(deadline(ctx, p.respWait))
	resp, err := ic.command("a", "CAPABILITY")
	if err != nil || resp.status != "OK" {
		add(finding("imap.capability.failed", Error, "the CAPABILITY command failed").detail("%s", cmdProblem(resp, err)))
		return
	}
	if c := capsFromResponse(resp); c != nil {
		caps = c
	}

	if mode == modeSTARTTLS && status == "OK" {
		add(finding("imap.capability.pre-tls", Info, "capabilities before STARTTLS").detail("%s", strings.Join(caps, " ")))
		loginDisabled := hasCap(caps, "LOGINDISABLED")
		mechs := authMechs(caps)
		if !hasCap(caps, "STARTTLS") {
			add(finding("imap.starttls.missing", Error, "STARTTLS is not advertised: this port offers no encryption"))
			ep.update(func(r *epResult) { r.tlsProblem = "STARTTLS is not advertised" })
			if !loginDisabled {
				add(finding("imap.cleartext-login", Error, "passwords can only be sent in cleartext: no STARTTLS and no LOGINDISABLED").
					detail("%s", loginMechsText(true, mechs)))
			} else {
				add(finding("imap.logindisabled", OK, "LOGINDISABLED: the server refuses cleartext login"))
			}
			p.logout(ctx, ic)
			return
		}
		if loginDisabled {
			add(finding("imap.logindisabled", OK, "LOGINDISABLED before TLS: the server refuses cleartext login"))
		} else {
			add(finding("imap.cleartext-login", Warn, "login is allowed before STARTTLS: clients may send passwords in cleartext").
				detail("no LOGINDISABLED before TLS; %s (RFC 9051 §6.2.3, RFC 8314 §4)", loginMechsText(true, mechs)))
		}
		resp, err = ic.command("b", "STARTTLS")
		if err != nil || resp.status != "OK" {
			add(finding("imap.starttls.failed", Error, "the server advertises STARTTLS but the command failed").detail("%s", cmdProblem(resp, err)))
			ep.update(func(r *epResult) { r.tlsProblem = "STARTTLS command failed" })
			return
		}
		if ic.br.Buffered() > 0 {
			add(finding("imap.starttls.failed", Error, "the server sent data after the STARTTLS response (possible command injection)"))
			ep.update(func(r *epResult) { r.tlsProblem = "STARTTLS is unsafe" })
			return
		}
		tc := tls.Client(conn, p.tlsConfig(ep.host))
		if err := tc.HandshakeContext(ctx); err != nil {
			add(finding("imap.starttls.failed", Error, "the TLS handshake after STARTTLS failed").detail("%v", err))
			ep.update(func(r *epResult) { r.tlsProblem = "TLS handshake after STARTTLS failed" })
			return
		}
		add(finding("imap.starttls.ok", OK, "STARTTLS is advertised and works"))
		ep.update(func(r *epResult) { r.starttlsOK = true })
		conn = tc
		ic = newIMAPConn(conn)
		// RFC 9051 §6.2.1: capabilities must be asked again after TLS.
		_ = conn.SetDeadline(deadline(ctx, p.respWait))
		resp, err = ic.command("e", "CAPABILITY")
		if err != nil || resp.status != "OK" {
			add(finding("imap.capability.failed", Error, "the CAPABILITY command after STARTTLS failed").detail("%s", cmdProblem(resp, err)))
			return
		}
		caps = capsFromResponse(resp)
	}

	if mode == modeImplicit || status == "OK" {
		add(finding("imap.capability", Info, "capabilities over TLS").detail("%s", strings.Join(caps, " ")))
	} else {
		add(finding("imap.capability", Info, "capabilities (cleartext, PREAUTH)").detail("%s", strings.Join(caps, " ")))
	}
	if !hasCap(caps, "IMAP4REV1") && !hasCap(caps, "IMAP4REV2") {
		add(finding("imap.capability.invalid", Warn, "neither IMAP4rev1 nor IMAP4rev2 is advertised").detail("%s", strings.Join(caps, " ")))
	}
	if status == "OK" {
		mechs := authMechs(caps)
		if hasCap(caps, "LOGINDISABLED") && len(mechs) == 0 {
			add(finding("imap.auth.unavailable", Warn, "no way to log in over TLS: LOGINDISABLED and no AUTH= mechanism"))
		} else {
			add(finding("imap.auth.mechanisms", Info, "login methods over TLS: "+loginMechsText(!hasCap(caps, "LOGINDISABLED"), mechs)))
		}
	}

	// ID (RFC 2971), only when advertised.
	if hasCap(caps, "ID") {
		_ = conn.SetDeadline(deadline(ctx, p.respWait))
		resp, err = ic.command("c", "ID NIL")
		if err != nil || resp.status != "OK" {
			add(finding("imap.id.failed", Info, "the server advertises ID but the command failed").detail("%s", cmdProblem(resp, err)))
		} else {
			add(idFinding(resp))
		}
	} else {
		add(finding("imap.id.unsupported", Info, "the server does not support the ID command (RFC 2971)"))
	}
	p.logout(ctx, ic)
}

func (p *prober) logout(ctx context.Context, ic *imapConn) {
	_ = ic.conn.SetDeadline(deadline(ctx, p.respWait))
	_, _ = ic.command("d", "LOGOUT")
}

func loginMechsText(loginCmd bool, mechs []string) string {
	var parts []string
	if loginCmd {
		parts = append(parts, "LOGIN command")
	}
	for _, m := range mechs {
		parts = append(parts, "AUTH="+m)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func cmdProblem(resp *imapResponse, err error) string {
	if err != nil {
		return err.Error()
	}
	return oneLine(resp.status+" "+resp.text, 200)
}

func idFinding(resp *imapResponse) Finding {
	for _, u := range resp.untagged {
		rest, ok := strings.CutPrefix(u, "ID ")
		if !ok {
			continue
		}
		pairs, err := parseID(rest)
		if err != nil {
			return finding("imap.id.failed", Info, "the ID response could not be parsed").detail("%v", err)
		}
		if len(pairs) == 0 {
			return finding("imap.id", Info, "the server answers ID without identifying itself")
		}
		var parts []string
		for _, kv := range pairs {
			parts = append(parts, fmt.Sprintf("%s=%s", kv[0], kv[1]))
		}
		return finding("imap.id", Info, "the server identifies itself").detail("%s", oneLine(strings.Join(parts, " "), 300))
	}
	return finding("imap.id", Info, "the server answers ID without identifying itself")
}
