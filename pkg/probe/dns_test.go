package probe

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// hostOnly returns options probing the DNS of a host without any port
// (the test options probe no standard port).
func hostOnly(e *env, host string) Options {
	return e.opts(host)
}

func TestDNSHostRecords(t *testing.T) {
	t.Run("FCrDNS mismatch", func(t *testing.T) {
		e := newEnv(t,
			"mail.test. A 127.0.0.1",
			"1.0.0.127.in-addr.arpa. PTR other.test.",
			"other.test. A 127.0.0.9",
		)
		r := runProbe(t, hostOnly(e, "mail.test"))
		f := want(t, r, "dns.ptr.mismatch", Warn)
		if f.Address != "127.0.0.1" || !strings.Contains(f.Title, "other.test") {
			t.Errorf("ptr finding %+v", f)
		}
		wantNone(t, r, "dns.ptr.ok")
	})
	t.Run("FCrDNS ok with another name", func(t *testing.T) {
		e := newEnv(t,
			"mail.test. A 127.0.0.1",
			"1.0.0.127.in-addr.arpa. PTR host1.test.",
			"host1.test. A 127.0.0.1",
		)
		r := runProbe(t, hostOnly(e, "mail.test"))
		f := want(t, r, "dns.ptr.ok", OK)
		if !strings.Contains(f.Detail, "differs") {
			t.Errorf("detail %q", f.Detail)
		}
	})
	t.Run("CNAME and inherited CAA", func(t *testing.T) {
		e := newEnv(t,
			"imap.example.test. CNAME real.example.test.",
			"real.example.test. A 127.0.0.1",
			`example.test. CAA 0 issue "ca.test"`,
			`example.test. CAA 0 iodef "mailto:sec@example.test"`,
		)
		r := runProbe(t, hostOnly(e, "imap.example.test"))
		f := want(t, r, "dns.addr.found", OK)
		if !strings.Contains(f.Detail, "real.example.test") {
			t.Errorf("addr detail %q does not show the CNAME", f.Detail)
		}
		caa := want(t, r, "dns.caa.found", OK)
		if !strings.Contains(caa.Title, "inherited from example.test") || !strings.Contains(caa.Detail, `issue "ca.test"`) {
			t.Errorf("caa finding %+v", caa)
		}
		want(t, r, "dns.ptr.none", Info)
	})
	t.Run("IPv6 only", func(t *testing.T) {
		e := newEnv(t, "mail.test. AAAA ::1")
		r := runProbe(t, hostOnly(e, "mail.test"))
		want(t, r, "dns.addr.no-ipv4", Warn)
	})
	t.Run("NXDOMAIN", func(t *testing.T) {
		e := newEnv(t, "mail.test. A 127.0.0.1")
		o := hostOnly(e, "nothere.test")
		o.ImplicitTLSPorts = []int{closedPort(t)}
		r := runProbe(t, o)
		want(t, r, "dns.addr.nxdomain", Error)
		wantNone(t, r, "ports.refused", "ports.open")
		if r.Kind != "host" {
			t.Errorf("kind = %q", r.Kind)
		}
		if got := ExitCode(r, Error); got != 1 {
			t.Errorf("ExitCode = %d, want 1", got)
		}
	})
	t.Run("no address", func(t *testing.T) {
		e := newEnv(t, `mail.test. TXT "exists"`)
		r := runProbe(t, hostOnly(e, "mail.test"))
		want(t, r, "dns.addr.none", Error)
	})
	t.Run("SERVFAIL", func(t *testing.T) {
		e := newEnv(t)
		e.zone.setRcode("broken.test", dns.RcodeServerFailure)
		r := runProbe(t, hostOnly(e, "broken.test"))
		f := want(t, r, "dns.query.servfail", Error)
		if f.Endpoint != "broken.test" {
			t.Errorf("endpoint %q", f.Endpoint)
		}
		wantNone(t, r, "dns.addr.found", "dns.addr.none")
		if r.CouldNotRun() {
			t.Errorf("SERVFAIL is an answer, not a check that could not run")
		}
	})
	t.Run("REFUSED", func(t *testing.T) {
		e := newEnv(t)
		e.zone.setRcode("mail.test", dns.RcodeRefused)
		r := runProbe(t, hostOnly(e, "mail.test"))
		f := want(t, r, "dns.query.failed", Skipped)
		if !f.CouldNotRun {
			t.Errorf("REFUSED should mark the check as could-not-run")
		}
		if got := ExitCode(r, Error); got != 3 {
			t.Errorf("ExitCode = %d, want 3", got)
		}
	})
}

func TestDNSTimeouts(t *testing.T) {
	t.Run("resolver never answers", func(t *testing.T) {
		e := newEnv(t)
		o := e.opts("mail.test")
		o.Resolver = silentResolver(t)
		o.Timeout = 300 * time.Millisecond
		o.ImplicitTLSPorts = []int{993}
		r := runProbe(t, o)
		want(t, r, "dns.query.timeout", Skipped)
		if !r.CouldNotRun() {
			t.Error("CouldNotRun() = false")
		}
		if got := ExitCode(r, Error); got != 3 {
			t.Errorf("ExitCode(error) = %d, want 3", got)
		}
		if got := ExitCode(r, Warn); got != 3 {
			t.Errorf("ExitCode(warn) = %d, want 3", got)
		}
		wantNone(t, r, "ports.open", "ports.refused", "ports.timeout")
	})
	t.Run("one query dropped", func(t *testing.T) {
		e, target := healthyEnv(t)
		e.zone.setDrop("1.0.0.127.in-addr.arpa")
		o := e.opts(target)
		o.Timeout = time.Second
		r := runProbe(t, o)
		f := want(t, r, "dns.query.timeout", Skipped)
		if !strings.Contains(f.Detail, "PTR") {
			t.Errorf("detail %q", f.Detail)
		}
		want(t, r, "tls.handshake.ok", OK)
		if got := ExitCode(r, Error); got != 3 {
			t.Errorf("ExitCode(error) = %d, want 3", got)
		}
	})
}

func TestTLSA(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	cert, leaf := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	port := portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true}))
	name := fmt.Sprintf("_%d._tcp.mail.test.", port)
	_, otherLeaf := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	tests := []struct {
		name    string
		records []string
		secure  bool
		want    map[string]Severity
	}{
		{"DANE-EE SPKI SHA-256", []string{"3 1 1 " + spkiSHA256(leaf)}, true, map[string]Severity{"dns.tlsa.match": OK}},
		{"DANE-EE full cert SHA-256", []string{"3 0 1 " + certSHA256(leaf)}, true, map[string]Severity{"dns.tlsa.match": OK}},
		{"DANE-TA intermediate", []string{"2 0 1 " + certSHA256(e.pki.inter)}, true, map[string]Severity{"dns.tlsa.match": OK}},
		{"PKIX-EE", []string{"1 1 1 " + spkiSHA256(leaf)}, true, map[string]Severity{"dns.tlsa.match": OK}},
		{"mismatch", []string{"3 1 1 " + spkiSHA256(otherLeaf)}, true, map[string]Severity{"dns.tlsa.mismatch": Error}},
		{"one of two matches", []string{"3 1 1 " + spkiSHA256(otherLeaf), "3 1 1 " + spkiSHA256(leaf)}, true, map[string]Severity{"dns.tlsa.match": OK}},
		{"not DNSSEC-validated", []string{"3 1 1 " + spkiSHA256(leaf)}, false, map[string]Severity{"dns.tlsa.match": OK, "dns.tlsa.insecure": Warn}},
		{"unknown parameters", []string{"3 1 9 " + spkiSHA256(leaf)}, true, map[string]Severity{"dns.tlsa.unusable": Warn}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.zone.mu.Lock()
			delete(e.zone.rrs, strings.ToLower(name)+"/TLSA")
			e.zone.secure[name] = tc.secure
			e.zone.mu.Unlock()
			for _, rec := range tc.records {
				e.zone.add(name + " TLSA " + rec)
			}
			r := runProbe(t, e.opts(fmt.Sprintf("imaps://mail.test:%d", port)))
			for id, sev := range tc.want {
				f := want(t, r, id, sev)
				if f.Endpoint != strings.TrimSuffix(name, ".") {
					t.Errorf("%s endpoint %q", id, f.Endpoint)
				}
			}
			if tc.secure {
				wantNone(t, r, "dns.tlsa.insecure")
			}
		})
	}
	t.Run("no handshake", func(t *testing.T) {
		closed := closedPort(t)
		n := fmt.Sprintf("_%d._tcp.mail.test.", closed)
		e.zone.add(n + " TLSA 3 1 1 " + spkiSHA256(leaf))
		e.zone.setSecure(n)
		// A STARTTLS endpoint without STARTTLS: reachable, no handshake.
		plain := noSTARTTLSIMAP(t)
		n2 := fmt.Sprintf("_%d._tcp.mail.test.", plain)
		e.zone.add(n2 + " TLSA 3 1 1 " + spkiSHA256(leaf))
		e.zone.setSecure(n2)
		r := runProbe(t, e.opts(fmt.Sprintf("imap://mail.test:%d", plain)))
		want(t, r, "dns.tlsa.not-compared", Skipped)
	})
}

// autoconfigServer serves config-v1.1.xml documents by host and path.
func autoconfigServer(t *testing.T, e *env, docs map[string]string) string {
	t.Helper()
	// Valid both at testNow and for years around it, so that clients
	// checking at the real time accept it too.
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"autoconfig.example.test", "example.test"},
		notBefore: -365 * day, notAfter: 3 * 365 * day})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.Split(r.Host, ":")[0]
		doc, ok := docs[host+r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write([]byte(doc))
	}))
	srv.TLS = serverTLS(cert)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func configXML(servers ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.test">
    <domain>example.test</domain>
`)
	for _, s := range servers {
		f := strings.Fields(s) // host port socketType
		fmt.Fprintf(&b, `    <incomingServer type="imap">
      <hostname>%s</hostname>
      <port>%s</port>
      <socketType>%s</socketType>
      <username>%%EMAILADDRESS%%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
`, f[0], f[1], f[2])
	}
	b.WriteString(`    <outgoingServer type="smtp">
      <hostname>smtp.example.test</hostname>
      <port>465</port>
      <socketType>SSL</socketType>
    </outgoingServer>
  </emailProvider>
</clientConfig>
`)
	return b.String()
}

func TestMailDomain(t *testing.T) {
	e := newEnv(t)
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.example.test"}})
	implicit := portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true}))
	wrongName, _ := e.pki.leaf(t, leafOpts{names: []string{"other.test"}})
	badCert := portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(wrongName), Implicit: true}))
	e.zone.add(
		"example.test. MX 10 mx.example.test.",
		"mx.example.test. A 127.0.0.1",
		fmt.Sprintf("_imaps._tcp.example.test. SRV 0 1 %d mail.example.test.", implicit),
		"_imap._tcp.example.test. SRV 0 0 0 .",
		"mail.example.test. A 127.0.0.1",
		"imap.example.test. A 127.0.0.1",
		"autodiscover.example.test. CNAME mx.example.test.",
	)
	httpAddr := autoconfigServer(t, e, map[string]string{
		"autoconfig.example.test/mail/config-v1.1.xml": configXML(
			fmt.Sprintf("mail.example.test %d SSL", implicit),
			fmt.Sprintf("mail.%%EMAILDOMAIN%% %d STARTTLS", implicit), // wrong mode
			fmt.Sprintf("imap.example.test %d SSL", badCert),
		),
		"example.test/.well-known/autoconfig/mail/config-v1.1.xml": "<html>not xml",
	})
	o := e.opts("example.test")
	o.HTTPClient = e.httpClientTo(httpAddr)
	o.ImplicitTLSPorts = []int{closedPort(t)} // must not be used: the domain advertises its servers
	r := runProbe(t, o)
	if r.Kind != "domain" {
		t.Fatalf("kind = %q, want domain", r.Kind)
	}
	want(t, r, "dns.mx.found", OK)
	want(t, r, "dns.srv.found", OK)
	want(t, r, "dns.srv.not-offered", Info)
	want(t, r, "dns.srv.none", Info) // _submissions._tcp
	want(t, r, "autoconfig.xml.found", OK)
	want(t, r, "autoconfig.xml.invalid", Warn)
	want(t, r, "autoconfig.autodiscover.found", Info)
	oks := find(r, "autoconfig.server.ok")
	if len(oks) != 2 {
		t.Errorf("autoconfig.server.ok %d times, want 2 (SRV and autoconfig)", len(oks))
	}
	mm := want(t, r, "autoconfig.server.mismatch", Error)
	if mm.Endpoint != fmt.Sprintf("imap://mail.example.test:%d", implicit) || !strings.Contains(mm.Title, "implicit TLS") {
		t.Errorf("mismatch finding %+v", mm)
	}
	ci := want(t, r, "autoconfig.server.cert-invalid", Error)
	if !strings.Contains(ci.Title, "imap.example.test") {
		t.Errorf("cert-invalid finding %+v", ci)
	}
	// The MX host was resolved ("what it points to") but not probed.
	var mxAddr bool
	for _, f := range find(r, "dns.addr.found") {
		if f.Endpoint == "mx.example.test" {
			mxAddr = true
		}
	}
	if !mxAddr {
		t.Error("MX host not resolved")
	}
	for _, ep := range r.Endpoints {
		if ep.Host == "mx.example.test" || ep.Source == "default" || ep.Source == "mx" {
			t.Errorf("unexpected endpoint %+v", ep)
		}
	}
}

func TestMailDomainWithoutAdvertisement(t *testing.T) {
	e := newEnv(t,
		"example.test. MX 10 mx.example.test.",
		"mx.example.test. A 127.0.0.1",
		"example.test. A 127.0.0.2", // a web server, say: no IMAP there
	)
	cert, _ := e.pki.leaf(t, leafOpts{names: []string{"mx.example.test"}})
	port := portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(cert), Implicit: true}))
	o := e.opts("example.test")
	o.ImplicitTLSPorts = []int{port}
	r := runProbe(t, o)
	want(t, r, "autoconfig.none", Info)
	want(t, r, "autoconfig.xml.none", Info)
	want(t, r, "autoconfig.autodiscover.none", Info)
	if len(r.Endpoints) != 2 || r.Endpoints[0].Host != "example.test" || r.Endpoints[0].Source != "default" ||
		r.Endpoints[1].Host != "mx.example.test" || r.Endpoints[1].Source != "mx" {
		t.Errorf("endpoints %+v, want the domain itself and the MX host", r.Endpoints)
	}
	want(t, r, "tls.cert.hostname-ok", OK)
	f := want(t, r, "ports.refused", Info)
	if f.Address != fmt.Sprintf("127.0.0.2:%d", port) {
		t.Errorf("refused address %q", f.Address)
	}
	wantNone(t, r, "autoconfig.server.ok")
	wantNoProblems(t, r)
}

func TestAutoconfigPlaintextAndUnreachable(t *testing.T) {
	e := newEnv(t,
		"example.test. MX 10 mx.example.test.",
		"mail.example.test. A 127.0.0.1",
	)
	plain := noSTARTTLSIMAP(t)
	closed := closedPort(t)
	httpAddr := autoconfigServer(t, e, map[string]string{
		"autoconfig.example.test/mail/config-v1.1.xml": configXML(
			fmt.Sprintf("mail.example.test %d plain", plain),
			fmt.Sprintf("mail.example.test %d SSL", closed),
			fmt.Sprintf("nothere.example.test %d SSL", closed),
		),
	})
	o := e.opts("example.test")
	o.HTTPClient = e.httpClientTo(httpAddr)
	r := runProbe(t, o)
	want(t, r, "autoconfig.server.plaintext", Warn)
	if n := len(find(r, "autoconfig.server.unreachable")); n != 2 {
		t.Errorf("autoconfig.server.unreachable %d times, want 2", n)
	}
	want(t, r, "dns.addr.nxdomain", Error)
	want(t, r, "imap.starttls.missing", Error)
}
