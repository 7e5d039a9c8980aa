package probe

import (
	"cmp"
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// prober holds the state of one Run.
type prober struct {
	t       *target
	timeout time.Duration
	// sniffWait is how long a plaintext port may stay silent before the
	// probe tries TLS on it; respWait bounds the wait for a first answer
	// (greeting or ServerHello).
	sniffWait time.Duration
	respWait  time.Duration
	now       func() time.Time
	roots     *x509.CertPool
	dialer    *net.Dialer
	res       *resolver
	http      *http.Client

	implicitPorts, starttlsPorts, extraPorts []int

	wg sync.WaitGroup

	mu       sync.Mutex
	kind     string
	findings []Finding
	hosts    map[string]*hostInfo
	eps      map[string]*endpoint
	extraFor map[string]bool // hosts whose extra ports were started
}

func newProber(opts Options) (*prober, error) {
	t, err := parseTarget(opts.Target)
	if err != nil {
		return nil, err
	}
	p := &prober{
		t:        t,
		timeout:  opts.Timeout,
		now:      opts.Now,
		hosts:    map[string]*hostInfo{},
		eps:      map[string]*endpoint{},
		extraFor: map[string]bool{},
	}
	if p.timeout < 0 {
		return nil, usageErrorf("negative timeout %v", opts.Timeout)
	}
	if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	p.sniffWait = min(max(p.timeout/10, 200*time.Millisecond), time.Second)
	p.respWait = min(max(p.timeout/2, 300*time.Millisecond), 5*time.Second)
	if p.now == nil {
		p.now = time.Now
	}
	checkPorts := func(what string, ports []int) ([]int, error) {
		for _, n := range ports {
			if n < 1 || n > 65535 {
				return nil, usageErrorf("invalid %s %d (want 1-65535)", what, n)
			}
		}
		return slices.Compact(slices.Sorted(slices.Values(ports))), nil
	}
	if p.extraPorts, err = checkPorts("port", opts.Ports); err != nil {
		return nil, err
	}
	if t.url && len(p.extraPorts) > 0 {
		return nil, usageErrorf("--port cannot be combined with a URL target: the URL names the port")
	}
	p.implicitPorts, p.starttlsPorts = []int{993}, []int{143}
	if opts.ImplicitTLSPorts != nil {
		if p.implicitPorts, err = checkPorts("implicit TLS port", opts.ImplicitTLSPorts); err != nil {
			return nil, err
		}
	}
	if opts.StartTLSPorts != nil {
		if p.starttlsPorts, err = checkPorts("STARTTLS port", opts.StartTLSPorts); err != nil {
			return nil, err
		}
	}

	if opts.RootCAs != nil {
		p.roots = opts.RootCAs.Clone()
	} else if sys, err := x509.SystemCertPool(); err == nil {
		p.roots = sys
	} else {
		p.roots = x509.NewCertPool()
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, usageErrorf("reading CA file: %v", err)
		}
		if !p.roots.AppendCertsFromPEM(pem) {
			return nil, usageErrorf("CA file %s contains no PEM certificate", opts.CAFile)
		}
	}

	server, err := parseResolver(opts.Resolver)
	if err != nil {
		return nil, err
	}
	p.dialer = &net.Dialer{Control: opts.dialControl}
	p.res = newResolver(server, p.dialer)
	p.http = opts.HTTPClient
	if p.http == nil {
		p.http = p.defaultHTTPClient()
	}
	return p, nil
}

func (p *prober) add(fs ...Finding) {
	p.mu.Lock()
	p.findings = append(p.findings, fs...)
	p.mu.Unlock()
}

// run starts the checks for the target and waits for all of them.
func (p *prober) run(ctx context.Context) {
	switch {
	case p.t.url:
		p.kind = "url"
		p.hostInfo(ctx, p.t.host)
		p.startEndpoint(ctx, p.t.host, p.t.port, p.t.mode, "url")
	case p.t.ip.IsValid():
		p.kind = "host"
		p.hostInfo(ctx, p.t.host)
		p.startHostEndpoints(ctx, p.t.host, "default")
	default:
		p.discover(ctx)
	}
	p.wg.Wait()
}

// startHostEndpoints starts the standard and extra ports of host.
func (p *prober) startHostEndpoints(ctx context.Context, host, source string) {
	for _, port := range p.implicitPorts {
		p.startEndpoint(ctx, host, port, modeImplicit, source)
	}
	for _, port := range p.starttlsPorts {
		p.startEndpoint(ctx, host, port, modeSTARTTLS, source)
	}
	p.startExtraPorts(ctx, host)
}

func (p *prober) startExtraPorts(ctx context.Context, host string) {
	p.mu.Lock()
	done := p.extraFor[host]
	p.extraFor[host] = true
	p.mu.Unlock()
	if done {
		return
	}
	for _, port := range p.extraPorts {
		p.startEndpoint(ctx, host, port, modeUnknown, "port")
	}
}

// endpoint is one host:port probed in one TLS mode.
type endpoint struct {
	host   string
	port   int
	mode   tlsMode // as requested; modeUnknown for extra ports
	source string
	done   chan struct{}

	mu  sync.Mutex
	res epResult
	// portFindings are held back until the end so that failures of
	// standard ports can be put in perspective (see finish).
	portFindings []Finding
}

// epResult summarises what an endpoint really offers, for comparison with
// what autoconfig and SRV records advertise.
type epResult struct {
	resolved    bool
	reachable   bool
	mode        tlsMode // detected mode of the chosen address
	wrongProto  string  // why the port does not speak what was expected
	handshake   bool    // TLS handshake completed
	tlsProblem  string  // TLS handshake or STARTTLS failure
	certProblem []string
	starttlsOK  bool
}

func (ep *endpoint) key() string {
	return net.JoinHostPort(ep.host, strconv.Itoa(ep.port)) + "/" + ep.mode.String()
}

// url returns the endpoint as used in findings for mode m.
func (ep *endpoint) url(m tlsMode) string {
	return Endpoint{Host: ep.host, Port: ep.port, TLS: m.String()}.URL()
}

func (ep *endpoint) result() epResult {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	r := ep.res
	r.certProblem = slices.Clone(r.certProblem)
	return r
}

func (ep *endpoint) update(f func(r *epResult)) {
	ep.mu.Lock()
	f(&ep.res)
	ep.mu.Unlock()
}

// startEndpoint starts probing host:port in mode unless that endpoint is
// already being probed, and returns it.
func (p *prober) startEndpoint(ctx context.Context, host string, port int, mode tlsMode, source string) *endpoint {
	ep := &endpoint{host: host, port: port, mode: mode, source: source, done: make(chan struct{})}
	p.mu.Lock()
	if old, ok := p.eps[ep.key()]; ok {
		p.mu.Unlock()
		return old
	}
	if mode == modeUnknown {
		// An extra port that is already probed in a known mode.
		for _, old := range p.eps {
			if old.host == host && old.port == port {
				p.mu.Unlock()
				return old
			}
		}
	}
	p.eps[ep.key()] = ep
	p.mu.Unlock()
	p.wg.Go(func() { p.runEndpoint(ctx, ep) })
	return ep
}

func (p *prober) endpointList() []Endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Endpoint
	for _, ep := range p.eps {
		m := ep.mode
		if m == modeUnknown {
			m = ep.res.mode
		}
		out = append(out, Endpoint{Host: ep.host, Port: ep.port, TLS: m.String(), Source: ep.source})
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port), strings.Compare(a.TLS, b.TLS))
	})
	return out
}

// runEndpoint resolves the endpoint's host, connects to every address, and
// runs the TLS and IMAP checks on the first address that works.
func (p *prober) runEndpoint(ctx context.Context, ep *endpoint) {
	defer close(ep.done)
	h := p.hostInfo(ctx, ep.host)
	select {
	case <-h.done:
	case <-ctx.Done():
		return
	}
	if len(h.addrs) == 0 {
		return
	}
	ep.update(func(r *epResult) { r.resolved = true })

	results := make([]portResult, len(h.addrs))
	var wg sync.WaitGroup
	for i, a := range h.addrs {
		wg.Go(func() { results[i] = p.checkPort(ctx, ep, netip.AddrPortFrom(a, uint16(ep.port))) })
	}
	wg.Wait()
	var chosen *portResult
	var wrong string
	for i := range results {
		ep.portFindings = append(ep.portFindings, results[i].finding)
		if results[i].usable && chosen == nil {
			chosen = &results[i]
		}
		if results[i].wrongProto != "" && wrong == "" {
			wrong = results[i].wrongProto
		}
	}
	if chosen == nil {
		ep.update(func(r *epResult) { r.wrongProto = wrong })
		return
	}
	mode := ep.mode
	if mode == modeUnknown {
		mode = chosen.mode
	}
	ep.update(func(r *epResult) { r.reachable, r.mode = true, mode })

	wg.Go(func() { p.checkTLS(ctx, ep, mode, chosen.addr) })
	wg.Go(func() { p.checkIMAP(ctx, ep, mode, chosen.addr) })
	wg.Wait()
}

// allFindings merges the findings, putting failures of guessed endpoints
// in perspective: a closed 143 next to a working 993, or a domain's own
// address without IMAP next to a working MX host, is informational.
func (p *prober) allFindings() []Finding {
	p.mu.Lock()
	defer p.mu.Unlock()
	anyReachable := false
	for _, ep := range p.eps {
		if ep.res.reachable {
			anyReachable = true
		}
	}
	out := slices.Clone(p.findings)
	for _, ep := range p.eps {
		for _, f := range ep.portFindings {
			guessed := ep.source == "default" || ep.source == "mx"
			if guessed && anyReachable && f.Severity == Error &&
				(f.ID == "ports.refused" || f.ID == "ports.timeout") {
				f.Severity = Info
				f.Title += " (fine: IMAP works on another endpoint)"
			}
			out = append(out, f)
		}
	}
	return out
}

// hostInfo is the DNS view of one host, resolved once per probe.
type hostInfo struct {
	name  string
	done  chan struct{}
	addrs []netip.Addr // valid after done
}

// hostInfo returns the (memoized) resolution of name, starting it and the
// host's DNS checks (A/AAAA, PTR/FCrDNS, CAA) on first use.
func (p *prober) hostInfo(ctx context.Context, name string) *hostInfo {
	p.mu.Lock()
	h, ok := p.hosts[name]
	if !ok {
		h = &hostInfo{name: name, done: make(chan struct{})}
		p.hosts[name] = h
	}
	p.mu.Unlock()
	if !ok {
		p.wg.Go(func() { p.resolveHost(ctx, h) })
	}
	return h
}

func (p *prober) resolveHost(ctx context.Context, h *hostInfo) {
	if ip, err := netip.ParseAddr(h.name); err == nil {
		h.addrs = []netip.Addr{ip}
		close(h.done)
		p.wg.Go(func() { p.add(p.checkPTR(ctx, h.name, ip)...) })
		return
	}
	fs, addrs := p.checkAddrs(ctx, h.name)
	h.addrs = addrs
	close(h.done)
	p.add(fs...)
	for _, a := range addrs {
		p.wg.Go(func() { p.add(p.checkPTR(ctx, h.name, a)...) })
	}
	p.wg.Go(func() { p.add(p.checkCAA(ctx, h.name)...) })
}

// dial connects to ap. The returned conn has the context's deadline set and
// is unblocked when ctx is cancelled; stop releases that watch and closes
// the connection.
func (p *prober) dial(ctx context.Context, ap netip.AddrPort) (conn net.Conn, elapsed time.Duration, stop func(), err error) {
	start := time.Now()
	// A connect that takes longer than respWait is a dropped SYN, not a
	// slow server; do not let it consume the whole budget.
	dctx, cancel := context.WithDeadline(ctx, deadline(ctx, p.respWait))
	conn, err = p.dialer.DialContext(dctx, "tcp", ap.String())
	cancel()
	elapsed = time.Since(start)
	if err != nil {
		return nil, elapsed, func() {}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	unwatch := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return conn, elapsed, func() { unwatch(); _ = conn.Close() }, nil
}

// deadline returns now+d, or the context's deadline if earlier.
func deadline(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}

// ctxDeadline returns the context's deadline, or zero (none).
func ctxDeadline(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}
