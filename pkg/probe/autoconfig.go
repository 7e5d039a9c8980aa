package probe

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// advertised is an IMAP endpoint that the domain tells mail clients to use.
type advertised struct {
	source         string // e.g. "SRV _imaps._tcp.example.com" or an autoconfig URL
	sourceEndpoint string // Endpoint of the finding that compares it
	plaintext      bool   // socketType "plain"
	ep             *endpoint
}

// clientConfig is the part of Thunderbird's config-v1.1.xml format that
// describes IMAP servers.
type clientConfig struct {
	XMLName   xml.Name `xml:"clientConfig"`
	Providers []struct {
		Incoming []struct {
			Type       string `xml:"type,attr"`
			Hostname   string `xml:"hostname"`
			Port       int    `xml:"port"`
			SocketType string `xml:"socketType"`
		} `xml:"incomingServer"`
	} `xml:"emailProvider"`
}

// autoconfigURLs are where Thunderbird-style clients look, over HTTPS.
func autoconfigURLs(domain string) []string {
	return []string{
		"https://autoconfig." + domain + "/mail/config-v1.1.xml",
		"https://" + domain + "/.well-known/autoconfig/mail/config-v1.1.xml",
	}
}

// checkAutoconfig fetches what the domain advertises to mail clients,
// probes those endpoints, and compares advertisement and reality. srv holds
// the endpoints from RFC 6186 SRV records, already started.
func (p *prober) checkAutoconfig(ctx context.Context, domain string, md *mailDNS, srv []advertised) {
	urls := autoconfigURLs(domain)
	type fetched struct {
		f       Finding
		servers []advertised
	}
	results := make([]fetched, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			f, cfg := p.fetchAutoconfig(ctx, u)
			results[i].f = f
			if cfg == nil {
				return
			}
			for _, prov := range cfg.Providers {
				for _, in := range prov.Incoming {
					if !strings.EqualFold(in.Type, "imap") {
						continue
					}
					host := strings.ReplaceAll(in.Hostname, "%EMAILDOMAIN%", domain)
					host, err := normalizeHostname(host)
					if err != nil || in.Port < 1 || in.Port > 65535 {
						continue
					}
					mode, plain := modeSTARTTLS, false
					switch strings.ToUpper(in.SocketType) {
					case "SSL", "TLS":
						mode = modeImplicit
					case "STARTTLS":
					default:
						plain = true
					}
					results[i].servers = append(results[i].servers, advertised{
						source: u, sourceEndpoint: u, plaintext: plain,
						ep: p.startEndpoint(ctx, host, in.Port, mode, "autoconfig"),
					})
					p.startExtraPorts(ctx, host)
				}
			}
		})
	}
	var adFs []Finding
	wg.Go(func() { adFs = p.checkAutodiscover(ctx, domain) })
	wg.Wait()
	p.add(adFs...)

	adv := slices.Clone(srv)
	for _, r := range results {
		p.add(r.f)
		adv = append(adv, r.servers...)
	}
	if len(adv) == 0 {
		// Guess like a client would: the MX hosts, and the domain itself
		// when it has an address.
		p.add(finding("autoconfig.none", Info, domain+" advertises no IMAP server to mail clients (no SRV, no autoconfig)").
			with(domain, "").detail("clients must guess or be configured by hand; probing the MX hosts and the domain itself instead"))
		for _, mx := range md.mx {
			p.startHostEndpoints(ctx, trimDot(mx.Mx), "mx")
		}
		if p.hasAddress(ctx, domain) {
			p.startHostEndpoints(ctx, domain, "default")
		}
		return
	}
	for _, a := range adv {
		select {
		case <-a.ep.done:
		case <-ctx.Done():
		}
		p.add(compareAdvertised(a))
	}
}

// hasAddress reports whether name has an A or AAAA record, without
// reporting anything.
func (p *prober) hasAddress(ctx context.Context, name string) bool {
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m, err := p.res.query(ctx, name, qt)
		if _, failed := dnsFailure(name, qt, m, err); !failed {
			if a, _ := addrsFromMsg(m); len(a) > 0 {
				return true
			}
		}
	}
	return false
}

// compareAdvertised checks an advertised endpoint against what the probe
// found there: reachable, same TLS mode, and a certificate a client accepts.
func compareAdvertised(a advertised) Finding {
	r := a.ep.result()
	mode := "SSL/TLS"
	if a.ep.mode == modeSTARTTLS {
		mode = "STARTTLS"
	}
	target := fmt.Sprintf("%s:%d (%s)", a.ep.host, a.ep.port, mode)
	f := func(id string, sev Severity, title string) Finding {
		return finding(id, sev, title).with(a.ep.url(a.ep.mode), "").detail("advertised by %s", a.source)
	}
	select {
	case <-a.ep.done:
	default:
		return f("autoconfig.server.unreachable", Error, "advertised server "+target+" could not be checked before the timeout")
	}
	switch {
	case a.plaintext:
		return f("autoconfig.server.plaintext", Warn, "autoconfig tells clients to use "+a.ep.host+":"+strconv.Itoa(a.ep.port)+" without encryption")
	case !r.resolved:
		return f("autoconfig.server.unreachable", Error, "advertised server "+target+" does not resolve")
	case !r.reachable && r.wrongProto != "":
		return f("autoconfig.server.mismatch", Error, "advertised as "+target+", but "+r.wrongProto)
	case !r.reachable:
		return f("autoconfig.server.unreachable", Error, "advertised server "+target+" is not reachable")
	case r.tlsProblem != "":
		return f("autoconfig.server.mismatch", Error, "advertised as "+target+", but "+r.tlsProblem)
	case len(r.certProblem) > 0:
		return f("autoconfig.server.cert-invalid", Error, "advertised server "+target+" has a certificate clients reject: "+problemsText(r.certProblem))
	case !r.handshake:
		return f("autoconfig.server.unreachable", Error, "advertised server "+target+" could not be checked")
	}
	return f("autoconfig.server.ok", OK, "advertised server "+target+" works as advertised")
}

// fetchAutoconfig fetches and parses one config-v1.1.xml.
func (p *prober) fetchAutoconfig(ctx context.Context, u string) (Finding, *clientConfig) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return finding("autoconfig.xml.fetch-failed", Warn, "invalid autoconfig URL").with(u, "").detail("%v", err), nil
	}
	req.Header.Set("Accept", "application/xml, text/xml")
	resp, err := p.http.Do(req)
	if err != nil {
		var cve *tls.CertificateVerificationError
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &cve):
			return finding("autoconfig.xml.fetch-failed", Warn, "autoconfig is served with a certificate clients reject").
				with(u, "").detail("%v", err), nil
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return finding("autoconfig.xml.none", Info, "no autoconfig document (the host does not exist)").with(u, ""), nil
		case isTimeout(err):
			return finding("autoconfig.xml.fetch-failed", Warn, "fetching autoconfig timed out").with(u, "").detail("%v", err), nil
		}
		return finding("autoconfig.xml.none", Info, "no autoconfig document (nothing answers HTTPS there)").with(u, "").detail("%v", err), nil
	}
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return finding("autoconfig.xml.none", Info, "no autoconfig document").with(u, "").detail("HTTP %d", resp.StatusCode), nil
	case resp.StatusCode/100 != 2:
		return finding("autoconfig.xml.fetch-failed", Warn, fmt.Sprintf("fetching autoconfig failed with HTTP %d", resp.StatusCode)).with(u, ""), nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20+1))
	if err != nil {
		return finding("autoconfig.xml.fetch-failed", Warn, "reading autoconfig failed").with(u, "").detail("%v", err), nil
	}
	if len(body) > 1<<20 {
		return finding("autoconfig.xml.invalid", Warn, "the autoconfig document is larger than 1 MiB").with(u, ""), nil
	}
	var cfg clientConfig
	if err := xml.Unmarshal(body, &cfg); err != nil {
		return finding("autoconfig.xml.invalid", Warn, "the autoconfig document is not valid config-v1.1 XML").with(u, "").detail("%v", err), nil
	}
	var servers []string
	for _, prov := range cfg.Providers {
		for _, in := range prov.Incoming {
			if strings.EqualFold(in.Type, "imap") {
				servers = append(servers, fmt.Sprintf("%s:%d %s", in.Hostname, in.Port, in.SocketType))
			}
		}
	}
	if len(servers) == 0 {
		return finding("autoconfig.xml.invalid", Warn, "the autoconfig document lists no IMAP server").with(u, ""), &cfg
	}
	return finding("autoconfig.xml.found", OK, "autoconfig document found").with(u, "").
		detail("IMAP: %s", strings.Join(servers, ", ")), &cfg
}

// checkAutodiscover reports the Microsoft autodiscover host of a domain,
// from DNS only: autodiscover.DOMAIN and _autodiscover._tcp.DOMAIN SRV. The
// autodiscover XML itself needs a mailbox address and usually
// authentication, so it is not fetched.
func (p *prober) checkAutodiscover(ctx context.Context, domain string) []Finding {
	host := "autodiscover." + domain
	srvName := "_autodiscover._tcp." + domain
	var (
		wg          sync.WaitGroup
		mA, mS      *dns.Msg
		errA, errS  error
		found, errs []string
		fs          []Finding
	)
	wg.Go(func() { mA, errA = p.res.query(ctx, host, dns.TypeA) })
	wg.Go(func() { mS, errS = p.res.query(ctx, srvName, dns.TypeSRV) })
	wg.Wait()
	if f, failed := dnsFailure(host, dns.TypeA, mA, errA); failed {
		fs = append(fs, f)
		errs = append(errs, host)
	} else if addrs, _ := addrsFromMsg(mA); len(addrs) > 0 {
		found = append(found, fmt.Sprintf("%s → %s", host, joinAddrs(addrs)))
	}
	if f, failed := dnsFailure(srvName, dns.TypeSRV, mS, errS); failed {
		fs = append(fs, f)
		errs = append(errs, srvName)
	} else {
		for _, rr := range mS.Answer {
			if s, ok := rr.(*dns.SRV); ok && s.Target != "." {
				found = append(found, fmt.Sprintf("SRV %s → %s", srvName, net.JoinHostPort(trimDot(s.Target), strconv.Itoa(int(s.Port)))))
			}
		}
	}
	slices.Sort(found)
	switch {
	case len(found) > 0:
		fs = append(fs, finding("autoconfig.autodiscover.found", Info, "a Microsoft autodiscover host is published").
			with(domain, "").detail("%s (not fetched: it needs a mailbox address)", strings.Join(found, "; ")))
	case len(errs) == 0:
		fs = append(fs, finding("autoconfig.autodiscover.none", Info, "no Microsoft autodiscover host (Outlook users configure by hand)").with(domain, ""))
	}
	return fs
}

func joinAddrs(addrs []netip.Addr) string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

// defaultHTTPClient fetches autoconfig documents, resolving names through
// the probe's resolver and trusting the probe's roots.
func (p *prober) defaultHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{RootCAs: p.roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			if ip, err := netip.ParseAddr(host); err == nil {
				return p.dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			}
			var addrs []netip.Addr
			var notFound = true
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
				m, err := p.res.query(ctx, host, qt)
				if _, failed := dnsFailure(host, qt, m, err); failed {
					notFound = false
					continue
				}
				if m.Rcode != dns.RcodeNameError {
					notFound = false
				}
				a, _ := addrsFromMsg(m)
				addrs = append(addrs, a...)
			}
			if len(addrs) == 0 {
				return nil, &net.DNSError{Err: "no address", Name: host, IsNotFound: notFound}
			}
			var lastErr error
			for _, a := range addrs {
				c, err := p.dialer.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
				if err == nil {
					return c, nil
				}
				lastErr = err
			}
			return nil, lastErr
		},
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" {
				return errors.New("redirect away from HTTPS")
			}
			return nil
		},
	}
}
