package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
)

// portResult is the outcome of connecting to one address of an endpoint.
type portResult struct {
	addr       netip.AddrPort
	usable     bool    // TLS and IMAP checks can run on this address
	mode       tlsMode // detected mode (for extra ports)
	wrongProto string
	finding    Finding
}

// checkPort connects to one address of an endpoint and finds out whether it
// speaks what it should: a TLS handshake on implicit-TLS ports, an IMAP
// greeting in plaintext on STARTTLS ports, either on extra ports.
func (p *prober) checkPort(ctx context.Context, ep *endpoint, ap netip.AddrPort) portResult {
	res := portResult{addr: ap, mode: ep.mode}
	epURL := ep.url(ep.mode)
	if ctx.Err() != nil {
		res.finding = finding("ports.connect-failed", Skipped, "connect not attempted: the probe's timeout was reached").
			with(epURL, ap.String()).notRun()
		return res
	}
	conn, elapsed, stop, err := p.dial(ctx, ap)
	if err != nil {
		res.finding = dialFailure(err).with(epURL, ap.String()).took(elapsed)
		return res
	}
	defer stop()

	open := func(mode tlsMode, what string) portResult {
		res.usable, res.mode = true, mode
		res.finding = finding("ports.open", OK, fmt.Sprintf("port %d on %s accepts connections and %s", ap.Port(), ap.Addr(), what)).
			with(ep.url(mode), ap.String()).took(elapsed)
		return res
	}
	fail := func(f Finding) portResult {
		res.finding = f.with(epURL, ap.String()).took(elapsed)
		return res
	}

	if ep.mode == modeImplicit {
		tconn := tls.Client(conn, p.tlsConfig(ep.host))
		_ = conn.SetDeadline(deadline(ctx, p.respWait))
		err := tconn.HandshakeContext(ctx)
		switch {
		case err == nil:
			return open(modeImplicit, "speaks TLS")
		case plaintextIMAP(err) != "":
			res.wrongProto = "the port speaks plaintext IMAP, not TLS"
			return fail(finding("ports.plaintext-on-tls-port", Error,
				fmt.Sprintf("port %d speaks plaintext IMAP where implicit TLS is expected", ap.Port())).
				detail("got %q instead of a TLS handshake; clients configured for SSL/TLS will fail", plaintextIMAP(err)))
		case isTimeout(err):
			res.wrongProto = "the port never answered the TLS handshake"
			return fail(finding("ports.silent", Error, fmt.Sprintf("port %d accepts connections but never answers the TLS handshake", ap.Port())).
				detail("%v", err))
		case errors.Is(err, syscall.ECONNRESET):
			res.wrongProto = "the connection was reset"
			return fail(finding("ports.reset", Error, fmt.Sprintf("port %d resets the connection during the TLS handshake", ap.Port())).detail("%v", err))
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			res.wrongProto = "the connection was closed"
			return fail(finding("ports.closed", Error, fmt.Sprintf("port %d closes the connection without completing a TLS handshake", ap.Port())).detail("%v", err))
		}
		// A TLS alert or another handshake problem: the port does speak
		// TLS; the TLS checks report what is wrong with it.
		return open(modeImplicit, "answers in TLS")
	}

	// STARTTLS or unknown: a plaintext IMAP server greets first.
	_ = conn.SetReadDeadline(deadline(ctx, p.sniffWait))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if n > 0 {
		got := buf[:n]
		if line, _, _ := bytes.Cut(got, []byte("\n")); looksLikeGreeting(line) {
			return open(modeSTARTTLS, "greets in plaintext IMAP")
		}
		res.wrongProto = "the port does not speak IMAP"
		return fail(finding("ports.not-imap", Error, fmt.Sprintf("port %d answers with something that is not an IMAP greeting", ap.Port())).
			detail("got %q", oneLine(string(got), 80)))
	}
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		res.wrongProto = "the connection was reset"
		return fail(finding("ports.reset", Error, fmt.Sprintf("port %d accepts and then resets the connection", ap.Port())).detail("%v", err))
	case errors.Is(err, io.EOF):
		res.wrongProto = "the connection was closed"
		return fail(finding("ports.closed", Error, fmt.Sprintf("port %d accepts and then closes the connection without a greeting", ap.Port())))
	case err != nil && !isTimeout(err):
		res.wrongProto = err.Error()
		return fail(finding("ports.connect-failed", Error, fmt.Sprintf("reading from port %d failed", ap.Port())).detail("%v", err))
	}
	if ctx.Err() != nil {
		res.wrongProto = "no greeting before the probe's timeout"
		return fail(finding("ports.silent", Error, fmt.Sprintf("port %d accepts connections but sent nothing before the timeout", ap.Port())))
	}

	// Silent: maybe it waits for a TLS ClientHello.
	_ = conn.SetDeadline(deadline(ctx, p.respWait))
	tconn := tls.Client(conn, p.tlsConfig(ep.host))
	herr := tconn.HandshakeContext(ctx)
	if herr == nil {
		if ep.mode == modeUnknown {
			return open(modeImplicit, "speaks TLS")
		}
		res.wrongProto = "the port speaks implicit TLS, not plaintext IMAP with STARTTLS"
		return fail(finding("ports.tls-on-plaintext-port", Error,
			fmt.Sprintf("port %d speaks implicit TLS where plaintext IMAP with STARTTLS is expected", ap.Port())).
			detail("clients configured for STARTTLS will fail; configure them for SSL/TLS on this port"))
	}
	if plaintextIMAP(herr) != "" {
		// A slow greeting arrived while we tried TLS.
		return open(modeSTARTTLS, "greets in plaintext IMAP")
	}
	res.wrongProto = "the port sent nothing"
	return fail(finding("ports.silent", Error, fmt.Sprintf("port %d accepts connections but sends no greeting and does not speak TLS", ap.Port())).
		detail("waited %v for a greeting, then tried TLS: %v", p.sniffWait, herr))
}

// dialFailure classifies a failed TCP connect.
func dialFailure(err error) Finding {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return finding("ports.refused", Error, "connection refused: nothing listens on this port").detail("%v", err)
	case errors.Is(err, syscall.ECONNRESET):
		return finding("ports.reset", Error, "connection reset while connecting").detail("%v", err)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EHOSTDOWN):
		return finding("ports.unreachable", Error, "host unreachable (an ICMP error came back)").detail("%v", err)
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EAFNOSUPPORT):
		return finding("ports.unreachable", Skipped, "network unreachable from this machine (no route, e.g. no IPv6)").detail("%v", err).notRun()
	case errors.Is(err, context.Canceled):
		return finding("ports.connect-failed", Skipped, "connect interrupted").detail("%v", err).notRun()
	case isTimeout(err):
		return finding("ports.timeout", Error, "connect timed out: the port is filtered or the server does not accept connections").detail("%v", err)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" && opErr.Source == nil && opErr.Addr == nil {
		// Refused by our own dial control (never contacted).
		return finding("ports.connect-failed", Skipped, "connect not attempted").detail("%v", err).notRun()
	}
	return finding("ports.connect-failed", Error, "connect failed").detail("%v", err)
}

// plaintextIMAP returns the plaintext that came back instead of a TLS
// record, if err says so and it looks like IMAP.
func plaintextIMAP(err error) string {
	var rhe tls.RecordHeaderError
	if !errors.As(err, &rhe) {
		return ""
	}
	hdr := rhe.RecordHeader[:]
	if !bytes.HasPrefix(hdr, []byte("* ")) {
		return ""
	}
	// Only the five bytes of the would-be record header are known.
	return string(hdr) + "…"
}

func looksLikeGreeting(line []byte) bool {
	for _, p := range []string{"* OK", "* PREAUTH", "* BYE"} {
		if len(line) >= len(p) && bytes.EqualFold(line[:len(p)], []byte(p)) {
			return true
		}
	}
	return false
}
