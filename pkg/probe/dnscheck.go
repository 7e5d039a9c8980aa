package probe

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// checkAddrs looks up the A and AAAA records of a host.
func (p *prober) checkAddrs(ctx context.Context, host string) ([]Finding, []netip.Addr) {
	var (
		wg         sync.WaitGroup
		m4, m6     *dns.Msg
		err4, err6 error
	)
	wg.Go(func() { m4, err4 = p.res.query(ctx, host, dns.TypeA) })
	wg.Go(func() { m6, err6 = p.res.query(ctx, host, dns.TypeAAAA) })
	wg.Wait()
	return addrFindings(host, m4, err4, m6, err6)
}

// addrFindings interprets the A and AAAA answers for host.
func addrFindings(host string, m4 *dns.Msg, err4 error, m6 *dns.Msg, err6 error) ([]Finding, []netip.Addr) {
	var fs []Finding
	f4, failed4 := dnsFailure(host, dns.TypeA, m4, err4)
	f6, failed6 := dnsFailure(host, dns.TypeAAAA, m6, err6)
	if failed4 {
		fs = append(fs, f4)
	}
	if failed6 {
		fs = append(fs, f6)
	}
	var v4, v6 []netip.Addr
	var cnames []string
	if !failed4 {
		v4, cnames = addrsFromMsg(m4)
	}
	if !failed6 {
		var c6 []string
		v6, c6 = addrsFromMsg(m6)
		if len(cnames) == 0 {
			cnames = c6
		}
	}
	all := append(slices.Clone(v4), v6...)
	if failed4 && failed6 {
		return fs, all
	}
	nx := (!failed4 && m4.Rcode == dns.RcodeNameError) || (!failed6 && m6.Rcode == dns.RcodeNameError)
	switch {
	case len(all) == 0 && nx:
		fs = append(fs, finding("dns.addr.nxdomain", Error, fmt.Sprintf("%s does not exist in DNS (NXDOMAIN)", host)).with(host, ""))
	case len(all) == 0:
		fs = append(fs, finding("dns.addr.none", Error, fmt.Sprintf("%s has no A or AAAA record", host)).with(host, ""))
	default:
		var parts []string
		for _, a := range all {
			parts = append(parts, a.String())
		}
		f := finding("dns.addr.found", OK, fmt.Sprintf("%s resolves to %s", host, strings.Join(parts, ", "))).with(host, "")
		if len(cnames) > 0 {
			f = f.detail("via CNAME %s", strings.Join(cnames, " → "))
		}
		fs = append(fs, f)
		if len(v6) == 0 && !failed6 {
			fs = append(fs, finding("dns.addr.no-ipv6", Info, fmt.Sprintf("%s has no IPv6 address (AAAA)", host)).with(host, "").
				detail("IPv6-only clients cannot connect"))
		}
		if len(v4) == 0 && !failed4 {
			fs = append(fs, finding("dns.addr.no-ipv4", Warn, fmt.Sprintf("%s has no IPv4 address (A)", host)).with(host, "").
				detail("IPv4-only clients and networks cannot connect"))
		}
	}
	return fs, all
}

// checkPTR looks up the PTR records of addr and whether each name resolves
// back to addr (forward-confirmed reverse DNS).
func (p *prober) checkPTR(ctx context.Context, host string, addr netip.Addr) []Finding {
	arpa, err := dns.ReverseAddr(addr.String())
	if err != nil {
		return nil
	}
	msg, err := p.res.query(ctx, arpa, dns.TypePTR)
	if f, failed := dnsFailure(arpa, dns.TypePTR, msg, err); failed {
		f.Endpoint, f.Address = host, addr.String()
		return []Finding{f}
	}
	var names []string
	for _, rr := range msg.Answer {
		if ptr, ok := rr.(*dns.PTR); ok {
			names = append(names, trimDot(ptr.Ptr))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return []Finding{finding("dns.ptr.none", Info, fmt.Sprintf("%s has no reverse DNS (PTR) name", addr)).with(host, addr.String())}
	}
	qtype := dns.TypeA
	if addr.Is6() {
		qtype = dns.TypeAAAA
	}
	var confirmed []string
	var unconfirmed []string
	var fs []Finding
	for _, n := range names {
		m, err := p.res.query(ctx, n, qtype)
		if f, failed := dnsFailure(n, qtype, m, err); failed {
			f.Address = addr.String()
			fs = append(fs, f)
			continue
		}
		addrs, _ := addrsFromMsg(m)
		if slices.Contains(addrs, addr) {
			confirmed = append(confirmed, n)
		} else {
			unconfirmed = append(unconfirmed, n)
		}
	}
	switch {
	case len(confirmed) > 0:
		f := finding("dns.ptr.ok", OK, fmt.Sprintf("%s has reverse DNS %s, which resolves back to it (FCrDNS)", addr, strings.Join(confirmed, ", "))).
			with(host, addr.String())
		if !slices.Contains(confirmed, host) {
			f = f.detail("the PTR name differs from %s; that is fine for IMAP", host)
		}
		fs = append(fs, f)
	case len(unconfirmed) > 0:
		fs = append(fs, finding("dns.ptr.mismatch", Warn, fmt.Sprintf("reverse DNS of %s is %s, which does not resolve back to it", addr, strings.Join(unconfirmed, ", "))).
			with(host, addr.String()).detail("forward-confirmed reverse DNS (FCrDNS) fails; some networks and spam filters distrust such hosts"))
	}
	return fs
}

// checkCAA finds the CAA record set relevant for host (RFC 8659 §3: the
// first non-empty set climbing from host towards the root, not asking the
// top-level domain).
func (p *prober) checkCAA(ctx context.Context, host string) []Finding {
	labels := strings.Split(host, ".")
	for i := 0; i < len(labels)-1; i++ {
		name := strings.Join(labels[i:], ".")
		msg, err := p.res.query(ctx, name, dns.TypeCAA)
		if f, failed := dnsFailure(name, dns.TypeCAA, msg, err); failed {
			f.Endpoint = host
			return []Finding{f}
		}
		var recs []string
		for _, rr := range msg.Answer {
			if caa, ok := rr.(*dns.CAA); ok && trimDot(caa.Hdr.Name) == name {
				recs = append(recs, fmt.Sprintf("%s %q", caa.Tag, caa.Value))
			}
		}
		if len(recs) > 0 {
			slices.Sort(recs)
			where := ""
			if name != host {
				where = " (inherited from " + name + ")"
			}
			return []Finding{finding("dns.caa.found", OK, "CAA records restrict which CAs may issue certificates"+where).
				with(host, "").detail("%s", strings.Join(recs, "; "))}
		}
	}
	return []Finding{finding("dns.caa.none", Info, "no CAA record: any certificate authority may issue certificates for "+host).with(host, "")}
}

// srvRecord is one RFC 6186 SRV record.
type srvRecord struct {
	service  string // e.g. _imaps._tcp
	target   string
	port     int
	priority int
	weight   int
}

// mailDNS is what a name's MX and SRV records say.
type mailDNS struct {
	mx       []*dns.MX
	nullMX   bool
	srv      map[string][]srvRecord // by service
	srvNone  map[string]bool        // service has the "." target
	failures []Finding
}

var rfc6186Services = []string{"_imaps._tcp", "_imap._tcp", "_submissions._tcp"}

// lookupMailDNS queries the MX and RFC 6186 SRV records of name.
func (p *prober) lookupMailDNS(ctx context.Context, name string) *mailDNS {
	md := &mailDNS{srv: map[string][]srvRecord{}, srvNone: map[string]bool{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		msg, err := p.res.query(ctx, name, dns.TypeMX)
		mu.Lock()
		defer mu.Unlock()
		if f, failed := dnsFailure(name, dns.TypeMX, msg, err); failed {
			md.failures = append(md.failures, f)
			return
		}
		for _, rr := range msg.Answer {
			if mx, ok := rr.(*dns.MX); ok {
				if mx.Mx == "." {
					md.nullMX = true // RFC 7505
					continue
				}
				md.mx = append(md.mx, mx)
			}
		}
		slices.SortFunc(md.mx, func(a, b *dns.MX) int {
			return cmp.Or(cmp.Compare(a.Preference, b.Preference), strings.Compare(trimDot(a.Mx), trimDot(b.Mx)))
		})
	})
	for _, svc := range rfc6186Services {
		wg.Go(func() {
			qname := svc + "." + name
			msg, err := p.res.query(ctx, qname, dns.TypeSRV)
			mu.Lock()
			defer mu.Unlock()
			if f, failed := dnsFailure(qname, dns.TypeSRV, msg, err); failed {
				md.failures = append(md.failures, f)
				return
			}
			for _, rr := range msg.Answer {
				if s, ok := rr.(*dns.SRV); ok {
					if s.Target == "." {
						md.srvNone[svc] = true
						continue
					}
					md.srv[svc] = append(md.srv[svc], srvRecord{service: svc, target: trimDot(s.Target),
						port: int(s.Port), priority: int(s.Priority), weight: int(s.Weight)})
				}
			}
			slices.SortFunc(md.srv[svc], func(a, b srvRecord) int {
				return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(b.weight, a.weight),
					strings.Compare(a.target, b.target), cmp.Compare(a.port, b.port))
			})
		})
	}
	wg.Wait()
	return md
}

// isMailDomain reports whether the records make name a mail domain rather
// than a host.
func (md *mailDNS) isMailDomain() bool {
	return len(md.mx) > 0 || md.nullMX ||
		len(md.srv["_imaps._tcp"]) > 0 || len(md.srv["_imap._tcp"]) > 0 ||
		md.srvNone["_imaps._tcp"] || md.srvNone["_imap._tcp"]
}

// findings describes the MX and SRV records of a mail domain.
func (md *mailDNS) findings(domain string) []Finding {
	var fs []Finding
	switch {
	case len(md.mx) > 0:
		var parts []string
		for _, mx := range md.mx {
			parts = append(parts, fmt.Sprintf("%d %s", mx.Preference, trimDot(mx.Mx)))
		}
		fs = append(fs, finding("dns.mx.found", OK, fmt.Sprintf("%s has %d MX record(s)", domain, len(md.mx))).
			with(domain, "").detail("%s", strings.Join(parts, ", ")))
	case md.nullMX:
		fs = append(fs, finding("dns.mx.null", Info, domain+" has a null MX: it accepts no mail (RFC 7505)").with(domain, ""))
	default:
		fs = append(fs, finding("dns.mx.none", Info, domain+" has no MX record").with(domain, "").
			detail("mail to the domain falls back to its A/AAAA records (RFC 5321 §5.1)"))
	}
	for _, svc := range rfc6186Services {
		name := svc + "." + domain
		recs := md.srv[svc]
		switch {
		case len(recs) > 0:
			var parts []string
			for _, r := range recs {
				parts = append(parts, fmt.Sprintf("%s:%d (priority %d, weight %d)", r.target, r.port, r.priority, r.weight))
			}
			fs = append(fs, finding("dns.srv.found", OK, fmt.Sprintf("SRV %s points to %s", svc, strings.Join(srvTargets(recs), ", "))).
				with(name, "").detail("%s", strings.Join(parts, "; ")))
		case md.srvNone[svc]:
			fs = append(fs, finding("dns.srv.not-offered", Info, fmt.Sprintf("SRV %s says the service is not offered (target \".\")", svc)).
				with(name, ""))
		default:
			fs = append(fs, finding("dns.srv.none", Info, fmt.Sprintf("no SRV record %s (RFC 6186)", svc)).with(name, ""))
		}
	}
	return fs
}

func srvTargets(recs []srvRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, net.JoinHostPort(r.target, strconv.Itoa(r.port)))
	}
	return out
}

// discover decides whether the target name is a mail domain or a host and
// starts the matching checks.
func (p *prober) discover(ctx context.Context) {
	name := p.t.host
	md := p.lookupMailDNS(ctx, name)
	p.add(md.failures...)
	if !md.isMailDomain() {
		p.kind = "host"
		p.hostInfo(ctx, name)
		p.startHostEndpoints(ctx, name, "default")
		return
	}
	p.kind = "domain"
	p.add(md.findings(name)...)
	for _, mx := range md.mx {
		p.hostInfo(ctx, trimDot(mx.Mx))
	}
	for _, r := range md.srv["_submissions._tcp"] {
		p.hostInfo(ctx, r.target)
	}
	var adv []advertised
	for _, svc := range []string{"_imaps._tcp", "_imap._tcp"} {
		mode := modeImplicit
		if svc == "_imap._tcp" {
			mode = modeSTARTTLS
		}
		for _, r := range md.srv[svc] {
			host, err := normalizeHostname(r.target)
			if err != nil {
				continue
			}
			ep := p.startEndpoint(ctx, host, r.port, mode, "srv")
			p.startExtraPorts(ctx, host)
			adv = append(adv, advertised{source: "SRV " + svc + "." + name, sourceEndpoint: svc + "." + name, ep: ep})
		}
	}
	p.wg.Go(func() { p.checkAutoconfig(ctx, name, md, adv) })
}

// checkTLSA compares the TLSA records at _PORT._tcp.HOST (RFC 6698) with
// the certificate chain the endpoint served. chain is nil when no handshake
// succeeded; pkixOK says whether the chain verified against the roots.
func checkTLSA(name string, msg *dns.Msg, chain []*x509.Certificate, pkixOK bool) []Finding {
	var recs []*dns.TLSA
	for _, rr := range msg.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			recs = append(recs, t)
		}
	}
	if len(recs) == 0 {
		return []Finding{finding("dns.tlsa.none", Info, "no DANE TLSA record").with(name, "")}
	}
	var fs []Finding
	var texts []string
	for _, r := range recs {
		texts = append(texts, tlsaName(r))
	}
	slices.Sort(texts)
	if !msg.AuthenticatedData {
		fs = append(fs, finding("dns.tlsa.insecure", Warn, "TLSA records are not DNSSEC-validated (resolver did not set AD)").
			with(name, "").detail("DANE clients ignore TLSA records without DNSSEC; sign the zone or use a validating resolver"))
	}
	if chain == nil {
		return append(fs, finding("dns.tlsa.not-compared", Skipped, "TLSA records found but no certificate to compare (no TLS handshake)").
			with(name, "").detail("%s", strings.Join(texts, "; ")))
	}
	usable := 0
	for _, r := range recs {
		ok, known := tlsaMatches(r, chain, pkixOK)
		if known {
			usable++
		}
		if ok {
			return append(fs, finding("dns.tlsa.match", OK, fmt.Sprintf("the served certificate matches TLSA %d %d %d", r.Usage, r.Selector, r.MatchingType)).
				with(name, "").detail("%s", strings.Join(texts, "; ")))
		}
	}
	if usable == 0 {
		return append(fs, finding("dns.tlsa.unusable", Warn, "TLSA records use unknown usage, selector or matching type").
			with(name, "").detail("%s", strings.Join(texts, "; ")))
	}
	return append(fs, finding("dns.tlsa.mismatch", Error, "the served certificate matches no TLSA record: DANE clients will refuse to connect").
		with(name, "").detail("%s", strings.Join(texts, "; ")))
}

// tlsaMatches reports whether r matches the chain, and whether r uses
// parameters this code knows (RFC 6698 §2.1, RFC 7218 names).
func tlsaMatches(r *dns.TLSA, chain []*x509.Certificate, pkixOK bool) (match, known bool) {
	if r.Usage > 3 || r.Selector > 1 || r.MatchingType > 2 {
		return false, false
	}
	var certs []*x509.Certificate
	switch r.Usage {
	case 1, 3: // PKIX-EE, DANE-EE: the end-entity certificate
		certs = chain[:1]
	case 0, 2: // PKIX-TA, DANE-TA: a CA certificate in the chain
		certs = chain[1:]
	}
	if (r.Usage == 0 || r.Usage == 1) && !pkixOK {
		return false, true
	}
	want := strings.ToLower(r.Certificate)
	for _, c := range certs {
		data := c.Raw
		if r.Selector == 1 {
			data = c.RawSubjectPublicKeyInfo
		}
		var got string
		switch r.MatchingType {
		case 0:
			got = hex.EncodeToString(data)
		case 1:
			s := sha256.Sum256(data)
			got = hex.EncodeToString(s[:])
		case 2:
			s := sha512.Sum512(data)
			got = hex.EncodeToString(s[:])
		}
		if got == want {
			return true, true
		}
	}
	return false, true
}

// tlsaName describes a TLSA record's parameters (RFC 7218 acronyms),
// without its data.
func tlsaName(r *dns.TLSA) string {
	name := func(v uint8, names ...string) string {
		if int(v) < len(names) {
			return names[v]
		}
		return "unknown"
	}
	return fmt.Sprintf("%d %d %d (%s, %s, %s)", r.Usage, r.Selector, r.MatchingType,
		name(r.Usage, "PKIX-TA", "PKIX-EE", "DANE-TA", "DANE-EE"),
		name(r.Selector, "Cert", "SPKI"),
		name(r.MatchingType, "Full", "SHA2-256", "SHA2-512"))
}
