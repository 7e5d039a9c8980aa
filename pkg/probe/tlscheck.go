package probe

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// tlsConfig is the base client configuration of every handshake: verification
// is done separately (so that an invalid certificate can still be examined)
// and all versions and cipher suites Go implements are offered, so that a
// server with only weak suites can still be examined.
func (p *prober) tlsConfig(host string) *tls.Config {
	cfg := &tls.Config{
		InsecureSkipVerify: true, // verified by checkTrust and checkHostname
		MinVersion:         tls.VersionTLS10,
		MaxVersion:         tls.VersionTLS13,
	}
	for _, s := range tls.CipherSuites() {
		cfg.CipherSuites = append(cfg.CipherSuites, s.ID)
	}
	for _, s := range tls.InsecureCipherSuites() {
		cfg.CipherSuites = append(cfg.CipherSuites, s.ID)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		cfg.ServerName = host
	}
	return cfg
}

// stageError is a failure before the TLS handshake (connect, greeting,
// STARTTLS), as opposed to a failed handshake.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// tlsConn connects to ap and performs a TLS handshake with cfg, after the
// STARTTLS exchange in STARTTLS mode. The caller must call stop.
func (p *prober) tlsConn(ctx context.Context, mode tlsMode, ap netip.AddrPort, cfg *tls.Config) (tc *tls.Conn, hs time.Duration, stop func(), err error) {
	conn, _, stop, err := p.dial(ctx, ap)
	if err != nil {
		return nil, 0, stop, &stageError{"connect", err}
	}
	if mode == modeSTARTTLS {
		if err := p.startTLSExchange(ctx, conn); err != nil {
			return nil, 0, stop, err
		}
	}
	_ = conn.SetDeadline(deadline(ctx, p.respWait))
	tc = tls.Client(conn, cfg)
	start := time.Now()
	err = tc.HandshakeContext(ctx)
	hs = time.Since(start)
	_ = conn.SetDeadline(ctxDeadline(ctx))
	return tc, hs, stop, err
}

// startTLSExchange reads the greeting and sends STARTTLS (RFC 9051 §6.2.1).
func (p *prober) startTLSExchange(ctx context.Context, conn net.Conn) error {
	_ = conn.SetDeadline(deadline(ctx, p.respWait))
	ic := newIMAPConn(conn)
	line, err := ic.readLine()
	if err != nil {
		return &stageError{"greeting", err}
	}
	if status, _, ok := parseGreeting(line); !ok || status != "OK" {
		return &stageError{"greeting", fmt.Errorf("unexpected greeting %q", oneLine(line, 80))}
	}
	resp, err := ic.command("a", "STARTTLS")
	if err != nil {
		return &stageError{"STARTTLS", err}
	}
	if resp.status != "OK" {
		return &stageError{"STARTTLS", fmt.Errorf("server answered %s %s", resp.status, oneLine(resp.text, 80))}
	}
	if ic.br.Buffered() > 0 {
		return &stageError{"STARTTLS", errors.New("server sent data after the STARTTLS response (possible command injection)")}
	}
	return nil
}

// handshakeOutcome classifies the result of a handshake attempt.
type handshakeOutcome int

const (
	hsAccepted handshakeOutcome = iota
	hsRejected
	hsIncomplete // could not tell (connect failed, timed out, STARTTLS failed)
)

func classifyHandshake(err error) handshakeOutcome {
	var se *stageError
	switch {
	case err == nil:
		return hsAccepted
	case errors.As(err, &se), isTimeout(err), errors.Is(err, context.Canceled):
		return hsIncomplete
	}
	return hsRejected
}

// checkTLS runs the TLS checks of one endpoint on one address.
func (p *prober) checkTLS(ctx context.Context, ep *endpoint, mode tlsMode, ap netip.AddrPort) {
	epURL := ep.url(mode)
	addr := ap.String()
	tc, hs, stop, err := p.tlsConn(ctx, mode, ap, p.tlsConfig(ep.host))
	var state tls.ConnectionState
	if err == nil {
		state = tc.ConnectionState()
	}
	stop()
	if err != nil {
		var se *stageError
		if errors.As(err, &se) {
			// No handshake was attempted: the ports or IMAP checks report
			// the cause (e.g. STARTTLS missing); compare TLSA anyway.
			ep.update(func(r *epResult) { r.tlsProblem = err.Error() })
			p.add(p.checkTLSAFor(ctx, ep, nil, false)...)
			return
		}
		ep.update(func(r *epResult) { r.tlsProblem = "TLS handshake failed: " + err.Error() })
		p.add(finding("tls.handshake.failed", Error, "TLS handshake failed").with(epURL, addr).detail("%v", err).took(hs))
		p.add(p.checkTLSAFor(ctx, ep, nil, false)...)
		return
	}
	chain := state.PeerCertificates
	p.add(finding("tls.handshake.ok", OK, fmt.Sprintf("TLS handshake completed: %s, %s", tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))).
		with(epURL, addr).took(hs))
	if isInsecureSuite(state.CipherSuite) {
		p.add(finding("tls.cipher.negotiated-weak", Warn, "the server chose a weak cipher suite although stronger ones were offered").
			with(epURL, addr).detail("%s", tls.CipherSuiteName(state.CipherSuite)))
	}

	certFs, problems, pkixOK := analyzeCertificates(chain, ep.host, p.roots, p.now())
	for i := range certFs {
		certFs[i] = certFs[i].with(epURL, addr)
	}
	p.add(certFs...)
	p.add(ocspFinding(state).with(epURL, addr))
	ep.update(func(r *epResult) { r.handshake, r.certProblem = true, problems })

	var wg sync.WaitGroup
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		wg.Go(func() {
			cfg := p.tlsConfig(ep.host)
			cfg.MinVersion, cfg.MaxVersion = v, v
			_, _, stop, err := p.tlsConn(ctx, mode, ap, cfg)
			stop()
			p.add(versionFinding(v, err).with(epURL, addr))
		})
	}
	wg.Go(func() { p.add(p.cipherCheck(ctx, mode, ap, ep.host, true).with(epURL, addr)) })
	wg.Go(func() { p.add(p.cipherCheck(ctx, mode, ap, ep.host, false).with(epURL, addr)) })
	if ep.host != ap.Addr().String() && !isIPLiteral(ep.host) {
		wg.Go(func() {
			cfg := p.tlsConfig(ep.host)
			cfg.ServerName = ""
			tc, _, stop, err := p.tlsConn(ctx, mode, ap, cfg)
			var noSNI []*x509.Certificate
			if err == nil {
				noSNI = tc.ConnectionState().PeerCertificates
			}
			stop()
			p.add(sniFinding(chain, noSNI, err, ep.host).with(epURL, addr))
		})
	}
	wg.Go(func() { p.add(p.checkTLSAFor(ctx, ep, chain, pkixOK)...) })
	wg.Wait()
	p.add(
		finding("tls.version.ssl3.not-tested", Skipped, "SSL 2.0 and 3.0 not tested: Go's TLS stack does not implement them").with(epURL, addr),
		finding("tls.cipher.other.not-tested", Skipped, "export, NULL, anonymous, DES, CAMELLIA, ARIA and other exotic suites not tested: Go's TLS stack does not implement them").
			with(epURL, addr),
	)
}

func isIPLiteral(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// versionFinding describes whether one protocol version was accepted.
func versionFinding(v uint16, err error) Finding {
	name := tls.VersionName(v)
	short := map[uint16]string{tls.VersionTLS10: "tls10", tls.VersionTLS11: "tls11", tls.VersionTLS12: "tls12", tls.VersionTLS13: "tls13"}[v]
	out := classifyHandshake(err)
	if out == hsIncomplete {
		return finding("tls.check.incomplete", Skipped, fmt.Sprintf("could not test %s", name)).detail("%v", err).notRun()
	}
	accepted := out == hsAccepted
	id := "tls.version." + short + ".rejected"
	if accepted {
		id = "tls.version." + short + ".accepted"
	}
	switch v {
	case tls.VersionTLS10, tls.VersionTLS11:
		if accepted {
			return finding(id, Warn, fmt.Sprintf("%s is accepted: it is deprecated (RFC 8996) and should be disabled", name))
		}
		return finding(id, OK, fmt.Sprintf("%s is not accepted", name))
	case tls.VersionTLS12:
		if accepted {
			return finding(id, OK, "TLS 1.2 is accepted")
		}
		return finding(id, Info, "TLS 1.2 is not accepted: clients without TLS 1.3 cannot connect").detail("%v", err)
	default:
		if accepted {
			return finding(id, OK, "TLS 1.3 is accepted")
		}
		return finding(id, Info, "TLS 1.3 is not accepted (recommended by RFC 8996 and RFC 9325)").detail("%v", err)
	}
}

// brokenSuite reports whether a suite uses RC4 or 3DES.
func brokenSuite(name string) bool {
	return strings.Contains(name, "RC4") || strings.Contains(name, "3DES")
}

func isInsecureSuite(id uint16) bool {
	for _, s := range tls.InsecureCipherSuites() {
		if s.ID == id {
			return true
		}
	}
	return false
}

// cipherCheck offers only the insecure suites Go still implements: the
// broken ones (RC4, 3DES) or the weak ones (RSA key exchange without
// forward secrecy, CBC with SHA-256), and reports whether one was accepted.
func (p *prober) cipherCheck(ctx context.Context, mode tlsMode, ap netip.AddrPort, host string, broken bool) Finding {
	cfg := p.tlsConfig(host)
	cfg.MaxVersion = tls.VersionTLS12 // TLS 1.3 suites are not configurable and all strong
	cfg.CipherSuites = nil
	var names []string
	for _, s := range tls.InsecureCipherSuites() {
		if brokenSuite(s.Name) == broken {
			cfg.CipherSuites = append(cfg.CipherSuites, s.ID)
			names = append(names, s.Name)
		}
	}
	tc, _, stop, err := p.tlsConn(ctx, mode, ap, cfg)
	var suite uint16
	if err == nil {
		suite = tc.ConnectionState().CipherSuite
	}
	stop()
	out := classifyHandshake(err)
	kind := "weak"
	what := "weak cipher suites (RSA key exchange without forward secrecy, CBC-SHA256)"
	if broken {
		kind, what = "broken", "broken cipher suites (RC4, 3DES)"
	}
	switch out {
	case hsIncomplete:
		return finding("tls.check.incomplete", Skipped, "could not test "+what).detail("%v", err).notRun()
	case hsAccepted:
		sev := Warn
		if broken {
			sev = Error
		}
		return finding("tls.cipher."+kind+".accepted", sev, fmt.Sprintf("the server accepts %s", what)).
			detail("offered only %s; the server chose %s", strings.Join(names, ", "), tls.CipherSuiteName(suite))
	}
	return finding("tls.cipher."+kind+".rejected", OK, fmt.Sprintf("%s are not accepted", upperFirst(what)))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// checkTLSAFor looks up _PORT._tcp.HOST TLSA records and compares them
// with the chain (nil when there was no handshake).
func (p *prober) checkTLSAFor(ctx context.Context, ep *endpoint, chain []*x509.Certificate, pkixOK bool) []Finding {
	if isIPLiteral(ep.host) {
		return nil
	}
	name := "_" + strconv.Itoa(ep.port) + "._tcp." + ep.host
	msg, err := p.res.query(ctx, name, dns.TypeTLSA)
	if f, failed := dnsFailure(name, dns.TypeTLSA, msg, err); failed {
		return []Finding{f}
	}
	return checkTLSA(name, msg, chain, pkixOK)
}

// analyzeCertificates runs the certificate checks on a chain as sent by the
// server. It returns the findings (without endpoint), the problems a client
// would hit (for autoconfig comparison) and whether the chain verified.
func analyzeCertificates(chain []*x509.Certificate, host string, roots *x509.CertPool, now time.Time) (fs []Finding, problems []string, pkixOK bool) {
	if len(chain) == 0 {
		return []Finding{finding("tls.cert.untrusted", Error, "the server sent no certificate")}, []string{"no certificate"}, false
	}
	leaf := chain[0]
	for _, f := range []Finding{checkDates(leaf, now), checkHostname(leaf, host)} {
		fs = append(fs, f)
		if f.Severity == Error {
			problems = append(problems, f.Title)
		}
	}
	trust, ok := checkTrust(chain, roots, now)
	pkixOK = ok
	fs = append(fs, trust)
	if trust.Severity == Error {
		problems = append(problems, trust.Title)
	}
	fs = append(fs, checkChain(chain, roots, now)...)
	fs = append(fs, checkKey(leaf)...)
	return fs, problems, pkixOK
}

// checkDates checks the validity period of the leaf certificate.
func checkDates(leaf *x509.Certificate, now time.Time) Finding {
	const soon = 21
	date := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
	switch {
	case now.Before(leaf.NotBefore):
		return finding("tls.cert.not-yet-valid", Error, fmt.Sprintf("the certificate is not valid before %s", date(leaf.NotBefore)))
	case now.After(leaf.NotAfter):
		days := int(math.Floor(now.Sub(leaf.NotAfter).Hours() / 24))
		return finding("tls.cert.expired", Error, fmt.Sprintf("the certificate expired %d day(s) ago, on %s", days, date(leaf.NotAfter)))
	}
	days := int(math.Floor(leaf.NotAfter.Sub(now).Hours() / 24))
	if days < soon {
		return finding("tls.cert.expires-soon", Warn, fmt.Sprintf("the certificate expires in %d day(s), on %s", days, date(leaf.NotAfter))).
			detail("renew it: warnings start %d days before expiry", soon)
	}
	return finding("tls.cert.dates-ok", OK, fmt.Sprintf("the certificate is valid for %d more days, until %s", days, date(leaf.NotAfter)))
}

// checkHostname checks that the leaf certificate covers host (SANs,
// including wildcards; the Common Name is not used).
func checkHostname(leaf *x509.Certificate, host string) Finding {
	names := certNames(leaf)
	if err := leaf.VerifyHostname(host); err != nil {
		return finding("tls.cert.hostname-mismatch", Error, fmt.Sprintf("the certificate is not valid for %s", host)).
			detail("it covers: %s", strings.Join(names, ", "))
	}
	match := host
	if !isIPLiteral(host) {
		for _, n := range leaf.DNSNames {
			if strings.EqualFold(n, host) {
				match = n
				break
			}
			if strings.HasPrefix(n, "*.") {
				if _, rest, ok := strings.Cut(host, "."); ok && strings.EqualFold(rest, n[2:]) {
					match = n
				}
			}
		}
	}
	return finding("tls.cert.hostname-ok", OK, fmt.Sprintf("the certificate is valid for %s (SAN %s)", host, match))
}

func certNames(c *x509.Certificate) []string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return []string{"no subject alternative names (CN " + c.Subject.CommonName + " is not used by clients)"}
	}
	return names
}

// isSelfSigned reports whether c is signed by its own key.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// checkTrust verifies the chain as sent against the roots. An expired leaf
// is judged on trust alone (checkDates reports the expiry).
func checkTrust(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) (Finding, bool) {
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	chains, err := leaf.Verify(opts)
	var cie x509.CertificateInvalidError
	if err != nil && errors.As(err, &cie) && cie.Reason == x509.Expired && cie.Cert == leaf {
		// Judge trust at a moment when the leaf was valid; checkDates
		// reports the dates.
		at := leaf.NotAfter.Add(-time.Minute)
		if now.Before(leaf.NotBefore) {
			at = leaf.NotBefore.Add(time.Minute)
		}
		opts.CurrentTime = at
		if chains, err = leaf.Verify(opts); err == nil {
			return finding("tls.cert.trusted", OK, "the certificate chains to a trusted root (apart from its validity dates)").
				detail("%s", describeChain(chains[0])), false
		}
	}
	if err == nil {
		f := finding("tls.cert.trusted", OK, "the certificate chains to a trusted root").detail("%s", describeChain(chains[0]))
		if isSelfSigned(leaf) {
			f.Title = "the self-signed certificate is explicitly trusted (--ca)"
		}
		return f, true
	}
	if isSelfSigned(leaf) {
		return finding("tls.cert.self-signed", Error, "the certificate is self-signed: clients will reject it").
			detail("subject %s; trust it explicitly with --ca if this is intended", leaf.Subject.String()), false
	}
	var uae x509.UnknownAuthorityError
	if errors.As(err, &uae) {
		return finding("tls.cert.untrusted", Error, "the certificate does not chain to a trusted root").
			detail("issuer %s is unknown: %v", leaf.Issuer.String(), err), false
	}
	return finding("tls.cert.untrusted", Error, "the certificate chain does not verify").detail("%v", err), false
}

func describeChain(chain []*x509.Certificate) string {
	var parts []string
	for _, c := range chain {
		parts = append(parts, certLabel(c))
	}
	return strings.Join(parts, " ← ")
}

func certLabel(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// checkChain examines the chain as sent: order, a root included, and an
// intermediate missing.
func checkChain(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) []Finding {
	var fs []Finding
	sent := describeChain(chain)
	// Follow issuers within what was sent, starting from the leaf.
	top := chain[0]
	used := map[int]bool{0: true}
	ordered := true
	for !isSelfSigned(top) {
		next := -1
		for i, c := range chain {
			if !used[i] && bytes.Equal(top.RawIssuer, c.RawSubject) && top.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		if next != len(used) {
			ordered = false
		}
		used[next] = true
		top = chain[next]
	}
	if !ordered || len(used) != len(chain) {
		fs = append(fs, finding("tls.chain.unordered", Warn, "the certificates are sent out of order or include unrelated ones").
			detail("sent: %s", sent))
	}
	if len(chain) > 1 && isSelfSigned(chain[len(chain)-1]) {
		fs = append(fs, finding("tls.chain.root-included", Info, "the server also sends the root certificate (unnecessary)").
			detail("sent: %s", sent))
	}
	if !isSelfSigned(top) && !issuedByRoot(top, roots, now) {
		fs = append(fs, finding("tls.chain.missing-intermediate", Error,
			fmt.Sprintf("the chain is incomplete: the issuer of %q was not sent and is not a trusted root", certLabel(top))).
			detail("sent: %s; missing: %s (send the intermediate certificate(s) along with the leaf)", sent, top.Issuer.String()))
		return fs
	}
	if len(fs) == 0 {
		fs = append(fs, finding("tls.chain.ok", OK, fmt.Sprintf("the server sends a complete chain of %d certificate(s)", len(chain))).
			detail("sent: %s", sent))
	}
	return fs
}

// issuedByRoot reports whether c's issuer is among the roots, ignoring
// validity dates and key usage.
func issuedByRoot(c *x509.Certificate, roots *x509.CertPool, now time.Time) bool {
	at := now
	if at.After(c.NotAfter) || at.Before(c.NotBefore) {
		at = c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
	}
	_, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	var uae x509.UnknownAuthorityError
	return !errors.As(err, &uae)
}

// checkKey checks the leaf's key type, size and signature algorithm.
func checkKey(leaf *x509.Certificate) []Finding {
	var desc string
	weak := false
	switch k := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		desc = fmt.Sprintf("RSA %d bits", bits)
		weak = bits < 2048
	case *ecdsa.PublicKey:
		bits := k.Curve.Params().BitSize
		desc = fmt.Sprintf("ECDSA %s", k.Curve.Params().Name)
		weak = bits < 256
	case ed25519.PublicKey:
		desc = "Ed25519"
	default:
		desc = fmt.Sprintf("%v", leaf.PublicKeyAlgorithm)
		weak = true
	}
	var fs []Finding
	if weak {
		fs = append(fs, finding("tls.cert.key-weak", Error, fmt.Sprintf("the certificate's key is too weak: %s", desc)).
			detail("use RSA of at least 2048 bits or ECDSA P-256 or better"))
	} else {
		fs = append(fs, finding("tls.cert.key-ok", OK, fmt.Sprintf("the certificate's key is %s, signed with %s", desc, leaf.SignatureAlgorithm)))
	}
	switch leaf.SignatureAlgorithm {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		fs = append(fs, finding("tls.cert.signature-weak", Error, fmt.Sprintf("the certificate is signed with %s, which clients reject", leaf.SignatureAlgorithm)))
	}
	return fs
}

func ocspFinding(state tls.ConnectionState) Finding {
	if len(state.OCSPResponse) > 0 {
		return finding("tls.ocsp.stapled", OK, "the server staples an OCSP response").detail("%d bytes", len(state.OCSPResponse))
	}
	return finding("tls.ocsp.not-stapled", Info, "no OCSP response is stapled")
}

// sniFinding compares the certificate served with and without SNI.
func sniFinding(withSNI, noSNI []*x509.Certificate, err error, host string) Finding {
	if err != nil {
		if classifyHandshake(err) == hsIncomplete {
			return finding("tls.check.incomplete", Skipped, "could not test a handshake without SNI").detail("%v", err).notRun()
		}
		return finding("tls.sni.required", Info, "the handshake fails without SNI: very old clients cannot connect").detail("%v", err)
	}
	if len(noSNI) > 0 && len(withSNI) > 0 && bytes.Equal(noSNI[0].Raw, withSNI[0].Raw) {
		return finding("tls.sni.same", OK, "the same certificate is served with and without SNI")
	}
	f := finding("tls.sni.different", Info, "without SNI the server presents a different certificate")
	if len(noSNI) > 0 {
		covers := "covers " + host
		if noSNI[0].VerifyHostname(host) != nil {
			covers = "does not cover " + host + ": clients without SNI get a name mismatch"
		}
		f = f.detail("without SNI: %s (%s); it %s", certLabel(noSNI[0]), strings.Join(certNames(noSNI[0]), ", "), covers)
	}
	return f
}

// problemsText joins client-visible problems for messages.
func problemsText(ps []string) string {
	return strings.Join(slices.Compact(ps), "; ")
}
