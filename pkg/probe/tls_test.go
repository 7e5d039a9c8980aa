package probe

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
)

// healthyEnv is mail.test with forward and reverse DNS, CAA, and an
// implicit-TLS server with a valid chain and a matching, DNSSEC-validated
// TLSA record.
func healthyEnv(t *testing.T) (*env, string) {
	t.Helper()
	e := newEnv(t,
		"mail.test. A 127.0.0.1",
		"1.0.0.127.in-addr.arpa. PTR mail.test.",
		`mail.test. CAA 0 issue "ca.test"`,
	)
	cert, leaf := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	addr := startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true})
	port := portOf(t, addr)
	tlsa := fmt.Sprintf("_%d._tcp.mail.test.", port)
	e.zone.add(tlsa + " TLSA 3 1 1 " + spkiSHA256(leaf))
	e.zone.setSecure(tlsa)
	return e, fmt.Sprintf("imaps://mail.test:%d", port)
}

func TestHealthyImplicitTLS(t *testing.T) {
	e, target := healthyEnv(t)
	r := runProbe(t, e.opts(target))
	t.Logf("probe took %v", r.Elapsed)
	wantNoProblems(t, r)
	if r.Kind != "url" {
		t.Errorf("kind = %q, want url", r.Kind)
	}
	for _, id := range []string{
		"dns.addr.found", "dns.ptr.ok", "dns.caa.found", "dns.tlsa.match",
		"ports.open",
		"tls.handshake.ok", "tls.cert.trusted", "tls.cert.hostname-ok", "tls.cert.dates-ok",
		"tls.cert.key-ok", "tls.chain.ok", "tls.sni.same",
		"tls.version.tls10.rejected", "tls.version.tls11.rejected",
		"tls.version.tls12.accepted", "tls.version.tls13.accepted",
		"tls.cipher.broken.rejected", "tls.cipher.weak.rejected",
		"imap.greeting.ok",
	} {
		want(t, r, id, OK)
	}
	want(t, r, "tls.version.ssl3.not-tested", Skipped)
	want(t, r, "tls.cipher.other.not-tested", Skipped)
	want(t, r, "tls.ocsp.not-stapled", Info)
	want(t, r, "dns.addr.no-ipv6", Info)
	want(t, r, "imap.id.unsupported", Info)
	caps := want(t, r, "imap.capability", Info)
	if !strings.Contains(caps.Detail, "AUTH=PLAIN") {
		t.Errorf("capabilities over TLS = %q, want AUTH=PLAIN", caps.Detail)
	}
	want(t, r, "imap.auth.mechanisms", Info)
	wantNone(t, r, "imap.starttls.ok", "imap.capability.pre-tls")
	if got := ExitCode(r, Warn); got != 0 {
		t.Errorf("ExitCode(warn) = %d, want 0", got)
	}
	if len(r.Endpoints) != 1 || r.Endpoints[0].TLS != "implicit" || r.Endpoints[0].Source != "url" {
		t.Errorf("endpoints = %+v", r.Endpoints)
	}
}

func TestCertificateProblems(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	tests := []struct {
		name     string
		leaf     leafOpts
		want     map[string]Severity
		wantNone []string
	}{
		{
			name: "expired",
			leaf: leafOpts{names: []string{"mail.test"}, notBefore: -100 * day, notAfter: -3 * day},
			want: map[string]Severity{"tls.cert.expired": Error, "tls.cert.trusted": OK, "tls.chain.ok": OK},
		},
		{
			name: "expires soon",
			leaf: leafOpts{names: []string{"mail.test"}, notAfter: 10 * day},
			want: map[string]Severity{"tls.cert.expires-soon": Warn, "tls.cert.trusted": OK},
		},
		{
			name: "not yet valid",
			leaf: leafOpts{names: []string{"mail.test"}, notBefore: 2 * day},
			want: map[string]Severity{"tls.cert.not-yet-valid": Error},
		},
		{
			name:     "wrong hostname",
			leaf:     leafOpts{names: []string{"other.test", "*.other.test"}},
			want:     map[string]Severity{"tls.cert.hostname-mismatch": Error, "tls.cert.trusted": OK},
			wantNone: []string{"tls.cert.hostname-ok"},
		},
		{
			name: "wildcard",
			leaf: leafOpts{names: []string{"*.test"}},
			want: map[string]Severity{"tls.cert.hostname-ok": OK, "tls.cert.trusted": OK},
		},
		{
			name:     "self-signed",
			leaf:     leafOpts{names: []string{"mail.test"}, selfSigned: true},
			want:     map[string]Severity{"tls.cert.self-signed": Error, "tls.cert.hostname-ok": OK, "tls.chain.ok": OK},
			wantNone: []string{"tls.cert.trusted", "tls.chain.missing-intermediate"},
		},
		{
			name:     "missing intermediate",
			leaf:     leafOpts{names: []string{"mail.test"}, sendChain: "leaf"},
			want:     map[string]Severity{"tls.chain.missing-intermediate": Error, "tls.cert.untrusted": Error},
			wantNone: []string{"tls.chain.ok", "tls.cert.self-signed"},
		},
		{
			name: "root included",
			leaf: leafOpts{names: []string{"mail.test"}, sendChain: "full"},
			want: map[string]Severity{"tls.chain.root-included": Info, "tls.cert.trusted": OK},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, _ := e.pki.leaf(t, tc.leaf)
			addr := startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true})
			r := runProbe(t, e.opts("imaps://mail.test:"+fmt.Sprint(portOf(t, addr))))
			for id, sev := range tc.want {
				want(t, r, id, sev)
			}
			wantNone(t, r, tc.wantNone...)
			want(t, r, "imap.greeting.ok", OK)
		})
	}
}

func TestSelfSignedTrustedWithCA(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	cert, leaf := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}, selfSigned: true})
	addr := startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true})
	opts := e.opts("imaps://mail.test:" + fmt.Sprint(portOf(t, addr)))
	opts.RootCAs = e.pki.pool.Clone()
	opts.RootCAs.AddCert(leaf)
	r := runProbe(t, opts)
	f := want(t, r, "tls.cert.trusted", OK)
	if !strings.Contains(f.Title, "self-signed") {
		t.Errorf("title %q does not mention self-signed", f.Title)
	}
}

func TestTLSVersions(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	t.Run("1.0 and 1.1 enabled", func(t *testing.T) {
		cfg := serverTLS(cert)
		cfg.MinVersion = tls.VersionTLS10
		addr := startIMAP(t, imapConfig{TLS: cfg, Implicit: true})
		r := runProbe(t, e.opts("imaps://mail.test:"+fmt.Sprint(portOf(t, addr))))
		want(t, r, "tls.version.tls10.accepted", Warn)
		want(t, r, "tls.version.tls11.accepted", Warn)
		want(t, r, "tls.version.tls12.accepted", OK)
		want(t, r, "tls.version.tls13.accepted", OK)
		if got := ExitCode(r, Warn); got != 1 {
			t.Errorf("ExitCode(warn) = %d, want 1", got)
		}
		if got := ExitCode(r, Error); got != 0 {
			t.Errorf("ExitCode(error) = %d, want 0", got)
		}
	})
	t.Run("default", func(t *testing.T) {
		addr := startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true})
		r := runProbe(t, e.opts("imaps://mail.test:"+fmt.Sprint(portOf(t, addr))))
		want(t, r, "tls.version.tls10.rejected", OK)
		want(t, r, "tls.version.tls11.rejected", OK)
	})
	t.Run("no 1.3", func(t *testing.T) {
		cfg := serverTLS(cert)
		cfg.MaxVersion = tls.VersionTLS12
		addr := startIMAP(t, imapConfig{TLS: cfg, Implicit: true})
		r := runProbe(t, e.opts("imaps://mail.test:"+fmt.Sprint(portOf(t, addr))))
		want(t, r, "tls.version.tls13.rejected", Info)
		want(t, r, "tls.version.tls12.accepted", OK)
	})
	t.Run("only 1.3", func(t *testing.T) {
		cfg := serverTLS(cert)
		cfg.MinVersion = tls.VersionTLS13
		addr := startIMAP(t, imapConfig{TLS: cfg, Implicit: true})
		r := runProbe(t, e.opts("imaps://mail.test:"+fmt.Sprint(portOf(t, addr))))
		want(t, r, "tls.version.tls12.rejected", Info)
		want(t, r, "tls.cipher.weak.rejected", OK)
		want(t, r, "tls.cipher.broken.rejected", OK)
	})
}

func TestWeakCipherSuites(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	t.Run("CBC-SHA256", func(t *testing.T) {
		cfg := serverTLS(cert)
		cfg.MaxVersion = tls.VersionTLS12
		cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
		addr := startIMAP(t, imapConfig{TLS: cfg, Implicit: true})
		r := runProbe(t, e.opts("imaps://mail.test:"+fmt.Sprint(portOf(t, addr))))
		f := want(t, r, "tls.cipher.weak.accepted", Warn)
		if !strings.Contains(f.Detail, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256") {
			t.Errorf("detail %q does not name the suite", f.Detail)
		}
		want(t, r, "tls.cipher.negotiated-weak", Warn)
		want(t, r, "tls.cipher.broken.rejected", OK)
	})
	t.Run("RC4", func(t *testing.T) {
		cfg := serverTLS(cert)
		cfg.MaxVersion = tls.VersionTLS12
		cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA}
		addr := startIMAP(t, imapConfig{TLS: cfg, Implicit: true})
		r := runProbe(t, e.opts("imaps://mail.test:"+fmt.Sprint(portOf(t, addr))))
		want(t, r, "tls.cipher.broken.accepted", Error)
		want(t, r, "tls.cipher.weak.rejected", OK)
		wantNone(t, r, "tls.cipher.negotiated-weak")
	})
}

func TestSNI(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	named, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	fallback, _ := e.pki.leaf(t, leafOpts{names: []string{"default.test"}})
	cfg := &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "mail.test" {
			return &named, nil
		}
		return &fallback, nil
	}}
	addr := startIMAP(t, imapConfig{TLS: cfg, Implicit: true})
	r := runProbe(t, e.opts("imaps://mail.test:"+fmt.Sprint(portOf(t, addr))))
	f := want(t, r, "tls.sni.different", Info)
	if !strings.Contains(f.Detail, "does not cover mail.test") {
		t.Errorf("detail %q", f.Detail)
	}
	want(t, r, "tls.cert.hostname-ok", OK)
}

func TestOCSPStapled(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	cert.OCSPStaple = []byte{0x30, 0x03, 0x0a, 0x01, 0x00} // presence is all that is checked
	addr := startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true})
	r := runProbe(t, e.opts("imaps://mail.test:"+fmt.Sprint(portOf(t, addr))))
	want(t, r, "tls.ocsp.stapled", OK)
}
