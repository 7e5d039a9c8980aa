package probe

import "slices"

// IDInfo documents one finding ID.
type IDInfo struct {
	ID string
	// Severities lists the severities this ID can have, most usual first.
	Severities []Severity
	// Meaning is a one-sentence explanation, as in docs/probe.md.
	Meaning string
}

// IDs returns the catalogue of every finding ID the probe can emit, in the
// order of docs/probe.md. IDs are stable: they are only ever added.
func IDs() []IDInfo {
	out := make([]IDInfo, len(catalog))
	for i, c := range catalog {
		out[i] = c
		out[i].Severities = slices.Clone(c.Severities)
	}
	return out
}

// LookupID returns the catalogue entry of id.
func LookupID(id string) (IDInfo, bool) {
	for _, c := range catalog {
		if c.ID == id {
			c.Severities = slices.Clone(c.Severities)
			return c, true
		}
	}
	return IDInfo{}, false
}

func sev(s ...Severity) []Severity { return s }

var catalog = []IDInfo{
	// DNS
	{"dns.query.timeout", sev(Skipped), "A DNS query got no answer from the resolver in time; the checks depending on it could not run."},
	{"dns.query.failed", sev(Skipped), "A DNS query could not be made, or the resolver refused it (REFUSED, FORMERR, NOTIMP); the checks depending on it could not run."},
	{"dns.query.servfail", sev(Error), "The resolver answered SERVFAIL: the name cannot be resolved (broken authoritative servers or a DNSSEC validation failure)."},
	{"dns.addr.found", sev(OK), "The host has A and/or AAAA records; the addresses are listed."},
	{"dns.addr.nxdomain", sev(Error), "The host name does not exist (NXDOMAIN)."},
	{"dns.addr.none", sev(Error), "The host name exists but has no A or AAAA record."},
	{"dns.addr.no-ipv6", sev(Info), "The host has no AAAA record: IPv6-only clients cannot connect."},
	{"dns.addr.no-ipv4", sev(Warn), "The host has no A record: IPv4-only clients cannot connect."},
	{"dns.mx.found", sev(OK), "The domain has MX records; they are listed with their preferences and their hosts are resolved."},
	{"dns.mx.null", sev(Info), "The domain has a null MX (RFC 7505): it accepts no mail."},
	{"dns.mx.none", sev(Info), "The mail domain (it has IMAP SRV records) has no MX record."},
	{"dns.srv.found", sev(OK), "An RFC 6186 SRV record (_imaps._tcp, _imap._tcp or _submissions._tcp) exists; its targets are listed and probed."},
	{"dns.srv.none", sev(Info), "No RFC 6186 SRV record for that service."},
	{"dns.srv.not-offered", sev(Info), "The SRV record has the target \".\": the service is decidedly not offered."},
	{"dns.ptr.ok", sev(OK), "The address has a PTR name that resolves back to it (forward-confirmed reverse DNS)."},
	{"dns.ptr.none", sev(Info), "The address has no PTR record."},
	{"dns.ptr.mismatch", sev(Warn), "The address's PTR name does not resolve back to the address (FCrDNS fails)."},
	{"dns.caa.found", sev(OK), "CAA records (RFC 8659) restrict which CAs may issue certificates for the host; the relevant set is listed."},
	{"dns.caa.none", sev(Info), "No CAA record on the host or its parents: any CA may issue certificates."},
	{"dns.tlsa.none", sev(Info), "No DANE TLSA record at _PORT._tcp.HOST."},
	{"dns.tlsa.match", sev(OK), "The certificate the endpoint served matches one of its TLSA records."},
	{"dns.tlsa.mismatch", sev(Error), "The served certificate matches none of the TLSA records: DANE clients will refuse to connect."},
	{"dns.tlsa.insecure", sev(Warn), "TLSA records exist but the resolver did not mark them DNSSEC-validated (AD bit); DANE requires DNSSEC."},
	{"dns.tlsa.unusable", sev(Warn), "All TLSA records use an unknown usage, selector or matching type."},
	{"dns.tlsa.not-compared", sev(Skipped), "TLSA records exist but no TLS handshake succeeded, so there was no certificate to compare."},

	// Autoconfig
	{"autoconfig.xml.found", sev(OK), "A Thunderbird-style config-v1.1.xml was found over HTTPS; its IMAP servers are listed and probed."},
	{"autoconfig.xml.none", sev(Info), "No autoconfig document at that URL (HTTP 404, no such host, or nothing answers HTTPS)."},
	{"autoconfig.xml.invalid", sev(Warn), "The autoconfig document is not valid config-v1.1 XML, is too large, or lists no IMAP server."},
	{"autoconfig.xml.fetch-failed", sev(Warn), "Fetching the autoconfig document failed in a way clients would notice (certificate error, HTTP error, timeout)."},
	{"autoconfig.autodiscover.found", sev(Info), "A Microsoft autodiscover host (autodiscover.DOMAIN or _autodiscover._tcp SRV) is published; it is not fetched."},
	{"autoconfig.autodiscover.none", sev(Info), "No Microsoft autodiscover host is published."},
	{"autoconfig.none", sev(Info), "The domain advertises no IMAP server to mail clients (no SRV, no autoconfig); its MX hosts and the domain itself are probed instead."},
	{"autoconfig.server.ok", sev(OK), "An advertised IMAP server (SRV or autoconfig) works as advertised: reachable, same TLS mode, valid certificate."},
	{"autoconfig.server.plaintext", sev(Warn), "Autoconfig tells clients to use IMAP without encryption (socketType plain)."},
	{"autoconfig.server.unreachable", sev(Error), "An advertised IMAP server does not resolve, cannot be reached, or could not be checked in time."},
	{"autoconfig.server.mismatch", sev(Error), "An advertised IMAP server does not offer the advertised TLS mode (e.g. STARTTLS advertised but implicit TLS served)."},
	{"autoconfig.server.cert-invalid", sev(Error), "An advertised IMAP server presents a certificate that clients will reject for the advertised host name."},

	// Ports
	{"ports.open", sev(OK), "The TCP connect succeeded and the port speaks the expected protocol; the duration is the connect time."},
	{"ports.refused", sev(Error, Info), "Connection refused: nothing listens there. Info for a guessed endpoint (a standard port of a host, an MX fallback) when another endpoint works."},
	{"ports.timeout", sev(Error, Info), "The TCP connect timed out: filtered by a firewall or the server does not accept. Info for a guessed endpoint when another endpoint works."},
	{"ports.unreachable", sev(Error, Skipped), "Host unreachable (ICMP error); Skipped and could-not-run when this machine has no route to the address (e.g. no IPv6)."},
	{"ports.reset", sev(Error), "The connection was reset by the server (during connect, or right after it accepted)."},
	{"ports.closed", sev(Error), "The server accepted and then closed the connection without a greeting or TLS handshake."},
	{"ports.silent", sev(Error), "The server accepted the connection but sent nothing and did not answer a TLS handshake."},
	{"ports.connect-failed", sev(Error, Skipped), "The connect failed for another reason (the detail has the error)."},
	{"ports.plaintext-on-tls-port", sev(Error), "An implicit-TLS port (993) answers with a plaintext IMAP greeting."},
	{"ports.tls-on-plaintext-port", sev(Error), "A STARTTLS port (143) speaks implicit TLS instead of a plaintext greeting."},
	{"ports.not-imap", sev(Error), "The port answers with something that is not an IMAP greeting."},

	// TLS
	{"tls.handshake.ok", sev(OK), "A TLS handshake with SNI completed; the negotiated version and cipher suite are named."},
	{"tls.handshake.failed", sev(Error), "The TLS handshake failed; the detail has the error."},
	{"tls.check.incomplete", sev(Skipped), "A TLS sub-test (one version, cipher group, or the no-SNI handshake) could not be completed (timeout, connect or STARTTLS failure)."},
	{"tls.version.ssl3.not-tested", sev(Skipped), "SSL 2.0 and 3.0 are not tested: Go's TLS stack does not implement them."},
	{"tls.version.tls10.accepted", sev(Warn), "TLS 1.0 is accepted; it is deprecated (RFC 8996)."},
	{"tls.version.tls10.rejected", sev(OK), "TLS 1.0 is not accepted."},
	{"tls.version.tls11.accepted", sev(Warn), "TLS 1.1 is accepted; it is deprecated (RFC 8996)."},
	{"tls.version.tls11.rejected", sev(OK), "TLS 1.1 is not accepted."},
	{"tls.version.tls12.accepted", sev(OK), "TLS 1.2 is accepted."},
	{"tls.version.tls12.rejected", sev(Info), "TLS 1.2 is not accepted: clients without TLS 1.3 cannot connect."},
	{"tls.version.tls13.accepted", sev(OK), "TLS 1.3 is accepted."},
	{"tls.version.tls13.rejected", sev(Info), "TLS 1.3 is not accepted (RFC 9325 recommends it)."},
	{"tls.cipher.broken.accepted", sev(Error), "The server accepts a handshake offering only RC4 or 3DES suites."},
	{"tls.cipher.broken.rejected", sev(OK), "RC4 and 3DES suites are not accepted."},
	{"tls.cipher.weak.accepted", sev(Warn), "The server accepts a handshake offering only weak suites (RSA key exchange without forward secrecy, CBC with SHA-256)."},
	{"tls.cipher.weak.rejected", sev(OK), "Those weak suites are not accepted."},
	{"tls.cipher.negotiated-weak", sev(Warn), "With a normal client offer, the server chose an insecure suite."},
	{"tls.cipher.other.not-tested", sev(Skipped), "Export, NULL, anonymous, DES, CAMELLIA, ARIA and other suites Go does not implement are not tested."},
	{"tls.cert.trusted", sev(OK), "The certificate chains to a trusted root (system roots plus --ca); the verified chain is listed."},
	{"tls.cert.untrusted", sev(Error), "The certificate does not chain to a trusted root, or the chain does not verify."},
	{"tls.cert.self-signed", sev(Error), "The certificate is self-signed and not explicitly trusted."},
	{"tls.cert.expired", sev(Error), "The certificate has expired."},
	{"tls.cert.not-yet-valid", sev(Error), "The certificate is not valid yet."},
	{"tls.cert.expires-soon", sev(Warn), "The certificate expires in less than 21 days."},
	{"tls.cert.dates-ok", sev(OK), "The certificate is valid for 21 days or more."},
	{"tls.cert.hostname-ok", sev(OK), "The certificate's subject alternative names cover the host name (wildcards included)."},
	{"tls.cert.hostname-mismatch", sev(Error), "The certificate does not cover the host name; the names it covers are listed."},
	{"tls.cert.key-ok", sev(OK), "The key type and size (RSA >= 2048, ECDSA >= P-256, Ed25519) and signature algorithm are named."},
	{"tls.cert.key-weak", sev(Error), "The certificate's key is too weak (RSA < 2048 bits, ECDSA < 256 bits, DSA)."},
	{"tls.cert.signature-weak", sev(Error), "The certificate is signed with MD5 or SHA-1."},
	{"tls.chain.ok", sev(OK), "The server sends a complete, ordered chain; the certificates as sent are listed."},
	{"tls.chain.missing-intermediate", sev(Error), "The issuer of the last certificate sent is neither sent nor a trusted root: an intermediate is missing (or the CA is unknown)."},
	{"tls.chain.unordered", sev(Warn), "The certificates are sent out of order or include unrelated certificates."},
	{"tls.chain.root-included", sev(Info), "The server also sends the root certificate, which is unnecessary."},
	{"tls.ocsp.stapled", sev(OK), "The server staples an OCSP response."},
	{"tls.ocsp.not-stapled", sev(Info), "No OCSP response is stapled."},
	{"tls.sni.same", sev(OK), "The same certificate is served with and without SNI."},
	{"tls.sni.different", sev(Info), "Without SNI the server presents a different certificate (the detail says whether it still covers the host)."},
	{"tls.sni.required", sev(Info), "The handshake fails without SNI."},

	// IMAP
	{"imap.greeting.ok", sev(OK), "The server greets with * OK; the duration is the time to the greeting."},
	{"imap.greeting.preauth", sev(Warn, Error), "The server greets with PREAUTH (authenticated without credentials); Error on a cleartext connection."},
	{"imap.greeting.bye", sev(Error), "The server greets with BYE: it refuses the connection."},
	{"imap.greeting.invalid", sev(Error), "The first line is not an IMAP greeting."},
	{"imap.greeting.timeout", sev(Error), "No greeting arrived in time."},
	{"imap.greeting.failed", sev(Error), "The connection failed or closed before the greeting."},
	{"imap.capability.pre-tls", sev(Info), "The capabilities before STARTTLS are listed."},
	{"imap.capability", sev(Info), "The capabilities over TLS (after STARTTLS, or on implicit TLS) are listed."},
	{"imap.capability.invalid", sev(Warn), "Neither IMAP4rev1 nor IMAP4rev2 is advertised."},
	{"imap.capability.failed", sev(Error), "The CAPABILITY command failed."},
	{"imap.starttls.ok", sev(OK), "STARTTLS is advertised and the upgrade works."},
	{"imap.starttls.missing", sev(Error), "A STARTTLS port does not advertise STARTTLS: no encryption is possible."},
	{"imap.starttls.failed", sev(Error), "STARTTLS is advertised but the command or the following handshake failed, or the server sent data after its response."},
	{"imap.logindisabled", sev(OK), "LOGINDISABLED is advertised before TLS: cleartext login is refused."},
	{"imap.cleartext-login", sev(Warn, Error), "Login is allowed without TLS (no LOGINDISABLED); Error when the port has no STARTTLS at all."},
	{"imap.auth.mechanisms", sev(Info), "How clients can log in over TLS: the LOGIN command and the AUTH= mechanisms."},
	{"imap.auth.unavailable", sev(Warn), "Over TLS, LOGINDISABLED is advertised and no AUTH= mechanism: nobody can log in."},
	{"imap.id", sev(Info), "The ID response (RFC 2971): server name, version and so on."},
	{"imap.id.unsupported", sev(Info), "The server does not advertise ID."},
	{"imap.id.failed", sev(Info), "ID is advertised but the command failed or its answer could not be parsed."},
	{"imap.not-run", sev(Skipped), "The IMAP conversation was not attempted because the TLS handshake failed."},
}
